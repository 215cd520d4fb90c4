// Physical and point-in-time restores: base.tar into an empty data directory, recovery settings written,
// and optionally the server started and followed until recovery ends.
//
// Terms:
//   recovery target  latest (replay the whole archive), immediate (stop at consistency: the base backup
//                    itself), or a time, LSN, transaction id or named restore point
//                    (recovery_target_time/_lsn/_xid/_name). recovery_target_action = promote.
//   restore_command  given by the caller (lifeboat wal-fetch with the config); PostgreSQL runs it for
//                    each WAL file it needs. A file missing from the archive ends recovery.
//   owner            the data directory belongs to the user that runs the server: the owner of the
//                    directory (or its parent); when that is root, the "postgres" user.
//   recovered point  what the server reports after promotion: the last replayed LSN, the time of the
//                    last replayed transaction, and the new timeline; plus the server log's line saying
//                    where recovery stopped.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, stat, writeFile, chmod } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

import prettyBytes from 'pretty-bytes';

import { LifeboatError } from '../../errors.js';
import { runTool, shellQuote } from '../../util/process.js';
import type {
  ArtifactSource,
  PointInTimeOptions,
  RecoveryTarget,
  RestoreOptions,
  RestoreResult,
} from '../engine.js';
import type { PostgresTarget } from './config.js';
import { endpointOf, withClient } from './connection.js';
import { extractBaseTar } from './extract.js';
import type { PhysicalMetadata } from './physical.js';
import { prefetchingCommand, prepareSpool, runPrefetch, spoolOf } from './prefetch.js';

export type PhysicalRestoreOptions = PointInTimeOptions;

const execFileAsync = promisify(execFile);

