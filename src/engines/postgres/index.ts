// The PostgreSQL engine: logical (pg_dump) and physical (pg_basebackup + WAL archive) backups, logical,
// physical and point-in-time restores, and stats (docs/engines/postgres.md).
//
// Terms:
//   metadata   { logical?: LogicalMetadata, physical?: PhysicalMetadata }: which kinds the snapshot holds
//              (mode "both" holds the two).
//   method     a restore is physical when a recovery target is asked for (PITR) or the snapshot holds no
//              logical dump; logical otherwise.
import type { Readable } from 'node:stream';

import { LifeboatError } from '../../errors.js';
import { runToolWithInput } from '../../util/process.js';
import type {
  ArtifactSource,
  ArtifactStream,
  BackupOptions,
  BackupResult,
  Engine,
  ProbeResult,
  RestoreOptions,
  RestoreResult,
  Stats,
} from '../engine.js';
import type { PostgresSource, PostgresTarget } from './config.js';
import { endpointOf, serverMajor, withClient } from './connection.js';
import { type LogicalMetadata, logicalBackup } from './logical.js';
import { logicalRestore, targetDatabaseName } from './logical-restore.js';
import { type PhysicalMetadata, physicalBackup } from './physical.js';
import { type PhysicalRestoreOptions, physicalRestore, stopRestoredServer } from './physical-restore.js';
import { databaseStats, roleItems } from './stats.js';

export interface PostgresMetadata {
  logical?: LogicalMetadata;
  physical?: PhysicalMetadata;
}

export { describeTarget, recoverySettings } from './physical-restore.js';
export type { RecoveryTarget } from '../engine.js';
export type { PhysicalMetadata, LogicalMetadata, PhysicalRestoreOptions };
export * as walNames from './wal-names.js';

async function probe(source: PostgresSource): Promise<ProbeResult> {
  return withClient(endpointOf(source), async (client) => {
    const version = (await client.query<{ v: string }>('SELECT version() AS v')).rows[0]!.v.split(' on ')[0]!;
    const databases = await client.query<{ name: string; size: string }>(
      `SELECT datname AS name, pg_database_size(datname) AS size FROM pg_database WHERE NOT datistemplate AND datallowconn ORDER BY 1`,
    );
    const settings = await client.query<{ name: string; setting: string }>(
      `SELECT name, setting FROM pg_settings WHERE name IN ('archive_mode', 'wal_level', 'archive_command')`,
    );
    return {
      version,
      sizeBytes: databases.rows.reduce((sum, row) => sum + Number(row.size), 0),
      details: {
        major: await serverMajor(client),
        databases: databases.rows.map((row) => row.name),
        ...Object.fromEntries(settings.rows.map((row) => [row.name, row.setting])),
      },
    };
  });
}

async function* backup(
  source: PostgresSource,
  options: BackupOptions,
): AsyncGenerator<ArtifactStream, BackupResult, void> {
  const metadata: PostgresMetadata = {};
  let stats: Stats = { items: [], fingerprints: {}, facts: {} };
  if (source.mode === 'logical' || source.mode === 'both') {
    const result = yield* logicalBackup(source, options);
    metadata.logical = result.metadata as unknown as LogicalMetadata;
    stats = result.stats;
  }
  if (source.mode === 'physical' || source.mode === 'both') {
    const result = yield* physicalBackup(source, options);
    metadata.physical = result.metadata as unknown as PhysicalMetadata;
    if (source.mode === 'physical') stats = result.stats;
  }
  return { stats, metadata: metadata as Record<string, unknown> };
}

