// Backup over the network: the replication handshake `redis-cli --rdb` performs, so lifeboat needs no
// access to the server's disk. Done on a raw socket because no Redis client library exposes it.
//
//   AUTH [user] password         when the config has one
//   REPLCONF rdb-only 1          send the snapshot, not the command stream after it (Redis/Valkey 7+;
//                                ignored where unknown)
//   REPLCONF capa eof            we accept the diskless format
//   PSYNC ? -1                   +FULLRESYNC <replid> <offset>: the point in the replication stream the
//                                snapshot is of
//   then, after any "\n" keepalives while the server forks and saves:
//     $<length>\r\n<length bytes>            (repl-diskless-sync no: the file BGSAVE wrote)
//     $EOF:<40 random chars>\r\n<bytes><the same 40 chars>   (diskless: streamed from the fork)
//
// The returned source gives exactly the RDB bytes, and fails if the connection drops or goes silent
// (LB_ENGINE_UNAVAILABLE), never ending cleanly on a partial transfer.
//
// Reads land in the caller's memory. On a plain TCP connection the socket reads straight into it
// (net's `onread` with a user buffer): the backup session's shared memory, with no buffer allocated per
// read and no copy. A 1 GiB RDB read as 'data' events was a GiB of short-lived buffers, which V8 answers
// with full mark-compacts (over half of a backup's garbage-collection time). TLS sockets deliver
// decrypted 'data' events, which are copied.
import { LifeboatError } from '../../errors.js';
import type { DirectSource } from '../../util/read-fd.js';
import { CONNECT_TIMEOUT_MS, classify, openSocket, parseInfo, type Endpoint } from './connection.js';
import { encodeCommand } from './pipeline.js';
import {
  type ByteFeed,
  type FeedContext,
  LANDING_BYTES,
  StreamFeed,
  UserBufferFeed,
} from '../../util/socket-feed.js';

export type { ByteFeed } from '../../util/socket-feed.js';

export interface ReplicationInfo {
  replicationId?: string;
  offset?: number;
  /** "disk" ($length transfer) or "diskless" ($EOF: marker). */
  transfer: 'disk' | 'diskless';
}

export interface ReplicationSnapshot {
  /** Exactly the RDB bytes; fails (never ends cleanly) if the connection drops or goes silent. */
  source: SnapshotSource;
  info: ReplicationInfo;
  /** INFO's default sections, asked on the same connection before PSYNC (options.serverInfo). */
  serverInfo?: Map<string, string>;
}

const IDLE_TIMEOUT_MS = 60_000;
const EOF_MARK_LENGTH = 40;
/**
 * How far before the end of what is received the diskless end mark is looked for. The server sends
 * the mark last (nothing follows until the replica acknowledges, which lifeboat never does), so it
 * ends what is received; searching every read whole for it cost ~0.1 s of the main thread per 600 MB.
 * A mark followed by more than this (no server does that) would not be seen: the transfer then never
 * ends cleanly (the connection's loss or the idle timeout fails it), so no payload is cut or extended.
 */
const EOF_MARK_SLACK = 4096;
/** Where the diskless end mark starts in what is received (searched near its end only), or -1. */
const markAt = (bytes: Buffer, mark: Buffer): number =>
  bytes.indexOf(mark, Math.max(0, bytes.length - EOF_MARK_LENGTH - EOF_MARK_SLACK));

/** Targets smaller than this are filled through the snapshot's own buffer (see SnapshotSource). */
const SMALL_TARGET_BYTES = 4096;

/**
 * Failures of the replication connection, as catalogue errors naming the server. Silence is allowed
 * for CONNECT_TIMEOUT_MS during the handshake (each command is answered at once by a live server; one
 * that accepts and never answers must not hold a backup for a minute), then IDLE_TIMEOUT_MS once PSYNC
 * is answered (a server preparing a disk-based transfer sends only a newline a second).
 */
function feedContext(endpoint: Endpoint): FeedContext & { transferStarted(): void } {
  let transfer = false;
  const idle = {
    ms: CONNECT_TIMEOUT_MS,
    error: () =>
      new LifeboatError(
        'LB_ENGINE_UNAVAILABLE',
        transfer
          ? `Redis at ${endpoint.label} sent nothing for ${IDLE_TIMEOUT_MS / 1000} s during the transfer`
          : `Redis at ${endpoint.label} did not answer the replication handshake within ${CONNECT_TIMEOUT_MS / 1000} s`,
      ),
  };
  return {
    error: (error) => classify(error, endpoint, 'read from'),
    idle,
    transferStarted: () => {
      transfer = true;
      idle.ms = IDLE_TIMEOUT_MS;
    },
  };
}

