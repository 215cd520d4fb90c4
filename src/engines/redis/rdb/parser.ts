// A streaming RDB parser: bytes in (in chunks of any size, as they come off a socket or out of the
// repository), records out. It does not build values: a key record carries the value's bytes exactly as
// stored (which is what RESTORE takes, see dump.ts), and decode.ts turns them into data when wanted.
//
// Written here because no maintained npm package reads RDB files (the ones that exist stop at RDB 9 and
// have not been updated in years). The format is Redis' src/rdb.c; Valkey 8 writes the same (RDB 11).
//
// How streaming works: each top-level record (an opcode, or a key with its expiry/idle/freq prefixes)
// is parsed synchronously from the bytes buffered so far. When the buffer ends inside a record, the
// attempt is abandoned and retried once at least twice as many bytes are buffered (or as many as the
// record was seen to need), so a record of n bytes costs O(n) to parse and holds at most ~2n in memory.
// The trailing CRC-64 is checked over every byte.
import { copyBytes } from '../../../util/blake3.js';
import { Crc64 } from './crc64.js';
import { Cursor, NeedMore, RdbFormatError } from './cursor.js';
import { MAX_RDB_VERSION, OPCODE, RDB_TYPE, isValueType } from './types.js';

export interface RdbKeyRecord {
  kind: 'key';
  db: number;
  key: Buffer;
  /** RDB type number (types.ts). */
  type: number;
  /** The value's bytes as stored after the key (without the type byte). */
  value: Buffer;
  /** Absolute expiry, Unix milliseconds. */
  expireAt?: number;
  /** LRU idle seconds / LFU frequency, when the server saved them. */
  idle?: number;
  freq?: number;
}

export type RdbRecord =
  | RdbKeyRecord
  | { kind: 'aux'; key: string; value: string }
  | { kind: 'db'; db: number; keys?: number }
  | {
      kind: 'function';
      code: Buffer;
      /** opcode + string, the body of a FUNCTION DUMP payload */ raw: Buffer;
    }
  | { kind: 'end' };

/** Bytes gathered before a parse attempt. */
const BATCH_BYTES = 1024 * 1024;
/** pushTransient(): new bytes joined to an unfinished record at first (more if it needs more). */
const JOIN_BYTES = 4096;
const EMPTY = Buffer.alloc(0);

export interface RdbHeader {
  magic: 'REDIS' | 'VALKEY';
  version: number;
}

export class RdbParser {
  header: RdbHeader | undefined;
  /** Set once the EOF opcode and the checksum have been read and verified. */
  done = false;
  /** Bytes consumed so far. */
  offset = 0;
  private buf: Buffer = Buffer.alloc(0);
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private waitFor = 0;
  private db = 0;
  private crc: Crc64 | undefined;

  /**
   * @param options.checksum  verify the trailing CRC-64 (default true). A restore reads bytes the
   *   repository has already verified (the keyed id of every blob, the artifact's stream hash) and that were
   *   CRC-checked when they were backed up, so it may skip the second pass over every byte.
   */
  constructor(options: { checksum?: boolean } = {}) {
    if (options.checksum !== false) this.crc = new Crc64();
  }
  private sawEof = false;

  /** Feeds bytes; returns the records they complete. */
  push(chunk: Buffer): RdbRecord[] {
    if (this.done) {
      if (chunk.length > 0) throw new RdbFormatError('data after the end of the RDB');
      return [];
    }
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    // Parsing waits for a batch (or for what the record in progress was seen to need): fewer, larger
    // concatenations and attempts than one per socket read.
    if (this.buf.length + this.pendingBytes < Math.max(this.waitFor, BATCH_BYTES)) return [];
    this.buf =
      this.pending.length === 1 && this.buf.length === 0
        ? this.pending[0]!
        : Buffer.concat([this.buf, ...this.pending]);
    this.pending = [];
    this.pendingBytes = 0;
    return this.drain();
  }

