// Turns one stored RDB value (parser.ts gives its bytes) into data: the elements of a list, the members
// of a set, a stream's entries. Used for the content fingerprint (stats.ts) and by tests; restore never
// needs it (RESTORE takes the stored bytes). Every compact encoding Redis 2.x to 7.x and Valkey 8 write
// is read: listpack, ziplist, intset, zipmap, quicklist 1 and 2, stream listpacks 1 to 3.
import { Cursor, NeedMore, RdbFormatError } from './cursor.js';
import { RDB_TYPE, kindOf } from './types.js';

export interface StreamEntry {
  id: string;
  fields: Buffer[];
}

export type RedisValue =
  | { kind: 'string'; value: Buffer }
  | { kind: 'list'; items: Buffer[] }
  | { kind: 'set'; members: Buffer[] }
  | { kind: 'zset'; entries: Array<[Buffer, number]> }
  | { kind: 'hash'; entries: Array<[Buffer, Buffer]> }
  | {
      kind: 'stream';
      entries: StreamEntry[];
      lastId: string;
      groups: Array<{ name: Buffer; lastId: string }>;
    }
  | { kind: 'module'; raw: Buffer };

type Element = Buffer | bigint;

const text = (element: Element): Buffer =>
  typeof element === 'bigint' ? Buffer.from(element.toString()) : element;
const integer = (element: Element): bigint => {
  if (typeof element === 'bigint') return element;
  const value = element.toString('latin1');
  if (!/^-?\d+$/.test(value))
    throw new RdbFormatError(`expected an integer in a stream listpack, found "${value}"`);
  return BigInt(value);
};

/** Parses a score as Redis prints and stores it ("1.5", "inf", "-inf", "nan"). */
export function parseScore(value: string): number {
  const lower = value.toLowerCase();
  if (lower === 'inf' || lower === '+inf') return Infinity;
  if (lower === '-inf') return -Infinity;
  const number = Number(value);
  if (Number.isNaN(number) && lower !== 'nan') throw new RdbFormatError(`bad score "${value}"`);
  return number;
}

/** The elements of a listpack (Redis src/listpack.c). */
export function listpackElements(data: Buffer): Element[] {
  if (data.length < 7) throw new RdbFormatError('listpack too short');
  const total = data.readUInt32LE(0);
  if (total !== data.length) throw new RdbFormatError(`listpack says ${total} bytes, has ${data.length}`);
  const out: Element[] = [];
  let p = 6;
  for (;;) {
    if (p >= data.length) throw new RdbFormatError('listpack without its end byte');
    const b = data[p]!;
    let entryLength: number;
    if (b === 0xff) break;
    if ((b & 0x80) === 0) {
      out.push(BigInt(b & 0x7f));
      entryLength = 1;
    } else if ((b & 0xc0) === 0x80) {
      const length = b & 0x3f;
      out.push(slice(data, p + 1, length));
      entryLength = 1 + length;
    } else if ((b & 0xe0) === 0xc0) {
      need(data, p + 2);
      let value = ((b & 0x1f) << 8) | data[p + 1]!;
      if (value >= 1 << 12) value -= 1 << 13;
      out.push(BigInt(value));
      entryLength = 2;
    } else if ((b & 0xf0) === 0xe0) {
      need(data, p + 2);
      const length = ((b & 0x0f) << 8) | data[p + 1]!;
      out.push(slice(data, p + 2, length));
      entryLength = 2 + length;
    } else if (b === 0xf0) {
      need(data, p + 5);
      const length = data.readUInt32LE(p + 1);
      out.push(slice(data, p + 5, length));
      entryLength = 5 + length;
    } else if (b === 0xf1) {
      need(data, p + 3);
      out.push(BigInt(data.readInt16LE(p + 1)));
      entryLength = 3;
    } else if (b === 0xf2) {
      need(data, p + 4);
      out.push(BigInt(data.readIntLE(p + 1, 3)));
      entryLength = 4;
    } else if (b === 0xf3) {
      need(data, p + 5);
      out.push(BigInt(data.readInt32LE(p + 1)));
      entryLength = 5;
    } else if (b === 0xf4) {
      need(data, p + 9);
      out.push(data.readBigInt64LE(p + 1));
      entryLength = 9;
    } else {
      throw new RdbFormatError(`bad listpack entry byte 0x${b.toString(16)}`);
    }
    p += entryLength + backlenSize(entryLength);
  }
  if (p !== data.length - 1) throw new RdbFormatError('listpack has bytes after its end');
  return out;
}

