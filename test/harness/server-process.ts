// Long-running server processes the harness starts, waits for, and stops.
//
// Terms:
//   server process   a child spawned through `setpriv --pdeathsig SIGKILL [--reuid=U --regid=U --init-groups]
//                    <binary> …`: setpriv execs the binary, so the child's pid IS the server, and the kernel
//                    SIGKILLs it if this process dies without running any handler.
//   server root      the throwaway directory of one server (see data-directories.ts); it is removed once
//                    the server has ended.
//   log tail         the last lines the server wrote to stdout or stderr, kept in memory for error messages.
//   ready            the service-specific probe answered positively while the process was still running.
//   stop             the stop signal (SIGTERM unless the service asks otherwise), up to 10 s for the process
//                    to end, then SIGKILL; then the server root is removed. Stopping twice is harmless.
//   emergency stop   when this process exits ('exit') or is told to end (SIGINT, SIGTERM: vitest ends its
//                    workers with SIGTERM) while servers still run, they get SIGKILL and their roots are
//                    removed synchronously; the signal then takes its default course.
//   port clash       the server could not bind its port ("address already in use"): another process took
//                    the free port first. ServerStartError.portClash tells callers a retry may succeed.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

const LOG_BUFFER_CHARS = 64 * 1024;
const DEFAULT_LOG_TAIL_LINES = 40;
const GRACEFUL_STOP_MS = 10_000;
const AFTER_KILL_WAIT_MS = 5_000;
const PROBE_INTERVAL_MS = 200;
/** After an early exit, how long to let the last output arrive through the pipes before quoting it. */
const OUTPUT_DRAIN_MS = 100;
const PORT_CLASH_PATTERN = /address already in use|EADDRINUSE|port is already in use/i;

export interface SpawnServerOptions {
  /** Short name used in messages, e.g. "postgres". */
  label: string;
  /** Absolute path of the server binary. */
  command: string;
  args: readonly string[];
  /** Environment for the server (default: this process's environment). */
  env?: NodeJS.ProcessEnv;
  /** Run the server as this system user (needs root), e.g. "postgres"; default: the current user. */
  runAs?: string;
  /** The server root, removed once the server has ended. */
  serverRoot: string;
  /** Signal that asks the server to shut down cleanly (default SIGTERM). */
  stopSignal?: NodeJS.Signals;
}

/** How a server process ended: exit code or signal, or the error that kept it from starting. */
export type ExitStatus =
  | { readonly kind: 'exited'; readonly code: number | null; readonly signal: NodeJS.Signals | null }
  | { readonly kind: 'spawn-failed'; readonly error: Error };

/** A server failed to start or to become ready; the message ends with the server's log tail. */
export class ServerStartError extends Error {
  /** True when the log says the port was taken: starting again on another port may succeed. */
  readonly portClash: boolean;

  constructor(label: string, reason: string, logTail: string) {
    const log = logTail.trim() === '' ? '(the server wrote nothing)' : logTail.trimEnd();
    super(`${label} did not start: ${reason}\n--- last lines of the ${label} log ---\n${log}`);
    this.name = 'ServerStartError';
    this.portClash = PORT_CLASH_PATTERN.test(logTail);
  }
}

/** Servers not yet stopped; killed synchronously if this process exits first. */
const liveServers = new Set<ServerProcess>();
let exitHookInstalled = false;

function stopAllImmediately(): void {
  for (const server of liveServers) server.killImmediately();
}

function installExitHooks(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', stopAllImmediately);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      stopAllImmediately();
      // Our listener is gone now; with no other listener, raising the signal again ends the process as
      // it would have without us. Another listener means someone else decides what the signal does.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    });
  }
}

function describeExit(status: ExitStatus): string {
  if (status.kind === 'spawn-failed') return `could not be spawned: ${status.error.message}`;
  return status.signal === null ? `exited with code ${status.code}` : `was killed by ${status.signal}`;
}

/** One running (or ended) server child process. Create it with `spawnServer`. */
export class ServerProcess {
  readonly label: string;
  readonly serverRoot: string;
  private readonly child: ChildProcess;
  private readonly stopSignal: NodeJS.Signals;
  private log = '';
  private status: ExitStatus | undefined;
  private readonly ended: Promise<void>;
  private stopping: Promise<void> | undefined;

