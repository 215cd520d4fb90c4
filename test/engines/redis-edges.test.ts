// The redis engine at its edges, on Redis 7 and Valkey 8: both replication transfer formats ($length
// from a disk-based sync, $EOF marker from a diskless one); a backup taken while a writer runs is one
// consistent snapshot; ACL users (allowed and not), TLS, wrong passwords and closed ports fail fast
// and clearly; the disk method (BGSAVE + multi-part AOF) and an offline restore into a server that runs
// with appendonly yes.
import { execFileSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { type AddressInfo, type Socket, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { compareStats, type Stats } from '../../src/engines/index.js';
import { command, connect, endpointOf } from '../../src/engines/redis/connection.js';
import { redisEngine } from '../../src/engines/redis/index.js';
import { Repository, type Snapshot } from '../../src/repository/index.js';
import { openStorage } from '../../src/storage/index.js';
import { findFreePort } from '../harness/ports.js';
import { redisBinary, redisServerArgs, startRedisServer } from '../harness/redis-service.js';
import { artifactsOf, backUp } from '../conformance/engine.js';
import type { RedisLikeHandle } from '../harness/service-kit.js';
import {
  datasetDigest,
  fullDigest,
  seedAllTypes,
  sourceOf,
  targetOf,
  withClient,
  type TestServer,
} from './redis-data.js';

type Handle = RedisLikeHandle<'redis' | 'valkey'>;
const DEBUG = ['--enable-debug-command', 'yes', '--repl-diskless-sync-delay', '0'];
/** repl-diskless-sync setting, and the transfer format it gives: $length (disk-based) or $EOF marker. */
const TRANSFERS = [
  ['no', 'disk'],
  ['yes', 'diskless'],
] as const;

const scratch = mkdtempSync(join(tmpdir(), 'lifeboat-redis-edges-'));
let repository: Repository;
beforeAll(async () => {
  const storage = openStorage({ url: join(scratch, 'repo') });
  await Repository.init(storage, { password: 'edges', kdf: { N: 1024, r: 8, p: 1 } });
  repository = await Repository.open(storage, { password: 'edges' });
});
afterAll(async () => {
  await repository?.storage.close();
  rmSync(scratch, { recursive: true, force: true });
});

async function restoreInto(snapshot: Snapshot, target: TestServer, force = false): Promise<void> {
  await redisEngine.restore(targetOf(target), artifactsOf(repository, snapshot), snapshot.metadata!, {
    force,
  });
}

for (const flavour of ['redis', 'valkey'] as const) {
  const title = flavour === 'redis' ? 'Redis 7' : 'Valkey 8';

  describe(`redis engine edges on ${title}`, () => {
    const servers: Handle[] = [];
    const start = async (args: string[] = []) => {
      const server = await startRedisServer({ flavour, args: [...DEBUG, ...args] });
      servers.push(server);
      return server;
    };
    afterAll(async () => {
      for (const server of servers) await server.stop();
    });

    it('reads both transfer formats: $length (disk-based sync) and $EOF marker (diskless)', async () => {
      for (const [diskless, transfer] of TRANSFERS) {
        const source = await start(['--repl-diskless-sync', diskless]);
        await withClient(source, (client) => seedAllTypes(client, { scale: 0.05 }));
        const connections = () =>
          withClient(source, async (client) => {
            const stats = (await command<Buffer>(client, ['INFO', 'stats'])).toString();
            return Number(/total_connections_received:(\d+)/.exec(stats)![1]);
          });
        const before = await connections();
        const snapshot = await backUp(repository, redisEngine, sourceOf(source));
        // INFO went over the replication connection: one connection (the counter's own is the +1).
        expect((await connections()) - before).toBe(2);
        expect(snapshot.metadata).toMatchObject({ transfer, rdbArtifact: 'dump.rdb', product: flavour });
        expect(snapshot.metadata!.version).toMatch(/^\d+\.\d+\.\d+/);
        expect(snapshot.metadata!.datasetBytes).toBeGreaterThan(0);
        expect(snapshot.metadata!.replicationId).toMatch(/^[0-9a-f]{40}$/);
        const target = await start();
        await restoreInto(snapshot, target);
        expect(await withClient(target, datasetDigest)).toBe(await withClient(source, datasetDigest));
      }
    }, 120_000);

    it('backs up an empty server in both transfer formats (the whole RDB comes with the handshake); --force empties the target of keys and functions', async () => {
      for (const [diskless, transfer] of TRANSFERS) {
        const source = await start(['--repl-diskless-sync', diskless]);
        const snapshot = await backUp(repository, redisEngine, sourceOf(source));
        expect(snapshot.metadata).toMatchObject({ transfer, keys: 0 });
        const target = await start();
        await withClient(target, async (client) => {
          await command(client, ['SET', 'stale', '1']);
          await command(client, [
            'FUNCTION',
            'LOAD',
            "#!lua name=stalelib\nredis.register_function('stale_answer', function(keys, args) return 1 end)",
          ]);
        });
        await restoreInto(snapshot, target, true);
        expect(await withClient(target, (client) => command<number>(client, ['DBSIZE']))).toBe(0);
        // --force leaves the target as the snapshot: no keys and no function libraries of its own.
        expect(
          await withClient(target, (client) => command<unknown[]>(client, ['FUNCTION', 'LIST'])),
        ).toEqual([]);
      }
    }, 60_000);

    it('takes one consistent snapshot while a writer runs', async () => {
      const source = await start();
      const accounts = 500;
      await withClient(source, async (client) => {
        await seedAllTypes(client, { scale: 0.3 });
        await Promise.all(
          Array.from({ length: accounts }, (_, k) => command(client, ['SET', `acct:${k}`, '1000'])),
        );
        await command(client, ['SET', 'seq', '0']);
      });
      let stop = false;
      let transactions = 0;
      const writer = withClient(source, async (client) => {
        while (!stop) {
          const from = transactions % accounts;
          const to = (transactions * 7 + 3) % accounts;
          const amount = String(1 + (transactions % 50));
          const multi = client.multi();
          multi.addCommand(['DECRBY', `acct:${from}`, amount]);
          multi.addCommand(['INCRBY', `acct:${to}`, amount]);
          multi.addCommand(['RPUSH', 'journal', `${from}>${to}:${amount}`]);
          multi.addCommand(['INCR', 'seq']);
          await multi.exec();
          transactions += 1;
        }
      });
      await new Promise((resolve) => setTimeout(resolve, 300));
      const atStart = transactions;
      const snapshot = await backUp(repository, redisEngine, sourceOf(source));
      const during = transactions;
      await new Promise((resolve) => setTimeout(resolve, 200));
      stop = true;
      await writer;
      expect(atStart).toBeGreaterThan(0); // the writer ran before the backup started,
      expect(during - atStart).toBeGreaterThan(10); // and while it ran
      const target = await start();
      await restoreInto(snapshot, target);
      await withClient(target, async (client) => {
        const balances = await Promise.all(
          Array.from({ length: accounts }, (_, k) => command<Buffer>(client, ['GET', `acct:${k}`])),
        );
        expect(balances.reduce((sum, value) => sum + Number(value), 0)).toBe(accounts * 1000);
        const seq = Number(await command<Buffer>(client, ['GET', 'seq']));
        expect(await command<number>(client, ['LLEN', 'journal'])).toBe(seq);
        // The snapshot is of one moment inside the backup: every transaction committed before it
        // started, none that had not begun by its end (one may have been in flight).
        expect(seq).toBeGreaterThanOrEqual(atStart);
        expect(seq).toBeLessThanOrEqual(during + 1);
      });
      expect(compareStats(snapshot.stats as Stats, await redisEngine.stats(targetOf(target)))).toEqual([]);
    }, 120_000);

    it('backs up as an ACL user; a user without PSYNC, a wrong password and a closed port fail within seconds', async () => {
      const source = await start();
      await withClient(source, async (client) => {
        await seedAllTypes(client, { scale: 0.02 });
        await command(client, ['ACL', 'SETUSER', 'backup', 'on', '>backup-secret', '~*', '&*', '+@all']);
        await command(client, [
          'ACL',
          'SETUSER',
          'nosync',
          'on',
          '>nosync-secret',
          '~*',
          '&*',
          '+@all',
          '-psync',
          '-sync',
        ]);
      });
      const snapshot = await backUp(
        repository,
        redisEngine,
        sourceOf({ port: source.port, username: 'backup', password: 'backup-secret' }),
      );
      expect(snapshot.artifacts.map((artifact) => artifact.name)).toEqual(['dump.rdb']);
      const failures: Array<[TestServer, string, RegExp]> = [
        [
          { port: source.port, username: 'nosync', password: 'nosync-secret' },
          'LB_ENGINE_AUTH',
          /nosync .*(NOPERM|permission)/,
        ],
        [{ port: source.port, password: 'wrong-password' }, 'LB_ENGINE_AUTH', /refused the credentials/],
        [
          { port: source.port, username: 'backup', password: 'wrong' },
          'LB_ENGINE_AUTH',
          /credentials of user backup/,
        ],
        [
          { port: await findFreePort(), password: 'x' },
          'LB_ENGINE_UNAVAILABLE',
          /cannot connect to Redis at 127\.0\.0\.1/,
        ],
      ];
      for (const [server, code, message] of failures) {
        const started = Date.now();
        const error = await backUp(repository, redisEngine, sourceOf(server)).then(
          () => undefined,
          (caught: unknown) => caught,
        );
        expect(error, JSON.stringify(server)).toMatchObject({ code });
        expect(String((error as Error).message)).toMatch(message);
        expect(String((error as Error).message)).not.toContain(server.password!);
        expect(Date.now() - started).toBeLessThan(10_000);
      }
      await expect(
        redisEngine.probe(sourceOf({ port: source.port, password: 'wrong-password' })),
      ).rejects.toMatchObject({
        code: 'LB_ENGINE_AUTH',
      });
    }, 120_000);

    it('backs up and restores over TLS, verifying the server certificate and presenting a client certificate', async () => {
      const directory = mkdtempSync(join(scratch, 'tls-'));
      const cert = join(directory, 'server.crt');
      const key = join(directory, 'server.key');
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'rsa:2048',
          '-nodes',
          '-keyout',
          key,
          '-out',
          cert,
          '-days',
          '2',
          '-subj',
          '/CN=127.0.0.1',
          '-addext',
          'subjectAltName=IP:127.0.0.1',
        ],
        { stdio: 'ignore' },
      );
      const tlsArgs = (port: number) => [
        '--tls-port',
        String(port),
        '--tls-cert-file',
        cert,
        '--tls-key-file',
        key,
        '--tls-ca-cert-file',
        cert,
        '--tls-auth-clients',
        'yes', // Redis's default: clients present a certificate the CA signed
        '--tls-replication',
        'yes',
      ];
      const sourcePort = await findFreePort();
      const source = await start(tlsArgs(sourcePort));
      await withClient(source, (client) => seedAllTypes(client, { scale: 0.05 }));
      const over = (port: number, password: string | undefined): TestServer => ({
        port,
        password,
        scheme: 'rediss',
        // The self-signed certificate is its own CA: it serves as the client's certificate too.
        tls: { caFile: cert, certFile: cert, keyFile: key },
      });
      const snapshot = await backUp(repository, redisEngine, sourceOf(over(sourcePort, source.password)));
      const targetPort = await findFreePort();
      const target = await start(tlsArgs(targetPort));
      await restoreInto(snapshot, over(targetPort, target.password));
      expect(await withClient(target, datasetDigest)).toBe(await withClient(source, datasetDigest));
      // Without the CA the certificate is refused.
      await expect(
        redisEngine.probe(sourceOf({ port: sourcePort, password: source.password, scheme: 'rediss' })),
      ).rejects.toMatchObject({
        code: 'LB_ENGINE_UNAVAILABLE',
      });
      // Without a client certificate the server refuses lifeboat.
      await expect(
        redisEngine.probe(
          sourceOf({ port: sourcePort, password: source.password, scheme: 'rediss', tls: { caFile: cert } }),
        ),
      ).rejects.toMatchObject({ code: 'LB_ENGINE_UNAVAILABLE' });
    }, 120_000);

    it('disk method: BGSAVE plus the multi-part AOF as one set; an offline restore into an appendonly server', async () => {
      const source = await start(['--appendonly', 'yes']);
      await withClient(source, async (client) => {
        await seedAllTypes(client, { scale: 0.05 });
        await command(client, ['BGREWRITEAOF']);
        await new Promise((resolve) => setTimeout(resolve, 500));
        await command(client, ['SET', 'after:rewrite', 'in the incr file']);
      });
      const snapshot = await backUp(
        repository,
        redisEngine,
        sourceOf(source, { method: 'both', dataDirectory: source.dataDirectory }),
      );
      const names = snapshot.artifacts.map((artifact) => artifact.name);
      expect(names[0]).toBe('dump.rdb');
      expect(names).toContain('disk/dump.rdb');
      expect(names.some((name) => /^disk\/appendonlydir\/appendonly\.aof\.\d+\.base\.rdb$/.test(name))).toBe(
        true,
      );
      expect(names.some((name) => /^disk\/appendonlydir\/appendonly\.aof\.\d+\.incr\.aof$/.test(name))).toBe(
        true,
      );
      expect(names).toContain('disk/appendonlydir/appendonly.aof.manifest');
      const digest = await withClient(source, datasetDigest);

      // A dataDirectory that is not the server's dir is refused, never read as if fresh.
      await expect(
        backUp(
          repository,
          redisEngine,
          sourceOf(source, { method: 'disk', dataDirectory: mkdtempSync(join(scratch, 'elsewhere-')) }),
        ),
      ).rejects.toMatchObject({
        code: 'LB_USAGE',
        message: expect.stringMatching(/the server writes to/) as unknown,
      });
      const diskOnly = await backUp(
        repository,
        redisEngine,
        sourceOf(source, { method: 'disk', dataDirectory: source.dataDirectory }),
      );
      expect(diskOnly.metadata).toMatchObject({ rdbArtifact: 'disk/dump.rdb' });
      expect(compareStats(diskOnly.stats as Stats, snapshot.stats as Stats)).toEqual([]);

      const directory = mkdtempSync(join(scratch, 'aof-target-'));
      const port = await findFreePort();
      // The later --appendonly yes overrides the no of the base options.
      const args = [
        ...redisServerArgs(port, directory, source.password!),
        '--appendonly',
        'yes',
        '--enable-debug-command',
        'yes',
      ];
      const target = targetOf(
        { port, password: source.password },
        {
          restoreMode: 'offline',
          dataDirectory: directory,
          appendOnly: true,
          server: { command: redisBinary(flavour), args },
        },
      );
      const result = await redisEngine.restore(
        target,
        artifactsOf(repository, diskOnly),
        diskOnly.metadata!,
        {
          force: false,
        },
      );
      try {
        expect(await withClient({ port, password: source.password }, datasetDigest)).toBe(digest);
        expect(existsSync(join(directory, 'appendonlydir'))).toBe(true);
        // The server writes new commands to its AOF, on top of the restored base.
        await withClient({ port, password: source.password }, (client) =>
          command(client, ['SET', 'written:after', '1']),
        );
      } finally {
        await redisEngine.cleanup!(target, result);
      }
      expect(readdirSync(join(directory, 'appendonlydir')).some((name) => name.endsWith('.incr.aof'))).toBe(
        true,
      );

      // The AOF set taken with the first snapshot is whole and consistent on its own: a server given
      // only those files (manifest, base, increments) loads the same dataset.
      const aofOnly = mkdtempSync(join(scratch, 'aof-only-'));
      mkdirSync(join(aofOnly, 'appendonlydir'));
      for (const name of names.filter((artifact) => artifact.startsWith('disk/appendonlydir/')))
        await pipeline(
          artifactsOf(repository, snapshot).open(name),
          createWriteStream(join(aofOnly, 'appendonlydir', name.slice('disk/appendonlydir/'.length))),
        );
      const fromAof = await start(['--dir', aofOnly, '--appendonly', 'yes']);
      expect(await withClient(fromAof, datasetDigest)).toBe(digest);
      expect(
        await withClient(fromAof, (client) => command<Buffer>(client, ['GET', 'after:rewrite'])),
      ).toEqual(Buffer.from('in the incr file'));
    }, 120_000);
  });
}