/** Stats of a live source, or of a target holding a restored snapshot (keys as at backup time). */
async function stats(
  config: PostgresSource | PostgresTarget,
  metadata?: Record<string, unknown>,
): Promise<Stats> {
  // A physical target's restored server listens on its `port` (as the restore started it), which may
  // differ from the URL's: counting on the URL's port could read the live source instead.
  const base = endpointOf(config);
  const endpoint = 'port' in config && config.port !== undefined ? { ...base, port: config.port } : base;
  const exactRowLimit = 'exactRowLimit' in config ? config.exactRowLimit : 2_000_000;
  const { logical, physical } = (metadata ?? {}) as PostgresMetadata;
  let pairs: Array<{ label: string; database: string }>;
  if (physical && !logical) {
    // A whole cluster: every database, under its own name.
    const names = await withClient(endpoint, async (client) =>
      (
        await client.query<{ name: string }>(
          `SELECT datname AS name FROM pg_database WHERE NOT datistemplate AND datallowconn ORDER BY 1`,
        )
      ).rows.map((row) => row.name),
    );
    pairs = names.map((name) => ({ label: name, database: name }));
  } else if (logical) {
    pairs = logical.databases.map((database) => ({
      label: database.name,
      database: 'engine' in config ? database.name : targetDatabaseName(config, logical, database.name),
    }));
  } else if ('engine' in config && config.databases !== undefined && config.databases !== 'all') {
    pairs = config.databases.map((name) => ({ label: name, database: name }));
  } else {
    pairs = [{ label: endpoint.database, database: endpoint.database }];
  }
  const result: Stats = { items: [], fingerprints: {}, facts: { databases: {} }, openPrefixes: ['role/'] };
  await withClient(endpoint, async (client) => {
    result.items.push(...(await roleItems(client)));
  });
  for (const pair of pairs) {
    await withClient({ ...endpoint, database: pair.database }, async (client) => {
      const counted = await databaseStats(client, pair.label, exactRowLimit);
      result.items.push(...counted.items);
      result.fingerprints[`${pair.label}/schema`] = counted.fingerprint;
      (result.facts.databases as Record<string, unknown>)[pair.label] = {
        database: pair.database,
        sizeBytes: counted.sizeBytes,
        extensions: counted.extensions.map((extension) => `${extension.name} ${extension.version}`),
      };
    });
  }
  return result;
}

async function restore(
  target: PostgresTarget,
  artifacts: ArtifactSource,
  metadata: Record<string, unknown>,
  options: RestoreOptions,
) {
  const { logical, physical } = metadata as PostgresMetadata;
  if (options.pointInTime) {
    if (!physical) {
      throw new LifeboatError(
        'LB_USAGE',
        'this snapshot holds no base backup (mode logical): point-in-time restore needs mode physical or both',
      );
    }
    return physicalRestore(target, artifacts, physical, options, options.pointInTime);
  }
  if (!logical) {
    throw new LifeboatError(
      'LB_USAGE',
      'this snapshot holds a base backup only: restore it with a recovery target (--at TIME or --at latest) into a data directory',
    );
  }
  return logicalRestore(target, artifacts, logical, options);
}

/** pg_restore --list: the archive's table of contents must be readable. */
async function verifyArtifact(name: string, stream: Readable): Promise<string> {
  if (!name.endsWith('.dump')) {
    stream.resume();
    return 'not a pg_dump archive: nothing to verify';
  }
  const listing = await runToolWithInput('pg_restore', ['--list'], stream, {
    describe: (exit) =>
      new LifeboatError('LB_ENGINE_FAILED', `pg_restore --list refused ${name}: ${exit.stderr}`),
  });
  const entries = listing.split('\n').filter((line) => /^\d+;/.test(line)).length;
  return `pg_restore --list: ${entries} entries`;
}

async function cleanup(target: PostgresTarget, result: RestoreResult): Promise<void> {
  const details = result.details as { started?: boolean; dataDirectory?: string; binDirectory?: string };
  if (details.started && details.dataDirectory && details.binDirectory) {
    await stopRestoredServer(details.dataDirectory, details.binDirectory);
  }
  void target;
}

export const postgresEngine: Engine<PostgresSource, PostgresTarget> = {
  name: 'postgres',
  probe,
  backup,
  stats,
  restore,
  verifyArtifact,
  cleanup,
};
