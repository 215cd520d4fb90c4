// Content digests of Redis values that do not depend on how a server encodes them (listpack or hash
// table, integer or string): a value read from an RDB record (rdb/decode.ts) and the same value read
// from a live server with GET/LRANGE/SMEMBERS/ZRANGE/HGETALL/XRANGE give the same digest. Sets, hashes
// and sorted sets are sorted by member first; scores are hashed as IEEE 754 doubles.
import { createHash, type Hash } from 'node:crypto';

import type { RedisValue } from './rdb/decode.js';

function put(hash: Hash, bytes: Buffer | string): void {
  const data = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
  const length = Buffer.allocUnsafe(4);
  length.writeUInt32LE(data.length);
  hash.update(length);
  hash.update(data);
}

function putScore(hash: Hash, score: number): void {
  const bytes = Buffer.allocUnsafe(8);
  bytes.writeDoubleLE(Number.isNaN(score) ? NaN : score);
  hash.update(bytes);
}

export function valueDigest(value: RedisValue): string {
  const hash = createHash('sha256');
  put(hash, value.kind);
  switch (value.kind) {
    case 'string':
      put(hash, value.value);
      break;
    case 'list':
      for (const item of value.items) put(hash, item);
      break;
    case 'set':
      for (const member of [...value.members].sort((a, b) => Buffer.compare(a, b))) put(hash, member);
      break;
    case 'zset':
      for (const [member, score] of [...value.entries].sort((a, b) => Buffer.compare(a[0], b[0]))) {
        put(hash, member);
        putScore(hash, score);
      }
      break;
    case 'hash':
      for (const [field, data] of [...value.entries].sort((a, b) => Buffer.compare(a[0], b[0]))) {
        put(hash, field);
        put(hash, data);
      }
      break;
    case 'stream':
      for (const entry of value.entries) {
        put(hash, entry.id);
        for (const field of entry.fields) put(hash, field);
      }
      put(hash, `last ${value.lastId}`);
      for (const group of [...value.groups].sort((a, b) => Buffer.compare(a.name, b.name))) {
        put(hash, group.name);
        put(hash, group.lastId);
      }
      break;
    case 'module':
      put(hash, value.raw);
      break;
  }
  return hash.digest('hex');
}