/** The size of an entry's back-length, as listpack.c's lpEncodeBacklen (its bounds are 2^k - 1, not 2^k). */
function backlenSize(length: number): number {
  if (length <= 127) return 1;
  if (length < 16383) return 2;
  if (length < 2097151) return 3;
  if (length < 268435455) return 4;
  return 5;
}

/** The elements of a ziplist (Redis < 7 src/ziplist.c). */
export function ziplistElements(data: Buffer): Element[] {
  if (data.length < 11) throw new RdbFormatError('ziplist too short');
  if (data.readUInt32LE(0) !== data.length) throw new RdbFormatError('ziplist length mismatch');
  const out: Element[] = [];
  let p = 10;
  for (;;) {
    need(data, p + 1);
    if (data[p] === 0xff) break;
    p += data[p]! < 254 ? 1 : 5; // previous entry length
    need(data, p + 1);
    const b = data[p]!;
    switch (b >> 6) {
      case 0:
        out.push(slice(data, p + 1, b & 0x3f));
        p += 1 + (b & 0x3f);
        continue;
      case 1: {
        need(data, p + 2);
        const length = ((b & 0x3f) << 8) | data[p + 1]!;
        out.push(slice(data, p + 2, length));
        p += 2 + length;
        continue;
      }
      case 2: {
        need(data, p + 5);
        const length = data.readUInt32BE(p + 1);
        out.push(slice(data, p + 5, length));
        p += 5 + length;
        continue;
      }
    }
    if (b === 0xc0) {
      need(data, p + 3);
      out.push(BigInt(data.readInt16LE(p + 1)));
      p += 3;
    } else if (b === 0xd0) {
      need(data, p + 5);
      out.push(BigInt(data.readInt32LE(p + 1)));
      p += 5;
    } else if (b === 0xe0) {
      need(data, p + 9);
      out.push(data.readBigInt64LE(p + 1));
      p += 9;
    } else if (b === 0xf0) {
      need(data, p + 4);
      out.push(BigInt(data.readIntLE(p + 1, 3)));
      p += 4;
    } else if (b === 0xfe) {
      need(data, p + 2);
      out.push(BigInt(data.readInt8(p + 1)));
      p += 2;
    } else if (b >= 0xf1 && b <= 0xfd) {
      out.push(BigInt((b & 0x0f) - 1));
      p += 1;
    } else {
      throw new RdbFormatError(`bad ziplist entry byte 0x${b.toString(16)}`);
    }
  }
  return out;
}

function intsetMembers(data: Buffer): Element[] {
  if (data.length < 8) throw new RdbFormatError('intset too short');
  const width = data.readUInt32LE(0);
  const count = data.readUInt32LE(4);
  if (![2, 4, 8].includes(width) || data.length !== 8 + width * count) throw new RdbFormatError('bad intset');
  const out: Element[] = [];
  for (let k = 0; k < count; k++) {
    const at = 8 + k * width;
    out.push(
      width === 2
        ? BigInt(data.readInt16LE(at))
        : width === 4
          ? BigInt(data.readInt32LE(at))
          : data.readBigInt64LE(at),
    );
  }
  return out;
}

function zipmapEntries(data: Buffer): Array<[Buffer, Buffer]> {
  const out: Array<[Buffer, Buffer]> = [];
  let p = 1;
  const length = (): number => {
    need(data, p + 1);
    const b = data[p]!;
    if (b < 254) {
      p += 1;
      return b;
    }
    if (b === 254) {
      need(data, p + 5);
      const value = data.readUInt32LE(p + 1);
      p += 5;
      return value;
    }
    throw new RdbFormatError('bad zipmap length');
  };
  for (;;) {
    need(data, p + 1);
    if (data[p] === 0xff) return out;
    const keyLength = length();
    const key = slice(data, p, keyLength);
    p += keyLength;
    const valueLength = length();
    need(data, p + 1);
    const free = data[p]!;
    p += 1;
    const value = slice(data, p, valueLength);
    p += valueLength + free;
    out.push([key, value]);
  }
}