/** Reads line replies during the handshake; keeps what comes after the last one for the payload. */
class LineReader {
  private buffer: Buffer = Buffer.alloc(0);
  private readonly scratch = Buffer.allocUnsafe(LANDING_BYTES);

  constructor(
    private readonly feed: ByteFeed,
    private readonly endpoint: Endpoint,
  ) {}

  /** The next line, without "\r\n"; empty keepalive lines ("\n") are skipped. */
  async line(): Promise<string> {
    for (;;) {
      while (this.buffer.length > 0 && this.buffer[0] === 0x0a) this.buffer = this.buffer.subarray(1);
      const end = this.buffer.indexOf('\r\n');
      if (end >= 0) {
        const line = this.buffer.toString('latin1', 0, end);
        this.buffer = this.buffer.subarray(end + 2);
        return line;
      }
      if (this.buffer.length > 64 * 1024)
        throw new LifeboatError('LB_ENGINE_FAILED', 'unexpected reply to the replication handshake');
      await this.more();
    }
  }

  /** The payload of a bulk reply whose "$<length>" line was just read. */
  async bulk(length: number): Promise<Buffer> {
    while (this.buffer.length < length + 2) await this.more();
    const payload = Buffer.from(this.buffer.subarray(0, length));
    this.buffer = this.buffer.subarray(length + 2);
    return payload;
  }

  /** Appends the connection's next bytes to the buffer. */
  private async more(): Promise<void> {
    const bytes = await this.feed.read(this.scratch);
    if (bytes === 0) {
      throw new LifeboatError(
        'LB_ENGINE_UNAVAILABLE',
        `Redis at ${this.endpoint.label} closed the connection during the replication handshake`,
      );
    }
    this.buffer = Buffer.concat([this.buffer, this.scratch.subarray(0, bytes)]);
  }

  /** The bytes already received after the last line. */
  rest(): Buffer {
    return this.buffer;
  }
}

/**
 * Performs the handshake and returns the transfer's payload. With `options.serverInfo`, INFO is asked
 * on the same connection first: a backup by replication needs no second connection, nor the command
 * client library (whose loading took ~0.1 s of a backup's start).
 */
export async function openReplicationSnapshot(
  endpoint: Endpoint,
  signal?: AbortSignal,
  options: { serverInfo?: boolean } = {},
): Promise<ReplicationSnapshot> {
  const context = feedContext(endpoint);
  const feed = endpoint.tls ? new StreamFeed(context) : new UserBufferFeed(context);
  const socket = await openSocket(endpoint, feed instanceof UserBufferFeed ? feed.onread : undefined);
  socket.setNoDelay(true);
  feed.attach(socket);
  const onAbort = () => feed.destroy(new LifeboatError('LB_ENGINE_FAILED', 'backup aborted'));
  signal?.addEventListener('abort', onAbort, { once: true });
  const reader = new LineReader(feed, endpoint);
  const ask = async (args: string[]): Promise<string> => {
    socket.write(encodeCommand(args));
    return reader.line();
  };
  try {
    if (endpoint.password !== undefined) {
      const reply = await ask(
        endpoint.username ? ['AUTH', endpoint.username, endpoint.password] : ['AUTH', endpoint.password],
      );
      if (reply.startsWith('-')) throw classify(new Error(reply.slice(1)), endpoint);
    }
    let serverInfo: Map<string, string> | undefined;
    if (options.serverInfo) {
      const header = await ask(['INFO']);
      if (!/^\$\d+$/.test(header))
        throw classify(new Error(header.replace(/^-/, '')), endpoint, 'ask INFO of');
      serverInfo = parseInfo((await reader.bulk(Number(header.slice(1)))).toString('utf8'));
    }
    await ask(['REPLCONF', 'rdb-only', '1']); // an error here only means an older server
    const capa = await ask(['REPLCONF', 'capa', 'eof']);
    if (capa.startsWith('-'))
      throw classify(new Error(capa.slice(1)), endpoint, 'start a replication transfer from');
    const sync = await ask(['PSYNC', '?', '-1']);
    context.transferStarted();
    if (sync.startsWith('-'))
      throw classify(new Error(sync.slice(1)), endpoint, 'start a replication transfer from');
    const info: ReplicationInfo = { transfer: 'disk' };
    const fullResync = /^\+FULLRESYNC (\S+) (\d+)/.exec(sync);
    if (fullResync) {
      info.replicationId = fullResync[1]!;
      info.offset = Number(fullResync[2]);
    }
    const header = await reader.line();
    let end: { length: number } | { mark: Buffer };
    if (header.startsWith('$EOF:')) {
      const mark = Buffer.from(header.slice(5), 'latin1');
      if (mark.length !== EOF_MARK_LENGTH)
        throw new LifeboatError('LB_ENGINE_FAILED', `bad diskless transfer marker "${header}"`);
      end = { mark };
      info.transfer = 'diskless';
    } else if (/^\$\d+$/.test(header)) {
      end = { length: Number(header.slice(1)) };
    } else {
      throw classify(new Error(header.replace(/^-/, '')), endpoint, 'start a replication transfer from');
    }
    const source = new SnapshotSource(feed, endpoint, reader.rest(), end, () =>
      signal?.removeEventListener('abort', onAbort),
    );
    return { source, info, ...(serverInfo ? { serverInfo } : {}) };
  } catch (error) {
    signal?.removeEventListener('abort', onAbort);
    feed.destroy();
    throw error;
  }
}

