// Logical backups through the CLI against a real PostgreSQL 15: a rich database (many types, sequences,
// indexes, views, functions, triggers, partitions, two schemas, roles, and a table of more than 1 GiB)
// backed up, drilled into another database and compared; roles dropped after the backup come back;
// selective and forced restores; bad connection input; a backup killed midway.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { needs } from '../harness/needs.js';
import { pgQuery } from '../harness/pg.js';
import type { PostgresHandle } from '../harness/service-kit.js';
import { Workspace } from '../harness/lifeboat.js';

const postgres = needs('postgres');
const GiB = 1024 ** 3;

const sql = pgQuery;

const RICH_SCHEMA = `
CREATE ROLE app_owner NOLOGIN;
CREATE ROLE app_reader LOGIN PASSWORD 'reader-pass';
CREATE SCHEMA sales AUTHORIZATION app_owner;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE address AS (street text, city text, zip varchar(10));
CREATE DOMAIN positive_int AS integer CHECK (VALUE > 0);
CREATE TABLE customers (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  uid uuid NOT NULL UNIQUE,
  name varchar(200) NOT NULL,
  code char(4),
  small smallint, ratio real, precise double precision, amount numeric(14,4),
  active boolean DEFAULT true,
  born date, wakes time, seen timestamp, changed timestamptz DEFAULT now(), span interval,
  doc jsonb, raw json, photo bytea, ips inet, net cidr, mac macaddr, spot point, area box,
  search tsvector, feeling mood, home address, visits positive_int, tags text[], scores int[],
  during tstzrange
);
ALTER TABLE customers OWNER TO app_owner;
CREATE INDEX customers_doc ON customers USING gin (doc);
CREATE INDEX customers_lower_name ON customers (lower(name));
CREATE INDEX customers_active ON customers (id) WHERE active;
CREATE TABLE sales.orders (
  id serial PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
  placed timestamptz NOT NULL,
  total numeric(12,2) CHECK (total >= 0)
) ;
ALTER TABLE sales.orders OWNER TO app_owner;
CREATE TABLE events (id bigserial, at date NOT NULL, kind text) PARTITION BY RANGE (at);
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE SEQUENCE invoice_numbers START 1000;
CREATE TABLE audit (id serial, note text, at timestamptz DEFAULT now());
CREATE FUNCTION audit_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO audit (note) VALUES ('order ' || NEW.id); RETURN NEW; END $$;
CREATE TRIGGER orders_audit AFTER INSERT ON sales.orders FOR EACH ROW EXECUTE FUNCTION audit_order();
CREATE VIEW sales.big_orders AS SELECT * FROM sales.orders WHERE total > 500;
CREATE MATERIALIZED VIEW customer_totals AS
  SELECT c.id, count(o.id) AS orders, coalesce(sum(o.total), 0) AS total
  FROM customers c LEFT JOIN sales.orders o ON o.customer_id = c.id GROUP BY c.id;
COMMENT ON TABLE customers IS 'people who buy';
GRANT USAGE ON SCHEMA sales TO app_reader;
GRANT SELECT ON customers, sales.orders TO app_reader;
INSERT INTO customers (uid, name, code, small, ratio, precise, amount, born, wakes, seen, span, doc, raw,
  photo, ips, net, mac, spot, area, search, feeling, home, visits, tags, scores, during)
SELECT md5(i::text)::uuid, 'customer ' || i, lpad((i % 10000)::text, 4, '0'), (i % 30000)::smallint, i / 7.0,
  i / 3.0, i * 1.0001, date '1970-01-01' + i % 20000, time '06:00' + (i % 600) * interval '1 minute',
  timestamp '2020-01-01' + i * interval '1 hour', (i % 90) * interval '1 day',
  jsonb_build_object('n', i, 'even', i % 2 = 0, 'list', jsonb_build_array(i, i + 1)), json_build_object('i', i),
  decode(md5(i::text), 'hex'), ('10.0.' || (i % 250) || '.' || (i % 200))::inet, '10.1.0.0/16',
  '08:00:2b:01:02:03', point(i, -i), box(point(0, 0), point(i, i)), to_tsvector('english', 'customer number ' || i),
  (ARRAY['sad', 'ok', 'happy'])[1 + i % 3]::mood, ROW('street ' || i, 'city', '1000' || (i % 10))::address,
  1 + i % 100, ARRAY['t' || (i % 5), 'x'], ARRAY[i, i * 2],
  tstzrange(timestamptz '2024-01-01' + i * interval '1 minute', timestamptz '2024-01-02' + i * interval '1 minute')
FROM generate_series(1, 20000) i;
INSERT INTO sales.orders (customer_id, placed, total)
SELECT 1 + i % 20000, timestamptz '2025-06-01' + i * interval '5 minutes', (i % 1000) + 0.99 FROM generate_series(1, 30000) i;
INSERT INTO events (at, kind) SELECT date '2025-01-01' + i % 700, 'kind ' || (i % 7) FROM generate_series(1, 10000) i;
SELECT nextval('invoice_numbers') FROM generate_series(1, 42);
REFRESH MATERIALIZED VIEW customer_totals;
CREATE TABLE big (id bigint PRIMARY KEY, payload text NOT NULL);
`;