async function isEmptyDirectory(path: string): Promise<boolean | undefined> {
  try {
    return (await readdir(path)).length === 0;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

async function runningPostmaster(dataDirectory: string): Promise<number | undefined> {
  try {
    const pid = Number((await readFile(join(dataDirectory, 'postmaster.pid'), 'utf8')).split('\n')[0]);
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

/** uid/gid the restored directory and server belong to. */
async function ownerOf(dataDirectory: string): Promise<{ uid: number; gid: number }> {
  let info;
  try {
    info = await stat(dataDirectory);
  } catch {
    info = await stat(dirname(dataDirectory));
  }
  if (info.uid !== 0 || process.getuid?.() !== 0) return { uid: info.uid, gid: info.gid };
  const uid = Number((await execFileAsync('id', ['-u', 'postgres'])).stdout.trim());
  const gid = Number((await execFileAsync('id', ['-g', 'postgres'])).stdout.trim());
  return { uid, gid };
}

/** Switching user is only possible (and needed) as root. */
const asOwner = (owner: { uid: number; gid: number }) =>
  process.getuid?.() === 0 ? { uid: owner.uid, gid: owner.gid } : {};

/**
 * A string value as postgresql.conf reads it: in single quotes, a quote doubled, and a backslash doubled
 * (the server's parser reads backslash escapes such as \n and \'), so the value comes back as written.
 */
const quote = (value: string): string => `'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;

/** The server log of a restore that starts the server, in the data directory. */
const RECOVERY_LOG = 'lifeboat-recovery.log';

export function recoverySettings(
  target: RecoveryTarget,
  restoreCommand: string,
  keepArchiving: boolean,
): string {
  const lines = [
    '',
    `# Written by lifeboat restore at ${new Date().toISOString()}`,
    `restore_command = ${quote(restoreCommand)}`,
    `recovery_target_timeline = 'latest'`,
  ];
  if (target.kind === 'immediate') lines.push(`recovery_target = 'immediate'`);
  // PostgreSQL's parser wants "2026-11-21 14:30:00.123+00", not the ISO "T…Z" form.
  if (target.kind === 'time')
    lines.push(`recovery_target_time = ${quote(target.value.replace('T', ' ').replace(/Z$/, '+00'))}`);
  if (target.kind === 'lsn') lines.push(`recovery_target_lsn = ${quote(target.value)}`);
  if (target.kind === 'xid') lines.push(`recovery_target_xid = ${quote(target.value)}`);
  if (target.kind === 'name') lines.push(`recovery_target_name = ${quote(target.value)}`);
  if (target.kind !== 'latest') lines.push(`recovery_target_action = 'promote'`);
  if (!keepArchiving) lines.push(`archive_mode = 'off'`);
  return `${lines.join('\n')}\n`;
}

const RECOVERY_ONLY = /^\s*(restore_command|recovery_target[a-z_]*)\s*=/;
const LIFEBOAT_MARK = /^# Written by lifeboat restore/;

/**
 * postgresql.auto.conf with the recovery settings of `settings` in place of earlier ones. A base
 * backup copies the file, so it holds whatever an earlier restore wrote: a recovery_target_time left
 * there would stop the next recovery at that time, and two targets make the server refuse to start.
 * Every restore_command and recovery_target* line goes (they matter only during recovery), and so does
 * an archive_mode written in an earlier lifeboat block; the user's other settings stay.
 */
export function withRecoverySettings(existing: string, settings: string): string {
  const kept: string[] = [];
  let inOurBlock = false;
  for (const line of existing.split('\n')) {
    if (LIFEBOAT_MARK.test(line)) {
      inOurBlock = true;
      continue;
    }
    if (line.trim() === '') inOurBlock = false;
    if (RECOVERY_ONLY.test(line)) continue;
    if (inOurBlock && /^\s*archive_mode\s*=/.test(line)) continue;
    if (line.trim() === '' && kept.length > 0 && kept[kept.length - 1]!.trim() === '') continue;
    kept.push(line);
  }
  while (kept.length > 0 && kept[kept.length - 1]!.trim() === '') kept.pop();
  return `${kept.length > 0 ? `${kept.join('\n')}\n` : ''}${settings}`;
}

export async function physicalRestore(
  target: PostgresTarget,
  artifacts: ArtifactSource,
  metadata: PhysicalMetadata,
  options: RestoreOptions,
  physical: PhysicalRestoreOptions,
): Promise<RestoreResult> {
  const actions: string[] = [];
  const log = (line: string) => {
    actions.push(line);
    options.log?.(line);
  };
  const dataDirectory = target.dataDirectory;
  if (dataDirectory === undefined) {
    throw new LifeboatError(
      'LB_USAGE',
      "a physical restore needs the target's dataDirectory (an empty directory)",
    );
  }
  const binDirectory = target.binDirectory ?? `/usr/lib/postgresql/${metadata.serverMajor}/bin`;
  try {
    await stat(join(binDirectory, 'postgres'));
  } catch {
    throw new LifeboatError(
      'LB_RESTORE_PRECONDITION',
      `the backup is a PostgreSQL ${metadata.serverMajor} data directory; no postgres binary in ${binDirectory} (install PostgreSQL ${metadata.serverMajor} or set binDirectory)`,
    );
  }
  await checkExtensions(binDirectory, metadata);
  const empty = await isEmptyDirectory(dataDirectory);
  if (empty === false) {
    if (!options.force) {
      throw new LifeboatError(
        'LB_TARGET_NOT_EMPTY',
        `${dataDirectory} is not empty: restore into an empty directory, or add --force to replace its contents (nothing was changed)`,
      );
    }
    const pid = await runningPostmaster(dataDirectory);
    if (pid !== undefined) {
      throw new LifeboatError(
        'LB_RESTORE_PRECONDITION',
        `a server (pid ${pid}) is running on ${dataDirectory}: stop it first (nothing was changed)`,
      );
    }
  }
  const owner = await ownerOf(dataDirectory);
  if (empty === false) {
    for (const entry of await readdir(dataDirectory))
      await rm(join(dataDirectory, entry), { recursive: true, force: true });
    log(`emptied ${dataDirectory} (--force)`);
  }
  await mkdir(dataDirectory, { recursive: true, mode: 0o700 });
  // Borrowed chunks where the caller has them: the extraction writes each out before asking for the next.
  const archive = artifacts.openBorrowed?.(metadata.artifact) ?? artifacts.open(metadata.artifact);
  const extracted = await extractBaseTar(archive, dataDirectory, options.signal);
  log(
    `extracted base backup (${metadata.startSegment}, ${metadata.serverVersion}) into ${dataDirectory}: ${extracted.files} files, ${prettyBytes(extracted.bytes)}`,
  );
  await rm(join(dataDirectory, 'standby.signal'), { force: true });
  const prefetching = physical.start && physical.prefetch !== undefined;
  const spool = spoolOf(dataDirectory);
  if (prefetching) await prepareSpool(spool, owner);
  const autoConf = join(dataDirectory, 'postgresql.auto.conf');
  await writeFile(
    autoConf,
    withRecoverySettings(
      await readFile(autoConf, 'utf8').catch(() => ''),
      recoverySettings(
        physical.recoveryTarget,
        prefetching ? prefetchingCommand(spool, physical.restoreCommand) : physical.restoreCommand,
        physical.keepArchiving,
      ),
    ),
  );
  // The base backup may carry the log of an earlier restore (the server kept logging there): its
  // "recovery stopping" and "shut down" lines must not be read as this recovery's.
  await rm(join(dataDirectory, RECOVERY_LOG), { force: true });
  await writeFile(join(dataDirectory, 'recovery.signal'), '');
  await chmod(dataDirectory, 0o700);
  if (process.getuid?.() === 0)
    await runTool('chown', ['-R', `${owner.uid}:${owner.gid}`, dataDirectory], {
      describe: (exit) => new LifeboatError('LB_ENGINE_FAILED', `chown: ${exit.stderr}`),
    });
  log(`wrote recovery settings (target: ${describeTarget(physical.recoveryTarget)}) and recovery.signal`);
  if (!physical.start) {
    return { actions, details: { dataDirectory, recoveryTarget: physical.recoveryTarget, started: false } };
  }
  let recovered: Record<string, unknown>;
  let recoveryEnded = false;
  const prefetched = prefetching
    ? runPrefetch(
        spool,
        physical.prefetch!,
        metadata.startSegment,
        metadata.segmentSize,
        () => recoveryEnded,
        log,
        { owner, toEnd: physical.recoveryTarget.kind === 'latest' },
      )
    : Promise.resolve(0);
  try {
    recovered = await startAndRecover(target, dataDirectory, binDirectory, owner, physical, log);
  } catch (error) {
    // A scratch target's server is not left running (holding its port) after a failed recovery; a
    // source's is left as it is, for the operator to look at.
    if (physical.stopOnFailure) {
      await stopRestoredServer(dataDirectory, binDirectory).then(
        () => log('stopped the restored server after the failed recovery'),
        (stopError: unknown) =>
          log(
            `could not stop the restored server after the failed recovery: ${(stopError as Error).message}`,
          ),
      );
    }
    throw error;
  } finally {
    recoveryEnded = true;
    const count = await prefetched;
    if (prefetching) {
      await rm(spool, { recursive: true, force: true });
      log(`prefetched ${count} WAL file(s) ahead of the server`);
    }
  }
  return {
    actions,
    details: {
      dataDirectory,
      binDirectory,
      recoveryTarget: physical.recoveryTarget,
      started: true,
      ...recovered,
    },
  };
}

/**
 * The installation's share directory (where extension/<name>.control files live): pg_config's answer
 * when the bin directory has one, else the usual layouts beside it (a source build's <prefix>/share,
 * Debian's /usr/share/postgresql/<major>). Undefined when none holds plpgsql's control file.
 */
async function shareDirectoryOf(binDirectory: string, major: number): Promise<string | undefined> {
  const candidates: string[] = [];
  try {
    const { stdout } = await execFileAsync(join(binDirectory, 'pg_config'), ['--sharedir'], {
      timeout: 10_000,
    });
    candidates.push(stdout.trim());
  } catch {
    // no pg_config here (it comes with the development package on some systems)
  }
  const prefix = dirname(binDirectory);
  candidates.push(
    join(prefix, 'share', 'postgresql'),
    join(prefix, 'share'),
    // Debian: /usr/lib/postgresql/<major>/bin → /usr/share/postgresql/<major>
    join(dirname(dirname(prefix)), 'share', 'postgresql', String(major)),
  );
  return candidates.find((candidate) => existsSync(join(candidate, 'extension', 'plpgsql.control')));
}

/** Refuses, before anything is touched, a restore whose databases use extensions the target lacks. */
export async function checkExtensions(binDirectory: string, metadata: PhysicalMetadata): Promise<void> {
  const wanted = metadata.extensions ?? [];
  if (wanted.length === 0) return;
  const share = await shareDirectoryOf(binDirectory, metadata.serverMajor);
  if (share === undefined) return; // an unusual layout: the server itself will say what it lacks
  const missing: string[] = [];
  for (const extension of wanted) {
    if (!existsSync(join(share, 'extension', `${extension.name}.control`)))
      missing.push(`${extension.name} ${extension.version} (database ${extension.database})`);
  }
  if (missing.length > 0)
    throw new LifeboatError(
      'LB_RESTORE_PRECONDITION',
      `the PostgreSQL in ${binDirectory} does not have these extensions installed: ${missing.join(', ')}; install them there first (nothing was changed)`,
    );
}

export function describeTarget(target: RecoveryTarget): string {
  return target.kind === 'latest' || target.kind === 'immediate'
    ? target.kind
    : `${target.kind} ${target.value}`;
}

async function startAndRecover(
  target: PostgresTarget,
  dataDirectory: string,
  binDirectory: string,
  owner: { uid: number; gid: number },
  physical: PhysicalRestoreOptions,
  log: (line: string) => void,
): Promise<Record<string, unknown>> {
  const endpoint = endpointOf(target, 'postgres');
  const port = target.port ?? endpoint.port;
  const logFile = join(dataDirectory, RECOVERY_LOG);
  const serverOptions = `-p ${port} -c listen_addresses=${endpoint.host.startsWith('/') ? "''" : endpoint.host} -c unix_socket_directories=${shellQuote(dataDirectory)} -c logging_collector=off`;
  await runTool(
    join(binDirectory, 'pg_ctl'),
    ['start', '-D', dataDirectory, '-l', logFile, '-W', '-o', serverOptions],
    {
      // As root, the server runs as the directory's owner; otherwise as ourselves (asking for the
      // directory's group, which we may not be in, failed the start with "spawn EPERM").
      ...asOwner(owner),
      env: { ...(physical.env ?? process.env) },
      describe: (exit) => new LifeboatError('LB_ENGINE_FAILED', `pg_ctl start failed: ${exit.stderr}`),
    },
  );
  log(`started PostgreSQL on port ${port}; waiting for recovery to end`);
  const startedAt = Date.now();
  const deadline = startedAt + (physical.timeoutMs ?? 3_600_000);
  const serverLog = async () => (await readFile(logFile, 'utf8').catch(() => '')).slice(-4000);
  const tail = (text: string) => text.split('\n').slice(-12).join('\n');
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    const text = await serverLog();
    if (/recovery ended before configured recovery target was reached/.test(text)) {
      throw new LifeboatError(
        'LB_ENGINE_FAILED',
        `the archive ends before the recovery target${physical.recoveryTarget.kind === 'xid' || physical.recoveryTarget.kind === 'name' ? `, or the ${physical.recoveryTarget.kind} lies before the end of the base backup it started from (a restore by ${physical.recoveryTarget.kind} starts from the newest base backup unless given a recovery point's ID: lifeboat list, then lifeboat restore ID --at ...)` : ''}: the server stopped; its log (${logFile}) ends with:\n${tail(text)}`,
      );
    }
    if ((await runningPostmaster(dataDirectory)) === undefined) {
      // Not (or no longer) running: give a slow start a few seconds, a FATAL none.
      if (/FATAL|PANIC|database system is shut down/.test(text) || Date.now() - startedAt > 15_000) {
        throw new LifeboatError(
          'LB_ENGINE_FAILED',
          `the restored server stopped during recovery; its log (${logFile}) ends with:\n${tail(text)}`,
        );
      }
      continue;
    }
    const inRecovery = await withClient(
      { ...endpoint, port },
      async (client) => (await client.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0]!.r,
    ).catch(() => undefined);
    if (inRecovery === false) break;
    if (Date.now() > deadline)
      throw new LifeboatError(
        'LB_ENGINE_FAILED',
        'recovery did not end in time; the server is still running',
      );
  }
  const point = await withClient({ ...endpoint, port }, async (client) => {
    const row = (
      await client.query<{ lsn: string | null; time: Date | null; timeline: number }>(
        `SELECT pg_last_wal_replay_lsn()::text AS lsn, pg_last_xact_replay_timestamp() AS time,
                (SELECT timeline_id FROM pg_control_checkpoint()) AS timeline`,
      )
    ).rows[0]!;
    return row;
  });
  const text = await readFile(logFile, 'utf8').catch(() => '');
  const stopLine = /recovery stopping [^\n]*/.exec(text)?.[0];
  const lastCompleted = /last completed transaction was at log time ([^\n]+)/.exec(text)?.[1];
  const recoveredTo = {
    lsn: point.lsn,
    lastTransactionTime: point.time?.toISOString() ?? lastCompleted,
    timeline: point.timeline,
    stop: stopLine,
    port,
  };
  log(
    `recovery ended at ${point.lsn ?? '?'} (last transaction ${recoveredTo.lastTransactionTime ?? 'none replayed'}), timeline ${point.timeline}`,
  );
  log(
    `the server runs as lifeboat started it (port ${port}, sockets in ${dataDirectory}, its log in ${logFile}, no logging collector): once checked, stop it (pg_ctl stop -D ${dataDirectory}) and start it under your service manager`,
  );
  return { recoveredTo };
}

/** Stops a server startAndRecover started (fast shutdown), as the directory's owner. */
export async function stopRestoredServer(dataDirectory: string, binDirectory: string): Promise<void> {
  if ((await runningPostmaster(dataDirectory)) === undefined) return;
  const owner = await ownerOf(dataDirectory);
  await runTool(join(binDirectory, 'pg_ctl'), ['stop', '-D', dataDirectory, '-m', 'fast', '-w'], {
    ...asOwner(owner),
    describe: (exit) => new LifeboatError('LB_ENGINE_FAILED', `pg_ctl stop failed: ${exit.stderr}`),
  });
}