describe('redis engine across servers', () => {
  const servers: Handle[] = [];
  afterAll(async () => {
    for (const server of servers) await server.stop();
  });

  it('restores a Redis 7.0 snapshot (RDB 10) into Valkey 8; refuses a Valkey 8 one (RDB 11) for Redis 7.0 before touching it', async () => {
    const [redis, valkey, redisTarget, valkeyTarget] = await Promise.all(
      (['redis', 'valkey', 'redis', 'valkey'] as const).map((flavour) =>
        startRedisServer({ flavour, args: DEBUG }),
      ),
    );
    servers.push(redis!, valkey!, redisTarget!, valkeyTarget!);
    await withClient(redis!, (client) => seedAllTypes(client, { scale: 0.05 }));
    await withClient(valkey!, (client) => seedAllTypes(client, { scale: 0.05 }));
    const fromRedis = await backUp(repository, redisEngine, sourceOf(redis!));
    await restoreInto(fromRedis, valkeyTarget!);
    expect(compareStats(fromRedis.stats as Stats, await redisEngine.stats(targetOf(valkeyTarget!)))).toEqual(
      [],
    );
    expect(await withClient(valkeyTarget!, fullDigest)).toBe(await withClient(redis!, fullDigest));

    const fromValkey = await backUp(repository, redisEngine, sourceOf(valkey!));
    await withClient(redisTarget!, (client) => command(client, ['SET', 'untouched', '1']));
    await expect(restoreInto(fromValkey, redisTarget!, true)).rejects.toMatchObject({
      code: 'LB_RESTORE_PRECONDITION',
      message: expect.stringMatching(
        /RDB version 11 .* Redis 7\.0\.\d+ reads RDB versions up to 10/,
      ) as unknown,
    });
    expect(await withClient(redisTarget!, (client) => command(client, ['DBSIZE']))).toBe(1);
  }, 120_000);

  it('a command the server does not answer in time fails with LB_ENGINE_FAILED naming it; a slow one within the timeout succeeds', async () => {
    const server = await startRedisServer({ flavour: 'redis', args: DEBUG });
    servers.push(server);
    // node-redis's own default (5 s, an empty TimeoutError) no longer applies: 6 s is fine.
    await withClient(server, async (client) => {
      expect(String(await command(client, ['DEBUG', 'SLEEP', '6']))).toBe('OK');
      await expect(command(client, ['DEBUG', 'SLEEP', '2'], { timeoutMs: 500 })).rejects.toMatchObject({
        code: 'LB_ENGINE_FAILED',
        message: 'the server did not answer DEBUG SLEEP within 0.5 s',
      });
    });
  }, 60_000);

  it('a server that accepts and never answers the handshake fails the connection within seconds', async () => {
    const sockets: Socket[] = [];
    const silent = createServer((socket) => void sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = silent.address() as AddressInfo;
      await expect(connect(endpointOf(targetOf({ port, password: 'secret' })))).rejects.toMatchObject({
        code: 'LB_ENGINE_UNAVAILABLE',
        message: expect.stringMatching(/no answer to the handshake within 10 s/) as unknown,
      });
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  }, 60_000);

  it('offline restore with a launcher that exits 0 (--daemonize yes): waits for the server, counts its keys', async () => {
    const source = await startRedisServer({ flavour: 'redis', args: DEBUG });
    servers.push(source);
    await withClient(source, (client) => seedAllTypes(client, { scale: 0.02 }));
    const snapshot = await backUp(repository, redisEngine, sourceOf(source));
    const directory = mkdtempSync(join(scratch, 'daemon-'));
    const port = await findFreePort();
    const args = [
      ...redisServerArgs(port, directory, source.password!),
      '--daemonize',
      'yes',
      '--pidfile',
      join(directory, 'redis.pid'),
      '--logfile',
      join(directory, 'redis.log'),
    ];
    const target = targetOf(
      { port, password: source.password },
      { restoreMode: 'offline', dataDirectory: directory, server: { command: redisBinary('redis'), args } },
    );
    const result = await redisEngine.restore(target, artifactsOf(repository, snapshot), snapshot.metadata!, {
      force: false,
    });
    try {
      expect(result.details).toMatchObject({ started: true, keysLoaded: snapshot.metadata!.keys });
      expect(await withClient({ port, password: source.password }, fullDigest)).toBe(
        await withClient(source, fullDigest),
      );
    } finally {
      await redisEngine.cleanup!(target, result);
    }
  }, 120_000);

  it('offline restore whose server loads another directory: fails and stops that server', async () => {
    const source = await startRedisServer({ flavour: 'valkey', args: DEBUG });
    servers.push(source);
    await withClient(source, (client) => seedAllTypes(client, { scale: 0.01 }));
    const snapshot = await backUp(repository, redisEngine, sourceOf(source));
    const directory = mkdtempSync(join(scratch, 'wrong-dir-'));
    const elsewhere = mkdtempSync(join(scratch, 'elsewhere-'));
    const port = await findFreePort();
    const target = targetOf(
      { port, password: source.password },
      {
        restoreMode: 'offline',
        dataDirectory: directory,
        server: { command: redisBinary('valkey'), args: redisServerArgs(port, elsewhere, source.password!) },
      },
    );
    await expect(
      redisEngine.restore(target, artifactsOf(repository, snapshot), snapshot.metadata!, { force: false }),
    ).rejects.toMatchObject({
      code: 'LB_ENGINE_FAILED',
      message: expect.stringMatching(/holds 0 keys, the restored .* has \d+: .*stopped again/) as unknown,
    });
    await expect(
      withClient({ port, password: source.password }, (client) => command(client, ['PING'])),
    ).rejects.toMatchObject({
      code: 'LB_ENGINE_UNAVAILABLE',
    });
  }, 120_000);

  it('refuses a target whose maxmemory (noeviction) is below the snapshot, before touching it', async () => {
    const source = await startRedisServer({ flavour: 'valkey', args: DEBUG });
    const small = await startRedisServer({
      flavour: 'valkey',
      args: ['--maxmemory', '2mb', '--maxmemory-policy', 'noeviction'],
    });
    servers.push(source, small);
    await withClient(source, (client) => seedAllTypes(client, { scale: 0.05 }));
    const snapshot = await backUp(repository, redisEngine, sourceOf(source));
    expect(snapshot.metadata!.datasetBytes).toBeGreaterThan(2 * 1024 * 1024);
    await expect(restoreInto(snapshot, small)).rejects.toMatchObject({
      code: 'LB_RESTORE_PRECONDITION',
      message: expect.stringMatching(/maxmemory 2 MiB with noeviction/) as unknown,
    });
    expect(await withClient(small, (client) => command(client, ['DBSIZE']))).toBe(0);
    // Without the recorded size (an older snapshot) the check cannot run: the server's refusal of a
    // RESTORE midway ends the restore with the key and the server's words.
    const { datasetBytes: _unknown, ...older } = snapshot.metadata!;
    await expect(
      redisEngine.restore(targetOf(small), artifactsOf(repository, snapshot), older, { force: false }),
    ).rejects.toMatchObject({
      code: 'LB_ENGINE_FAILED',
      message: expect.stringMatching(/RESTORE \S+ failed at 127\.0\.0\.1:\d+: OOM/) as unknown,
    });
  }, 120_000);

  it('an ACL user that may not RESTORE fails the restore with LB_ENGINE_AUTH', async () => {
    const target = await startRedisServer({ flavour: 'redis', args: DEBUG });
    const source = await startRedisServer({ flavour: 'redis', args: DEBUG });
    servers.push(target, source);
    await withClient(source, (client) => seedAllTypes(client, { scale: 0.01 }));
    await withClient(target, (client) =>
      command(client, ['ACL', 'SETUSER', 'norestore', 'on', '>secret', '~*', '&*', '+@all', '-restore']),
    );
    const snapshot = await backUp(repository, redisEngine, sourceOf(source));
    await expect(
      restoreInto(snapshot, { port: target.port, username: 'norestore', password: 'secret' }),
    ).rejects.toMatchObject({ code: 'LB_ENGINE_AUTH', message: expect.stringMatching(/NOPERM/) as unknown });
  }, 120_000);
});