function need(data: Buffer, end: number): void {
  if (end > data.length) throw new RdbFormatError('compact encoding is truncated');
}
function slice(data: Buffer, start: number, length: number): Buffer {
  need(data, start + length);
  return data.subarray(start, start + length);
}

function pairs<T>(elements: Element[], map: (a: Element, b: Element) => T): T[] {
  if (elements.length % 2 !== 0) throw new RdbFormatError('odd number of elements in a pair encoding');
  const out: T[] = [];
  for (let k = 0; k < elements.length; k += 2) out.push(map(elements[k]!, elements[k + 1]!));
  return out;
}

const scoreOf = (element: Element): number =>
  typeof element === 'bigint' ? Number(element) : parseScore(element.toString('latin1'));

/** Decodes one value (type and bytes as the parser gives them). */
export function decodeValue(type: number, bytes: Buffer): RedisValue {
  const c = new Cursor(bytes);
  try {
    const value = decode(c, type);
    if (c.pos !== bytes.length) throw new RdbFormatError(`value has ${bytes.length - c.pos} trailing bytes`);
    return value;
  } catch (error) {
    if (error instanceof NeedMore) throw new RdbFormatError(`value of type ${type} is truncated`);
    throw error;
  }
}

function decode(c: Cursor, type: number): RedisValue {
  switch (type) {
    case RDB_TYPE.STRING:
      return { kind: 'string', value: c.string() };
    case RDB_TYPE.LIST:
      return { kind: 'list', items: repeat(c.count(), () => c.string()) };
    case RDB_TYPE.LIST_ZIPLIST:
      return { kind: 'list', items: ziplistElements(c.string()).map(text) };
    case RDB_TYPE.LIST_QUICKLIST:
      return { kind: 'list', items: repeat(c.count(), () => ziplistElements(c.string()).map(text)).flat() };
    case RDB_TYPE.LIST_QUICKLIST_2: {
      const items: Buffer[] = [];
      for (let n = c.count(); n > 0; n--) {
        const container = c.length();
        const data = c.string();
        if (container === 1) items.push(data);
        else if (container === 2) items.push(...listpackElements(data).map(text));
        else throw new RdbFormatError(`bad quicklist container ${container}`);
      }
      return { kind: 'list', items };
    }
    case RDB_TYPE.SET:
      return { kind: 'set', members: repeat(c.count(), () => c.string()) };
    case RDB_TYPE.SET_INTSET:
      return { kind: 'set', members: intsetMembers(c.string()).map(text) };
    case RDB_TYPE.SET_LISTPACK:
      return { kind: 'set', members: listpackElements(c.string()).map(text) };
    case RDB_TYPE.ZSET:
      return {
        kind: 'zset',
        entries: repeat(c.count(), () => {
          const member = c.string();
          const length = c.u8();
          const score =
            length === 253
              ? NaN
              : length === 254
                ? Infinity
                : length === 255
                  ? -Infinity
                  : parseScore(c.bytes(length).toString('latin1'));
          return [member, score] as [Buffer, number];
        }),
      };
    case RDB_TYPE.ZSET_2:
      return { kind: 'zset', entries: repeat(c.count(), () => [c.string(), c.double()] as [Buffer, number]) };
    case RDB_TYPE.ZSET_ZIPLIST:
      return { kind: 'zset', entries: pairs(ziplistElements(c.string()), (m, s) => [text(m), scoreOf(s)]) };
    case RDB_TYPE.ZSET_LISTPACK:
      return { kind: 'zset', entries: pairs(listpackElements(c.string()), (m, s) => [text(m), scoreOf(s)]) };
    case RDB_TYPE.HASH:
      return { kind: 'hash', entries: repeat(c.count(), () => [c.string(), c.string()] as [Buffer, Buffer]) };
    case RDB_TYPE.HASH_ZIPMAP:
      return { kind: 'hash', entries: zipmapEntries(c.string()) };
    case RDB_TYPE.HASH_ZIPLIST:
      return { kind: 'hash', entries: pairs(ziplistElements(c.string()), (f, v) => [text(f), text(v)]) };
    case RDB_TYPE.HASH_LISTPACK:
      return { kind: 'hash', entries: pairs(listpackElements(c.string()), (f, v) => [text(f), text(v)]) };
    case RDB_TYPE.HASH_METADATA:
    case RDB_TYPE.HASH_METADATA_PRE_GA:
      if (type === RDB_TYPE.HASH_METADATA) c.skip(8);
      return {
        kind: 'hash',
        entries: repeat(c.count(), () => {
          c.bigLength(); // the field's expiry: restored by RESTORE with the value, not compared here
          return [c.string(), c.string()] as [Buffer, Buffer];
        }),
      };
    case RDB_TYPE.HASH_LISTPACK_EX:
    case RDB_TYPE.HASH_LISTPACK_EX_PRE_GA: {
      if (type === RDB_TYPE.HASH_LISTPACK_EX) c.skip(8);
      // Triplets: field, value, expiry (0: none).
      const elements = listpackElements(c.string());
      if (elements.length % 3 !== 0)
        throw new RdbFormatError('hash listpack with expiries is not in triplets');
      const entries: Array<[Buffer, Buffer]> = [];
      for (let k = 0; k < elements.length; k += 3) entries.push([text(elements[k]!), text(elements[k + 1]!)]);
      return { kind: 'hash', entries };
    }
    case RDB_TYPE.STREAM_LISTPACKS:
    case RDB_TYPE.STREAM_LISTPACKS_2:
    case RDB_TYPE.STREAM_LISTPACKS_3:
      return decodeStream(c, type);
    case RDB_TYPE.MODULE_2: {
      const start = c.pos;
      c.pos = c.buf.length;
      return { kind: 'module', raw: c.buf.subarray(start) };
    }
    default:
      throw new RdbFormatError(`cannot decode RDB type ${type} (${kindOf(type)})`);
  }
}

