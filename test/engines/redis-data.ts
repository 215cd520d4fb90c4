// Seeding a Redis or Valkey server with every type (strings, integers, lists, sets, sorted sets, hashes,
// streams with consumer groups, keys with TTLs, several databases, a function library), small ones in
// the compact encodings and large ones in the general ones, for the redis engine tests and the bench.
import { createHash } from 'node:crypto';

import {
  redisSourceSchema,
  redisTargetSchema,
  type RedisSource,
  type RedisTarget,
} from '../../src/engines/redis/config.js';
import {
  closeClient,
  command,
  connect,
  endpointOf,
  type Client,
} from '../../src/engines/redis/connection.js';
import { valueDigest } from '../../src/engines/redis/digest.js';
import type { KeyKind } from '../../src/engines/redis/rdb/types.js';
import { readValue } from '../../src/engines/redis/stats.js';

/** Where a test server is and how to log in. */
export interface TestServer {
  port: number;
  password?: string | undefined;
  username?: string;
  tls?: { caFile: string; certFile?: string; keyFile?: string };
  scheme?: 'redis' | 'rediss';
}

const urlOf = (server: TestServer) => `${server.scheme ?? 'redis'}://127.0.0.1:${server.port}`;

/** A source config for a test server (schema defaults filled in). */
export const sourceOf = (server: TestServer, extra: Record<string, unknown> = {}): RedisSource =>
  redisSourceSchema.parse({
    engine: 'redis',
    url: urlOf(server),
    password: server.password,
    username: server.username,
    tls: server.tls,
    ...extra,
  });

/** A restore target config for a test server. */
export const targetOf = (server: TestServer, extra: Record<string, unknown> = {}): RedisTarget =>
  redisTargetSchema.parse({
    url: urlOf(server),
    password: server.password,
    username: server.username,
    tls: server.tls,
    ...extra,
  });

/** Runs `run` with a client of the test server, closed afterwards. */
export async function withClient<T>(server: TestServer, run: (client: Client) => Promise<T>): Promise<T> {
  const client = await connect(endpointOf(targetOf(server)));
  try {
    return await run(client);
  } finally {
    await closeClient(client);
  }
}

/** Calls `visit` with every key of dbs 0 and 3 (the ones seedAllTypes fills), db by db. */
export async function forEachKey(
  client: Client,
  visit: (db: number, key: Buffer) => Promise<void>,
): Promise<void> {
  for (const db of [0, 3]) {
    await client.select(db);
    let cursor = '0';
    do {
      const [next, keys] = await command<[Buffer, Buffer[]]>(client, ['SCAN', cursor, 'COUNT', '1000']);
      cursor = next.toString();
      await Promise.all(keys.map((key) => visit(db, key)));
    } while (cursor !== '0');
  }
  await client.select(0);
}

/** Absolute expiry (PEXPIRETIME) of every key with one. */
export async function volatileExpiries(client: Client): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  await forEachKey(client, async (db, key) => {
    const time = await command<number>(client, ['PEXPIRETIME', key]);
    if (time > 0) out.set(`${db}/${key.toString('hex')}`, time);
  });
  return out;
}

const WORDS = ['order', 'customer', 'status', 'shipped', 'pending', 'amount', 'EUR', 'note', 'sku', 'vector'];

/**
 * Deterministic pseudo-random bytes that compress like real values (text with repetition). An FNV-1a
 * hash of the seed starts a xorshift generator: the big dataset makes over two million values, and a
 * SHA-256 per value was a third of its seeding time.
 */
function value(seed: string, length: number): Buffer {
  let state = 0x811c9dc5;
  for (let i = 0; i < seed.length; i++) state = Math.imul(state ^ seed.charCodeAt(i), 0x01000193);
  state ||= 1;
  let text = '';
  for (let k = 1; text.length < length; k++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    text += `${WORDS[(state >>> 0) % WORDS.length]}:${((state >>> 8) & 0xff) * k} `;
  }
  return Buffer.from(text.slice(0, length));
}

async function batch(client: Client, commands: Array<Array<string | Buffer>>): Promise<void> {
  for (let start = 0; start < commands.length; start += 2000) {
    await Promise.all(commands.slice(start, start + 2000).map((args) => command(client, args)));
  }
}

export interface SeedOptions {
  /** Multiplies the number of keys and elements; 1 gives ~20 MB of data. */
  scale: number;
  /** Adds a function library (Redis/Valkey 7+). */
  functions?: boolean;
}

