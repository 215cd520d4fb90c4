// The RDB reader on files Redis 7.0 and Valkey 8.0 wrote (test/fixtures/redis, made by make.sh there):
// every record and value, the same records whatever the chunking, CRC-64 and LZF against known values,
// DUMP payloads, and a fuzz: mutated and truncated files only ever fail with RdbFormatError.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { Crc64, crc64, crc64Into } from './crc64.js';
import { RdbFormatError } from './cursor.js';
import { decodeValue, listpackElements } from './decode.js';
import { dumpPayload } from './dump.js';
import { lzfDecompress } from './lzf.js';
import { RdbParser, type RdbKeyRecord, type RdbRecord } from './parser.js';
import { kindOf, rdbVersionOf } from './types.js';
import { seeded } from '../../../../test/harness/seeded.js';

const fixture = (name: string) =>
  readFileSync(new URL(`../../../../test/fixtures/redis/${name}.rdb`, import.meta.url));

function parseAll(data: Buffer, chunk = data.length): RdbRecord[] {
  const parser = new RdbParser();
  const records: RdbRecord[] = [];
  for (let at = 0; at < data.length; at += chunk) records.push(...parser.push(data.subarray(at, at + chunk)));
  records.push(...parser.finish());
  return records;
}

/** A record as text, taken at once: a transient record's bytes are overwritten after the call. */
const describeRecord = (record: RdbRecord): string =>
  JSON.stringify(record, (_key, value: unknown) =>
    value && typeof value === 'object' && (value as { type?: string }).type === 'Buffer'
      ? Buffer.from((value as { data: number[] }).data).toString('hex')
      : value,
  );

/**
 * Parses with pushTransient() the way the backup does: every piece is copied into one reused buffer,
 * which is overwritten (garbage) after each call, so a record or parser state still pointing into it
 * shows up as a difference.
 */
function parseTransient(data: Buffer, chunk: number | (() => number)): string[] {
  const parser = new RdbParser();
  const size = typeof chunk === 'number' ? () => chunk : chunk;
  const scratch = Buffer.alloc(data.length);
  const out: string[] = [];
  for (let at = 0; at < data.length;) {
    const count = data.copy(scratch, 0, at, at + size());
    at += count;
    for (const record of parser.pushTransient(scratch.subarray(0, count))) out.push(describeRecord(record));
    scratch.fill(0xa5, 0, count);
  }
  for (const record of parser.finish()) out.push(describeRecord(record));
  return out;
}

/** An RDB of one string key with a value of `size` random bytes (checksum 0: not checked). */
function bigValueRdb(size: number): Buffer {
  const length = Buffer.alloc(5);
  length[0] = 0x80;
  length.writeUInt32BE(size, 1);
  return Buffer.concat([
    Buffer.from('REDIS0010', 'latin1'),
    Buffer.from([0x00, 0x03]),
    Buffer.from('big'),
    length,
    randomBytes(size),
    Buffer.from([0xff]),
    Buffer.alloc(8),
  ]);
}

/** An RDB of `count` string keys with values of `size` random bytes, and its real CRC-64. */
function manyKeysRdb(count: number, size: number): Buffer {
  return stringKeysRdb(Array.from({ length: count }, () => size));
}

/** An RDB of string keys with values of the given sizes (random bytes), and its real CRC-64. */
function stringKeysRdb(sizes: readonly number[]): Buffer {
  const parts = [Buffer.from('REDIS0010', 'latin1')];
  for (const [i, size] of sizes.entries()) {
    const key = Buffer.from(`key:${i}`);
    const length = Buffer.alloc(5);
    length[0] = 0x80;
    length.writeUInt32BE(size, 1);
    parts.push(Buffer.from([0x00, key.length]), key, length, randomBytes(size));
  }
  parts.push(Buffer.from([0xff]));
  const body = Buffer.concat(parts);
  return Buffer.concat([body, crc64(body)]);
}

