// Running short-lived helper programs (initdb, pg_isready, psql, `redis-server --version`) to completion.
//
// Terms:
//   command result  exit code (null when a signal ended the program), the signal if any, and everything
//                   the program wrote to stdout and stderr, decoded as UTF-8.
//   executable      a file that exists and that this process may execute; `requireExecutable` turns a
//                   missing server binary into an error that says how to install it.
import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';

export interface CommandResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunCommandOptions {
  /** Kill the program with SIGKILL when it runs longer than this (default 60 s). */
  timeoutMs?: number;
  /** Environment for the program (default: this process's environment). */
  env?: NodeJS.ProcessEnv;
  /** Working directory (default: this process's). */
  cwd?: string;
}

/** Runs `command args…` to completion. Rejects only when the program cannot be started or times out. */
export function runCommand(
  command: string,
  args: readonly string[],
  options: RunCommandOptions = {},
): Promise<CommandResult> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      env: options.env ?? process.env,
      cwd: options.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const result: CommandResult = {
        code,
        signal,
        stdout: Buffer.concat(stdout).toString('utf8'),
        stderr: Buffer.concat(stderr).toString('utf8'),
      };
      if (timedOut) {
        reject(
          new Error(`${command} ${args.join(' ')} did not finish within ${timeoutMs} ms\n${result.stderr}`),
        );
      } else {
        resolve(result);
      }
    });
  });
}

/** Describes a finished command for an error message: the command line, exit status and its output. */
export function describeFailure(command: string, args: readonly string[], result: CommandResult): string {
  const status = result.signal === null ? `exit code ${result.code}` : `signal ${result.signal}`;
  const output = `${result.stdout}${result.stderr}`.trim();
  return `${command} ${args.join(' ')} failed (${status})${output === '' ? '' : `:\n${output}`}`;
}

/** Fails with a message naming the install step when `path` is not an executable file. */
export async function requireExecutable(path: string, installHint: string): Promise<void> {
  try {
    await access(path, constants.X_OK);
  } catch {
    throw new Error(`${path} is not installed or not executable (${installHint})`);
  }
}
