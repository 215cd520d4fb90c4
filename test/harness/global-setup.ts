// Vitest globalSetup of the integration project: builds the CLI into dist/ once, before any suite runs,
// so suites can spawn bin/lifeboat.js (which imports the bundle, dist/lifeboat/main.js).
//
// Terms:
//   build        `npm run build` in the repository root: tsc -p tsconfig.build.json, then
//                scripts/bundle.mjs (esbuild, from node_modules). A failed build fails the whole run,
//                with the compiler's output in the error.
//   sweep        first, server roots that killed runs left under os.tmpdir() are removed (see
//                data-directories.ts); roots of runs still in progress are left alone.
//   LIFEBOAT_SKIP_BUILD  when set (to anything but "", "0" or "false"), the build is skipped and dist/ is
//                used as it is, e.g. while someone else's half-written src/ does not compile.
import { fileURLToPath } from 'node:url';
import { describeFailure, runCommand } from './commands.js';
import { removeStaleServerDirectories } from './data-directories.js';

const REPOSITORY_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BUILD_COMMAND = 'npm';
const BUILD_ARGS = ['run', '--silent', 'build'] as const;
const BUILD_TIMEOUT_MS = 300_000;

function skipRequested(env: NodeJS.ProcessEnv): boolean {
  const value = env.LIFEBOAT_SKIP_BUILD?.trim().toLowerCase();
  return value !== undefined && value !== '' && value !== '0' && value !== 'false';
}

export default async function setUpIntegrationRun(): Promise<void> {
  const stale = await removeStaleServerDirectories();
  if (stale.length > 0)
    console.log(`[harness] removed ${stale.length} server directories left by killed runs`);
  await buildCli();
}

async function buildCli(): Promise<void> {
  if (skipRequested(process.env)) {
    console.log(
      '[harness] LIFEBOAT_SKIP_BUILD is set: not building dist/, integration tests use it as it is',
    );
    return;
  }
  const started = Date.now();
  const result = await runCommand(BUILD_COMMAND, BUILD_ARGS, {
    cwd: REPOSITORY_ROOT,
    timeoutMs: BUILD_TIMEOUT_MS,
  });
  if (result.code !== 0) {
    throw new Error(
      `[harness] building the CLI failed, so integration tests cannot run ` +
        `(set LIFEBOAT_SKIP_BUILD=1 to use dist/ as it is):\n${describeFailure(BUILD_COMMAND, BUILD_ARGS, result)}`,
    );
  }
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  console.log(`[harness] built dist/ (tsc, then the bundle) in ${seconds} s`);
}