/**
 * Mutates an RDB `rounds` times (byte overwrites, inserted, deleted and repeated runs, a cut end) and
 * parses each, alternately with push() and with pushTransient() through a reused buffer (as a backup
 * does), decoding every key's value. Anything but an RdbFormatError fails the test. Returns how many
 * mutations were refused.
 */
function fuzz(unchecked: Buffer, seed: number, rounds: number): number {
  const random = seeded(seed);
  const pick = (n: number) => Math.floor(random() * n);
  let failed = 0;
  for (let round = 0; round < rounds; round++) {
    let mutated = Buffer.from(unchecked);
    const at = () => 9 + pick(Math.max(1, mutated.length - 17));
    for (let edits = 1 + pick(4); edits > 0; edits--) {
      const kind = pick(10);
      const where = at();
      if (kind < 6) mutated[where] = pick(256);
      else if (kind === 6)
        mutated = Buffer.concat([
          mutated.subarray(0, where),
          randomBytesOf(pick(16) + 1, random),
          mutated.subarray(where),
        ]);
      else if (kind === 7)
        mutated = Buffer.concat([mutated.subarray(0, where), mutated.subarray(where + 1 + pick(32))]);
      else if (kind === 8) {
        const length = 1 + pick(64);
        mutated = Buffer.concat([
          mutated.subarray(0, where + length),
          mutated.subarray(where, where + length),
          mutated.subarray(where + length),
        ]);
      } else mutated.writeUInt32LE(0xffffffff - pick(4), Math.min(where, mutated.length - 4)); // a huge length
    }
    const cut = random() < 0.2 ? pick(mutated.length) : mutated.length;
    const input = mutated.subarray(0, cut);
    const chunk = 1 + pick(512);
    try {
      const parser = new RdbParser();
      const take = (records: Iterable<RdbRecord>) => {
        for (const record of records) if (record.kind === 'key') decodeValue(record.type, record.value);
      };
      if (round % 2 === 0) {
        for (let k = 0; k < input.length; k += chunk) take(parser.push(input.subarray(k, k + chunk)));
      } else {
        const scratch = Buffer.alloc(chunk);
        for (let k = 0; k < input.length; k += chunk) {
          const count = input.copy(scratch, 0, k, k + chunk);
          take(parser.pushTransient(scratch.subarray(0, count)));
          scratch.fill(0xa5);
        }
      }
      take(parser.finish());
    } catch (error) {
      if (!(error instanceof RdbFormatError))
        throw new Error(`round ${round}: ${String(error)}`, { cause: error });
      failed += 1;
    }
  }
  return failed;
}

function randomBytesOf(length: number, random: () => number): Buffer {
  const out = Buffer.alloc(length);
  for (let k = 0; k < length; k++) out[k] = Math.floor(random() * 256);
  return out;
}

const keysOf = (records: RdbRecord[]) =>
  new Map(
    records
      .filter((record): record is RdbKeyRecord => record.kind === 'key')
      .map((record) => [`${record.db}/${record.key.toString()}`, record]),
  );

