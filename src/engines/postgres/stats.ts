// What the PostgreSQL engine counts: rows per table, sequence positions, a schema fingerprint per
// database, installed extensions, and the cluster's roles.
//
// Terms:
//   label        the name a database is reported under: its name in the source, also when it was
//                restored under another name (stats keys must match across the two).
//   exact row    count(*) of a table; tables whose planner estimate exceeds exactRowLimit are reported
//                with the estimate instead (pg_class.reltuples), flagged exact: false.
//   fingerprint  SHA-256 over the sorted description of columns (name, type, not null), constraints,
//                indexes, views and functions of the user schemas: equal schemas give equal digests.
//   user schema  every schema except pg_catalog, information_schema, pg_toast* and pg_temp*.
import { createHash } from 'node:crypto';

import type pg from 'pg';

import type { StatItem } from '../engine.js';
import { quoteIdentifier } from './connection.js';

const USER_SCHEMA = `n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'`;

export interface DatabaseStats {
  items: StatItem[];
  fingerprint: string;
  extensions: Array<{ name: string; version: string }>;
  sizeBytes: number;
}

/** Stats of the database `client` is connected to, reported under `label`. */
export async function databaseStats(
  client: pg.Client,
  label: string,
  exactRowLimit: number,
): Promise<DatabaseStats> {
  const items: StatItem[] = [];
  const tables = await client.query<{ schema: string; name: string; estimate: string }>(
    `SELECT n.nspname AS schema, c.relname AS name, c.reltuples::bigint AS estimate
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'r' AND ${USER_SCHEMA}
      ORDER BY 1, 2`,
  );
  for (const table of tables.rows) {
    const estimate = Number(table.estimate);
    const key = `${label}/${table.schema}.${table.name}`;
    if (estimate > exactRowLimit) {
      items.push({ key, count: estimate, exact: false });
      continue;
    }
    const counted = await client.query<{ count: string }>(
      `SELECT count(*) AS count FROM ONLY ${quoteIdentifier(table.schema)}.${quoteIdentifier(table.name)}`,
    );
    items.push({ key, count: Number(counted.rows[0]!.count), exact: true });
  }
  // Sequences move outside transactions, so a concurrent writer can advance one between the dump and
  // this read: compared with a tolerance.
  const sequences = await client.query<{ schema: string; name: string; value: string | null }>(
    `SELECT schemaname AS schema, sequencename AS name, last_value AS value FROM pg_sequences ORDER BY 1, 2`,
  );
  for (const sequence of sequences.rows) {
    items.push({
      key: `${label}/sequence:${sequence.schema}.${sequence.name}`,
      count: Number(sequence.value ?? 0),
      exact: false,
    });
  }
  const extensions = await client.query<{ name: string; version: string }>(
    `SELECT extname AS name, extversion AS version FROM pg_extension WHERE extname <> 'plpgsql' ORDER BY 1`,
  );
  const size = await client.query<{ size: string }>('SELECT pg_database_size(current_database()) AS size');
  return {
    items,
    fingerprint: await schemaFingerprint(client),
    extensions: extensions.rows,
    sizeBytes: Number(size.rows[0]!.size),
  };
}

async function schemaFingerprint(client: pg.Client): Promise<string> {
  const lines = await client.query<{ line: string }>(
    `SELECT 'column ' || n.nspname || '.' || c.relname || '.' || a.attname || ' ' ||
            format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END AS line
       FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND ${USER_SCHEMA}
     UNION ALL
     SELECT 'constraint ' || n.nspname || '.' || c.relname || ' ' || con.conname || ' ' || pg_get_constraintdef(con.oid)
       FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE ${USER_SCHEMA}
     UNION ALL
     SELECT 'index ' || pg_get_indexdef(i.indexrelid)
       FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE ${USER_SCHEMA}
     UNION ALL
     SELECT 'view ' || n.nspname || '.' || c.relname || ' ' || pg_get_viewdef(c.oid)
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('v', 'm') AND ${USER_SCHEMA}
     UNION ALL
     SELECT 'function ' || n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')'
       FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE ${USER_SCHEMA}`,
  );
  // Sorted here, byte-wise, so the server's collation cannot change the digest.
  const sorted = lines.rows.map((row) => row.line).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return createHash('sha256').update(sorted.join('\n')).digest('hex');
}

/** The cluster's roles (except the built-in pg_* ones), one item each. */
export async function roleItems(client: pg.Client): Promise<StatItem[]> {
  const roles = await client.query<{ name: string }>(
    `SELECT rolname AS name FROM pg_roles WHERE rolname !~ '^pg_' ORDER BY 1`,
  );
  return roles.rows.map((role) => ({ key: `role/${role.name}`, count: 1, exact: true }));
}
