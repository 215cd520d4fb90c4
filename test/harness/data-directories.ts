// Throwaway directories for the servers the harness starts, and the sweep of ones a killed run left.
//
// Terms:
//   server root     mkdtemp(os.tmpdir()/lifeboat-<service>-XXXXXX): everything of one started server. It
//                   holds OWNER_FILE and `data/`, the directory the server stores its data in (the
//                   handle's dataDirectory). Stopping the server removes the whole root.
//   owner file      OWNER_FILE in the root: the pid of the test process that started the server.
//   stale root      a server root whose owner process no longer runs: the run was killed (SIGKILL, crash)
//                   before it could clean up. Its server is gone too (servers get SIGKILL when the test
//                   process dies, see server-process.ts), so the sweep removes the root. Roots of other
//                   runs still in progress keep a live owner and are left alone.
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT_PREFIX = 'lifeboat-';
const OWNER_FILE = 'harness-owner.pid';

/** A server root and the data directory inside it. */
export interface ServerDirectories {
  /** The mkdtemp directory removed on stop. */
  readonly root: string;
  /** `<root>/data`, where the server keeps its data. */
  readonly data: string;
}

/** Creates the server root (with owner file) and its empty data directory for one server of `service`. */
export async function createServerDirectories(service: string): Promise<ServerDirectories> {
  const root = await mkdtemp(join(tmpdir(), `${ROOT_PREFIX}${service}-`));
  await writeFile(join(root, OWNER_FILE), `${process.pid}\n`);
  const data = join(root, 'data');
  await mkdir(data, { mode: 0o700 });
  return { root, data };
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to another user.
    return error instanceof Error && 'code' in error && error.code === 'EPERM';
  }
}

async function ownerOf(root: string): Promise<number | undefined> {
  try {
    const pid = Number.parseInt(await readFile(join(root, OWNER_FILE), 'utf8'), 10);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined; // no owner file: not a harness server root, or one still being created
  }
}

/** Removes the stale server roots under os.tmpdir(); resolves with the paths it removed. */
export async function removeStaleServerDirectories(): Promise<string[]> {
  const removed: string[] = [];
  const entries = await readdir(tmpdir(), { withFileTypes: true });
  for (const entry of entries) {
    if (!entry.isDirectory() || !entry.name.startsWith(ROOT_PREFIX)) continue;
    const root = join(tmpdir(), entry.name);
    const owner = await ownerOf(root);
    if (owner === undefined || isRunning(owner)) continue;
    await rm(root, { recursive: true, force: true, maxRetries: 3 });
    removed.push(root);
  }
  return removed;
}
