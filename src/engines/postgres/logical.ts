// Logical backups: pg_dumpall --globals-only (roles, tablespaces) plus one pg_dump custom-format archive
// per database, uncompressed (the repository deduplicates and compresses).
//
// Terms:
//   exported snapshot  each database's dump runs in a snapshot exported by a REPEATABLE READ transaction
//                      we hold open (pg_dump --snapshot), and the stats are counted in that same
//                      transaction: they describe exactly the rows in the dump, even under writes.
//   artifacts          "globals.sql", then "db/<name>.dump" for each database, in that order.
import type pg from 'pg';

import { toolOutputSource } from '../../util/process.js';
import type { ArtifactStream, BackupOptions, BackupResult, StatItem } from '../engine.js';
import type { PostgresSource } from './config.js';
import {
  type Endpoint,
  connect,
  classifyClientError,
  describeToolFailure,
  endpointOf,
  serverMajor,
  toolEnvironment,
  toolPath,
} from './connection.js';
import { type DatabaseStats, databaseStats, roleItems } from './stats.js';

/** What a logical snapshot records about each database, for its restore. */
export interface DumpedDatabase {
  name: string;
  artifact: string;
  encoding: string;
  collate: string;
  ctype: string;
  owner: string;
  extensions: Array<{ name: string; version: string }>;
}

export interface LogicalMetadata {
  kind: 'logical';
  serverVersion: string;
  serverMajor: number;
  globals: string;
  databases: DumpedDatabase[];
}

export const artifactOfDatabase = (name: string): string => `db/${name}.dump`;

/** The databases a source names: its list, every connectable non-template one, or the URL's. */
async function chosenDatabases(
  client: pg.Client,
  source: PostgresSource,
  endpoint: Endpoint,
): Promise<string[]> {
  if (source.databases === 'all') {
    const result = await client.query<{ name: string }>(
      `SELECT datname AS name FROM pg_database WHERE NOT datistemplate AND datallowconn ORDER BY 1`,
    );
    return result.rows.map((row) => row.name);
  }
  return source.databases ?? [endpoint.database];
}

export async function* logicalBackup(
  source: PostgresSource,
  options: BackupOptions,
): AsyncGenerator<ArtifactStream, BackupResult, void> {
  const endpoint = endpointOf(source);
  const client = await connect(endpoint);
  let roles: StatItem[];
  let names: string[];
  let major: number;
  let version: string;
  let superuser: boolean;
  const databases: DumpedDatabase[] = [];
  try {
    major = await serverMajor(client);
    version = (await client.query<{ v: string }>('SELECT version() AS v')).rows[0]!.v.split(' on ')[0]!;
    superuser =
      (await client.query<{ s: boolean }>('SELECT rolsuper AS s FROM pg_roles WHERE rolname = current_user'))
        .rows[0]?.s ?? false;
    roles = await roleItems(client);
    names = await chosenDatabases(client, source, endpoint);
    for (const name of names) {
      const row = await client.query<{ encoding: string; collate: string; ctype: string; owner: string }>(
        `SELECT pg_encoding_to_char(encoding) AS encoding, datcollate AS collate, datctype AS ctype,
                pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = $1`,
        [name],
      );
      if (row.rows.length === 0) {
        throw classifyClientError(new Error(`database "${name}" does not exist`), endpoint);
      }
      databases.push({ name, artifact: artifactOfDatabase(name), ...row.rows[0]!, extensions: [] });
    }
  } catch (error) {
    throw classifyClientError(error, endpoint);
  } finally {
    await client.end().catch(() => undefined);
  }

  const dumpall = await toolPath('pg_dumpall', source, major);
  // Without superuser, pg_authid (password hashes) is unreadable: roles are dumped without passwords.
  const globalsArgs = ['--globals-only', ...(superuser ? [] : ['--no-role-passwords'])];
  options.log?.(`dumping globals (roles, tablespaces)`);
  yield {
    name: 'globals.sql',
    source: await toolOutputSource(dumpall, globalsArgs, {
      env: toolEnvironment(endpoint),
      signal: options.signal,
      describe: describeToolFailure('pg_dumpall --globals-only', endpoint),
    }),
  };

  const pgDump = await toolPath('pg_dump', source, major);
  const items: StatItem[] = [...roles];
  const fingerprints: Record<string, string> = {};
  const facts: Record<string, unknown> = { serverVersion: version, databases: {} };
  for (const database of databases) {
    const databaseEndpoint = { ...endpoint, database: database.name };
    const session = await connect(databaseEndpoint);
    try {
      await session.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const snapshot = (await session.query<{ id: string }>('SELECT pg_export_snapshot() AS id')).rows[0]!.id;
      let stats: DatabaseStats;
      try {
        stats = await databaseStats(session, database.name, source.exactRowLimit);
      } catch (error) {
        throw classifyClientError(error, databaseEndpoint);
      }
      database.extensions = stats.extensions;
      items.push(...stats.items);
      fingerprints[`${database.name}/schema`] = stats.fingerprint;
      (facts.databases as Record<string, unknown>)[database.name] = {
        sizeBytes: stats.sizeBytes,
        extensions: stats.extensions.map((extension) => `${extension.name} ${extension.version}`),
      };
      options.log?.(`dumping database ${database.name}`);
      // --create records the database's own properties in the archive; restore creates the database
      // itself (possibly under another name), so pg_restore runs without -C.
      yield {
        name: database.artifact,
        source: await toolOutputSource(
          pgDump,
          [
            '--format=custom',
            '--compress=0',
            '--create',
            `--snapshot=${snapshot}`,
            '--no-sync',
            database.name,
          ],
          {
            env: toolEnvironment(databaseEndpoint),
            signal: options.signal,
            describe: describeToolFailure(`pg_dump ${database.name}`, databaseEndpoint),
          },
        ),
      };
      await session.query('COMMIT');
    } finally {
      await session.end().catch(() => undefined);
    }
  }
  const metadata: LogicalMetadata = {
    kind: 'logical',
    serverVersion: version,
    serverMajor: major,
    globals: 'globals.sql',
    databases,
  };
  return {
    stats: { items, fingerprints, facts, openPrefixes: ['role/'] },
    metadata: metadata as unknown as Record<string, unknown>,
  };
}