  constructor(options: SpawnServerOptions) {
    this.label = options.label;
    this.serverRoot = options.serverRoot;
    this.stopSignal = options.stopSignal ?? 'SIGTERM';
    const identity =
      options.runAs === undefined
        ? []
        : [`--reuid=${options.runAs}`, `--regid=${options.runAs}`, '--init-groups'];
    this.child = spawn('setpriv', ['--pdeathsig', 'SIGKILL', ...identity, options.command, ...options.args], {
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.ended = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.status ??= { kind: 'exited', code, signal };
        resolve();
      });
      this.child.once('error', (error) => {
        this.status ??= { kind: 'spawn-failed', error };
        resolve();
      });
    });
    for (const stream of [this.child.stdout, this.child.stderr]) {
      stream?.setEncoding('utf8');
      stream?.on('data', (text: string) => this.appendLog(text));
      if (stream instanceof Socket) stream.unref();
    }
    // Neither the child nor its pipes keep the test process alive; the exit hook kills leftovers.
    this.child.unref();
    installExitHooks();
    liveServers.add(this);
  }

  /** The server's process id (undefined if it could not be spawned). */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** How the process ended, or undefined while it runs. */
  get exitStatus(): ExitStatus | undefined {
    return this.status;
  }

  /** The last `lines` lines of the server's output. */
  logTail(lines = DEFAULT_LOG_TAIL_LINES): string {
    return this.log
      .split('\n')
      .slice(-lines - 1)
      .join('\n');
  }

  /** A ServerStartError carrying this server's log tail. */
  startError(reason: string): ServerStartError {
    return new ServerStartError(this.label, reason, this.logTail());
  }

  /** Resolves true once the process has ended, false if it still runs after `timeoutMs`. */
  async waitForExit(timeoutMs: number): Promise<boolean> {
    if (this.status !== undefined) return true;
    const timeout = new AbortController();
    const expired = sleep(timeoutMs, false, { signal: timeout.signal }).catch(() => false);
    const result = await Promise.race([this.ended.then(() => true), expired]);
    timeout.abort();
    return result;
  }

  /** Stops the server (stop signal, 10 s, SIGKILL) and removes its server root. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= this.stopAndClean();
    return this.stopping;
  }

  private async stopAndClean(): Promise<void> {
    let stillRunning = false;
    if (this.status === undefined) {
      this.child.kill(this.stopSignal);
      if (!(await this.waitForExit(GRACEFUL_STOP_MS))) {
        this.child.kill('SIGKILL');
        stillRunning = !(await this.waitForExit(AFTER_KILL_WAIT_MS));
      }
    }
    liveServers.delete(this);
    await rm(this.serverRoot, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
    if (stillRunning) {
      throw new Error(
        `${this.label} (pid ${this.pid}) did not end within ${AFTER_KILL_WAIT_MS} ms of SIGKILL`,
      );
    }
  }

  /** For the emergency stop only: SIGKILL now and remove the server root synchronously. */
  killImmediately(): void {
    if (this.status === undefined) this.child.kill('SIGKILL');
    liveServers.delete(this);
    try {
      rmSync(this.serverRoot, { recursive: true, force: true });
    } catch {
      // Best effort while exiting: a dying server may still be writing into the directory.
    }
  }

  private appendLog(text: string): void {
    this.log += text;
    if (this.log.length > LOG_BUFFER_CHARS) this.log = this.log.slice(-LOG_BUFFER_CHARS);
  }
}

/** Spawns a server (see the module comment for how it is wrapped). Never throws: check `exitStatus`. */
export function spawnServer(options: SpawnServerOptions): ServerProcess {
  return new ServerProcess(options);
}

/** A readiness check: true when the server answers as expected; may throw to explain why it does not. */
export type ReadinessProbe = () => Promise<boolean>;

/**
 * Polls `probe` until it answers true while the process runs. On timeout or early exit the server is
 * stopped (its server root removed) and a ServerStartError with its log tail is thrown.
 */
export async function waitUntilReady(
  server: ServerProcess,
  probe: ReadinessProbe,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastProbeFailure = 'no answer yet';
  for (;;) {
    const ended = server.exitStatus;
    if (ended !== undefined) {
      await sleep(OUTPUT_DRAIN_MS);
      await server.stop();
      throw server.startError(`the process ${describeExit(ended)} before it answered`);
    }
    try {
      if (await probe()) {
        // The probe may have reached another process that holds our port: only trust a live server.
        if (server.exitStatus === undefined) return;
        continue;
      }
      lastProbeFailure = 'probe answered, but not ready';
    } catch (error) {
      lastProbeFailure = error instanceof Error ? error.message : String(error);
    }
    if (Date.now() >= deadline) {
      await server.stop();
      throw server.startError(`no answer within ${timeoutMs} ms (last probe: ${lastProbeFailure})`);
    }
    await sleep(PROBE_INTERVAL_MS);
  }
}
