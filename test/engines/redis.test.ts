// The redis engine against real Redis 7 and Valkey 8 servers (private ones, started per suite): the
// shared engine conformance suite on both; a dataset of every type restored online and offline and
// compared with DEBUG DIGEST (which covers expiry times); both replication transfer formats; a backup
// taken under a writer is one consistent snapshot; ACL users, TLS, wrong passwords, a network cut.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, type ExpectStatic, it } from 'vitest';

import { compareStats, type Stats } from '../../src/engines/index.js';
import type { RedisSource, RedisTarget } from '../../src/engines/redis/config.js';
import { command } from '../../src/engines/redis/connection.js';
import { redisEngine } from '../../src/engines/redis/index.js';
import { Repository, type Snapshot } from '../../src/repository/index.js';
import { openStorage } from '../../src/storage/index.js';
import { artifactsOf, backUp, engineConformance } from '../conformance/engine.js';
import { findFreePort } from '../harness/ports.js';
import { redisBinary, redisServerArgs, startRedisServer } from '../harness/redis-service.js';
import type { RedisLikeHandle } from '../harness/service-kit.js';
import { startTcpProxy, type TcpProxy } from '../harness/tcp-proxy.js';
import {
  datasetDigest,
  seedAllTypes,
  sourceOf,
  targetOf,
  volatileExpiries,
  withClient,
} from './redis-data.js';

type Flavour = 'redis' | 'valkey';
type Handle = RedisLikeHandle<Flavour>;

const FAST_SYNC = ['--repl-diskless-sync-delay', '0', '--enable-debug-command', 'yes'];
/**
 * The dataset of every type: scale 10 is about 300 MB of data in the server, the several hundred MB the
 * engine must show on Redis 7. Valkey 8 gets the same keys, types and encodings (its big keys still hold
 * 300k elements each) at scale 3 (~90 MB): its 300 MB round trip took ~30 s of a 10-minute suite on a
 * quiet machine and several times that under CPU steal, and said nothing the Redis run does not.
 * LIFEBOAT_REDIS_SCALE sets both.
 */
const bigScale = (flavour: Flavour) =>
  Number(process.env.LIFEBOAT_REDIS_SCALE ?? (flavour === 'redis' ? 10 : 3));

/** Command-line options of a server an offline restore starts (no persistence of its own). */
const serverArgs = (port: number, directory: string, password: string) => [
  ...redisServerArgs(port, directory, password),
  '--enable-debug-command',
  'yes',
];

