// Logical restores: globals (missing roles only), then each database with pg_restore.
//
// Terms:
//   plan          for each dumped database, the target database name (same name, the target URL's
//                 database when one database was dumped, or databaseMap) and whether it exists and has
//                 tables. Built and checked before anything is modified.
//   preconditions the target's major version is not older than the dump's; every extension the dump
//                 uses is available on the target (pg_available_extensions); a target database holding
//                 relations needs --force (then: connections terminated, database dropped and created).
//   selective     `only.schemas` / `only.tables` into the existing database. A table the target has
//                 needs --force and then gets its rows replaced in one transaction (definition, indexes
//                 and dependent views kept); a missing one is created. Schemas with --force use
//                 pg_restore --clean --if-exists.
//   spooling      pg_restore -j N needs a seekable archive, so with jobs > 1 the dump is first written
//                 to a temporary file (the one place this engine stages data); jobs = 1 streams.
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import type pg from 'pg';

import { LifeboatError } from '../../errors.js';
import { type ToolExit, runTool, runToolWithInput, toolOutput } from '../../util/process.js';
import type { ArtifactSource, RestoreOptions, RestoreResult } from '../engine.js';
import type { PostgresTarget } from './config.js';
import {
  type Endpoint,
  describeToolFailure,
  endpointOf,
  quoteIdentifier,
  serverMajor,
  toolEnvironment,
  toolPath,
  withClient,
} from './connection.js';
import type { DumpedDatabase, LogicalMetadata } from './logical.js';

interface PlannedDatabase {
  dumped: DumpedDatabase;
  target: string;
  exists: boolean;
  relations: number;
  existingTables: string[];
}