describe('postgres logical backups through the CLI', () => {
  const workspace = new Workspace('pg-logical');
  let server: PostgresHandle;
  let pointId = '';

  beforeAll(async () => {
    server = postgres.handle;
    await sql(server, 'postgres', 'CREATE DATABASE richdb');
    await sql(server, 'richdb', RICH_SCHEMA);
    // More than 1 GiB: rows of ~1 KiB that stay uncompressed in the heap (under the TOAST threshold).
    for (let start = 0; start < 1_150_000; start += 230_000) {
      await sql(
        server,
        'richdb',
        `INSERT INTO big SELECT i, repeat(md5(i::text), 31) FROM generate_series(${start + 1}, ${start + 230_000}) i`,
      );
    }
    const [sized] = await sql<{ size: string }>(
      server,
      'richdb',
      `SELECT pg_total_relation_size('big') AS size`,
    );
    expect(Number(sized!.size)).toBeGreaterThan(GiB);
    const url = (database: string) => `postgres://${server.user}@${server.host}:${server.port}/${database}`;
    workspace.writeConfig(`
repository:
  url: ./repo
  password: \${LIFEBOAT_PASSWORD}
sources:
  main:
    engine: postgres
    url: ${url('richdb')}
    password: \${PG_PASSWORD}
    jobs: 2
drills:
  targets:
    main:
      url: ${url('richdb_drill')}
      password: \${PG_PASSWORD}
objectives:
  main:
    rto: 30m
    rpo: 1d
`);
  }, 600_000);
  afterAll(() => workspace.remove());

  const env = { LIFEBOAT_PASSWORD: 'repo-pass', PG_PASSWORD: 'lifeboat-test' };
  const lifeboat = (args: string[], options: Parameters<Workspace['run']>[1] = {}) =>
    workspace.run(args, { ...options, env: { ...env, ...options.env } });

  it('backs the database up into one recovery point, with exact stats of every table', async () => {
    expect((await lifeboat(['init'])).code).toBe(0);
    const backup = await lifeboat(['backup', '--json']);
    expect(backup.code, backup.stderr).toBe(0);
    pointId = backup.json<{ id: string }>().id;
    expect(pointId).toMatch(/^[0-9a-f]{32}$/);
    const show = await lifeboat(['show', pointId.slice(0, 8), '--json']);
    const point = show.json<{
      snapshots: Array<{
        artifacts: Array<{ name: string; size: number }>;
        stats: { items: Array<{ key: string; count: number; exact: boolean }> };
      }>;
    }>();
    const [snapshot] = point.snapshots;
    expect(snapshot!.artifacts.map((artifact) => artifact.name)).toEqual(['globals.sql', 'db/richdb.dump']);
    expect(snapshot!.artifacts[1]!.size).toBeGreaterThan(GiB);
    const counts = Object.fromEntries(snapshot!.stats.items.map((item) => [item.key, item]));
    expect(counts['richdb/public.big']).toEqual({ key: 'richdb/public.big', count: 1_150_000, exact: true });
    expect(counts['richdb/public.customers']!.count).toBe(20_000);
    expect(counts['richdb/sales.orders']!.count).toBe(30_000);
    expect(counts['richdb/public.audit']!.count).toBe(30_000);
    expect(counts['richdb/public.events_2025']!.count + counts['richdb/public.events_2026']!.count).toBe(
      10_000,
    );
    expect(counts['richdb/sequence:public.invoice_numbers']!.count).toBe(1041);
    expect(counts['role/app_reader']).toBeDefined();
    const list = await lifeboat(['list', '--json']);
    expect(list.json<Array<{ id: string }>>().map((p) => p.id)).toEqual([pointId]);
  }, 600_000);

  it('drills into another database: roles dropped since come back, stats and schema match, RTO and RPO reported', async () => {
    await sql(
      server,
      'richdb',
      'REVOKE ALL ON customers, sales.orders FROM app_reader; REVOKE USAGE ON SCHEMA sales FROM app_reader',
    );
    await sql(server, 'postgres', 'DROP ROLE app_reader');
    const drill = await lifeboat(['drill', '--json']);
    expect(drill.code, drill.stdout + drill.stderr).toBe(0);
    const report = drill.json<{
      ok: boolean;
      results: Array<{
        source: string;
        ok: boolean;
        method: string;
        rtoSeconds: number;
        rpoSeconds: number;
        mismatches: unknown[];
      }>;
    }>();
    expect(report.ok).toBe(true);
    expect(report.results[0]).toMatchObject({ source: 'main', ok: true, method: 'logical', mismatches: [] });
    expect(report.results[0]!.rtoSeconds).toBeGreaterThan(0);
    expect(report.results[0]!.rpoSeconds).toBeGreaterThan(0);
    // The role is back, with its grants on the restored tables.
    const reader = new pg.Client({
      host: server.host,
      port: server.port,
      user: 'app_reader',
      password: 'reader-pass',
      database: 'richdb_drill',
    });
    await reader.connect();
    const [counted] = (await reader.query<{ count: string }>('SELECT count(*) FROM sales.orders')).rows;
    await reader.end();
    expect(Number(counted!.count)).toBe(30_000);
    // Identity and sequences continue after the restored values.
    const [sequence] = await sql<{ next: string }>(
      server,
      'richdb_drill',
      `SELECT nextval('invoice_numbers') AS next`,
    );
    expect(Number(sequence!.next)).toBe(1042);
    const [row] = await sql<{ id: string }>(
      server,
      'richdb_drill',
      `INSERT INTO customers (uid, name) VALUES (gen_random_uuid(), 'new') RETURNING id`,
    );
    expect(Number(row!.id)).toBe(20_001);
    const human = await lifeboat(['drill', '--source', 'main']);
    expect(human.stdout).toMatch(
      /^source +result +method +RTO +RPO \(basis\) +objectives\nmain +ok +logical +\S+ (?:s|min|h) +\S+ (?:s|min|h) \(point age\) +rto 30\.0 min, rpo 24\.0 h/,
    );
  }, 900_000);

  it('refuses to restore over the live database without --force, touching nothing; validate still matches', async () => {
    const restore = await lifeboat(['restore', 'latest', '--yes']);
    expect(restore.code).toBe(1);
    expect(restore.stderr).toMatch(/LB_TARGET_NOT_EMPTY: database richdb exists and holds \d+ relation\(s\)/);
    const validate = await lifeboat(['validate', '--json']);
    expect(validate.code, validate.stdout).toBe(0);
    expect(validate.json<Array<{ ok: boolean }>>()[0]!.ok).toBe(true);
  });

  it('without --yes and without a terminal, asks nobody and restores nothing', async () => {
    const restore = await lifeboat(['restore', 'latest', '--target', 'main', '--force']);
    expect(restore.code).toBe(1);
    expect(restore.stderr).toContain('LB_RESTORE_DECLINED');
    expect(restore.stderr).toContain('into drills.targets.main');
  });

  it('restores one table selectively: refused while it exists, replaced with --force', async () => {
    await sql(server, 'richdb_drill', 'DELETE FROM sales.orders WHERE id <= 100');
    const refused = await lifeboat([
      'restore',
      'latest',
      '--target',
      'main',
      '--table',
      'sales.orders',
      '--yes',
    ]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('LB_TARGET_NOT_EMPTY');
    expect(
      Number(
        (await sql<{ n: string }>(server, 'richdb_drill', 'SELECT count(*) AS n FROM sales.orders'))[0]!.n,
      ),
    ).toBe(29_900);
    const forced = await lifeboat([
      'restore',
      'latest',
      '--target',
      'main',
      '--table',
      'sales.orders',
      '--force',
      '--yes',
    ]);
    expect(forced.code, forced.stderr).toBe(0);
    expect(
      Number(
        (await sql<{ n: string }>(server, 'richdb_drill', 'SELECT count(*) AS n FROM sales.orders'))[0]!.n,
      ),
    ).toBe(30_000);
    // Rows were replaced with triggers off: the audit trigger did not fire again.
    expect(
      Number((await sql<{ n: string }>(server, 'richdb_drill', 'SELECT count(*) AS n FROM audit'))[0]!.n),
    ).toBe(30_000);
    // Dependent views survived.
    expect(
      Number(
        (await sql<{ n: string }>(server, 'richdb_drill', 'SELECT count(*) AS n FROM sales.big_orders'))[0]!
          .n,
      ),
    ).toBeGreaterThan(0);
  }, 300_000);

  it('a dry run shows the plan and changes nothing', async () => {
    const dry = await lifeboat(['restore', pointId, '--target', 'main', '--dry-run', '--json']);
    expect(dry.code).toBe(0);
    expect(dry.json()).toMatchObject({
      dryRun: true,
      steps: [{ source: 'main', method: 'logical', target: 'drills.targets.main', point: pointId }],
    });
  });

  it('fails clearly and fast on a closed port and on a wrong password', async () => {
    const wrongPassword = await lifeboat(['backup'], {
      env: { ...env, PG_PASSWORD: 'wrong' },
      timeoutMs: 30_000,
    });
    expect(wrongPassword.code).toBe(1);
    expect(wrongPassword.stderr).toMatch(
      /LB_ENGINE_AUTH: PostgreSQL at 127\.0\.0\.1:\d+ \(user postgres, database richdb\): password authentication failed/,
    );
    expect(wrongPassword.stderr).not.toContain('wrong');
    const other = new Workspace('pg-closed');
    try {
      other.writeConfig(`
repository: { url: ./repo, password: x }
sources:
  main: { engine: postgres, url: "postgres://postgres@127.0.0.1:1/db" }
`);
      expect((await other.run(['init'])).code).toBe(0);
      const refused = await other.run(['backup', '--json'], { timeoutMs: 30_000 });
      expect(refused.code).toBe(1);
      expect(refused.json<{ error: { code: string } }>().error.code).toBe('LB_ENGINE_UNAVAILABLE');
      expect((await other.run(['list', '--json'])).json()).toEqual([]);
    } finally {
      other.remove();
    }
  }, 120_000);

  it('a backup killed midway leaves no recovery point, a clean repository and the server unaffected', async () => {
    const before = (await lifeboat(['list', '--json'])).json<unknown[]>().length;
    let pid = 0;
    const running = lifeboat(['backup'], { onSpawn: (spawned) => (pid = spawned) });
    // Kill once the dump is streaming (pg_dump connected), i.e. midway through the 1 GiB table.
    for (let waited = 0; waited < 60_000; waited += 100) {
      const dumping = await sql<{ n: string }>(
        server,
        'postgres',
        `SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'lifeboat' AND query ILIKE 'COPY public.big%'`,
      );
      if (Number(dumping[0]!.n) > 0) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    process.kill(pid, 'SIGKILL');
    const killed = await running;
    expect(killed.code).toBeNull();
    // pg_dump loses its reader and exits; its session and the exported snapshot's go away.
    for (let waited = 0; ; waited += 200) {
      const left = await sql<{ n: string }>(
        server,
        'postgres',
        `SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'lifeboat'`,
      );
      if (Number(left[0]!.n) === 0) break;
      expect(waited).toBeLessThan(60_000);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect((await lifeboat(['list', '--json'])).json<unknown[]>().length).toBe(before);
    const check = await lifeboat(['check']);
    expect(check.code, check.stderr).toBe(0);
    const validate = await lifeboat(['validate']);
    expect(validate.code, validate.stdout).toBe(0);
  }, 300_000);
});
