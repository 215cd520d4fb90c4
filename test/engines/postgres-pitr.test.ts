// Physical backups, continuous WAL archiving and point-in-time restores against a real PostgreSQL 15
// cluster whose archive_command is `lifeboat wal-push`: a restore to a time between two writes has
// exactly the rows before it; latest has all archived ones; under pgbench load archiving keeps up
// (lag measured and printed), check proves no segment is missing and latest has every committed
// transaction; wal-push is idempotent and refuses conflicts; drills replay the archive; forget keeps
// the WAL the kept base backups need.
import { execFile, execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { dirname, join } from 'node:path';

import type pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { pgQuery } from '../harness/pg.js';
import { findFreePort } from '../harness/ports.js';
import { POSTGRES_BIN_DIRECTORY, startPostgresCluster } from '../harness/postgres-service.js';
import type { PostgresHandle } from '../harness/service-kit.js';
import { BIN, NODE, Workspace, postgresIds } from '../harness/lifeboat.js';
import { pushAheadArchiveCommand } from '../../src/recovery/index.js';

const isRoot = process.getuid?.() === 0;
const asPostgres = (command: string, args: string[]) =>
  isRoot
    ? execFileSync('setpriv', ['--reuid=postgres', '--regid=postgres', '--init-groups', command, ...args])
    : execFileSync(command, args);

describe('postgres physical backups, WAL archiving and point-in-time restore', () => {
  const workspace = new Workspace('pg-pitr');
  // The target's parent belongs to postgres but to group root, as a directory made by root and handed
  // over with a bare `chown postgres` is: the restore (run as postgres) must start the server as
  // itself, not ask for the directory's group ("spawn EPERM" before).
  const restored = workspace.path('targets/restored');
  let server: PostgresHandle;
  let restorePort = 0;

  let config = '';
  const query = <R extends pg.QueryResultRow>(text: string, port = server.port, database = 'app') =>
    pgQuery<R>(server, database, text, port);
  const lifeboat = (args: string[]) => workspace.run(args, { asPostgres: true });
  /** Restores into the drill target's data directory (replacing it) and returns the CLI's result. */
  const restoreAt = async (at: string) => {
    const result = await lifeboat([
      'restore',
      'latest',
      '--at',
      at,
      '--target',
      'main',
      '--yes',
      '--force',
      '--json',
    ]);
    expect(result.code, result.stderr).toBe(0);
    return result;
  };
  const restoredMarks = async () =>
    (await query<{ n: number }>('SELECT n FROM marks ORDER BY n', restorePort)).map((row) => row.n);
  const stopRestored = () => {
    if (existsSync(join(restored, 'postmaster.pid')))
      asPostgres(join(POSTGRES_BIN_DIRECTORY, 'pg_ctl'), ['stop', '-D', restored, '-m', 'fast', '-w']);
  };
  /** Switches to a new segment and waits until the archiver has pushed every complete one. */
  const switchAndDrain = async (): Promise<number> => {
    const [{ segment }] = (await query<{ segment: string }>(
      `SELECT pg_walfile_name(pg_switch_wal()) AS segment`,
    )) as [{ segment: string }];
    const started = Date.now();
    for (;;) {
      const [state] = await query<{ last: string | null }>(
        `SELECT last_archived_wal AS last FROM pg_stat_archiver`,
      );
      if (state?.last && state.last.slice(0, 24) >= segment) return (Date.now() - started) / 1000;
      expect(Date.now() - started).toBeLessThan(120_000);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };

  /** The entry names of a snapshot's base.tar, read back through `lifeboat dump`. */
  const baseTarEntries = (snapshot: string): string[] =>
    execFileSync(
      'sh',
      ['-c', `${NODE} ${BIN} --config ${workspace.configPath} dump ${snapshot} base.tar | tar -t`],
      { maxBuffer: 64 * 1024 * 1024 },
    )
      .toString()
      .split('\n');
  /** A WAL segment's number (16 MiB segments: 0x100 per 4 GiB "log"). */
  const segmentNumber = (name: string) =>
    Number.parseInt(name.slice(8, 16), 16) * 0x100 + Number.parseInt(name.slice(16), 16);
  const slotCount = async () =>
    Number((await query<{ n: string }>('SELECT count(*) AS n FROM pg_replication_slots'))[0]!.n);
  /** archive_command by ALTER SYSTEM (not -c: the command line would win over it), then a reload. */
  const setArchiveCommand = async (command: string) => {
    await query(
      `ALTER SYSTEM SET archive_command = '${command.replaceAll("'", "''")}'`,
      server.port,
      'postgres',
    );
    await query('SELECT pg_reload_conf()', server.port, 'postgres');
    await new Promise((resolve) => setTimeout(resolve, 1000)); // the archiver rereads it on the SIGHUP
  };

  /** A restore to the end of the archive has exactly `committed` pgbench transactions. */
  const expectLatestHas = async (committed: number) => {
    await restoreAt('latest');
    const [restored] = await query<{ n: string }>('SELECT count(*) AS n FROM pgbench_history', restorePort);
    expect(Number(restored!.n)).toBe(committed);
    stopRestored();
  };

  beforeAll(async () => {
    server = await startPostgresCluster({
      settings: {
        wal_level: 'replica',
        archive_mode: 'on',
        max_wal_size: '1GB',
        full_page_writes: 'on', // as in production: WAL volume under load is realistic
      },
    });
    restorePort = await findFreePort();
    mkdirSync(dirname(restored));
    if (isRoot) chownSync(dirname(restored), postgresIds().uid, 0);
    const url = (port: number) => `postgres://${server.user}:${server.password}@${server.host}:${port}/app`;
    workspace.writeConfig(
      (config = `
repository: { url: ${workspace.path('repo')}, password: pitr-test }
sources:
  main:
    engine: postgres
    url: ${url(server.port)}
    mode: physical
    archive: { checkTimeout: 120s }
drills:
  targets:
    main: { url: "${url(restorePort)}", dataDirectory: ${restored}, port: ${restorePort} }
`),
    );
    const init = await lifeboat(['init']);
    expect(init.code, init.stderr).toBe(0);
    await setArchiveCommand(workspace.walPushCommand('main'));
    await query('CREATE DATABASE app', server.port, 'postgres');
    await query('CREATE TABLE marks (n int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())');
  }, 120_000);

  afterEach(() => stopRestored()); // also after a failed test: the next restore needs the directory free
  afterAll(async () => {
    stopRestored();
    await server?.stop();
    workspace.remove();
  });

  let firstBaseBackup = '';

  it('takes a base backup that becomes a recovery point once its WAL is archived', async () => {
    const backup = await lifeboat(['backup', '--json']);
    expect(backup.code, backup.stderr).toBe(0);
    const show = await lifeboat(['show', backup.json<{ id: string }>().id, '--json']);
    const snapshot = show.json<{
      snapshots: Array<{
        id: string;
        artifacts: Array<{ name: string }>;
        metadata: { physical: { startSegment: string; stopSegment: string } };
      }>;
    }>().snapshots[0]!;
    firstBaseBackup = snapshot.id;
    expect(snapshot.artifacts.map((artifact) => artifact.name)).toEqual(['base.tar']);
    expect(snapshot.metadata.physical.startSegment).toMatch(/^[0-9A-F]{24}$/);
    // lifeboat runs on the server's host as postgres: baseBackup auto reads the data directory itself
    // (no backup_manifest, which only pg_basebackup writes). The tar carries the WAL from its start to
    // its end, marked archived: restorable to its end point from the snapshot alone. The temporary
    // slot that kept that WAL on the server is gone, and so is the backup (a second one can start).
    const entries = baseTarEntries(snapshot.id);
    expect(entries).toContain('backup_label');
    expect(entries).toContain('PG_VERSION');
    expect(entries).toContain('global/pg_control');
    expect(entries).toContain(`pg_wal/${snapshot.metadata.physical.startSegment}`);
    expect(entries).toContain(`pg_wal/${snapshot.metadata.physical.stopSegment}`);
    expect(entries).toContain(`pg_wal/archive_status/${snapshot.metadata.physical.stopSegment}.done`);
    expect(entries).not.toContain('backup_manifest');
    expect(entries).not.toContain('postmaster.pid');
    expect(entries.filter((entry) => entry.startsWith('pg_wal/0'))).toHaveLength(
      1 +
        segmentNumber(snapshot.metadata.physical.stopSegment) -
        segmentNumber(snapshot.metadata.physical.startSegment),
    );
    expect(await slotCount()).toBe(0);
    const [{ running }] = (await query<{ running: string }>(
      `SELECT count(*) AS running FROM pg_stat_activity WHERE backend_type = 'client backend' AND application_name = 'lifeboat'`,
    )) as [{ running: string }];
    expect(Number(running)).toBe(0);
    const check = await lifeboat(['check', '--json']);
    expect(check.code, check.stdout + check.stderr).toBe(0);
  }, 180_000);

  const times: string[] = [];

  it('restores to a time between two writes: exactly the rows written before it', async () => {
    for (let n = 1; n <= 6; n++) {
      const [row] = await query<{ at: Date }>(`INSERT INTO marks (n) VALUES (${n}) RETURNING at`);
      times.push(row!.at.toISOString());
      await switchAndDrain(); // each write in its own segment, all archived
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const between = new Date((Date.parse(times[2]!) + Date.parse(times[3]!)) / 2).toISOString();
    const restore = await lifeboat([
      'restore',
      'latest',
      '--at',
      between,
      '--target',
      'main',
      '--yes',
      '--json',
    ]);
    expect(restore.code, restore.stderr).toBe(0);
    const outcome = restore.json<{
      outcomes: Array<{
        method: string;
        result: { details: { recoveredTo: { lastTransactionTime: string; timeline: number } } };
      }>;
    }>().outcomes[0]!;
    expect(outcome.method).toBe('physical');
    // The last replayed commit is row 3's: committed after row 3 was written, before row 4 was.
    const reached = Date.parse(outcome.result.details.recoveredTo.lastTransactionTime);
    expect(reached).toBeGreaterThanOrEqual(Date.parse(times[2]!));
    expect(reached).toBeLessThan(Date.parse(times[3]!));
    expect(await restoredMarks()).toEqual([1, 2, 3]);
    stopRestored();
  }, 300_000);

  it('refuses a non-empty data directory without --force; restores to latest with every archived row', async () => {
    const refused = await lifeboat(['restore', 'latest', '--at', 'latest', '--target', 'main', '--yes']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('LB_TARGET_NOT_EMPTY');
    await restoreAt('latest');
    expect(await restoredMarks()).toEqual([1, 2, 3, 4, 5, 6]);
    stopRestored();
  }, 300_000);

  it('restores to a named restore point and to an LSN', async () => {
    await query(`INSERT INTO marks (n) VALUES (7)`);
    await query(`SELECT pg_create_restore_point('after_7')`);
    await query(`INSERT INTO marks (n) VALUES (8)`);
    const [position] = await query<{ lsn: string }>(`SELECT pg_current_wal_insert_lsn()::text AS lsn`);
    await query(`INSERT INTO marks (n) VALUES (9)`);
    await switchAndDrain();
    await restoreAt('name:after_7');
    expect(await restoredMarks()).toEqual([1, 2, 3, 4, 5, 6, 7]);
    stopRestored();
    await restoreAt(`lsn:${position!.lsn}`);
    expect(await restoredMarks()).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    stopRestored();
  }, 300_000);

  it('keeps up with pgbench flat out; check proves no segment is missing; latest has every committed transaction', async () => {
    const pgbench = join(POSTGRES_BIN_DIRECTORY, 'pgbench');
    const env = { ...process.env, PGPASSWORD: server.password };
    const connection = ['-h', server.host, '-p', String(server.port), '-U', server.user];
    execFileSync(pgbench, [...connection, '-i', '-s', '10', '-q', 'app'], { env, stdio: 'ignore' });
    await switchAndDrain();
    const [start] = await query<{ lsn: string; archived: string }>(
      `SELECT pg_current_wal_lsn()::text AS lsn, archived_count AS archived FROM pg_stat_archiver`,
    );
    const seconds = 30;
    const load = promisify(execFile)(
      pgbench,
      [...connection, '-c', '4', '-j', '2', '-T', String(seconds), '-n', 'app'],
      {
        env,
      },
    ).then((result) => result.stdout);
    let maxLag = 0;
    const samples: number[] = [];
    let done = false;
    void load.finally(() => (done = true));
    while (!done) {
      const [state] = await query<{ current: string; last: string | null }>(
        `SELECT pg_walfile_name(pg_current_wal_lsn()) AS current, last_archived_wal AS last FROM pg_stat_archiver`,
      );
      const segment = (name: string) => parseInt(name.slice(8, 24), 16);
      const lag = state!.last ? segment(state!.current) - segment(state!.last.slice(0, 24)) - 1 : 0;
      samples.push(lag);
      maxLag = Math.max(maxLag, lag);
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    const output = await load;
    const tps = /tps = ([\d.]+)/.exec(output)?.[1];
    const [end] = await query<{ bytes: string; committed: string }>(
      `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '${start!.lsn}')::bigint AS bytes, (SELECT count(*) FROM pgbench_history) AS committed`,
    );
    const drain = await switchAndDrain();
    const [archiver] = await query<{ archived: string; failed: string }>(
      `SELECT archived_count AS archived, failed_count AS failed FROM pg_stat_archiver`,
    );
    const segments = Number(archiver!.archived) - Number(start!.archived);
    console.log(
      `[measure] pgbench ${seconds}s at ${tps} tps wrote ${(Number(end!.bytes) / 2 ** 20).toFixed(0)} MiB of WAL (${(Number(end!.bytes) / 2 ** 20 / seconds).toFixed(1)} MiB/s); ` +
        `${segments} files archived; archiver lag (complete segments not yet archived) max ${maxLag}, mean ${(samples.reduce((a, b) => a + b, 0) / samples.length).toFixed(1)}; ` +
        `drained ${drain.toFixed(1)} s after the load; archive failures ${archiver!.failed}`,
    );
    expect(Number(archiver!.failed)).toBe(0);
    const check = await lifeboat(['check', '--json']);
    expect(check.code, check.stdout + check.stderr).toBe(0);
    const wal = check.json<{
      wal: Array<{
        source: string;
        ok: boolean;
        timelines: Array<{ timeline: number; missingCount: number }>;
      }>;
    }>().wal;
    expect(wal).toHaveLength(1);
    expect(wal[0]!.ok).toBe(true);
    expect(wal[0]!.timelines.every((run) => run.missingCount === 0)).toBe(true);
    await expectLatestHas(Number(end!.committed));
  }, 600_000);

  it('push-ahead drains a backlog in a few processes: check proves no segment is missing; latest has every committed transaction', async () => {
    // A second config for the same source with push-ahead, and the shell form of archive_command; each
    // start of lifeboat is logged, to count the batches.
    const spool = workspace.path('spool');
    const calls = workspace.path('push-calls.log');
    const aheadConfig = workspace.path('lifeboat-ahead.yaml');
    const config = readFileSync(workspace.configPath, 'utf8').replace(
      'archive: { checkTimeout: 120s }',
      `archive: { checkTimeout: 120s, pushAhead: 16, spoolDirectory: ${spool} }`,
    );
    expect(config).toContain('pushAhead: 16');
    writeFileSync(aheadConfig, config);
    writeFileSync(calls, '');
    if (isRoot) {
      const { uid, gid } = postgresIds();
      chownSync(aheadConfig, uid, gid);
      chownSync(calls, uid, gid);
    }
    await switchAndDrain();
    const [start] = await query<{ archived: string }>(
      `SELECT archived_count AS archived FROM pg_stat_archiver`,
    );
    // The backlog: archiving paused (PostgreSQL 15 keeps the WAL, marked .ready), then pgbench
    // transactions and eight switched segments of bulk rows.
    await setArchiveCommand('');
    const pgbench = join(POSTGRES_BIN_DIRECTORY, 'pgbench');
    const env = { ...process.env, PGPASSWORD: server.password };
    const connection = ['-h', server.host, '-p', String(server.port), '-U', server.user];
    execFileSync(pgbench, [...connection, '-c', '2', '-j', '2', '-t', '2000', '-n', 'app'], {
      env,
      stdio: 'ignore',
    });
    await query('CREATE TABLE filler (id serial PRIMARY KEY, pad text)');
    for (let i = 0; i < 8; i++) {
      await query(`INSERT INTO filler (pad) SELECT repeat(md5(g::text), 30) FROM generate_series(1, 5000) g`);
      await query('SELECT pg_switch_wal()');
    }
    const [end] = await query<{ committed: string }>(`SELECT count(*) AS committed FROM pgbench_history`);
    const push = `${NODE} ${BIN} --config ${aheadConfig} wal-push --source main %p`;
    const enabled = Date.now();
    await setArchiveCommand(pushAheadArchiveCommand(spool, `{ echo %f >> ${calls} && ${push}; }`));
    await switchAndDrain();
    const drain = (Date.now() - enabled) / 1000;
    const [archiver] = await query<{ archived: string; failed: string }>(
      `SELECT archived_count AS archived, failed_count AS failed FROM pg_stat_archiver`,
    );
    const files = Number(archiver!.archived) - Number(start!.archived);
    const processes = readFileSync(calls, 'utf8').trim().split('\n').filter(Boolean).length;
    console.log(
      `[measure] push-ahead 16: a backlog of ${files} files archived within ${drain.toFixed(1)} s of setting archive_command (1 s of it the reload wait) by ${processes} lifeboat processes`,
    );
    await setArchiveCommand(workspace.walPushCommand('main'));
    expect(Number(archiver!.failed)).toBe(0);
    expect(files).toBeGreaterThanOrEqual(8);
    expect(processes).toBeLessThanOrEqual(Math.ceil(files / 17) + 1); // every process takes 16 along
    expect(readdirSync(spool).filter((file) => file.endsWith('.ok'))).toEqual([]); // every marker taken
    const check = await lifeboat(['check', '--json']);
    expect(check.code, check.stdout + check.stderr).toBe(0);
    expect(check.json<{ wal: Array<{ ok: boolean }> }>().wal[0]!.ok).toBe(true);
    await expectLatestHas(Number(end!.committed));
  }, 600_000);

  it('wal-push takes the same file twice and refuses different content under the same name; wal-fetch of a missing file exits 1', async () => {
    const [state] = await query<{ last: string }>(`SELECT last_archived_wal AS last FROM pg_stat_archiver`);
    const name = state!.last.slice(0, 24);
    const fetchedPath = workspace.path(name);
    const fetched = await lifeboat(['wal-fetch', name, fetchedPath]);
    expect(fetched.code, fetched.stderr).toBe(0);
    const again = await lifeboat(['wal-push', fetchedPath]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('already archived (same content)');
    asPostgres('sh', ['-c', `printf x | dd of=${fetchedPath} bs=1 seek=100 conv=notrunc 2>/dev/null`]);
    const conflict = await lifeboat(['wal-push', fetchedPath]);
    expect(conflict.code).toBe(1);
    expect(conflict.stderr).toContain('LB_WAL_CONFLICT');
    const missing = await lifeboat(['wal-fetch', 'FFFFFFFF00000000000000FF', workspace.path('missing')]);
    expect(missing.code).toBe(1);
    expect(missing.stdout).toContain('not in the archive');
    expect(missing.stderr).toBe('');
  }, 120_000);

  it('drills by replaying the archive to its end: schemas match, RPO is the age of the newest WAL', async () => {
    await switchAndDrain();
    const drill = await lifeboat(['drill', '--json']);
    expect(drill.code, drill.stdout + drill.stderr).toBe(0);
    const result = drill.json<{
      results: Array<{ ok: boolean; method: string; rpoBasis: string; rpoSeconds: number }>;
    }>().results[0]!;
    expect(result).toMatchObject({ ok: true, method: 'physical', rpoBasis: 'WAL archive end' });
    expect(existsSync(join(restored, 'postmaster.pid'))).toBe(false); // the drill stopped its server
  }, 300_000);

  it('forget keeps the WAL of the kept base backup and drops the older WAL', async () => {
    const second = await lifeboat(['backup', '--json']);
    expect(second.code, second.stderr).toBe(0);
    const dry = await lifeboat(['forget', '--keep-last', '1', '--dry-run', '--json']);
    const plan = dry.json<{
      decisions: Array<{ kind: string; keep: boolean }>;
      wal: Record<string, string[]>;
    }>();
    expect(plan.decisions.filter((decision) => decision.kind === 'point' && !decision.keep)).toHaveLength(1);
    expect(plan.wal.main!.length).toBeGreaterThan(0);
    const archived = async () => {
      const run = await lifeboat(['check', '--json']);
      expect(run.code, run.stdout + run.stderr).toBe(0);
      return run.json<{ archiveFiles: number }>().archiveFiles;
    };
    const before = await archived();
    const done = await lifeboat(['forget', '--keep-last', '1', '--prune']);
    expect(done.code, done.stderr).toBe(0);
    // Exactly the WAL the dry run named is gone: wal-fetch now reports it missing (exit 1).
    expect(await archived()).toBe(before - plan.wal.main!.length);
    const gone = await lifeboat([
      'wal-fetch',
      '--source',
      'main',
      plan.wal.main![0]!,
      workspace.path('gone'),
    ]);
    expect(gone.code, gone.stderr).toBe(1);
    expect(gone.stdout).toContain('not in the archive');
    const check = await lifeboat(['check', '--json']);
    expect(check.code, check.stdout + check.stderr).toBe(0);
    expect(check.json<{ affectedSnapshots: string[] }>().affectedSnapshots).not.toContain(firstBaseBackup);
    await restoreAt('latest');
    expect(await restoredMarks()).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    stopRestored();
  }, 300_000);

  it('a base backup read directly while pgbench writes restores consistent: at its end point and at latest, the balances agree', async () => {
    const pgbench = join(POSTGRES_BIN_DIRECTORY, 'pgbench');
    const env = { ...process.env, PGPASSWORD: server.password };
    const connection = ['-h', server.host, '-p', String(server.port), '-U', server.user];
    const load = promisify(execFile)(
      pgbench,
      [...connection, '-c', '4', '-j', '2', '-T', '25', '-n', 'app'],
      {
        env,
      },
    );
    await new Promise((resolve) => setTimeout(resolve, 3000));
    // Tables and indexes change under the read: recovery from the backup's start must repair them.
    const backup = await lifeboat(['backup']);
    expect(backup.code, backup.stderr).toBe(0);
    expect(backup.stderr).toContain('reading the data directory');
    await load;
    await switchAndDrain();
    const balances = async (port: number) =>
      (
        await query<{ accounts: string; tellers: string; branches: string; history: string; rows: string }>(
          `SELECT (SELECT sum(abalance) FROM pgbench_accounts) AS accounts,
                  (SELECT sum(tbalance) FROM pgbench_tellers) AS tellers,
                  (SELECT sum(bbalance) FROM pgbench_branches) AS branches,
                  (SELECT coalesce(sum(delta), 0) FROM pgbench_history) AS history,
                  (SELECT count(*) FROM pgbench_accounts) AS rows`,
          port,
        )
      )[0]!;
    const expectConsistent = (state: Awaited<ReturnType<typeof balances>>) => {
      expect(state.rows).toBe('1000000');
      expect(state.tellers).toBe(state.accounts);
      expect(state.branches).toBe(state.accounts);
      expect(state.history).toBe(state.accounts);
    };
    await restoreAt('immediate');
    const atEnd = await balances(restorePort);
    expectConsistent(atEnd);
    // No page is torn or stale: amcheck finds nothing wrong in the heap (verify_heapam), and the
    // primary key's B-tree holds exactly the heap's tuples (bt_index_check with heapallindexed).
    await query('CREATE EXTENSION amcheck', restorePort);
    for (const table of ['pgbench_accounts', 'pgbench_tellers', 'pgbench_branches', 'pgbench_history']) {
      const problems = await query<{ msg: string }>(`SELECT msg FROM verify_heapam('${table}')`, restorePort);
      expect(problems, table).toEqual([]);
    }
    for (const index of ['pgbench_accounts_pkey', 'pgbench_tellers_pkey', 'pgbench_branches_pkey'])
      await query(`SELECT bt_index_check('${index}', true)`, restorePort);
    stopRestored();
    const source = await balances(server.port);
    expectConsistent(source);
    await restoreAt('latest');
    expect(await balances(restorePort)).toEqual(source);
    stopRestored();
  }, 600_000);

  it('baseBackup: pg_basebackup streams the same tar through the server (with its backup_manifest); latest restores from it', async () => {
    workspace.writeConfig(config.replace('mode: physical', 'mode: physical\n    baseBackup: pg_basebackup'));
    try {
      const backup = await lifeboat(['backup']);
      expect(backup.code, backup.stderr).toBe(0);
      expect(backup.stderr).toContain('streaming base backup (pg_basebackup -X fetch)');
      expect(backup.stderr).not.toContain('reading the data directory');
      const id = backup.stdout.match(/recovery point ([0-9a-f]+)/)?.[1];
      const snapshot = (await lifeboat(['show', id!, '--json'])).json<{
        snapshots: Array<{ id: string; metadata: { physical: { stopSegment: string } } }>;
      }>().snapshots[0]!;
      const entries = baseTarEntries(snapshot.id);
      expect(entries).toContain('backup_manifest');
      expect(entries).toContain(`pg_wal/${snapshot.metadata.physical.stopSegment}`);
      expect(await slotCount()).toBe(0);
    } finally {
      workspace.writeConfig(config);
    }
    const [{ next }] = (await query<{ next: number }>('SELECT max(n) + 1 AS next FROM marks')) as [
      { next: number },
    ];
    await query(`INSERT INTO marks (n) VALUES (${next})`);
    await switchAndDrain();
    const expected = (await query<{ n: number }>('SELECT n FROM marks ORDER BY n')).map((row) => row.n);
    await restoreAt('latest');
    expect(await restoredMarks()).toEqual(expected);
    stopRestored();
  }, 300_000);

  it('falls back to -X none when no replication slot is free: the server waits for the archive', async () => {
    const [{ max }] = (await query<{ max: string }>(
      `SELECT current_setting('max_replication_slots') AS max`,
    )) as [{ max: string }];
    const free = Number(max) - (await slotCount());
    expect(free).toBeGreaterThan(0);
    const taken: string[] = [];
    try {
      for (let index = 0; index < free; index++) {
        await query(`SELECT pg_create_physical_replication_slot('taken_${index}')`); // reserves no WAL
        taken.push(`taken_${index}`);
      }
      // Reading the data directory needs the slot too: direct says so and fails; auto falls back.
      workspace.writeConfig(config.replace('mode: physical', 'mode: physical\n    baseBackup: direct'));
      const direct = await lifeboat(['backup', '--json']);
      workspace.writeConfig(config);
      expect(direct.code).toBe(1);
      expect(direct.stdout).toContain('LB_ENGINE_FAILED');
      expect(direct.stdout).toContain('baseBackup is direct, but lifeboat cannot read');
      const backup = await lifeboat(['backup']);
      expect(backup.code, backup.stderr).toBe(0);
      expect(backup.stderr).toContain(
        'base backup through pg_basebackup (no direct read of the data directory',
      );
      expect(backup.stderr).toContain('no temporary replication slot');
      const id = backup.stdout.match(/recovery point ([0-9a-f]+)/)?.[1];
      expect(id, backup.stdout).toBeDefined();
      const show = await lifeboat(['show', id!, '--json']);
      const snapshot = show.json<{ snapshots: Array<{ id: string }> }>().snapshots[0]!;
      expect(baseTarEntries(snapshot.id).join('\n')).not.toMatch(/pg_wal\/[0-9A-F]{24}/);
    } finally {
      for (const slot of taken) await query(`SELECT pg_drop_replication_slot('${slot}')`);
    }
  }, 300_000);

  it('fails a base backup whose last segment never reaches the archive (LB_WAL_TIMEOUT): no recovery point, no slot left', async () => {
    const pointsBefore = (await lifeboat(['list', '--json'])).json<unknown[]>().length;
    workspace.writeConfig(config.replace('checkTimeout: 120s', 'checkTimeout: 3s'));
    await setArchiveCommand('/bin/false');
    try {
      const backup = await lifeboat(['backup', '--json']);
      expect(backup.code).toBe(1);
      expect(backup.stdout).toContain('LB_WAL_TIMEOUT');
      expect(backup.stdout).toContain('not in the archive of source main after 3s');
      expect((await lifeboat(['list', '--json'])).json<unknown[]>()).toHaveLength(pointsBefore);
      expect(await slotCount()).toBe(0);
    } finally {
      workspace.writeConfig(config);
      await setArchiveCommand(workspace.walPushCommand('main'));
    }
    await switchAndDrain(); // the archiver catches up once the command works again
    const check = await lifeboat(['check', '--json']);
    expect(check.code, check.stdout + check.stderr).toBe(0);
  }, 300_000);
});