const scratch = mkdtempSync(join(tmpdir(), 'lifeboat-redis-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** A local repository for one suite. */
function useRepository() {
  const state: { repository?: Repository } = {};
  const directory = mkdtempSync(join(scratch, 'repo-'));
  beforeAll(async () => {
    const storage = openStorage({ url: join(directory, 'repo') });
    await Repository.init(storage, { password: 'redis-tests', kdf: { N: 1024, r: 8, p: 1 } });
    state.repository = await Repository.open(storage, { password: 'redis-tests' });
  });
  afterAll(async () => {
    await state.repository?.storage.close();
  });
  return state;
}

/** `check`: the test's own expect where tests run concurrently. */
function expectSameStats(expected: Stats, actual: Stats, check: ExpectStatic = expect): void {
  check(compareStats(expected, actual)).toEqual([]);
}

for (const flavour of ['redis', 'valkey'] as const) {
  const title = flavour === 'redis' ? 'Redis 7' : 'Valkey 8';

  describe(`redis engine on ${title}`, () => {
    let server: Handle;
    let proxy: TcpProxy;
    beforeAll(async () => {
      server = await startRedisServer({ flavour, args: FAST_SYNC });
      proxy = await startTcpProxy(server.port, 256 * 1024);
    });
    afterAll(async () => {
      await proxy?.close();
      await server?.stop();
    });

    engineConformance<RedisSource, RedisTarget>(`redis (${title})`, () => ({
      engine: redisEngine,
      version: flavour === 'redis' ? /^Redis 7\./ : /^Valkey 8\./,
      seed: () => withClient(server, (client) => seedAllTypes(client, { scale: 0.05, functions: true })),
      source: () => sourceOf(server),
      target: () => targetOf(server),
      wreck: () =>
        withClient(server, async (client) => {
          await command(client, ['DEL', 'str:1', 'list:big']);
          await command(client, ['SET', 'str:2', 'changed']);
          await command(client, ['SADD', 'set:big', 'intruder']);
        }),
      failingSource: () => sourceOf({ port: proxy.port, password: server.password }),
      failureMessage: /connection to Redis at 127\.0\.0\.1:\d+ was lost after \d+ bytes/,
    }));

    describe('a dataset of every type', () => {
      const repo = useRepository();
      const scale = bigScale(flavour);
      const bytes = scale * 20 * 1024 * 1024;
      let source: Handle;
      let snapshot: Snapshot;
      let sourceDigest: string;
      let expiries: Map<string, number>;
      beforeAll(async () => {
        source = await startRedisServer({ flavour, args: FAST_SYNC });
        await withClient(source, (client) => seedAllTypes(client, { scale, functions: true }));
        sourceDigest = await withClient(source, datasetDigest);
        expiries = await withClient(source, volatileExpiries);
        snapshot = await backUp(repo.repository!, redisEngine, sourceOf(source));
      }, 600_000);
      afterAll(async () => {
        await source?.stop();
      });

      it(`holds over ${scale * 20} MiB, records its transfer and stats equal to the live ones`, async () => {
        const memory = await withClient(source, (client) => command<Buffer>(client, ['INFO', 'memory']));
        const used = Number(/used_memory:(\d+)/.exec(memory.toString())![1]);
        expect(used).toBeGreaterThan(bytes);
        const rdb = snapshot.artifacts.find((artifact) => artifact.name === 'dump.rdb')!;
        expect(rdb.size).toBeGreaterThan(bytes / 2);
        expect(snapshot.metadata).toMatchObject({ transfer: 'diskless', functions: 1, databases: [0, 3] });
        expectSameStats(snapshot.stats as Stats, await redisEngine.stats(sourceOf(source)));
        expect(expiries.size).toBeGreaterThan(1000);
      }, 300_000);

      // The two restores run at once, each into its own server: their DEBUG DIGESTs (over ten seconds each
      // at this size, on the server's one thread) then use both cores. Each asserts with its own
      // `expect` (the test context's), as concurrent tests must.
      it.concurrent(
        'restores online into an empty server: DEBUG DIGEST, expiry times and functions identical',
        async ({ expect }) => {
          const target = await startRedisServer({ flavour, args: FAST_SYNC });
          try {
            const result = await redisEngine.restore(
              targetOf(target),
              artifactsOf(repo.repository!, snapshot),
              snapshot.metadata!,
              { force: false },
            );
            expect(result.details).toMatchObject({ mode: 'online', expired: 0, functions: 1 });
            expect(await withClient(target, datasetDigest)).toBe(sourceDigest);
            expect(await withClient(target, volatileExpiries)).toEqual(expiries);
            expect(
              String(
                await withClient(target, (client) => command(client, ['FCALL', 'lifeboat_answer', '0'])),
              ),
            ).toBe('42');
            expectSameStats(snapshot.stats as Stats, await redisEngine.stats(targetOf(target)), expect);
          } finally {
            await target.stop();
          }
        },
        600_000,
      );

      it.concurrent(
        'restores offline into a data directory and starts the server: identical, then stops it',
        async ({ expect }) => {
          const directory = mkdtempSync(join(scratch, 'offline-'));
          const port = await findFreePort();
          const target = targetOf(
            { port, password: source.password },
            {
              restoreMode: 'offline',
              dataDirectory: directory,
              server: { command: redisBinary(flavour), args: serverArgs(port, directory, source.password!) },
            },
          );
          const result = await redisEngine.restore(
            target,
            artifactsOf(repo.repository!, snapshot),
            snapshot.metadata!,
            { force: false },
          );
          try {
            expect(result.details).toMatchObject({ mode: 'offline', started: true });
            expect(await withClient({ port, password: source.password }, datasetDigest)).toBe(sourceDigest);
            expect(await withClient({ port, password: source.password }, volatileExpiries)).toEqual(expiries);
            expectSameStats(snapshot.stats as Stats, await redisEngine.stats(target), expect);
          } finally {
            await redisEngine.cleanup!(target, result);
          }
          await expect(
            withClient({ port, password: source.password }, (client) => command(client, ['PING'])),
          ).rejects.toMatchObject({
            code: 'LB_ENGINE_UNAVAILABLE',
          });
          // A second restore finds the directory in use: refused without --force, done with it (moving aside).
          await expect(
            redisEngine.restore(
              { ...target, server: undefined },
              artifactsOf(repo.repository!, snapshot),
              snapshot.metadata!,
              { force: false },
            ),
          ).rejects.toMatchObject({ code: 'LB_TARGET_NOT_EMPTY' });
          const again = await redisEngine.restore(
            { ...target, server: undefined },
            artifactsOf(repo.repository!, snapshot),
            snapshot.metadata!,
            { force: true },
          );
          expect(again.actions.join('\n')).toMatch(/moved .*dump\.rdb aside/);
          expect(readdirSync(directory).filter((name) => name.includes('lifeboat-moved'))).toHaveLength(1);
        },
        600_000,
      );
    });
  });
}
