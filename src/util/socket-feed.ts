// Reading a socket's bytes straight into the caller's memory: the Redis replication transfer
// (engines/redis/replication.ts) and the output of tools such as pg_basebackup (toolOutputSource in
// process.ts).
// A stream read as 'data' events is a fresh buffer per read, copied once more into the caller's memory:
// for a GiB of input, a GiB of short-lived buffers, which V8 answers with full mark-compacts.
//
// Terms:
//   feed      a connection read one target at a time: read(target) resolves with the bytes placed at
//             its start, 0 at the end of the connection, or rejects with its error.
//   landing   the feed's own buffer, for bytes that arrive while no read waits.
import type net from 'node:net';

/** The feed's own buffer: early bytes (a handshake's replies). */
export const LANDING_BYTES = 64 * 1024;
/** A TLS feed stops reading from the socket while this much is queued. */
const QUEUE_BYTES = 4 * 1024 * 1024;

/** What a feed's failures say. */
export interface FeedContext {
  /** The error a read fails with when the socket fails (a LifeboatError for the catalogue). */
  error: (error: Error) => Error;
  /** Fails a waiting read when no byte came for this long (the peer owes us bytes). */
  idle?: { ms: number; error: () => Error };
}

/** Bytes of a connection, read into the caller's memory. */
export interface ByteFeed {
  /** Bytes placed at the start of `target` (at least 1), 0 once the peer has closed the connection;
   * rejects with the connection's error. One read at a time. */
  read(target: Buffer): Promise<number>;
  destroy(error?: Error): void;
}

/** What both feeds share: one waiting read, the connection's end or failure, the idle timeout. */
export abstract class SocketFeed implements ByteFeed {
  protected waiter: { resolve: (bytes: number) => void; reject: (error: Error) => void } | undefined;
  protected failure: Error | undefined;
  protected closed = false;
  protected socket: net.Socket | undefined;
  /** When the waiting read started (the server owes us bytes), for the idle timeout. */
  private waitingSince = 0;
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(protected readonly context: FeedContext) {}

  attach(socket: net.Socket): void {
    this.socket = socket;
    socket.on('error', (error) => this.fail(error));
    socket.on('end', () => this.end());
    socket.on('close', () => this.end());
    // One timer for the connection rather than a socket timeout re-armed on every read: time spent
    // waiting on our own consumer (the repository) is not the server's silence.
    const idle = this.context.idle;
    if (idle === undefined) return;
    this.idleTimer = setInterval(() => {
      if (this.waiter && Date.now() - this.waitingSince > idle.ms) this.destroy(idle.error());
    }, 1000).unref();
  }

  /** Bytes received but not yet read (TLS chunks; on plain TCP, only bytes no read asked for). */
  private queue: Buffer[] = [];
  protected queued = 0;

  read(target: Buffer): Promise<number> {
    if (this.queued > 0) return Promise.resolve(this.take(target));
    if (this.failure) return Promise.reject(this.failure);
    if (this.closed) return Promise.resolve(0);
    return this.readFromSocket(target);
  }

  /** Waits for the socket's next bytes in `target` (settle() resolves). */
  protected abstract readFromSocket(target: Buffer): Promise<number>;

  protected enqueue(chunk: Buffer): void {
    this.queue.push(chunk);
    this.queued += chunk.length;
  }

  /** Copies queued bytes into `target`. */
  protected take(target: Buffer): number {
    let bytes = 0;
    while (bytes < target.length && this.queue.length > 0) {
      const first = this.queue[0]!;
      const count = first.copy(target, bytes);
      bytes += count;
      if (count === first.length) this.queue.shift();
      else this.queue[0] = first.subarray(count);
    }
    this.queued -= bytes;
    return bytes;
  }

  protected wait(): Promise<number> {
    this.waitingSince = Date.now();
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  protected settle(bytes: number): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.resolve(bytes);
  }

  private fail(error: Error): void {
    this.failure ??= this.context.error(error);
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.reject(this.failure);
  }

  private end(): void {
    this.closed = true;
    clearInterval(this.idleTimer);
    if (this.failure) this.fail(this.failure);
    else this.settle(0);
  }

  destroy(error?: Error): void {
    clearInterval(this.idleTimer);
    if (error) this.fail(error);
    this.socket?.destroy();
  }
}

/**
 * A plain TCP connection created with net's `onread` option: every read lands in the target of the
 * waiting read(), and reading stops until the next read() (the callback returns false). Between
 * reads, the socket's buffer is the feed's own landing buffer; bytes that arrive there (none are
 * expected: the server speaks only when asked) are copied and handed out first.
 */
export class UserBufferFeed extends SocketFeed {
  private readonly landing = Buffer.allocUnsafe(LANDING_BYTES);
  private current: Buffer = this.landing;

  /** For net.connect(): reads land in `current`. */
  readonly onread = {
    buffer: (): Buffer => (this.current = this.landing),
    callback: (bytes: number): boolean => {
      if (this.waiter && this.current !== this.landing) this.settle(bytes);
      else this.enqueue(Buffer.from(this.current.subarray(0, bytes)));
      return false;
    },
  };

  protected readFromSocket(target: Buffer): Promise<number> {
    const socket = this.socket!;
    // The socket's handle takes the buffer for its next read: net only sets it from the onread
    // generator after a read, and there is no public method to set it before one.
    const handle = (socket as unknown as { _handle?: { useUserBuffer(buffer: Uint8Array): void } })._handle;
    if (!handle) return Promise.resolve(0);
    const promise = this.wait();
    this.current = target;
    handle.useUserBuffer(target);
    socket.resume();
    return promise;
  }
}

/** A TLS connection: its decrypted 'data' chunks are queued and copied into the targets. */
export class StreamFeed extends SocketFeed {
  private pendingTarget: Buffer | undefined;

  override attach(socket: net.Socket): void {
    super.attach(socket);
    socket.on('data', (chunk: Buffer) => {
      this.enqueue(chunk);
      if (this.queued >= QUEUE_BYTES) socket.pause();
      if (this.waiter) this.settle(this.take(this.pendingTarget!));
    });
  }

  protected override take(target: Buffer): number {
    const bytes = super.take(target);
    if (this.queued < QUEUE_BYTES) this.socket?.resume();
    return bytes;
  }

  protected readFromSocket(target: Buffer): Promise<number> {
    this.pendingTarget = target;
    return this.wait();
  }
}