describe('CRC-64/Jones and LZF', () => {
  it('computes the check value of the Redis CRC-64 variant', () => {
    // Redis src/crc64.c test: crc64(0, "123456789") == 0xe9c6d914c4b8d9ca
    expect(crc64(Buffer.from('123456789')).readBigUInt64LE(0)).toBe(0xe9c6d914c4b8d9can);
  });

  it('agrees with a bit-at-a-time CRC-64/Jones, whole and fed in pieces of any size', () => {
    const reference = (data: Uint8Array): bigint => {
      let crc = 0n;
      for (const byte of data) {
        crc ^= BigInt(byte);
        for (let bit = 0; bit < 8; bit++) crc = crc & 1n ? (crc >> 1n) ^ 0x95ac9329ac4bc9b5n : crc >> 1n;
      }
      return crc;
    };
    const data = randomBytes(20_011);
    const expected = reference(data);
    expect(crc64(data).readBigUInt64LE(0)).toBe(expected);
    for (const piece of [1, 3, 8, 13, 4096]) {
      const crc = new Crc64();
      for (let offset = 0; offset < data.length; offset += piece)
        crc.update(data.subarray(offset, offset + piece));
      expect(crc.bytes().readBigUInt64LE(0)).toBe(expected);
      expect(crc.hex()).toBe(expected.toString(16).padStart(16, '0'));
    }
    // An unaligned view, and a view of shared memory (the backup session's slabs are).
    const shifted = Buffer.concat([Buffer.from([1, 2, 3]), data]).subarray(3);
    expect(crc64(shifted).readBigUInt64LE(0)).toBe(expected);
    const shared = Buffer.from(new SharedArrayBuffer(data.length + 5), 5);
    data.copy(shared);
    expect(crc64(shared).readBigUInt64LE(0)).toBe(expected);
  });

  it('agrees with itself however the input is split, and checks an input with its CRC appended', () => {
    const data = randomBytes(3 * 1024 * 1024 + 13);
    const whole = crc64(data);
    for (const piece of [1024 * 1024 - 1, 1024 * 1024, 1024 * 1024 + 7]) {
      const crc = new Crc64();
      for (let offset = 0; offset < data.length; offset += piece)
        crc.update(data.subarray(offset, offset + piece));
      expect(crc.bytes().equals(whole)).toBe(true);
    }
    // A reflected CRC with no final xor is 0 over data followed by its own CRC (little-endian): how an
    // RDB file's last 8 bytes check out.
    expect(crc64(Buffer.concat([data, whole])).readBigUInt64LE(0)).toBe(0n);
    expect(crc64(Buffer.alloc(0)).readBigUInt64LE(0)).toBe(0n);
  });

  it('checks a multi-megabyte RDB whose bytes reach the CRC over many drains, pushed or viewed in any pieces', () => {
    // Past the parser's 1 MiB batches, so the CRC is fed drain after drain, across records cut by the
    // pieces' ends; one changed byte in a value near the end must still fail it.
    const data = manyKeysRdb(1500, 2000);
    const changed = Buffer.from(data);
    changed[data.length - 500]! ^= 0x20;
    for (const piece of [4096, 65536, 1024 * 1024 + 7, data.length]) {
      expect(parseAll(data, piece).filter((record) => record.kind === 'key')).toHaveLength(1500);
      expect(parseTransient(data, piece).length).toBeGreaterThan(1500);
      expect(() => parseAll(changed, piece), `push, pieces of ${piece}`).toThrow(/RDB checksum mismatch/);
      expect(() => parseTransient(changed, piece), `pushTransient, views of ${piece}`).toThrow(
        /RDB checksum mismatch/,
      );
    }
  });

  it('writes a CRC into the bytes given at once (crc64Into), from any view, and refuses a short output', () => {
    const data = randomBytes(70_001);
    const out = Buffer.alloc(12, 0xee);
    crc64Into(data, out.subarray(2, 10));
    expect(out.subarray(2, 10).equals(crc64(data))).toBe(true);
    expect(out[1]).toBe(0xee);
    expect(out[10]).toBe(0xee);
    const shared = Buffer.from(new SharedArrayBuffer(data.length + 8));
    data.copy(shared);
    crc64Into(shared.subarray(0, data.length), shared.subarray(data.length));
    expect(shared.subarray(data.length).equals(crc64(data))).toBe(true);
    expect(() => crc64Into(data, Buffer.alloc(7))).toThrow(/8 bytes/);
  });

  it('decompresses literal runs and back references, and rejects bad data', () => {
    // "aaaaaaaaaa": literal "a", then a back reference of 9 bytes at distance 1
    expect(lzfDecompress(Buffer.from([0x00, 0x61, 0xe0, 0x00, 0x00]), 10).toString()).toBe('a'.repeat(10));
    expect(() => lzfDecompress(Buffer.from([0x20, 0x05]), 4)).toThrow(/before the start/);
    expect(() => lzfDecompress(Buffer.from([0x05, 0x61]), 6)).toThrow(/overruns/);
  });
});

