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
// The returned stream carries exactly the RDB bytes, ending with an error if the connection drops or
// goes silent (LB_ENGINE_UNAVAILABLE), never with a clean end on a partial transfer.
import type net from 'node:net';
import { Readable } from 'node:stream';

import { LifeboatError } from '../../errors.js';
import { classify, openSocket, type Endpoint } from './connection.js';
import { encodeCommand } from './pipeline.js';

export interface ReplicationInfo {
  replicationId?: string;
  offset?: number;
  /** "disk" ($length transfer) or "diskless" ($EOF: marker). */
  transfer: 'disk' | 'diskless';
}

export interface ReplicationSnapshot {
  stream: Readable;
  info: ReplicationInfo;
}

const IDLE_TIMEOUT_MS = 60_000;
const EOF_MARK_LENGTH = 40;

/** Reads line replies off the socket during the handshake; keeps what comes after for the payload. */
class LineReader {
  private buffer: Buffer = Buffer.alloc(0);
  private waiter: (() => void) | undefined;
  private failure: Error | undefined;

  constructor(
    private readonly socket: net.Socket,
    private readonly endpoint: Endpoint,
  ) {
    socket.on('data', this.onData);
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
  }

  private onData = (chunk: Buffer) => {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    this.waiter?.();
  };
  private onError = (error: Error) => {
    this.failure = classify(error, this.endpoint, 'read from');
    this.waiter?.();
  };
  private onClose = () => {
    this.failure ??= new LifeboatError(
      'LB_ENGINE_UNAVAILABLE',
      `Redis at ${this.endpoint.label} closed the connection during the replication handshake`,
    );
    this.waiter?.();
  };

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
      if (this.failure) throw this.failure;
      if (this.buffer.length > 64 * 1024)
        throw new LifeboatError('LB_ENGINE_FAILED', 'unexpected reply to the replication handshake');
      await new Promise<void>((resolve) => (this.waiter = resolve));
      this.waiter = undefined;
    }
  }

  /** Stops reading lines; returns the bytes already received after the last line. */
  detach(): Buffer {
    this.socket.off('data', this.onData);
    this.socket.off('error', this.onError);
    this.socket.off('close', this.onClose);
    return this.buffer;
  }
}

export async function openReplicationSnapshot(
  endpoint: Endpoint,
  signal?: AbortSignal,
): Promise<ReplicationSnapshot> {
  const socket = await openSocket(endpoint);
  socket.setNoDelay(true);
  socket.setTimeout(IDLE_TIMEOUT_MS, () =>
    socket.destroy(
      new LifeboatError(
        'LB_ENGINE_UNAVAILABLE',
        `Redis at ${endpoint.label} sent nothing for ${IDLE_TIMEOUT_MS / 1000} s during the transfer`,
      ),
    ),
  );
  const onAbort = () => socket.destroy(new LifeboatError('LB_ENGINE_FAILED', 'backup aborted'));
  signal?.addEventListener('abort', onAbort, { once: true });
  const reader = new LineReader(socket, endpoint);
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
    await ask(['REPLCONF', 'rdb-only', '1']); // an error here only means an older server
    const capa = await ask(['REPLCONF', 'capa', 'eof']);
    if (capa.startsWith('-'))
      throw classify(new Error(capa.slice(1)), endpoint, 'start a replication transfer from');
    const sync = await ask(['PSYNC', '?', '-1']);
    if (sync.startsWith('-'))
      throw classify(new Error(sync.slice(1)), endpoint, 'start a replication transfer from');
    const info: ReplicationInfo = { transfer: 'disk' };
    const fullResync = /^\+FULLRESYNC (\S+) (\d+)/.exec(sync);
    if (fullResync) {
      info.replicationId = fullResync[1]!;
      info.offset = Number(fullResync[2]);
    }
    const header = await reader.line();
    let length: number | undefined;
    let mark: Buffer | undefined;
    if (header.startsWith('$EOF:')) {
      mark = Buffer.from(header.slice(5), 'latin1');
      if (mark.length !== EOF_MARK_LENGTH)
        throw new LifeboatError('LB_ENGINE_FAILED', `bad diskless transfer marker "${header}"`);
      info.transfer = 'diskless';
    } else if (/^\$\d+$/.test(header)) {
      length = Number(header.slice(1));
    } else {
      throw classify(new Error(header.replace(/^-/, '')), endpoint, 'start a replication transfer from');
    }
    const first = reader.detach();
    return { stream: payloadStream(socket, endpoint, first, length, mark, signal, onAbort), info };
  } catch (error) {
    signal?.removeEventListener('abort', onAbort);
    reader.detach();
    socket.destroy();
    throw error;
  }
}