/**
 * The payload of a transfer, as a DirectSource: `$<length>` bytes, or everything before the diskless
 * end mark. For the mark, the last mark-length - 1 bytes of every read are held back (they may be the
 * start of the mark) and put in front of the next read's bytes, in the target itself: the mark is
 * searched in one contiguous region however the reads split it.
 */
export class SnapshotSource implements DirectSource {
  /** Bytes received and not yet passed on: the handshake's excess, then the held-back tail. */
  private carry: Buffer;
  /** Payload already read through `spare` (for a small target), not yet passed on. */
  private ready: Buffer = Buffer.alloc(0);
  private spare: Buffer | undefined;
  private received = 0;
  private finished = false;

  constructor(
    private readonly feed: ByteFeed,
    private readonly endpoint: Endpoint,
    first: Buffer,
    private readonly end: { length: number } | { mark: Buffer },
    private readonly onFinish: () => void = () => undefined,
  ) {
    this.carry = first;
    if ('length' in end && end.length === 0) this.finish();
  }

  async readInto(target: Buffer): Promise<number> {
    // A target too small to hold the held-back tail plus new bytes (the end of a slab) is served
    // from the source's own buffer.
    if (this.ready.length === 0 && !this.finished && target.length < SMALL_TARGET_BYTES) {
      this.spare ??= Buffer.allocUnsafe(LANDING_BYTES);
      this.ready = this.spare.subarray(0, await this.fill(this.spare));
    }
    if (this.ready.length > 0) {
      const bytes = this.ready.copy(target);
      this.ready = this.ready.subarray(bytes);
      return bytes;
    }
    if (this.finished) return 0;
    return this.fill(target);
  }

  destroy(error?: Error): void {
    this.finished = true;
    this.onFinish();
    this.feed.destroy(error);
  }

  /** Places payload bytes at the start of `buffer` (longer than the mark): at least 1, or 0 at the end. */
  private async fill(buffer: Buffer): Promise<number> {
    for (;;) {
      let have = this.carry.copy(buffer);
      this.carry = this.carry.subarray(have);
      // More from the socket only when the carried bytes do not already end the payload: a small RDB
      // can come whole (mark included) with the handshake's last read, and the server then sends
      // nothing more until it closes the connection.
      if (this.carry.length === 0 && have < buffer.length && !this.ends(buffer.subarray(0, have)))
        have += await this.read(buffer.subarray(have));
      if ('length' in this.end) {
        const take = Math.min(have, this.end.length - this.received);
        this.received += take;
        if (this.received === this.end.length) this.finish();
        return take;
      }
      const region = buffer.subarray(0, have);
      const at = markAt(region, this.end.mark);
      if (at >= 0) {
        this.received += at;
        this.finish();
        return at;
      }
      const release = have - Math.min(have, EOF_MARK_LENGTH - 1);
      const tail = region.subarray(release);
      this.carry = this.carry.length > 0 ? Buffer.concat([tail, this.carry]) : Buffer.from(tail);
      this.received += release;
      if (release > 0) return release;
    }
  }

  /** Whether `bytes` (what is received and not yet passed on) reach the end of the payload. */
  private ends(bytes: Buffer): boolean {
    if ('length' in this.end) return this.received + bytes.length >= this.end.length;
    return markAt(bytes, this.end.mark) >= 0;
  }

  private async read(target: Buffer): Promise<number> {
    if (this.finished) throw new LifeboatError('LB_ENGINE_FAILED', 'the snapshot transfer was stopped');
    const bytes = await this.feed.read(target);
    if (bytes > 0) return bytes;
    const expected = 'length' in this.end ? ` of ${this.end.length}` : '';
    throw new LifeboatError(
      'LB_ENGINE_UNAVAILABLE',
      `the connection to Redis at ${this.endpoint.label} was lost after ${this.received}${expected} bytes of the snapshot`,
    );
  }

  private finish(): void {
    this.finished = true;
    this.onFinish();
    this.feed.destroy();
  }
}
