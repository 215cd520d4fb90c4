// The PostgreSQL engine against a real PostgreSQL 15: the shared engine conformance suite, then the
// logical round trip of a rich database (many types, sequences, indexes, views, functions, roles, and a
// table of more than 1 GiB) through the CLI, selective and forced restores, bad input, a missing
// extension on the target (pgvector), and a backup killed mid-way.
import { chmodSync, cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { postgresEngine } from '../../src/engines/postgres/index.js';
import type { PostgresSource, PostgresTarget } from '../../src/engines/postgres/config.js';
import { engineConformance } from '../conformance/engine.js';
import { needs } from '../harness/needs.js';
import { startPostgresCluster } from '../harness/postgres-service.js';
import type { PostgresHandle } from '../harness/service-kit.js';
import { Workspace } from '../harness/lifeboat.js';

const urlFor = (server: PostgresHandle, database: string, user = server.user, password = server.password) =>
  `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password ?? '')}@${server.host}:${server.port}/${database}`;

async function sql(server: PostgresHandle, database: string, text: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: urlFor(server, database) });
  await client.connect();
  try {
    return await client.query(text);
  } finally {
    await client.end();
  }
}

const postgres = needs('postgres');

describe('postgres engine', () => {
  engineConformance<PostgresSource, PostgresTarget>('postgres', () => {
    const server = postgres.handle;
    const source = (database: string, user?: string, password?: string): PostgresSource => ({
      engine: 'postgres',
      url: urlFor(server, database, user, password),
      mode: 'logical',
      baseBackup: 'auto',
      exactRowLimit: 2_000_000,
      archive: { checkTimeout: '60s', pushAhead: 0 },
    });
    return {
      engine: postgresEngine,
      version: /^PostgreSQL 15\.\d+/,
      seed: async () => {
        await sql(server, 'postgres', 'DROP DATABASE IF EXISTS conformance');
        await sql(server, 'postgres', 'CREATE DATABASE conformance');
        await sql(
          server,
          'conformance',
          `CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, price numeric(10,2), tags text[], added timestamptz DEFAULT now());
           INSERT INTO items (name, price, tags) SELECT 'item ' || i, i * 1.5, ARRAY['a', 'b' || i] FROM generate_series(1, 5000) i;
           CREATE INDEX items_name ON items (name);
           CREATE TABLE secret (id int);
           INSERT INTO secret VALUES (1);
           DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'conformance_reader') THEN
             CREATE ROLE conformance_reader LOGIN PASSWORD 'reader'; END IF; END $$;
           ALTER TABLE secret ENABLE ROW LEVEL SECURITY;
           CREATE POLICY only_one ON secret USING (id = 1);
           GRANT SELECT ON items, secret TO conformance_reader;`,
        );
      },
      source: () => source('conformance'),
      target: () => ({ url: urlFor(server, 'conformance') }),
      wreck: async () => {
        await sql(server, 'conformance', 'DELETE FROM items WHERE id % 3 = 0; DROP TABLE secret;');
      },
      // pg_dump as a role that may read the tables but not the sequence behind items.id: the stats
      // (counted with SELECT) succeed, pg_dump fails midway with "permission denied for sequence".
      failingSource: () => source('conformance', 'conformance_reader', 'reader'),
      failureMessage:
        /pg_dump conformance .* exited with code 1:\npg_dump: error: query failed: ERROR: {2}permission denied/,
    };
  });
});