for (const flavour of ['redis', 'valkey'] as const) {
  describe(`RDB written by ${flavour === 'redis' ? 'Redis 7.0' : 'Valkey 8.0'}`, () => {
    const data = fixture(flavour);

    it('reads every record; the checksum verifies', () => {
      const parser = new RdbParser();
      const records = [...parser.push(data), ...parser.finish()];
      expect(parser.header).toEqual({ magic: 'REDIS', version: flavour === 'redis' ? 10 : 11 });
      expect(parser.done).toBe(true);
      const keys = keysOf(records);
      expect(keys.size).toBe(19);
      expect(records.filter((record) => record.kind === 'function')).toHaveLength(1);
      expect(
        records.some(
          (record) =>
            record.kind === 'aux' && record.key === (flavour === 'redis' ? 'redis-ver' : 'valkey-ver'),
        ),
      ).toBe(true);
      // The key's expiry as the fixture stores it: a year after the file was written (aux "ctime", in
      // seconds). Not compared with today's date: the fixture's year ran out on 2026-11-22.
      const ctime = records.find((record) => record.kind === 'aux' && record.key === 'ctime');
      const expireAt = keys.get('0/s:ttl')!.expireAt!;
      expect(expireAt).toBe(flavour === 'redis' ? 1795342873374 : 1795342874058);
      expect(expireAt).toBeGreaterThan(Number((ctime as { value: string }).value) * 1000);
      expect(keys.get('2/other:key')!.expireAt).toBe(4102444800000);
    });

    it('gives the same records whatever the chunk sizes', () => {
      const whole = parseAll(data);
      for (const chunk of [1, 7, 64, 1000]) {
        const split = parseAll(data, chunk);
        expect(split.length).toBe(whole.length);
        expect(keysOf(split)).toEqual(keysOf(whole));
      }
    });

    it('parses views of reused memory in place (pushTransient): the same records as push()', () => {
      const whole = parseAll(data).map(describeRecord);
      for (const chunk of [1, 2, 9, 10, 63, 500, 4096, 5000, data.length]) {
        expect(parseTransient(data, chunk), `views of ${chunk} bytes`).toEqual(whole);
      }
      // A value much longer than a view is gathered in copies and parsed once, not re-joined per view.
      const big = bigValueRdb(300_000);
      const expected = parseAll(big).map(describeRecord);
      expect(expected.some((record) => record.includes('"key":"626967"'))).toBe(true);
      for (const chunk of [4096, 65536, 1 << 20]) expect(parseTransient(big, chunk)).toEqual(expected);
      // Views of irregular sizes, small ones between large ones: the bytes kept for one record (its
      // size is a guess until it is read) can reach into the next, and the records of one call then
      // come from two joins; neither may be overwritten before the call returns.
      const mixed = stringKeysRdb([10, 12_000, 7, 300_000, 5, 40_000, 3, 9_000, 200_000, 1, 64, 70_000]);
      const mixedRecords = parseAll(mixed).map(describeRecord);
      let seed = 7;
      const next = () => {
        seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0;
        return seed;
      };
      for (let round = 0; round < 60; round++) {
        const sizes = () =>
          next() % 4 === 0 ? 1 + (next() % 64) : 1 + (next() % (next() % 2 ? 20_000 : 400_000));
        expect(parseTransient(mixed, sizes), `round ${round}`).toEqual(mixedRecords);
        expect(parseTransient(data, sizes), `round ${round}`).toEqual(whole);
      }
      // The checksum is verified, a truncated RDB still fails, and so do bytes after its end.
      const flipped = Buffer.from(data);
      flipped[Math.floor(data.length / 2)]! ^= 0x01;
      expect(() => parseTransient(flipped, 100)).toThrow(RdbFormatError);
      expect(() => parseTransient(data.subarray(0, data.length - 3), 100)).toThrow(/ends early/);
      expect(() => parseTransient(Buffer.concat([data, Buffer.from('x')]), 64)).toThrow(/after the end/);
    });

    it('fails the checksum for one changed byte inside a value, however the input is split', () => {
      // 'hello' -> 'jello' still parses: only the CRC-64 can tell.
      const at = data.indexOf('hello');
      expect(at).toBeGreaterThan(0);
      const changed = Buffer.from(data);
      changed[at] = 'j'.charCodeAt(0);
      for (const chunk of [1, 7, 100, at, at + 1, data.length]) {
        expect(() => parseAll(changed, chunk), `push, pieces of ${chunk}`).toThrow(/RDB checksum mismatch/);
        expect(() => parseTransient(changed, chunk), `pushTransient, views of ${chunk}`).toThrow(
          /RDB checksum mismatch/,
        );
        expect(() => parseTransient(data, chunk)).not.toThrow();
      }
    });

    it('decodes every value of every type and encoding', () => {
      const keys = keysOf(parseAll(data));
      const value = (name: string) => {
        const record = keys.get(name)!;
        return decodeValue(record.type, record.value);
      };
      expect(value('0/s:short')).toEqual({ kind: 'string', value: Buffer.from('hello') });
      expect(value('0/s:int')).toEqual({ kind: 'string', value: Buffer.from('12345') });
      expect(value('0/s:neg')).toEqual({ kind: 'string', value: Buffer.from('-7') });
      expect(value('0/s:big')).toEqual({ kind: 'string', value: Buffer.from('99999999999') });
      expect(value('0/s:long')).toEqual({ kind: 'string', value: Buffer.from('abcabcabc'.repeat(40)) });
      expect(value('0/l:small')).toEqual({
        kind: 'list',
        items: ['a', 'b', '3', '4', 'five'].map((s) => Buffer.from(s)),
      });
      expect(value('0/l:big')).toEqual({
        kind: 'list',
        items: Array.from({ length: 300 }, (_, k) => Buffer.from(String(k + 1))),
      });
      const members = (name: string) => {
        const decoded = value(name);
        if (decoded.kind !== 'set') throw new Error('not a set');
        return decoded.members.map(String).sort();
      };
      expect(members('0/set:ints')).toEqual(['-5', '1', '100000', '2', '3']);
      expect(members('0/set:strs')).toEqual(['apple', 'banana', 'cherry']);
      expect(members('0/set:big')).toHaveLength(200);
      const zset = (name: string) => {
        const decoded = value(name);
        if (decoded.kind !== 'zset') throw new Error('not a zset');
        return Object.fromEntries(decoded.entries.map(([member, score]) => [member.toString(), score]));
      };
      expect(zset('0/z:small')).toEqual({ a: 1, b: 2.5, c: -3 });
      expect(zset('0/z:special')).toEqual({ top: Infinity, bottom: -Infinity, zero: 0 });
      expect(zset('0/z:big')['zm7']).toBe(7.5);
      const hash = (name: string) => {
        const decoded = value(name);
        if (decoded.kind !== 'hash') throw new Error('not a hash');
        return Object.fromEntries(decoded.entries.map(([field, v]) => [field.toString(), v.toString()]));
      };
      expect(hash('0/h:small')).toEqual({ f1: 'v1', f2: '2' });
      expect(Object.keys(hash('0/h:big'))).toHaveLength(300);
      expect(hash('0/h:big')['f123']).toBe('value123');
      const stream = value('0/st2');
      expect(stream).toMatchObject({ kind: 'stream', lastId: '6-0' });
      if (stream.kind !== 'stream') throw new Error('not a stream');
      expect(stream.entries.map((entry) => entry.id)).toEqual(['5-1', '6-0']); // 5-2 was deleted
      expect(stream.entries[0]!.fields.map(String)).toEqual(['a', '1']);
      expect(stream.groups.map((group) => [group.name.toString(), group.lastId])).toEqual([['g2', '6-0']]);
      const events = value('0/st');
      if (events.kind !== 'stream') throw new Error('not a stream');
      expect(events.entries).toHaveLength(30);
      expect(events.entries[29]!.fields.map(String)).toEqual(['k', '30', 'v', 'val30']);
      for (const [name, record] of keys) {
        expect(decodeValue(record.type, record.value).kind, name).toBe(kindOf(record.type));
      }
    });

    it('builds DUMP payloads with the version and CRC trailer', () => {
      const record = keysOf(parseAll(data)).get('0/s:short')!;
      const payload = dumpPayload(record.type, record.value, 10);
      expect(payload[0]).toBe(0);
      expect(payload.readUInt16LE(payload.length - 10)).toBe(10);
      expect(
        payload.subarray(payload.length - 8).equals(crc64(payload.subarray(0, payload.length - 8))),
      ).toBe(true);
    });

    it('reports truncation and a flipped byte as RdbFormatError', () => {
      expect(() => parseAll(data.subarray(0, data.length - 3))).toThrow(RdbFormatError);
      expect(() => parseAll(data.subarray(0, 100))).toThrow(/ends early/);
      const flipped = Buffer.from(data);
      flipped[Math.floor(data.length / 2)]! ^= 0x01;
      expect(() => parseAll(flipped)).toThrow(RdbFormatError);
      expect(() => parseAll(Buffer.from('NOTANRDB0011'))).toThrow(/not an RDB/);
      expect(() => parseAll(Buffer.from('REDIS0099\xff', 'latin1'))).toThrow(/version 99 is not supported/);
    });

    it('fuzz: mutated files (checksum off) fail only with RdbFormatError, never a crash or a hang', () => {
      const unchecked = Buffer.from(data);
      unchecked.fill(0, unchecked.length - 8); // checksum 0 = not checked, so mutations reach the decoders
      expect(parseAll(unchecked).length).toBeGreaterThan(0);
      expect(fuzz(unchecked, flavour === 'redis' ? 1 : 2, 3000)).toBeGreaterThan(100);
    });
  });
}