  /**
   * Feeds bytes that are valid only during this call (a view of memory the caller reuses, such as the
   * backup session's shared slabs). They are parsed in place; only the bytes of a record that does
   * not end in `view` are copied, with as few of the next call's bytes as complete it. The records
   * returned point into `view` or into the parser's own memory: use them before the next call.
   *
   * The copies go to two buffers of the parser's, reused (see `stores`): a fresh buffer per copy was
   * ~0.4 GB of short-lived memory outside V8's heap for a 609 MB RDB of large records, which V8
   * answered with a full mark-compact every few MB.
   */
  pushTransient(view: Buffer): RdbRecord[] {
    if (this.done) {
      if (view.length > 0) throw new RdbFormatError('data after the end of the RDB');
      return [];
    }
    if (this.pendingBytes > 0) throw new Error('internal: pushTransient() after push()');
    const records: RdbRecord[] = [];
    let offset = 0;
    this.pinned = 0;
    // An unfinished record from the last call: join its bytes with as few new ones as it needs.
    while (this.buf.length > 0 && offset < view.length) {
      const kept = this.buf.length;
      const take = Math.min(view.length - offset, Math.max(this.waitFor, kept + JOIN_BYTES) - kept);
      const piece = view.subarray(offset, offset + take);
      offset += take;
      if (kept + take < this.waitFor) {
        // Still short of what the record was seen to need (a large value): keep the bytes, join later.
        this.buf = this.append(piece);
        break;
      }
      // Into the store `buf` is not in (a join reads buf while it writes).
      const target = this.bufStore === 0 ? 1 : 0;
      this.buf = this.joinInto(target, this.buf, piece);
      const before = this.offset;
      const returned = records.length;
      for (const record of this.drain()) records.push(record);
      // Records point into it now. A join need not complete a record only: the bytes kept can reach
      // into the next one (what a record needs is a guess), and then the loop joins again.
      if (records.length > returned) this.pinned |= 1 << target;
      if (this.offset - before >= kept) {
        // That record is complete: the joined bytes left over are in `view` too; go on from there.
        offset -= this.buf.length;
        this.buf = EMPTY;
        break;
      }
    }
    if (this.done) {
      if (offset < view.length) throw new RdbFormatError('data after the end of the RDB');
      return records;
    }
    if (offset < view.length && this.buf.length === 0) {
      this.buf = view.subarray(offset);
      for (const record of this.drain()) records.push(record);
      // Our own copy of the unfinished record (in a store no record of this call points into, or fresh
      // memory when both hold some: joinInto()).
      this.buf =
        this.buf.length > 0 ? this.joinInto(this.pinned & 1 ? 1 : 0, EMPTY, this.buf, this.waitFor) : EMPTY;
    }
    return records;
  }

  /**
   * pushTransient()'s two buffers, reused: one holds the unfinished record between calls (`bufStore`
   * says which), the other takes the join of it with new bytes; they trade places as they go. They
   * keep the size of the largest record joined (at most twice that) until the parser is dropped (one
   * per backup).
   */
  private readonly stores: Buffer[] = [EMPTY, EMPTY];
  private bufStore = -1;
  /** Bit i set: records returned by the current pushTransient() call point into store i. */
  private pinned = 0;

  /**
   * `head` then `tail`, copied to the start of store `index`: a view of them. The store grows as needed,
   * to `capacity` at least (what the record was seen to need, so that append() can add in place). A
   * store that records of this call point into is left to them: fresh memory takes its place.
   */
  private joinInto(index: number, head: Buffer, tail: Buffer, capacity = 0): Buffer {
    const length = head.length + tail.length;
    let store = this.stores[index]!;
    if (this.pinned & (1 << index)) {
      store = EMPTY;
      this.pinned &= ~(1 << index);
    }
    if (store.length < length) {
      store = Buffer.allocUnsafeSlow(Math.max(length, capacity, 2 * store.length, 64 * 1024));
      this.stores[index] = store;
    }
    copyBytes(store, 0, head);
    copyBytes(store, head.length, tail);
    this.bufStore = index;
    return store.subarray(0, length);
  }

