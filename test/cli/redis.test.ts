// The redis engine through the CLI: backup, list, validate, a refused and a forced restore into the
// source, a drill into an offline target that lifeboat starts, checks and stops, --at for a store
// without a log archive, and a backup whose connection is cut mid-transfer (no snapshot, point failed).
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { command } from '../../src/engines/redis/connection.js';
import { Workspace } from '../harness/lifeboat.js';
import { findFreePort } from '../harness/ports.js';
import { redisBinary, startRedisServer } from '../harness/redis-service.js';
import type { RedisLikeHandle } from '../harness/service-kit.js';
import { startTcpProxy, type TcpProxy } from '../harness/tcp-proxy.js';
import { datasetDigest, seedAllTypes, withClient } from '../engines/redis-data.js';

describe('redis through the CLI', () => {
  const workspace = new Workspace('redis-cli');
  let server: RedisLikeHandle<'valkey'>;
  let proxy: TcpProxy;
  let drillPort: number;
  let digest: string;

  beforeAll(async () => {
    server = await startRedisServer({
      flavour: 'valkey',
      args: ['--repl-diskless-sync-delay', '0', '--enable-debug-command', 'yes'],
    });
    proxy = await startTcpProxy(server.port, 128 * 1024);
    await withClient({ port: server.port, password: server.password! }, (client) =>
      seedAllTypes(client, { scale: 0.1, functions: true }),
    );
    digest = await withClient({ port: server.port, password: server.password! }, datasetDigest);
    drillPort = await findFreePort();
    const drillDirectory = mkdtempSync(join(workspace.path('.'), 'drill-'));
    workspace.writeConfig(`
repository: { url: ./repo, password: redis-cli-test }
sources:
  cache:
    engine: redis
    url: "redis://127.0.0.1:${server.port}"
    password: "${server.password}"
  cut:
    engine: redis
    url: "redis://127.0.0.1:${proxy.port}"
    password: "${server.password}"
drills:
  targets:
    cache:
      url: "redis://127.0.0.1:${drillPort}"
      password: drill-secret
      restoreMode: offline
      dataDirectory: ${drillDirectory}
      server:
        command: ${redisBinary('valkey')}
        args: [--port, "${drillPort}", --bind, 127.0.0.1, --dir, ${drillDirectory}, --requirepass, drill-secret, --save, "", --appendonly, "no", --enable-debug-command, "yes"]
`);
    expect((await workspace.run(['init'])).code).toBe(0);
  }, 120_000);
  afterAll(async () => {
    await proxy?.close();
    await server?.stop();
    workspace.remove();
  });

  it('backs up, validates, refuses a restore into the non-empty source, restores with --force', async () => {
    const backup = await workspace.run(['backup', '--source', 'cache', '--json']);
    expect(backup.code, backup.stderr).toBe(0);
    const list = await workspace.run(['list']);
    expect(list.stdout).toMatch(/cache\(redis\)/);
    const validate = await workspace.run(['validate', '--source', 'cache']);
    expect(validate.code, validate.stdout + validate.stderr).toBe(0);

    await withClient({ port: server.port, password: server.password! }, async (client) => {
      await command(client, ['DEL', 'list:big', 'str:5']);
      await command(client, ['SET', 'intruder', 'yes']);
    });
    const drifted = await workspace.run(['validate', '--source', 'cache']);
    expect(drifted.code).toBe(3);

    const dry = await workspace.run(['restore', 'latest', '--source', 'cache', '--dry-run']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/online: dump\.rdb: \d+ keys in db0, db3, replayed with RESTORE/);
    const refused = await workspace.run(['restore', 'latest', '--source', 'cache', '--yes']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('LB_TARGET_NOT_EMPTY');
    expect(
      await withClient({ port: server.port, password: server.password! }, (client) =>
        command(client, ['EXISTS', 'intruder']),
      ),
    ).toBe(1);
    const forced = await workspace.run(['restore', 'latest', '--source', 'cache', '--yes', '--force']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(await withClient({ port: server.port, password: server.password! }, datasetDigest)).toBe(digest);

    const wrongKind = await workspace.run([
      'restore',
      'latest',
      '--source',
      'cache',
      '--at',
      'lsn:0/1',
      '--yes',
    ]);
    expect(wrongKind.code).toBe(2);
    expect(wrongKind.stderr).toMatch(/applies to PostgreSQL only/);
    const beforeAny = await workspace.run([
      'restore',
      'latest',
      '--source',
      'cache',
      '--at',
      '2020-01-01T00:00:00Z',
      '--dry-run',
    ]);
    expect(beforeAny.stderr).toContain('LB_POINT_NOT_FOUND');
    const atNow = await workspace.run([
      'restore',
      'latest',
      '--source',
      'cache',
      '--at',
      new Date().toISOString(),
      '--dry-run',
    ]);
    expect(atNow.code, atNow.stderr).toBe(0);
  }, 180_000);

  it('drills into an offline target it starts, validates and stops', async () => {
    const drill = await workspace.run(['drill', '--source', 'cache', '--json']);
    expect(drill.code, drill.stdout + drill.stderr).toBe(0);
    const [result] = drill.json<{
      results: Array<{ source: string; ok: boolean; rtoSeconds: number; mismatches: unknown[] }>;
    }>().results;
    expect(result).toMatchObject({ source: 'cache', ok: true, mismatches: [] });
    expect(result!.rtoSeconds).toBeGreaterThan(0);
    await expect(
      withClient({ port: drillPort, password: 'drill-secret' }, (client) => command(client, ['PING'])),
    ).rejects.toMatchObject({
      code: 'LB_ENGINE_UNAVAILABLE',
    });
  }, 180_000);

  it('a connection cut mid-transfer fails the backup and stores no snapshot', async () => {
    const run = await workspace.run(['backup', '--source', 'cut', '--json']);
    expect(run.code).toBe(1);
    const { error } = run.json<{ error: { code: string; message: string } }>();
    expect(error.code).toBe('LB_ENGINE_UNAVAILABLE');
    expect(error.message).toMatch(
      /connection to Redis at 127\.0\.0\.1:\d+ was lost after \d+ bytes of the snapshot/,
    );
    expect(proxy.forwarded()).toBeGreaterThan(0);
    const snapshots = await workspace.run(['snapshots', '--json']);
    const listed = snapshots.json<Array<{ source: string }>>();
    expect(listed.filter((snapshot) => snapshot.source === 'cut')).toHaveLength(0);
    const check = await workspace.run(['check']);
    expect(check.code, check.stdout + check.stderr).toBe(0);
  }, 120_000);
});
