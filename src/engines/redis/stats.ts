// What the redis engine counts, from an RDB (at backup, from the very bytes stored) or from a live
// server (after a restore, or to validate a source), with the same keys on both sides:
//
//   items         db<N>/<type>   keys without an expiry per db and type (exact)
//                 db<N>/volatile keys with an expiry (estimate: some may expire between backup and
//                                restore, so they are compared with a tolerance)
//   fingerprint   sample         a digest of the contents (digest.ts) of a deterministic sample of keys
//                                without an expiry: the SAMPLE_SIZE keys whose keyed hash of db and
//                                name is smallest (a bottom-k sample), so both sides pick the same keys
//                                without knowing the key count in advance
//   facts         keys, server, rdbVersion
import { createHash } from 'node:crypto';

import type { Stats } from '../engine.js';
import { command, info, keyspaceOf, type Client } from './connection.js';
import { valueDigest } from './digest.js';
import { decodeValue, parseScore, type RedisValue, type StreamEntry } from './rdb/decode.js';
import type { RdbKeyRecord } from './rdb/parser.js';
import { kindOf, type KeyKind } from './rdb/types.js';

export const SAMPLE_SIZE = 256;

/**
 * A 53-bit hash of (db, key): the sample order, and the key's identity when deduplicating a SCAN.
 * cyrb53 (two multiplicative 32-bit lanes, public domain) over the key's bytes: computed for every key
 * of every backup, where a SHA-256 per key cost more than parsing the whole RDB. It needs to spread keys
 * evenly, not to resist an adversary: a crafted key set can only bias which keys are sampled.
 */
