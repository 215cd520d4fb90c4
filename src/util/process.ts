// Running the stores' own tools (pg_dump, pg_restore, pg_basebackup, tar) as child processes.
//
// Terms:
//   tool          an external program run with an argument list (never through a shell) and an
//                 environment; secrets go in the environment (PGPASSWORD), never in arguments.
//   stderr tail   the last few KiB a tool wrote to stderr, kept for the error message.
//   failure       a non-zero exit or a signal; turned into an Error by the caller's `describe`, which
//                 classifies it (an engine knows what "password authentication failed" means).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import net from 'node:net';
import { PassThrough, type Readable, type Writable } from 'node:stream';

import type { DirectSource } from './read-fd.js';
import { UserBufferFeed } from './socket-feed.js';

const STDERR_TAIL_BYTES = 8192;

/** How a tool ended. */
export interface ToolExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

export interface ToolOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Kills the tool (SIGTERM, then SIGKILL after 5 s) when signalled. */
  signal?: AbortSignal;
  /** Kills the tool after this long. */
  timeoutMs?: number;
  /** Turns a failed exit into the error to throw. */
  describe: (exit: ToolExit) => Error;
  /** Called with each stderr line as it arrives (progress of verbose tools). */
  onStderrLine?: (line: string) => void;
  /** Runs the tool as this uid/gid (when lifeboat runs as root and the tool refuses root). */
  uid?: number;
  gid?: number;
}

function start(
  command: string,
  args: readonly string[],
  options: ToolOptions,
  stdin: boolean,
  stdout: 'pipe' | net.Socket = 'pipe',
) {
  let child: ChildProcess;
  try {
    child = spawn(command, args, {
      env: options.env ?? process.env,
      cwd: options.cwd,
      stdio: [stdin ? 'pipe' : 'ignore', stdout, 'pipe'],
      uid: options.uid,
      gid: options.gid,
    });
  } catch (error) {
    throw options.describe({ code: null, signal: null, stderr: (error as Error).message });
  }
  let stderr = '';
  let partial = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (text: string) => {
    stderr = (stderr + text).slice(-STDERR_TAIL_BYTES);
    if (options.onStderrLine) {
      const lines = (partial + text).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) options.onStderrLine(line);
    }
  });
  const kill = () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 5000).unref();
  };
  options.signal?.addEventListener('abort', kill, { once: true });
  const timer = options.timeoutMs ? setTimeout(kill, options.timeoutMs) : undefined;
  timer?.unref();
  const exited = new Promise<ToolExit>((resolve) => {
    child.on('error', (error) => {
      stderr += `\n${error.message}`;
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      options.signal?.removeEventListener('abort', kill);
      resolve({ code, signal, stderr: stderr.trim() });
    });
  });
  return { child, exited, kill };
}