/** The target database name each dumped database goes to. */
export function targetDatabaseName(target: PostgresTarget, metadata: LogicalMetadata, name: string): string {
  if (target.databaseMap?.[name]) return target.databaseMap[name];
  const urlDatabase = decodeURIComponent(new URL(target.url).pathname.replace(/^\//, ''));
  if (metadata.databases.length === 1 && urlDatabase) return urlDatabase;
  return name;
}

async function planDatabases(
  client: pg.Client,
  endpoint: Endpoint,
  target: PostgresTarget,
  metadata: LogicalMetadata,
  options: RestoreOptions,
): Promise<PlannedDatabase[]> {
  const chosen = metadata.databases.filter(
    (database) => !options.only?.databases || options.only.databases.includes(database.name),
  );
  if (options.only?.databases) {
    const unknown = options.only.databases.filter((name) => !metadata.databases.some((d) => d.name === name));
    if (unknown.length > 0) {
      throw new LifeboatError(
        'LB_USAGE',
        `the snapshot has no database ${unknown.join(', ')} (it has ${metadata.databases.map((d) => d.name).join(', ')})`,
      );
    }
  }
  const plans: PlannedDatabase[] = [];
  for (const dumped of chosen) {
    const name = targetDatabaseName(target, metadata, dumped.name);
    const exists =
      (await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rows.length > 0;
    let relations = 0;
    let existingTables: string[] = [];
    if (exists) {
      await withClient({ ...endpoint, database: name }, async (session) => {
        const counted = await session.query<{ n: string }>(
          `SELECT count(*) AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
              AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'`,
        );
        relations = Number(counted.rows[0]!.n);
        const tables = await session.query<{ name: string }>(
          `SELECT n.nspname || '.' || c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p')`,
        );
        existingTables = tables.rows.map((row) => row.name);
      });
    }
    plans.push({ dumped, target: name, exists, relations, existingTables });
  }
  return plans;
}

function selective(options: RestoreOptions): boolean {
  return (options.only?.schemas?.length ?? 0) > 0 || (options.only?.tables?.length ?? 0) > 0;
}

/** Checks everything that can be checked before modifying the target; throws without touching it. */
async function checkPreconditions(
  client: pg.Client,
  metadata: LogicalMetadata,
  plans: PlannedDatabase[],
  options: RestoreOptions,
): Promise<number> {
  const major = await serverMajor(client);
  if (major < metadata.serverMajor) {
    throw new LifeboatError(
      'LB_RESTORE_PRECONDITION',
      `the backup comes from PostgreSQL ${metadata.serverMajor}; the target runs ${major} (restore into ${metadata.serverMajor} or newer)`,
    );
  }
  const available = new Set(
    (await client.query<{ name: string }>('SELECT name FROM pg_available_extensions')).rows.map(
      (row) => row.name,
    ),
  );
  const missing = plans.flatMap((plan) =>
    plan.dumped.extensions
      .filter((extension) => !available.has(extension.name))
      .map((extension) => `${extension.name} ${extension.version} (database ${plan.dumped.name})`),
  );
  if (missing.length > 0) {
    throw new LifeboatError(
      'LB_RESTORE_PRECONDITION',
      `the target server does not have these extensions available: ${missing.join(', ')}; install them on the target first (nothing was changed)`,
    );
  }
  if (!options.force) {
    for (const plan of plans) {
      if (selective(options)) {
        const clashes = (options.only?.tables ?? []).filter((table) =>
          plan.existingTables.includes(table.includes('.') ? table : `public.${table}`),
        );
        if (clashes.length > 0) {
          throw new LifeboatError(
            'LB_TARGET_NOT_EMPTY',
            `database ${plan.target} already has table(s) ${clashes.join(', ')}: add --force to replace them (nothing was changed)`,
          );
        }
      } else if (plan.relations > 0) {
        throw new LifeboatError(
          'LB_TARGET_NOT_EMPTY',
          `database ${plan.target} exists and holds ${plan.relations} relation(s): restore into another target, or add --force to drop and replace it (nothing was changed)`,
        );
      }
    }
  }
  return major;
}

/** Runs the globals script, skipping roles the target already has (their passwords stay as they are). */
async function restoreGlobals(
  endpoint: Endpoint,
  target: PostgresTarget,
  major: number,
  artifacts: ArtifactSource,
  metadata: LogicalMetadata,
  existingRoles: Set<string>,
): Promise<string[]> {
  const chunks: Buffer[] = [];
  for await (const chunk of artifacts.open(metadata.globals)) chunks.push(chunk as Buffer);
  const script = Buffer.concat(chunks).toString('utf8');
  const roleLine = /^(?:CREATE|ALTER) ROLE ("(?:[^"]|"")+"|[^\s;]+)[\s;]/;
  const kept = script.split('\n').filter((line) => {
    const match = roleLine.exec(line);
    if (!match) return true;
    const name = match[1]!.startsWith('"') ? match[1]!.slice(1, -1).replace(/""/g, '"') : match[1]!;
    return !existingRoles.has(name);
  });
  const psql = await toolPath('psql', target, major);
  // ON_ERROR_STOP off: a tablespace whose directory does not exist on this host must not stop the roles.
  await runTool(psql, ['-X', '-q', '-v', 'ON_ERROR_STOP=0', '-f', '-'], {
    env: toolEnvironment({ ...endpoint, database: 'postgres' }),
    input: kept.join('\n'),
    describe: describeToolFailure('psql (globals)', endpoint),
  });
  const created = script
    .split('\n')
    .map((line) => /^CREATE ROLE ("(?:[^"]|"")+"|[^\s;]+);/.exec(line)?.[1])
    .filter((name): name is string => name !== undefined)
    .map((name) => (name.startsWith('"') ? name.slice(1, -1).replace(/""/g, '"') : name))
    .filter((name) => !existingRoles.has(name));
  return created;
}

export async function logicalRestore(
  target: PostgresTarget,
  artifacts: ArtifactSource,
  metadata: LogicalMetadata,
  options: RestoreOptions,
): Promise<RestoreResult> {
  const endpoint = endpointOf(target, 'postgres');
  const actions: string[] = [];
  const log = (line: string) => {
    actions.push(line);
    options.log?.(line);
  };
  const { plans, major, roles } = await withClient(endpoint, async (client) => {
    const plans = await planDatabases(client, endpoint, target, metadata, options);
    const major = await checkPreconditions(client, metadata, plans, options);
    const roles = new Set(
      (await client.query<{ n: string }>('SELECT rolname AS n FROM pg_roles')).rows.map((r) => r.n),
    );
    return { plans, major, roles };
  });

  if (!selective(options)) {
    const created = await restoreGlobals(endpoint, target, major, artifacts, metadata, roles);
    log(created.length > 0 ? `created roles ${created.join(', ')}` : 'roles: all present already');
  }
  const pgRestore = await toolPath('pg_restore', target, major);
  const jobs = options.jobs ?? 1;
  for (const plan of plans) {
    if (!selective(options)) {
      // A database cannot be dropped from a session connected to it: for the one lifeboat connects to
      // (postgres, with `databases: all`), drop and create it from template1.
      const maintenance =
        plan.target === endpoint.database ? { ...endpoint, database: 'template1' } : endpoint;
      await withClient(maintenance, async (client) => {
        const name = quoteIdentifier(plan.target);
        if (plan.exists && (plan.relations > 0 || options.force)) {
          await client.query(
            'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
            [plan.target],
          );
          await client.query(`DROP DATABASE ${name} WITH (FORCE)`);
          log(`dropped database ${plan.target} (--force)`);
          plan.exists = false;
        }
        if (!plan.exists) {
          const owner = roles.has(plan.dumped.owner) || (await roleExists(client, plan.dumped.owner));
          await client.query(
            `CREATE DATABASE ${name} TEMPLATE template0 ENCODING '${plan.dumped.encoding}' LC_COLLATE '${plan.dumped.collate.replace(/'/g, "''")}' LC_CTYPE '${plan.dumped.ctype.replace(/'/g, "''")}'${owner ? ` OWNER ${quoteIdentifier(plan.dumped.owner)}` : ''}`,
          );
          log(`created database ${plan.target}`);
        }
      });
    }
    const describe = describeToolFailure(`pg_restore into ${plan.target}`, {
      ...endpoint,
      database: plan.target,
    });
    const env = toolEnvironment({ ...endpoint, database: plan.target });
    const base = ['--exit-on-error', '--no-password'];
    if (selective(options)) {
      // Selective restores read the archive from a file: pg_restore seeks straight to the parts asked for.
      await withSpooledArchive(artifacts.open(plan.dumped.artifact), async (file) => {
        const schemaArgs = (options.only?.schemas ?? []).flatMap((schema) => ['-n', schema]);
        if (schemaArgs.length > 0) {
          const clean = options.force ? ['--clean', '--if-exists'] : [];
          await runTool(pgRestore, [...base, ...clean, ...schemaArgs, '-d', plan.target, file], {
            env,
            describe,
            signal: options.signal,
          });
          log(`restored schema(s) ${options.only!.schemas!.join(', ')} into ${plan.target}`);
        }
        for (const table of options.only?.tables ?? []) {
          await restoreTable(table, plan, file, {
            pgRestore,
            psql: await toolPath('psql', target, major),
            env,
            describe,
            signal: options.signal,
          });
          log(`restored table ${table} into ${plan.target}`);
        }
      });
    } else if (jobs > 1) {
      await withSpooledArchive(artifacts.open(plan.dumped.artifact), (file) =>
        runTool(pgRestore, [...base, '-d', plan.target, '-j', String(jobs), file], {
          env,
          describe,
          signal: options.signal,
        }),
      );
    } else {
      await runToolWithInput(pgRestore, [...base, '-d', plan.target], artifacts.open(plan.dumped.artifact), {
        env,
        describe,
        signal: options.signal,
      });
    }
    log(`restored ${plan.dumped.name} into ${plan.target}${jobs > 1 ? ` (pg_restore -j ${jobs})` : ''}`);
    // pg_restore leaves planner statistics empty; the restored server needs them (and estimates do).
    await withClient({ ...endpoint, database: plan.target }, (client) => client.query('ANALYZE'));
    log(`analyzed ${plan.target}`);
  }
  return {
    actions,
    details: { databases: Object.fromEntries(plans.map((plan) => [plan.dumped.name, plan.target])) },
  };
}

async function roleExists(client: pg.Client, name: string): Promise<boolean> {
  return (await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [name])).rows.length > 0;
}

/** Writes the archive to a private temporary file for `work`, then removes it. */
async function withSpooledArchive<T>(archive: Readable, work: (file: string) => Promise<T>): Promise<T> {
  const directory = await mkdtemp(join(tmpdir(), 'lifeboat-restore-'));
  try {
    const file = join(directory, 'archive.dump');
    await pipeline(archive, createWriteStream(file, { mode: 0o600 }));
    return await work(file);
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}

/**
 * One table: when the target has it (only with --force, checked before), its rows are replaced in one
 * transaction — TRUNCATE, then the dump's data with triggers disabled — keeping the table's definition,
 * indexes and dependent views (a DROP would fail on them or take them along). When the target lacks
 * it, the table's definition and data are restored.
 */
async function restoreTable(
  table: string,
  plan: PlannedDatabase,
  file: string,
  tools: {
    pgRestore: string;
    psql: string;
    env: NodeJS.ProcessEnv;
    describe: (exit: ToolExit) => Error;
    signal?: AbortSignal;
  },
): Promise<void> {
  const dot = table.indexOf('.');
  const [schema, name] = dot > 0 ? [table.slice(0, dot), table.slice(dot + 1)] : ['public', table];
  const selector = ['-n', schema, '-t', name];
  const exists = plan.existingTables.includes(`${schema}.${name}`);
  if (!exists) {
    await runTool(
      tools.pgRestore,
      ['--exit-on-error', '--no-password', ...selector, '-d', plan.target, file],
      tools,
    );
    return;
  }
  const script = toolOutput(
    tools.pgRestore,
    ['--data-only', '--disable-triggers', ...selector, '-f', '-', file],
    tools,
  );
  await runToolWithInput(
    tools.psql,
    [
      '-X',
      '-q',
      '-v',
      'ON_ERROR_STOP=1',
      '--single-transaction',
      '-c',
      `TRUNCATE ONLY ${quoteIdentifier(schema)}.${quoteIdentifier(name)}`,
      '-f',
      '-',
    ],
    script,
    tools,
  );
}