  /**
   * `buf` (in its store) with `piece` after it: in place when buf starts its store and the store has
   * room (a large record arrives over many calls: its bytes are copied once here, not once per call),
   * else joined into the other store, grown to what the record needs.
   */
  private append(piece: Buffer): Buffer {
    const store = this.stores[this.bufStore];
    const kept = this.buf.length;
    if (
      store !== undefined &&
      !(this.pinned & (1 << this.bufStore)) &&
      this.buf.buffer === store.buffer &&
      this.buf.byteOffset === store.byteOffset &&
      store.length - kept >= piece.length
    ) {
      copyBytes(store, kept, piece);
      return store.subarray(0, kept + piece.length);
    }
    return this.joinInto(this.bufStore === 0 ? 1 : 0, this.buf, piece, this.waitFor);
  }

  /** Called at the end of the input: throws if the RDB is incomplete. */
  finish(): RdbRecord[] {
    let records: RdbRecord[] = [];
    // Bytes gathered since the last parse attempt: push()'s pending ones, or pushTransient()'s kept
    // with those of a large record still short of what it was seen to need (parsed once more: what a
    // record needs is a guess until it is read, and the input may end sooner).
    if (!this.done && (this.pendingBytes > 0 || this.buf.length > 0)) {
      if (this.pendingBytes > 0) this.buf = Buffer.concat([this.buf, ...this.pending]);
      this.pending = [];
      this.pendingBytes = 0;
      records = this.drain();
    }
    if (!this.done) {
      throw new RdbFormatError(
        `the RDB data ends early (after ${this.offset + this.buf.length + this.pendingBytes} bytes, inside ${this.header ? 'a record' : 'the header'})`,
      );
    }
    return records;
  }

  private drain(): RdbRecord[] {
    const records: RdbRecord[] = [];
    const cursor = new Cursor(this.buf);
    let consumed = 0;
    // The CRC gets the whole records consumed, once per drain (a native call per record of a few bytes
    // costs more than its CRC); `fed`: how much of buf it has had.
    let fed = 0;
    const feed = () => {
      if (consumed > fed) this.crc?.update(this.buf.subarray(fed, consumed));
      fed = consumed;
    };
    try {
      while (!this.done) {
        if (!this.header) {
          this.header = readHeader(cursor);
        } else if (this.sawEof) {
          feed(); // the CRC covers every byte up to the stored one, the EOF opcode included
          this.readChecksum(cursor);
          consumed = cursor.pos;
          this.done = true;
          break;
        } else {
          const record = this.record(cursor);
          if (record) records.push(record);
        }
        consumed = cursor.pos;
      }
      this.waitFor = 0;
    } catch (error) {
      if (!(error instanceof NeedMore)) throw error;
      const available = this.buf.length - consumed;
      this.waitFor = Math.max(error.need - consumed, available * 2, 16);
    } finally {
      if (!this.done) feed(); // after an error the parser is not used again
    }
    this.offset += consumed;
    this.buf = this.buf.subarray(consumed);
    if (this.done && this.buf.length > 0) throw new RdbFormatError('data after the end of the RDB');
    return records;
  }

  private readChecksum(cursor: Cursor): void {
    if (this.header!.version < 5) return;
    const stored = cursor.bytes(8);
    if (!this.crc || stored.every((byte) => byte === 0)) return; // not asked for, or rdbchecksum no
    const computed = this.crc.bytes();
    if (!computed.equals(stored)) {
      throw new RdbFormatError(
        `RDB checksum mismatch: stored ${stored.toString('hex')}, computed ${computed.toString('hex')}`,
      );
    }
  }