/** Runs a tool to completion; resolves to its stdout, rejects with describe(exit) when it fails. */
export async function runTool(
  command: string,
  args: readonly string[],
  options: ToolOptions & { input?: string | Buffer },
): Promise<string> {
  const { child, exited } = start(command, args, options, options.input !== undefined);
  const chunks: Buffer[] = [];
  child.stdout!.on('data', (chunk: Buffer) => chunks.push(chunk));
  if (options.input !== undefined) {
    child.stdin!.on('error', () => undefined); // a tool that exits early closes its stdin
    child.stdin!.end(options.input);
  }
  const exit = await exited;
  if (exit.code !== 0) throw options.describe(exit);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * A tool's stdout as a stream that ends cleanly only if the tool exits 0; otherwise it errors with
 * describe(exit). Destroying the stream kills the tool.
 */
export function toolOutput(command: string, args: readonly string[], options: ToolOptions): Readable {
  const { child, exited, kill } = start(command, args, options, false);
  const output = new PassThrough({ highWaterMark: 1 << 20 });
  child.stdout!.pipe(output, { end: false });
  output.on('close', kill);
  void exited.then((exit) => {
    if (exit.code === 0) output.end();
    else output.destroy(options.describe(exit));
  });
  return output;
}

/**
 * A tool's stdout read straight into the caller's memory: readInto() gives its bytes, 0 once it has
 * exited 0, and rejects with describe(exit) when it fails. destroy() kills it.
 *
 * Why not toolOutput(): a pipe read as a stream is a fresh 64 KiB buffer per read, which Node copies
 * again when the read is shorter, and which the backup copies into its memory: a base backup of
 * 1.6 GiB ran 64 full mark-compacts for that garbage, and a quarter of its main thread was copying.
 * Node reads a pipe only into buffers of its own, but a socket into the caller's (net's `onread`). So
 * the tool's stdout is a Unix socket: an abstract one (no file), listened on for one connection, which
 * must first send a random token. Another local process that connects first gets nothing: the backup
 * fails instead of sending the data anywhere else.
 */
export async function toolOutputSource(
  command: string,
  args: readonly string[],
  options: ToolOptions,
): Promise<DirectSource> {
  const token = randomBytes(32);
  const server = net.createServer({ pauseOnConnect: true });
  const address = `\0lifeboat-${process.pid}-${randomBytes(16).toString('hex')}`;
  const fail = (why: string) =>
    options.describe({
      code: null,
      signal: null,
      stderr: `lifeboat could not connect to ${command}: ${why}`,
    });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(address, resolve);
  });
  const feed = new UserBufferFeed({ error: (error) => fail(error.message) });
  let ours: net.Socket | undefined;
  let theirs: net.Socket | undefined;
  try {
    const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
    ours = net.connect({ path: address, onread: feed.onread });
    feed.attach(ours);
    ours.write(token);
    theirs = await Promise.race([accepted, new Promise<never>((_, reject) => ours!.once('error', reject))]);
    if (!(await receivedToken(theirs, token))) throw fail('another process connected to its socket first');
  } catch (error) {
    theirs?.destroy();
    feed.destroy();
    throw error;
  } finally {
    server.close();
  }
  // The tool writes into its own copy of `theirs`. Ours is closed, so that the connection ends (and
  // our reads see the end) when the tool exits.
  let started: ReturnType<typeof start>;
  try {
    started = start(command, args, options, false, theirs);
  } catch (error) {
    feed.destroy();
    throw error;
  } finally {
    theirs.destroy();
  }
  const { exited, kill } = started;
  return {
    async readInto(target) {
      const bytes = await feed.read(target);
      if (bytes > 0) return bytes;
      const exit = await exited;
      if (exit.code !== 0) throw options.describe(exit);
      return 0;
    },
    destroy(error) {
      kill();
      feed.destroy(error);
    },
  };
}

/** Reads the first token.length bytes of a paused socket; true when they are the token. (Exported for tests.) */
export async function receivedToken(socket: net.Socket, token: Buffer): Promise<boolean> {
  const chunks: Buffer[] = [];
  let length = 0;
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      length += chunk.length;
      if (length >= token.length) done();
    };
    const done = () => {
      socket.off('data', onData);
      socket.pause();
      resolve();
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.once('end', done);
    socket.resume();
  });
  const received = Buffer.concat(chunks);
  return received.length === token.length && timingSafeEqual(received, token);
}

/**
 * Feeds `input` to a tool's stdin; resolves when the tool exits 0 and the input was consumed, rejects
 * with describe(exit) when it fails, or with the input's error (the tool is then killed).
 */
export async function runToolWithInput(
  command: string,
  args: readonly string[],
  input: Readable,
  options: ToolOptions,
): Promise<string> {
  const { child, exited, kill } = start(command, args, options, true);
  const chunks: Buffer[] = [];
  child.stdout!.on('data', (chunk: Buffer) => chunks.push(chunk));
  const stdin = child.stdin as Writable;
  let inputError: Error | undefined;
  stdin.on('error', () => undefined); // EPIPE when the tool exits early: its exit code tells the story
  input.on('error', (error) => {
    inputError = error;
    kill();
  });
  input.pipe(stdin);
  const exit = await exited;
  if (inputError !== undefined) throw inputError;
  if (exit.code !== 0) throw options.describe(exit);
  return Buffer.concat(chunks).toString('utf8');
}

/** Quotes a value for `sh -c` (archive and restore commands PostgreSQL runs through the shell). */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}