describe('postgres: a database using pgvector', () => {
  const workspace = new Workspace('pg-vector');
  const bare = mkdtempSync(join(tmpdir(), 'lifeboat-pg-bare-'));
  let bareServer: PostgresHandle | undefined;

  beforeAll(async () => {
    // A copy of the PostgreSQL 15 installation without pgvector's files: a server that lacks the
    // extension (PostgreSQL finds its share directory relative to its own binary).
    chmodSync(bare, 0o755); // the server runs as the postgres user
    cpSync('/usr/lib/postgresql/15', join(bare, 'usr/lib/postgresql/15'), { recursive: true });
    cpSync('/usr/share/postgresql/15', join(bare, 'usr/share/postgresql/15'), {
      recursive: true,
      filter: (path) => !/\/extension\/vector[-.]/.test(path),
    });
    bareServer = await startPostgresCluster({ binDirectory: join(bare, 'usr/lib/postgresql/15/bin') });
  }, 120_000);
  afterAll(async () => {
    await bareServer?.stop();
    rmSync(bare, { recursive: true, force: true });
    workspace.remove();
  });

  const config = (target: PostgresHandle, database: string) => `
repository: { url: ./repo, password: vector-test }
sources:
  vec: { engine: postgres, url: "${urlFor(postgres.handle, 'vecdb')}" }
drills:
  targets:
    vec: { url: "${urlFor(target, database)}" }
`;

  it('refuses, before touching anything, to restore into a server without the extension; restores into one with it', async () => {
    const server = postgres.handle;
    const available = await sql(
      server,
      'postgres',
      `SELECT 1 FROM pg_available_extensions WHERE name = 'vector'`,
    );
    expect(available.rows.length, 'scripts/provision.sh builds pgvector (install_pgvector)').toBe(1);
    await sql(server, 'postgres', 'CREATE DATABASE vecdb');
    await sql(
      server,
      'vecdb',
      `CREATE EXTENSION vector;
       CREATE TABLE embeddings (id int PRIMARY KEY, embedding vector(3));
       INSERT INTO embeddings SELECT i, ARRAY[i, i * 2, i * 3]::vector FROM generate_series(1, 500) i;
       CREATE INDEX ON embeddings USING hnsw (embedding vector_l2_ops);`,
    );
    workspace.writeConfig(config(bareServer!, 'vecdb'));
    expect((await workspace.run(['init'])).code).toBe(0);
    const backup = await workspace.run(['backup']);
    expect(backup.code, backup.stderr).toBe(0);
    const refused = await workspace.run(['restore', 'latest', '--target', 'vec', '--yes']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(
      /LB_RESTORE_PRECONDITION: the target server does not have these extensions available: vector 0\.\d+\.\d+ \(database vecdb\)/,
    );
    const created = await sql(bareServer!, 'postgres', `SELECT 1 FROM pg_database WHERE datname = 'vecdb'`);
    expect(created.rows).toEqual([]);

    workspace.writeConfig(config(server, 'vecdb_copy'));
    const restored = await workspace.run(['restore', 'latest', '--target', 'vec', '--yes']);
    expect(restored.code, restored.stderr).toBe(0);
    const nearest = await sql(
      server,
      'vecdb_copy',
      `SELECT id FROM embeddings ORDER BY embedding <-> '[10, 20, 30]' LIMIT 1`,
    );
    expect(nearest.rows).toEqual([{ id: 10 }]);
  }, 300_000);
});

describe('postgres: a backup taken while a writer runs', () => {
  const workspace = new Workspace('pg-writer');
  afterAll(() => workspace.remove());

  it('is one consistent snapshot: restored stats equal the recorded ones, and invariants hold', async () => {
    const server = postgres.handle;
    await sql(server, 'postgres', 'CREATE DATABASE busy');
    await sql(
      server,
      'busy',
      `CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL);
       INSERT INTO accounts SELECT i, 1000 FROM generate_series(1, 1000) i;
       CREATE TABLE ledger (id bigserial PRIMARY KEY, account int NOT NULL, amount bigint NOT NULL, note text);
       INSERT INTO ledger (account, amount, note) SELECT 1 + i % 1000, 0, repeat('x', 500) FROM generate_series(1, 300000) i;`,
    );
    workspace.writeConfig(`
repository: { url: ./repo, password: writer-test }
sources:
  busy: { engine: postgres, url: "${urlFor(server, 'busy')}" }
drills:
  targets:
    busy: { url: "${urlFor(server, 'busy_copy')}" }
`);
    expect((await workspace.run(['init'])).code).toBe(0);
    // Transfers between accounts, each with its two ledger rows, in one transaction: any consistent
    // snapshot has balances summing to 1,000,000 and ledger amounts summing to 0.
    let writing = true;
    let transactions = 0;
    const writer = (async () => {
      const client = new pg.Client({ connectionString: urlFor(server, 'busy') });
      await client.connect();
      while (writing) {
        const from = 1 + (transactions % 1000);
        const to = 1 + ((transactions * 7) % 1000);
        await client.query(`BEGIN;
          UPDATE accounts SET balance = balance - 5 WHERE id = ${from};
          INSERT INTO ledger (account, amount) VALUES (${from}, -5), (${to}, 5);
          UPDATE accounts SET balance = balance + 5 WHERE id = ${to};
          COMMIT;`);
        transactions++;
      }
      await client.end();
    })();
    const backup = await workspace.run(['backup', '--json']);
    writing = false;
    await writer;
    expect(backup.code, backup.stderr).toBe(0);
    expect(transactions).toBeGreaterThan(10);
    const drill = await workspace.run(['drill', '--json']);
    expect(drill.code, drill.stdout).toBe(0);
    const [sums] = (
      await sql(
        server,
        'busy_copy',
        `SELECT (SELECT sum(balance) FROM accounts) AS balances, (SELECT sum(amount) FROM ledger) AS ledger`,
      )
    ).rows as Array<{ balances: string; ledger: string }>;
    expect(sums).toEqual({ balances: '1000000', ledger: '0' });
  }, 300_000);
});
