// Recovery points across several sources and databases, through the CLI against a real PostgreSQL 15:
// every database of a server (databases: all) restored under other names (databaseMap) and by choice
// (--database); a run where one source fails still records the others, names the failure and exits 1;
// and wal-push on a write-only (age recipients only) host archives while every read is refused.
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { rmSync } from 'node:fs';
import { type AddressInfo, type Socket, createServer } from 'node:net';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { needs } from '../harness/needs.js';
import { pgQuery } from '../harness/pg.js';
import type { PostgresHandle } from '../harness/service-kit.js';
import { Workspace } from '../harness/lifeboat.js';

const postgres = needs('postgres');

const sql = pgQuery;

describe('recovery points across sources and databases', () => {
  const workspace = new Workspace('recovery');
  let server: PostgresHandle;
  const url = (database: string) =>
    `postgres://${server.user}:${server.password}@${server.host}:${server.port}/${database}`;

  beforeAll(async () => {
    server = postgres.handle;
    for (const name of ['north', 'south']) {
      await sql(server, 'postgres', `CREATE DATABASE ${name}`);
      await sql(
        server,
        name,
        `CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, ${name === 'north' ? 10 : 20})`,
      );
    }
    workspace.writeConfig(`
repository: { url: ./repo, password: recovery-test }
sources:
  cluster:
    engine: postgres
    url: "${url('postgres')}"
    databases: [north, south]
  broken:
    engine: postgres
    url: "postgres://nobody@127.0.0.1:1/none"
  whole:
    engine: postgres
    url: "${url('postgres')}"
    databases: all
    jobs: 2
drills:
  targets:
    cluster:
      url: "${url('postgres')}"
      databaseMap: { north: north_copy, south: south_copy }
`);
    expect((await workspace.run(['init'])).code).toBe(0);
  });
  afterAll(() => workspace.remove());

  it('records the sources that succeeded, names the one that failed, and exits 1', async () => {
    const run = await workspace.run(['backup', '--source', 'cluster', '--source', 'broken', '--json']);
    expect(run.code).toBe(1);
    const result = run.json<{
      id: string;
      sources: Array<{ source: string; snapshot?: string; error?: { code: string } }>;
    }>();
    expect(result.sources.find((s) => s.source === 'cluster')!.snapshot).toMatch(/^[0-9a-f]{64}$/);
    expect(result.sources.find((s) => s.source === 'broken')!.error!.code).toBe('LB_ENGINE_UNAVAILABLE');
    const list = await workspace.run(['list']);
    expect(list.stdout).toMatch(
      new RegExp(`${result.id.slice(0, 8)} .* cluster\\(postgres\\) +incomplete: broken failed`),
    );
  }, 120_000);

  it('restores every database of the snapshot under the mapped names, or only the one chosen', async () => {
    const all = await workspace.run([
      'restore',
      'latest',
      '--source',
      'cluster',
      '--target',
      'cluster',
      '--yes',
      '--json',
    ]);
    expect(all.code, all.stderr).toBe(0);
    expect(
      all.json<{ outcomes: Array<{ result: { details: { databases: Record<string, string> } } }> }>()
        .outcomes[0]!.result.details.databases,
    ).toEqual({
      north: 'north_copy',
      south: 'south_copy',
    });
    expect(await sql(server, 'north_copy', 'SELECT count(*)::int AS n FROM t')).toEqual([{ n: 10 }]);
    expect(await sql(server, 'south_copy', 'SELECT count(*)::int AS n FROM t')).toEqual([{ n: 20 }]);
    await sql(server, 'south_copy', 'DELETE FROM t');
    await sql(server, 'north_copy', 'DELETE FROM t');
    const one = await workspace.run([
      'restore',
      'latest',
      '--source',
      'cluster',
      '--target',
      'cluster',
      '--database',
      'south',
      '--force',
      '--yes',
    ]);
    expect(one.code, one.stderr).toBe(0);
    expect(await sql(server, 'south_copy', 'SELECT count(*)::int AS n FROM t')).toEqual([{ n: 20 }]);
    expect(await sql(server, 'north_copy', 'SELECT count(*)::int AS n FROM t')).toEqual([{ n: 0 }]);
    const ambiguous = await workspace.run(['restore', 'latest', '--target', 'cluster', '--yes']);
    expect(ambiguous.code).toBe(2);
    expect(ambiguous.stderr).toContain('LB_USAGE: --target names one drill target');
    const drill = await workspace.run(['drill', '--source', 'cluster', '--json']);
    expect(drill.code, drill.stdout).toBe(0);
  }, 120_000);

  it('restores every database of the server in place with --force, postgres (the one it connects to) included', async () => {
    await sql(
      server,
      'postgres',
      'CREATE TABLE IF NOT EXISTS kept (id int); INSERT INTO kept VALUES (1), (2)',
    );
    const backup = await workspace.run(['backup', '--source', 'whole', '--json']);
    expect(backup.code, backup.stderr).toBe(0);
    await sql(server, 'north', 'INSERT INTO t VALUES (1000)');
    await sql(server, 'postgres', 'DELETE FROM kept');
    const restore = await workspace.run(['restore', 'latest', '--source', 'whole', '--force', '--yes']);
    expect(restore.code, restore.stderr).toBe(0);
    expect(restore.stdout + restore.stderr).toContain('dropped database postgres (--force)');
    expect(restore.stdout + restore.stderr).toContain('(pg_restore -j 2)'); // the source's jobs setting
    expect(await sql(server, 'north', 'SELECT count(*)::int AS n FROM t')).toEqual([{ n: 10 }]);
    expect(await sql(server, 'postgres', 'SELECT count(*)::int AS n FROM kept')).toEqual([{ n: 2 }]);
  }, 180_000);

  it('check names a recovery point whose snapshot is missing', async () => {
    const points = (await workspace.run(['list', '--json'])).json<
      Array<{ id: string; members: Array<{ snapshot: string }> }>
    >();
    const point = points[0]!;
    rmSync(workspace.path(`repo/snapshots/${point.members[0]!.snapshot}`));
    const check = await workspace.run(['check', '--json']);
    expect(check.code).toBe(1);
    const report = check.json<{
      error: {
        details: { report: { points: number; problems: Array<{ object: string; message: string }> } };
      };
    }>().error.details.report;
    expect(report.points).toBe(points.length);
    expect(report.problems).toContainEqual({
      object: `points/${point.id}`,
      message: expect.stringContaining('which is missing') as unknown,
    });
  });
});