/** A listpack of encoded entries (each with its back-length): total bytes, count, entries, 0xFF. */
function listpackOf(entries: Buffer[]): Buffer {
  const body = Buffer.concat(entries);
  const out = Buffer.alloc(6 + body.length + 1);
  out.writeUInt32LE(out.length, 0);
  out.writeUInt16LE(entries.length, 4);
  body.copy(out, 6);
  out[out.length - 1] = 0xff;
  return out;
}

describe('listpack entries at the back-length size edges', () => {
  /** A listpack of string entries in the 32-bit string encoding, back-lengths as lpEncodeBacklen. */
  function listpack(lengths: number[]): Buffer {
    const entries = lengths.map((length) => {
      const entryLength = 5 + length;
      const backlen = entryLength <= 127 ? 1 : entryLength < 16383 ? 2 : entryLength < 2097151 ? 3 : 4;
      const entry = Buffer.alloc(entryLength + backlen, 0x61);
      entry[0] = 0xf0;
      entry.writeUInt32LE(length, 1);
      return entry;
    });
    return listpackOf(entries);
  }

  it('reads entries whose length is 16382-16384 and 2097150-2097152 bytes', () => {
    const lengths = [16377, 16378, 16379, 2097145, 2097146, 2097147, 10];
    const elements = listpackElements(listpack(lengths));
    expect(elements.map((element) => (element as Buffer).length)).toEqual(lengths);
  });
});