  private record(c: Cursor): RdbRecord | undefined {
    let expireAt: number | undefined;
    let idle: number | undefined;
    let freq: number | undefined;
    for (;;) {
      const op = c.u8();
      switch (op) {
        case OPCODE.EXPIRETIME_MS:
          expireAt = c.millis();
          continue;
        case OPCODE.EXPIRETIME:
          c.ensure(4);
          expireAt = c.buf.readUInt32LE(c.pos) * 1000;
          c.pos += 4;
          continue;
        case OPCODE.IDLE:
          idle = c.length();
          continue;
        case OPCODE.FREQ:
          freq = c.u8();
          continue;
        case OPCODE.SELECTDB:
          this.db = c.length();
          return { kind: 'db', db: this.db };
        case OPCODE.RESIZEDB: {
          const keys = c.length();
          c.length();
          return { kind: 'db', db: this.db, keys };
        }
        case OPCODE.AUX: {
          const key = c.string().toString('latin1');
          const value = c.string().toString('latin1');
          return { kind: 'aux', key, value };
        }
        case OPCODE.MODULE_AUX:
          c.length(); // module id
          c.length(); // when opcode
          c.length(); // when
          skipModuleValue(c);
          return undefined;
        case OPCODE.FUNCTION2: {
          const start = c.pos - 1;
          const code = c.string();
          return { kind: 'function', code, raw: c.buf.subarray(start, c.pos) };
        }
        case OPCODE.FUNCTION_PRE_GA:
          throw new RdbFormatError('functions saved by a Redis 7.0 release candidate are not supported');
        case OPCODE.SLOT_INFO:
          c.length(); // slot
          c.length(); // keys
          c.length(); // keys with expiry
          return undefined;
        case OPCODE.EOF:
          this.sawEof = true;
          return { kind: 'end' };
        default: {
          if (!isValueType(op))
            throw new RdbFormatError(`unknown RDB opcode or type ${op} at offset ${this.offset + c.pos - 1}`);
          const key = c.string();
          const start = c.pos;
          skipValue(c, op);
          const record: RdbKeyRecord = {
            kind: 'key',
            db: this.db,
            key,
            type: op,
            value: c.buf.subarray(start, c.pos),
          };
          if (expireAt !== undefined) record.expireAt = expireAt;
          if (idle !== undefined) record.idle = idle;
          if (freq !== undefined) record.freq = freq;
          return record;
        }
      }
    }
  }
}

function readHeader(c: Cursor): RdbHeader {
  c.ensure(9);
  const text = c.buf.toString('latin1', c.pos, c.pos + 9);
  let magic: RdbHeader['magic'];
  let digits: string;
  if (text.startsWith('REDIS')) {
    magic = 'REDIS';
    digits = text.slice(5, 9);
    c.pos += 9;
  } else if (text.startsWith('VALKEY')) {
    c.ensure(9);
    magic = 'VALKEY';
    digits = text.slice(6, 9);
    c.pos += 9;
  } else {
    throw new RdbFormatError('not an RDB file (no REDIS signature)');
  }
  if (!/^\d+$/.test(digits)) throw new RdbFormatError(`bad RDB version "${digits}"`);
  const version = Number(digits);
  if (version < 1 || version > MAX_RDB_VERSION) {
    throw new RdbFormatError(
      `RDB version ${version} is not supported (this lifeboat reads versions 1 to ${MAX_RDB_VERSION})`,
    );
  }
  return { magic, version };
}

