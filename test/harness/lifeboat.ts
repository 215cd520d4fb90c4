// Running the built CLI (bin/lifeboat.js) from integration tests, in a throwaway workspace directory.
//
// Terms:
//   workspace   a temp directory holding lifeboat.yaml, a local repository and scratch directories. When
//               the tests run as root it is chowned to the `postgres` user so that a PostgreSQL server
//               (which runs as postgres) can run lifeboat wal-push/wal-fetch with the same config.
//   asPostgres  runs the CLI as the postgres system user (setpriv), as a database host would: wal-push
//               from archive_command, and the restores that start servers.
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';

export const BIN = fileURLToPath(new URL('../../bin/lifeboat.js', import.meta.url));
export const NODE = process.execPath;

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON. */
  json<T = unknown>(): T;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  input?: string;
  asPostgres?: boolean;
  /** Working directory (default: the workspace). */
  cwd?: string;
  timeoutMs?: number;
  /** Called with the child process right after spawn (to kill it mid-way). */
  onSpawn?: (pid: number) => void;
}

const isRoot = process.getuid?.() === 0;

export function postgresIds(): { uid: number; gid: number } {
  return {
    uid: Number(execFileSync('id', ['-u', 'postgres']).toString().trim()),
    gid: Number(execFileSync('id', ['-g', 'postgres']).toString().trim()),
  };
}

export class Workspace {
  readonly directory: string;
  readonly configPath: string;

  constructor(prefix: string) {
    this.directory = mkdtempSync(join(tmpdir(), `lifeboat-${prefix}-`));
    this.configPath = join(this.directory, 'lifeboat.yaml');
    chmodSync(this.directory, 0o755);
    if (isRoot) {
      const { uid, gid } = postgresIds();
      chownSync(this.directory, uid, gid);
    }
  }

  path(name: string): string {
    return join(this.directory, name);
  }

  writeConfig(yaml: string): void {
    writeFileSync(this.configPath, yaml, { mode: 0o644 });
    if (isRoot) {
      const { uid, gid } = postgresIds();
      chownSync(this.configPath, uid, gid);
    }
  }

  /** The command line PostgreSQL's archive_command uses to run this workspace's lifeboat. */
  walPushCommand(source: string): string {
    return `${NODE} ${BIN} --config ${this.configPath} wal-push --source ${source} %p`;
  }

  run(args: readonly string[], options: RunOptions = {}): Promise<CliResult> {
    const asPostgres = options.asPostgres === true && isRoot;
    const command = asPostgres ? 'setpriv' : NODE;
    const argv = [
      ...(asPostgres ? ['--reuid=postgres', '--regid=postgres', '--init-groups', NODE] : []),
      BIN,
      '--config',
      this.configPath,
      ...args,
    ];
    return new Promise((resolve, reject) => {
      const child = spawn(command, argv, {
        cwd: options.cwd ?? this.directory,
        env: { PATH: process.env.PATH, HOME: this.directory, ...options.env },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      options.onSpawn?.(child.pid!);
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
      child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
      const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 600_000);
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(timer);
        const stdout = Buffer.concat(out).toString('utf8');
        resolve({
          code,
          stdout,
          stderr: Buffer.concat(err).toString('utf8'),
          json: <T>() => JSON.parse(stdout) as T,
        });
      });
      child.stdin.end(options.input ?? '');
    });
  }

  remove(): void {
    rmSync(this.directory, { recursive: true, force: true });
  }
}
