// Bulk commands over a raw socket, for the online restore's stream of RESTORE commands. node-redis
// (used for every other command) pays per command for a promise, an AbortSignal with its listeners and
// an encoder pass: with hundreds of thousands of keys that was a quarter of the restore's CPU. Here a
// command is one buffer, written as it is built (a RESTORE payload is copied once, into the frame, and
// its CRC-64 computed in place), and replies are counted, not materialised: the commands sent this way
// (AUTH, SELECT, RESTORE, FUNCTION RESTORE) answer +OK or an error.
import type net from 'node:net';

import { LifeboatError } from '../../errors.js';
import { classify, openSocket, type Endpoint } from './connection.js';
import { dumpPayloadLength, writeDumpPayload } from './rdb/dump.js';

const CRLF = Buffer.from('\r\n');

function bulk(arg: string | Buffer): Buffer[] {
  const data = typeof arg === 'string' ? Buffer.from(arg) : arg;
  return [Buffer.from(`$${data.length}\r\n`), data, CRLF];
}

/** One command in RESP (an array of bulk strings). */
export function encodeCommand(args: ReadonlyArray<string | Buffer>): Buffer {
  return Buffer.concat([Buffer.from(`*${args.length}\r\n`), ...args.flatMap(bulk)]);
}

interface Pending {
  bytes: number;
  what: string;
}

export class CommandPipeline {
  private readonly queue: Pending[] = [];
  private head = 0;
  private outstanding = 0;
  private buffer: Buffer = Buffer.alloc(0);
  private failure: LifeboatError | undefined;
  private waiter: (() => void) | undefined;

  private constructor(
    private readonly socket: net.Socket,
    private readonly endpoint: Endpoint,
  ) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error) => this.fail(classify(error, endpoint, 'restore into')));
    socket.on('close', () =>
      this.fail(
        new LifeboatError(
          'LB_ENGINE_UNAVAILABLE',
          `Redis at ${endpoint.label} closed the connection during the restore`,
        ),
      ),
    );
  }

  /** Connects and authenticates. */
  static async open(endpoint: Endpoint): Promise<CommandPipeline> {
    const socket = await openSocket(endpoint);
    socket.setNoDelay(true);
    const pipeline = new CommandPipeline(socket, endpoint);
    if (endpoint.password !== undefined) {
      pipeline.send(
        endpoint.username ? ['AUTH', endpoint.username, endpoint.password] : ['AUTH', endpoint.password],
        'AUTH',
      );
      await pipeline.flush();
    }
    return pipeline;
  }

  /** Queues a command (its reply is checked later; the first error fails the pipeline). */
  send(args: ReadonlyArray<string | Buffer>, what: string): void {
    this.write(encodeCommand(args), what);
  }

  /**
   * Queues RESTORE key ttl <payload> [extra...], the payload being `type ‖ value ‖ rdbVersion ‖ CRC-64`
   * (Redis' DUMP format) built directly in the frame.
   */
  sendRestore(
    key: Buffer,
    ttl: string,
    type: number,
    value: Buffer,
    rdbVersion: number,
    extra: readonly string[],
  ): void {
    const payloadLength = dumpPayloadLength(value);
    const head = Buffer.concat([
      Buffer.from(`*${4 + extra.length}\r\n`),
      ...bulk('RESTORE'),
      ...bulk(key),
      ...bulk(ttl),
      Buffer.from(`$${payloadLength}\r\n`),
    ]);
    const tail = Buffer.concat([CRLF, ...extra.flatMap(bulk)]);
    const frame = Buffer.allocUnsafe(head.length + payloadLength + tail.length);
    head.copy(frame, 0);
    writeDumpPayload(frame, head.length, type, value, rdbVersion);
    tail.copy(frame, head.length + payloadLength);
    this.write(frame, `RESTORE ${key.toString('utf8', 0, Math.min(key.length, 80))}`);
  }

  /** Waits until at most `bytes` of commands await their replies. */
  async drain(bytes: number): Promise<void> {
    while (this.outstanding > bytes && !this.failure) {
      await new Promise<void>((resolve) => (this.waiter = resolve));
    }
    if (this.failure) throw this.failure;
  }

  /** Waits for every reply. */
  flush(): Promise<void> {
    return this.drain(0);
  }

  close(): void {
    this.socket.destroy();
  }

  private write(frame: Buffer, what: string): void {
    if (this.failure) throw this.failure;
    this.queue.push({ bytes: frame.length, what });
    this.outstanding += frame.length;
    this.socket.write(frame);
  }

  private onData(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    let start = 0;
    for (;;) {
      const end = this.buffer.indexOf(CRLF, start);
      if (end < 0) break;
      const line = this.buffer.toString('utf8', start, end);
      start = end + 2;
      const pending = this.queue[this.head];
      if (!pending) {
        this.fail(
          new LifeboatError(
            'LB_ENGINE_FAILED',
            `unexpected reply from Redis at ${this.endpoint.label}: ${line}`,
          ),
        );
        return;
      }
      this.queue[this.head++] = undefined as never;
      this.outstanding -= pending.bytes;
      if (line.startsWith('-')) {
        const failure = classify(new Error(line.slice(1)), this.endpoint, 'restore into');
        this.fail(
          failure.code === 'LB_ENGINE_FAILED'
            ? new LifeboatError(
                'LB_ENGINE_FAILED',
                `${pending.what} failed at ${this.endpoint.label}: ${line.slice(1)}`,
              )
            : failure,
        );
        return;
      }
      if (!line.startsWith('+') && !line.startsWith(':')) {
        this.fail(
          new LifeboatError('LB_ENGINE_FAILED', `unexpected reply to ${pending.what}: ${line.slice(0, 80)}`),
        );
        return;
      }
    }
    this.buffer = this.buffer.subarray(start);
    if (this.head > 4096 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    this.wake();
  }

  private fail(error: LifeboatError): void {
    this.failure ??= error;
    this.wake();
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.();
  }
}