/** Moves the cursor past one value of the given RDB type. */
export function skipValue(c: Cursor, type: number): void {
  switch (type) {
    case RDB_TYPE.STRING:
    case RDB_TYPE.HASH_ZIPMAP:
    case RDB_TYPE.LIST_ZIPLIST:
    case RDB_TYPE.SET_INTSET:
    case RDB_TYPE.ZSET_ZIPLIST:
    case RDB_TYPE.HASH_ZIPLIST:
    case RDB_TYPE.HASH_LISTPACK:
    case RDB_TYPE.ZSET_LISTPACK:
    case RDB_TYPE.SET_LISTPACK:
      return c.skipString();
    case RDB_TYPE.LIST:
    case RDB_TYPE.SET:
    case RDB_TYPE.LIST_QUICKLIST: {
      for (let n = c.count(); n > 0; n--) c.skipString();
      return;
    }
    case RDB_TYPE.HASH: {
      for (let n = c.count(); n > 0; n--) {
        c.skipString();
        c.skipString();
      }
      return;
    }
    case RDB_TYPE.HASH_METADATA:
    case RDB_TYPE.HASH_METADATA_PRE_GA: {
      if (type === RDB_TYPE.HASH_METADATA) c.skip(8); // earliest field expiry
      for (let n = c.count(); n > 0; n--) {
        c.bigLength(); // the field's expiry (0: none)
        c.skipString();
        c.skipString();
      }
      return;
    }
    case RDB_TYPE.HASH_LISTPACK_EX:
      c.skip(8); // earliest field expiry
      return c.skipString();
    case RDB_TYPE.HASH_LISTPACK_EX_PRE_GA:
      return c.skipString();
    case RDB_TYPE.ZSET: {
      for (let n = c.count(); n > 0; n--) {
        c.skipString();
        const length = c.u8();
        if (length < 253) c.skip(length);
      }
      return;
    }
    case RDB_TYPE.ZSET_2: {
      for (let n = c.count(); n > 0; n--) {
        c.skipString();
        c.skip(8);
      }
      return;
    }
    case RDB_TYPE.LIST_QUICKLIST_2: {
      for (let n = c.count(); n > 0; n--) {
        c.length(); // container: 1 plain, 2 packed
        c.skipString();
      }
      return;
    }
    case RDB_TYPE.MODULE_2:
      c.length(); // module id
      return skipModuleValue(c);
    case RDB_TYPE.STREAM_LISTPACKS:
    case RDB_TYPE.STREAM_LISTPACKS_2:
    case RDB_TYPE.STREAM_LISTPACKS_3:
      return skipStream(c, type);
    default:
      throw new RdbFormatError(`unsupported RDB value type ${type}`);
  }
}

function skipModuleValue(c: Cursor): void {
  for (;;) {
    const op = c.length();
    switch (op) {
      case 0:
        return;
      case 1:
      case 2:
        c.length();
        break;
      case 3:
        c.skip(4);
        break;
      case 4:
        c.skip(8);
        break;
      case 5:
        c.skipString();
        break;
      default:
        throw new RdbFormatError(`unknown module value opcode ${op}`);
    }
  }
}

function skipStream(c: Cursor, type: number): void {
  for (let nodes = c.count(); nodes > 0; nodes--) {
    c.skipString(); // master id (16 bytes)
    c.skipString(); // listpack
  }
  c.bigLength(); // length
  c.bigLength(); // last id ms
  c.bigLength(); // last id seq
  if (type >= RDB_TYPE.STREAM_LISTPACKS_2) {
    for (let k = 0; k < 5; k++) c.bigLength(); // first id, max deleted id, entries added
  }
  for (let groups = c.count(); groups > 0; groups--) {
    c.skipString(); // name
    c.bigLength();
    c.bigLength(); // last delivered id
    if (type >= RDB_TYPE.STREAM_LISTPACKS_2) c.bigLength(); // entries read
    for (let pel = c.count(); pel > 0; pel--) {
      c.skip(16 + 8); // id, delivery time
      c.length(); // delivery count
    }
    for (let consumers = c.count(); consumers > 0; consumers--) {
      c.skipString(); // name
      c.skip(type >= RDB_TYPE.STREAM_LISTPACKS_3 ? 16 : 8); // seen (and active) time
      c.skip(16 * c.count()); // the consumer's pending ids
    }
  }
}
