// Bundles the compiled CLI (dist/cli/main.js, from tsc) into dist/lifeboat/: one entry file plus one
// chunk per group of lazily imported modules (esbuild code splitting), which bin/lifeboat.js loads.
//
// Why: Node 20 has no compile cache for ES modules, and lifeboat starts a process per WAL segment
// (archive_command). Loading ~600 small module files (zod alone is ~100, the YAML parser ~80) took
// ~0.15 s of every such process; a bundle resolves, reads and compiles a handful. tsc stays the
// compiler (dist/ keeps its per-module output, which a few tests import); esbuild only joins files.
//
// Kept outside: zstd-napi (a native addon, loaded by path in the worker threads) and pg-native
// (an optional dependency of pg that lifeboat does not use).
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = join(root, 'dist', 'lifeboat');

rmSync(outdir, { recursive: true, force: true });
await build({
  entryPoints: { main: join(root, 'dist', 'cli', 'main.js') },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // Whitespace and syntax only: identifiers keep their names, so stack traces (--debug) stay readable.
  minifyWhitespace: true,
  minifySyntax: true,
  sourcemap: true,
  external: ['zstd-napi', 'pg-native'],
  // CommonJS dependencies (pg, the AWS SDK) call require() for Node's built-ins.
  banner: {
    js: "import { createRequire as __lifeboatRequire } from 'node:module'; const require = __lifeboatRequire(import.meta.url);",
  },
  logLevel: 'warning',
});