describe('servers that accept connections and never answer', () => {
  const workspace = new Workspace('silent-servers');
  const sockets = new Set<Socket>();
  const silent = createServer((socket) => {
    sockets.add(socket); // held open, never written to
  });
  beforeAll(async () => {
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as AddressInfo;
    workspace.writeConfig(`
repository: { url: ./repo, password: silent-test }
sources:
  db: { engine: postgres, url: "postgres://postgres@127.0.0.1:${port}/app" }
  cache: { engine: redis, url: "redis://127.0.0.1:${port}" }
`);
    expect((await workspace.run(['init'])).code).toBe(0);
  });
  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => silent.close(resolve));
    workspace.remove();
  });

  it('a backup gives up on each with a clear error instead of hanging, and records nothing', async () => {
    // The bound is the run's own timeout (no timing assertion): the connect and handshake timeouts
    // are 10 s; the transfer's idle timeout (60 s) would not let a Redis run end within 45 s.
    for (const [source, pattern] of [
      ['db', /PostgreSQL at 127\.0\.0\.1:\d+ .*timeout/],
      ['cache', /Redis at 127\.0\.0\.1:\d+ did not answer the replication handshake/],
    ] as const) {
      const run = await workspace.run(['backup', '--source', source, '--json'], { timeoutMs: 45_000 });
      expect(run.code, run.stdout + run.stderr).toBe(1);
      const error = run.json<{ error: { code: string; message: string } }>().error;
      expect(error.code).toBe('LB_ENGINE_UNAVAILABLE');
      expect(error.message).toMatch(pattern);
    }
    expect((await workspace.run(['list', '--json'])).json()).toEqual([]);
  }, 120_000);
});

describe('wal-push on a write-only host', () => {
  const workspace = new Workspace('wal-write-only');
  afterAll(() => workspace.remove());

  it('archives with the recipients only; every read needs the identity', async () => {
    const identity = await generateX25519Identity();
    const recipient = await identityToRecipient(identity);
    const config = (withIdentity: boolean) => `
repository:
  url: ./repo
  recipients: [${recipient}]
${withIdentity ? `  identity: ${identity}\n` : ''}sources:
  main: { engine: postgres, url: "postgres://127.0.0.1/x", mode: physical }
`;
    workspace.writeConfig(config(false));
    expect((await workspace.run(['init'])).code).toBe(0);
    const { writeFileSync } = await import('node:fs');
    const segment = workspace.path('000000010000000000000007');
    writeFileSync(segment, Buffer.alloc(16 * 1024 * 1024, 3));
    const push = await workspace.run(['wal-push', segment]);
    expect(push.code, push.stderr).toBe(0);
    const again = await workspace.run(['wal-push', segment]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('already archived (same content)');
    const fetch = await workspace.run(['wal-fetch', '000000010000000000000007', workspace.path('out')]);
    // Not "missing" (1, which would end PostgreSQL's recovery early): fatal, recovery stops.
    expect(fetch.code).toBe(126);
    expect(fetch.stderr).toContain('LB_REPO_WRITE_ONLY');
    workspace.writeConfig(config(true));
    const restored = await workspace.run(['wal-fetch', '000000010000000000000007', workspace.path('out')]);
    expect(restored.code, restored.stderr).toBe(0);
    expect(restored.stdout).toContain('fetched (16777216 bytes)');
  }, 60_000);
});
