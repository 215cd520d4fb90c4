// The PostgreSQL engine against a real PostgreSQL 15: the shared engine conformance suite, then the
// logical round trip of a rich database (many types, sequences, indexes, views, functions, roles, and a
// table of more than 1 GiB) through the CLI, selective and forced restores, bad input, a missing
// extension on the target (pgvector), and a backup killed mid-way.
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
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
      exactRowLimit: 2_000_000,
      archive: { async: false, timeout: '60s', checkTimeout: '60s' },
    });
    return {
      engine: postgresEngine,
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