describe('RDB 12 (Redis 7.4): hashes with field expiries', () => {
  const str = (text: string) => Buffer.concat([Buffer.from([text.length]), Buffer.from(text, 'latin1')]);
  /** A listpack of short strings and 64-bit integers. */
  const listpack = (elements: Array<string | bigint>): Buffer => {
    const entries = elements.map((element) => {
      if (typeof element === 'bigint') {
        const entry = Buffer.alloc(10);
        entry[0] = 0xf4;
        entry.writeBigInt64LE(element, 1);
        entry[9] = 9;
        return entry;
      }
      return Buffer.concat([
        Buffer.from([0x80 | element.length]),
        Buffer.from(element),
        Buffer.from([1 + element.length]),
      ]);
    });
    return listpackOf(entries);
  };
  const u64 = (value: bigint) => {
    const out = Buffer.alloc(8);
    out.writeBigUInt64LE(value);
    return out;
  };
  const blob = (bytes: Buffer) =>
    Buffer.concat([Buffer.from([0x40 | (bytes.length >> 8), bytes.length & 0xff]), bytes]);
  const minExpire = 1_900_000_000_000n;
  const rdb = Buffer.concat([
    Buffer.from('REDIS0012', 'latin1'),
    Buffer.from([0xfe, 0x00]),
    // HASH_METADATA: earliest expiry, count, then per field: expiry (relative + 1, 0: none), field, value.
    Buffer.from([24]),
    str('hm'),
    u64(minExpire),
    Buffer.from([2]),
    Buffer.from([0]),
    str('f1'),
    str('v1'),
    Buffer.from([5]),
    str('f2'),
    str('v2'),
    // HASH_LISTPACK_EX: earliest expiry, then a listpack of (field, value, expiry) triplets.
    Buffer.from([25]),
    str('hl'),
    u64(minExpire),
    blob(listpack(['a', '1', 0n, 'b', '2', minExpire])),
    // The release candidates' forms: no earliest expiry; expiries absolute.
    Buffer.from([22]),
    str('hp'),
    Buffer.from([1, 0, ...str('x'), ...str('y')]),
    Buffer.from([23]),
    str('hq'),
    blob(listpack(['k', 'v', 0n])),
    Buffer.from([0x00]),
    str('s'),
    str('plain'),
    Buffer.from([0xff]),
    Buffer.alloc(8), // checksum 0: not checked
  ]);

  it('reads every key, whole and in pieces of any size, and decodes the hashes without their expiries', () => {
    const records = parseAll(rdb);
    const keys = keysOf(records);
    expect([...keys.keys()]).toEqual(['0/hm', '0/hl', '0/hp', '0/hq', '0/s']);
    const decoded = (name: string) => decodeValue(keys.get(`0/${name}`)!.type, keys.get(`0/${name}`)!.value);
    const fields = (name: string) => {
      const value = decoded(name);
      return value.kind === 'hash'
        ? value.entries.map(([f, v]) => `${f.toString()}=${v.toString()}`)
        : value.kind;
    };
    expect(fields('hm')).toEqual(['f1=v1', 'f2=v2']);
    expect(fields('hl')).toEqual(['a=1', 'b=2']);
    expect(fields('hp')).toEqual(['x=y']);
    expect(fields('hq')).toEqual(['k=v']);
    for (const name of ['hm', 'hl', 'hp', 'hq']) expect(kindOf(keys.get(`0/${name}`)!.type)).toBe('hash');
    const whole = parseTransient(rdb, rdb.length);
    for (const chunk of [1, 2, 7, 13]) expect(parseTransient(rdb, chunk)).toEqual(whole);
  });

  it('fuzz: mutated RDB 12 files fail only with RdbFormatError', () => {
    expect(fuzz(rdb, 12, 2000)).toBeGreaterThan(100);
  });

  it('maps Redis 7.4 and 8 to RDB 12, 7.2 and Valkey 8 to 11', () => {
    expect(rdbVersionOf('redis', '7.4.1')).toBe(12);
    expect(rdbVersionOf('redis', '8.0.2')).toBe(12);
    expect(rdbVersionOf('redis', '7.2.5')).toBe(11);
    expect(rdbVersionOf('redis', '7.0.15')).toBe(10);
    expect(rdbVersionOf('valkey', '8.0.1')).toBe(11);
  });
});