/**
 * Finds a diskless transfer's end mark in the chunks as they arrive, and releases the payload before
 * it. The last mark-length - 1 bytes are held back (they may be the start of the mark); the payload
 * itself is passed on as views of the chunks, not copied (a copy of every chunk, joined to the held
 * back bytes, cost a memory copy and an allocation per socket read).
 */
export class EndMarkScanner {
  private tail: Buffer = Buffer.alloc(0);

  constructor(private readonly mark: Buffer) {}

  /** The payload bytes this chunk releases, in order, and whether the mark has been found. */
  push(chunk: Buffer): { data: Buffer[]; done: boolean } {
    const length = this.mark.length;
    if (this.tail.length + chunk.length < 2 * length) {
      // Short: join (a few dozen bytes) and search the whole.
      const joined = Buffer.concat([this.tail, chunk]);
      const at = joined.indexOf(this.mark);
      if (at >= 0) return { data: [joined.subarray(0, at)], done: true };
      const keep = Math.min(length - 1, joined.length);
      this.tail = joined.subarray(joined.length - keep);
      return { data: [joined.subarray(0, joined.length - keep)], done: false };
    }
    if (this.tail.length > 0) {
      // A mark that starts in the held-back bytes ends in the chunk's first length - 1 bytes.
      const joint = Buffer.concat([this.tail, chunk.subarray(0, length - 1)]);
      const at = joint.indexOf(this.mark);
      if (at >= 0) return { data: [joint.subarray(0, at)], done: true };
    }
    const at = chunk.indexOf(this.mark);
    if (at >= 0) return { data: [this.tail, chunk.subarray(0, at)], done: true };
    const data = [this.tail, chunk.subarray(0, chunk.length - (length - 1))];
    this.tail = Buffer.from(chunk.subarray(chunk.length - (length - 1))); // a copy: the chunk may go
    return { data, done: false };
  }
}

function payloadStream(
  socket: net.Socket,
  endpoint: Endpoint,
  first: Buffer,
  length: number | undefined,
  mark: Buffer | undefined,
  signal: AbortSignal | undefined,
  onAbort: () => void,
): Readable {
  let received = 0;
  let finished = false;
  const scanner = mark ? new EndMarkScanner(mark) : undefined;
  const stream = new Readable({
    highWaterMark: 4 * 1024 * 1024,
    read() {
      socket.setTimeout(IDLE_TIMEOUT_MS); // waiting on the server again
      socket.resume();
    },
    destroy(error, callback) {
      signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      callback(error);
    },
  });
  const finish = () => {
    finished = true;
    signal?.removeEventListener('abort', onAbort);
    stream.push(null);
    socket.destroy();
  };
  const emit = (data: Buffer) => {
    if (data.length === 0) return;
    received += data.length;
    if (!stream.push(data)) {
      socket.setTimeout(0); // waiting on our consumer (the repository), not on the server
      socket.pause();
    }
  };
  const onData = (chunk: Buffer) => {
    if (finished) return;
    if (length !== undefined) {
      const take = Math.min(chunk.length, length - received);
      emit(chunk.subarray(0, take));
      if (received === length) finish();
      return;
    }
    const { data, done } = scanner!.push(chunk);
    for (const piece of data) emit(piece);
    if (done) finish();
  };
  socket.on('data', onData);
  socket.on('error', (error) => {
    if (!finished)
      stream.destroy(error instanceof LifeboatError ? error : classify(error, endpoint, 'read from'));
  });
  socket.on('close', () => {
    if (finished) return;
    const expected = length !== undefined ? ` of ${length}` : '';
    stream.destroy(
      new LifeboatError(
        'LB_ENGINE_UNAVAILABLE',
        `the connection to Redis at ${endpoint.label} was lost after ${received}${expected} bytes of the snapshot`,
      ),
    );
  });
  if (first.length > 0) onData(first);
  if (length === 0) finish();
  return stream;
}