export function keyHash(db: number, key: Buffer): number {
  let h1 = 0xdeadbeef ^ db;
  let h2 = 0x41c6ce57 ^ db;
  for (let i = 0; i < key.length; i++) {
    const byte = key[i]!;
    h1 = Math.imul(h1 ^ byte, 2654435761);
    h2 = Math.imul(h2 ^ byte, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

interface Sampled {
  hash: number;
  db: number;
  key: Buffer;
  kind: KeyKind;
  digest?: string;
  /** Computes the digest later: only keys still in the sample at the end are decoded. */
  later?: () => string;
}

/** Counts keys and keeps the bottom-k sample. */
export class KeyspaceTally {
  private readonly counts = new Map<string, number>();
  private readonly sample: Sampled[] = [];
  keys = 0;

  /**
   * Adds a key. `digest`, when given, is called when the key enters the sample; it returns a function
   * that gives the content digest, called only if the key is still in the sample at the end.
   */
  add(db: number, key: Buffer, kind: KeyKind, volatile: boolean, digest?: () => () => string): void {
    this.keys += 1;
    const item = volatile ? `db${db}/volatile` : `db${db}/${kind}`;
    this.counts.set(item, (this.counts.get(item) ?? 0) + 1);
    if (volatile) return;
    const hash = keyHash(db, key);
    if (this.sample.length >= SAMPLE_SIZE && hash >= this.sample[this.sample.length - 1]!.hash) return;
    const entry: Sampled = { hash, db, key: Buffer.from(key), kind };
    if (digest) entry.later = digest();
    let at = this.sample.length;
    while (at > 0 && this.sample[at - 1]!.hash > hash) at--;
    this.sample.splice(at, 0, entry);
    if (this.sample.length > SAMPLE_SIZE) this.sample.pop();
  }

  /** The sampled keys (for a live server, whose contents are fetched afterwards). */
  sampled(): readonly Sampled[] {
    return this.sample;
  }

  stats(facts: Record<string, unknown>): Stats {
    const hash = createHash('sha256');
    for (const entry of this.sample) {
      if (entry.digest === undefined && entry.later) entry.digest = entry.later();
      if (entry.digest === undefined) throw new Error('sample digest missing');
      hash.update(`${entry.db}\0${entry.key.toString('hex')}\0${entry.kind}\0${entry.digest}\n`);
    }
    const items = [...this.counts.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([key, count]) => ({ key, count, exact: !key.endsWith('/volatile') }));
    return {
      items,
      fingerprints: { sample: hash.digest('hex') },
      facts: { ...facts, keys: this.keys, sampled: this.sample.length },
    };
  }
}

/** Adds one RDB key record to a tally. */
export function tallyRecord(tally: KeyspaceTally, record: RdbKeyRecord): void {
  // The value is copied: the record's bytes live in the parser's 1 MiB batch buffer, which a sampled
  // key must not keep alive (nor may the closure's context chain reach the record).
  tally.add(record.db, record.key, kindOf(record.type), record.expireAt !== undefined, () =>
    deferredDigest(record.type, Buffer.from(record.value)),
  );
}

function deferredDigest(type: number, value: Buffer): () => string {
  return () => valueDigest(decodeValue(type, value));
}

const SCAN_COUNT = '1000';
const PAGE = 10_000;

/** Stats of a live server, in the same terms as those of an RDB. */
export async function liveStats(client: Client, facts: Record<string, unknown>): Promise<Stats> {
  const tally = new KeyspaceTally();
  const keyspace = keyspaceOf(await info(client, 'keyspace'));
  for (const db of [...keyspace.keys()].sort((a, b) => a - b)) {
    await client.select(db);
    const seen = new Set<number>();
    let cursor = '0';
    do {
      const [next, keys] = await command<[Buffer, Buffer[]]>(client, ['SCAN', cursor, 'COUNT', SCAN_COUNT]);
      cursor = next.toString();
      const fresh = keys.filter((key) => {
        const hash = keyHash(db, key);
        if (seen.has(hash)) return false; // SCAN may return a key twice
        seen.add(hash);
        return true;
      });
      const answers = await Promise.all(
        fresh.map((key) =>
          Promise.all([command<string>(client, ['TYPE', key]), command<number>(client, ['PTTL', key])]),
        ),
      );
      fresh.forEach((key, index) => {
        const [type, ttl] = answers[index]!;
        if (type === 'none') return; // expired or deleted since SCAN returned it
        tally.add(db, key, liveKind(String(type)), ttl >= 0);
      });
    } while (cursor !== '0');
  }
  for (const entry of tally.sampled()) {
    await client.select(entry.db);
    entry.digest = valueDigest(await readValue(client, entry.key, entry.kind));
  }
  await client.select(0);
  return tally.stats(facts);
}

function liveKind(type: string): KeyKind {
  if (['string', 'list', 'set', 'zset', 'hash', 'stream'].includes(type)) return type as KeyKind;
  return 'module';
}

const str = (value: unknown): string => (Buffer.isBuffer(value) ? value.toString() : String(value));

/** Reads one key's whole value from a live server (for the sample digest and for tests). */
export async function readValue(client: Client, key: Buffer, kind: KeyKind): Promise<RedisValue> {
  switch (kind) {
    case 'string':
      return { kind, value: await command<Buffer>(client, ['GET', key]) };
    case 'list': {
      const items: Buffer[] = [];
      for (let start = 0; ; start += PAGE) {
        const page = await command<Buffer[]>(client, [
          'LRANGE',
          key,
          String(start),
          String(start + PAGE - 1),
        ]);
        items.push(...page);
        if (page.length < PAGE) break;
      }
      return { kind, items };
    }
    case 'set':
      return { kind, members: await command<Buffer[]>(client, ['SMEMBERS', key]) };
    case 'zset': {
      const flat = await command<Buffer[]>(client, ['ZRANGE', key, '0', '-1', 'WITHSCORES']);
      const entries: Array<[Buffer, number]> = [];
      for (let k = 0; k < flat.length; k += 2) entries.push([flat[k]!, parseScore(str(flat[k + 1]))]);
      return { kind, entries };
    }
    case 'hash': {
      const flat = await command<Buffer[]>(client, ['HGETALL', key]);
      const entries: Array<[Buffer, Buffer]> = [];
      for (let k = 0; k < flat.length; k += 2) entries.push([flat[k]!, flat[k + 1]!]);
      return { kind, entries };
    }
    case 'stream': {
      const entries: StreamEntry[] = [];
      let start = '-';
      for (;;) {
        const page = await command<Array<[Buffer, Buffer[]]>>(client, [
          'XRANGE',
          key,
          start,
          '+',
          'COUNT',
          String(PAGE),
        ]);
        for (const [id, fields] of page) entries.push({ id: str(id), fields });
        if (page.length < PAGE) break;
        start = `(${str(page[page.length - 1]![0])}`;
      }
      const infoReply = await command<unknown[]>(client, ['XINFO', 'STREAM', key]);
      const lastAt = infoReply.findIndex((item) => str(item) === 'last-generated-id');
      const lastId = str(infoReply[lastAt + 1]);
      const groupsReply = await command<unknown[][]>(client, ['XINFO', 'GROUPS', key]);
      const groups = groupsReply.map((group) => {
        const fields = new Map<string, unknown>();
        for (let k = 0; k < group.length; k += 2) fields.set(str(group[k]), group[k + 1]);
        return { name: fields.get('name') as Buffer, lastId: str(fields.get('last-delivered-id')) };
      });
      return { kind, entries, lastId, groups };
    }
    case 'module': {
      const payload = await command<Buffer>(client, ['DUMP', key]);
      return { kind, raw: payload.subarray(1, payload.length - 10) };
    }
  }
}