function repeat<T>(count: number, read: () => T): T[] {
  const out: T[] = [];
  for (let k = 0; k < count; k++) out.push(read());
  return out;
}

const STREAM_ITEM_FLAG_DELETED = 1;
const STREAM_ITEM_FLAG_SAMEFIELDS = 2;

function decodeStream(c: Cursor, type: number): RedisValue {
  const entries: StreamEntry[] = [];
  for (let nodes = c.count(); nodes > 0; nodes--) {
    const master = c.string();
    if (master.length !== 16) throw new RdbFormatError('stream node key is not a 16-byte id');
    const masterMs = master.readBigUInt64BE(0);
    const masterSeq = master.readBigUInt64BE(8);
    const lp = listpackElements(c.string());
    let k = 0;
    const next = (): Element => {
      if (k >= lp.length) throw new RdbFormatError('stream listpack ends early');
      return lp[k++]!;
    };
    next(); // valid entries
    next(); // deleted entries
    const masterFieldCount = Number(integer(next()));
    const masterFields = repeat(masterFieldCount, () => text(next()));
    if (integer(next()) !== 0n) throw new RdbFormatError('stream master entry not terminated');
    while (k < lp.length) {
      const flags = Number(integer(next()));
      const ms = masterMs + integer(next());
      const seq = masterSeq + integer(next());
      const fields: Buffer[] = [];
      if (flags & STREAM_ITEM_FLAG_SAMEFIELDS) {
        for (const field of masterFields) fields.push(field, text(next()));
      } else {
        const count = Number(integer(next()));
        for (let f = 0; f < count; f++) fields.push(text(next()), text(next()));
      }
      next(); // lp-count
      if (!(flags & STREAM_ITEM_FLAG_DELETED)) entries.push({ id: `${ms}-${seq}`, fields });
    }
  }
  c.bigLength(); // length
  const lastId = `${c.bigLength()}-${c.bigLength()}`;
  if (type >= RDB_TYPE.STREAM_LISTPACKS_2) for (let k = 0; k < 5; k++) c.bigLength();
  const groups: Array<{ name: Buffer; lastId: string }> = [];
  for (let n = c.count(); n > 0; n--) {
    const name = c.string();
    const groupLast = `${c.bigLength()}-${c.bigLength()}`;
    if (type >= RDB_TYPE.STREAM_LISTPACKS_2) c.bigLength();
    for (let pel = c.count(); pel > 0; pel--) {
      c.skip(24);
      c.length();
    }
    for (let consumers = c.count(); consumers > 0; consumers--) {
      c.skipString();
      c.skip(type >= RDB_TYPE.STREAM_LISTPACKS_3 ? 16 : 8);
      c.skip(16 * c.count());
    }
    groups.push({ name, lastId: groupLast });
  }
  return { kind: 'stream', entries, lastId, groups };
}