export async function seedAllTypes(client: Client, options: SeedOptions): Promise<void> {
  const n = (count: number) => Math.max(1, Math.round(count * options.scale));
  await client.select(0);
  const commands: Array<Array<string | Buffer>> = [];
  for (let i = 0; i < n(4000); i++) commands.push(['SET', `str:${i}`, value(`s${i}`, 200 + (i % 7) * 300)]);
  for (let i = 0; i < n(2000); i++) commands.push(['SET', `int:${i}`, String(i * 37 - 5000)]);
  commands.push(['SET', 'big:text', value('big', 3 * 1024 * 1024)]);
  commands.push([
    'SET',
    'big:random',
    createHash('sha512').update('r').digest().toString('hex').repeat(8192),
  ]);
  commands.push(['SET', Buffer.from([0, 1, 2, 255, 254]), Buffer.from([9, 0, 9, 0])]);
  for (let i = 0; i < n(300); i++) {
    commands.push([
      'RPUSH',
      `list:small:${i}`,
      ...Array.from({ length: 10 }, (_, k) => (k % 3 === 0 ? String(k * 1000) : `item-${i}-${k}`)),
    ]);
    commands.push(['SADD', `set:ints:${i}`, ...Array.from({ length: 20 }, (_, k) => String(k * (i + 1)))]);
    commands.push(['SADD', `set:small:${i}`, ...Array.from({ length: 12 }, (_, k) => `m${k}-${i}`)]);
    commands.push([
      'ZADD',
      `zset:small:${i}`,
      ...Array.from({ length: 10 }, (_, k) => [String(k * 1.25 - 3), `z${k}`]).flat(),
    ]);
    commands.push([
      'HSET',
      `hash:small:${i}`,
      ...Array.from({ length: 8 }, (_, k) => [`f${k}`, k % 2 ? String(k) : `v${i}-${k}`]).flat(),
    ]);
  }
  for (let i = 0; i < n(1000); i++)
    commands.push(['SET', `ttl:${i}`, `expires ${i}`, 'PX', String(86_400_000 + i * 1000)]);
  for (let i = 0; i < n(200); i++) {
    commands.push(['HSET', `ttl:hash:${i}`, 'a', '1', 'b', '2']);
    commands.push(['PEXPIREAT', `ttl:hash:${i}`, String(Date.now() + 7 * 86_400_000 + i)]);
  }
  await batch(client, commands);
  commands.length = 0;
  for (let k = 0; k < n(100_000); k += 1000) {
    commands.push([
      'RPUSH',
      'list:big',
      ...Array.from({ length: 1000 }, (_, j) => value(`l${k + j}`, 40 + ((k + j) % 50))),
    ]);
    commands.push(['SADD', 'set:big', ...Array.from({ length: 1000 }, (_, j) => `member-${k + j}`)]);
    commands.push([
      'ZADD',
      'zset:big',
      ...Array.from({ length: 1000 }, (_, j) => [String((k + j) / 7), `zm-${k + j}`]).flat(),
    ]);
    commands.push([
      'HSET',
      'hash:big',
      ...Array.from({ length: 1000 }, (_, j) => [`field-${k + j}`, value(`h${k + j}`, 60)]).flat(),
    ]);
  }
  commands.push([
    'ZADD',
    'zset:special',
    'inf',
    'top',
    '-inf',
    'bottom',
    '0',
    'zero',
    '3.141592653589793',
    'pi',
  ]);
  await batch(client, commands);
  commands.length = 0;
  for (let i = 0; i < n(20_000); i++) {
    commands.push([
      'XADD',
      'stream:events',
      '*',
      'type',
      i % 2 ? 'click' : 'view',
      'user',
      String(i % 97),
      'payload',
      value(`x${i}`, 50),
    ]);
  }
  for (let i = 0; i < 50; i++)
    commands.push([
      'XADD',
      'stream:mixed',
      `${1000 + i}-${i}`,
      ...(i % 2 ? ['a', String(i)] : ['b', String(i), 'c', 'x']),
    ]);
  await batch(client, commands);
  commands.length = 0;
  await command(client, ['XGROUP', 'CREATE', 'stream:events', 'workers', '0']);
  await command(client, [
    'XREADGROUP',
    'GROUP',
    'workers',
    'alice',
    'COUNT',
    '25',
    'STREAMS',
    'stream:events',
    '>',
  ]);
  await command(client, [
    'XREADGROUP',
    'GROUP',
    'workers',
    'bob',
    'COUNT',
    '10',
    'STREAMS',
    'stream:events',
    '>',
  ]);
  await command(client, ['XGROUP', 'CREATE', 'stream:mixed', 'empty', '$']);
  await command(client, ['XDEL', 'stream:mixed', '1003-3', '1004-4']);
  await client.select(3);
  for (let i = 0; i < n(500); i++) commands.push(['SET', `db3:${i}`, value(`d${i}`, 100)]);
  commands.push(['RPUSH', 'db3:list', 'a', 'b', 'c']);
  await batch(client, commands);
  await client.select(0);
  if (options.functions) {
    await command(client, [
      'FUNCTION',
      'LOAD',
      'REPLACE',
      "#!lua name=lifeboatlib\nredis.register_function('lifeboat_answer', function(keys, args) return 42 end)",
    ]);
  }
}

/** DEBUG DIGEST: one digest of the whole dataset, expiry times included (needs enable-debug-command). */
export async function datasetDigest(client: Client): Promise<string> {
  return String(await command<Buffer>(client, ['DEBUG', 'DIGEST']));
}

/**
 * A digest of every key's name, type, contents (encoding-independent, digest.ts) and absolute expiry:
 * compares datasets across servers whose DEBUG DIGEST differ (Redis and Valkey).
 */
export async function fullDigest(client: Client): Promise<string> {
  const lines: string[] = [];
  await forEachKey(client, async (db, key) => {
    const type = String(await command(client, ['TYPE', key])) as KeyKind;
    const expiry = await command<number>(client, ['PEXPIRETIME', key]);
    lines.push(
      `${db} ${key.toString('hex')} ${type} ${expiry} ${valueDigest(await readValue(client, key, type))}`,
    );
  });
  return createHash('sha256').update(lines.sort().join('\n')).digest('hex');
}
