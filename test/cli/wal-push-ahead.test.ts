// wal-push with push-ahead (archive.pushAhead), against a pg_wal directory laid out as PostgreSQL
// leaves it (segments plus archive_status/*.ready), driven the way the archiver drives it: the push
// for one file takes the next ready ones along and leaves markers; their own archive_command (the
// shell form) then returns without starting lifeboat; a marker is trusted only for the same bytes
// and source; stale markers go; a conflicting file taken along is skipped, not fatal.
// The same against a real archiver under load is in test/engines/postgres-pitr.test.ts.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { BIN, NODE, Workspace } from '../harness/lifeboat.js';
import { pushAheadArchiveCommand, pushAheadOf } from '../../src/recovery/index.js';
import { blake3Hex } from '../../src/util/blake3.js';

describe('wal-push with push-ahead', () => {
  const workspace = new Workspace('push-ahead');
  const dataDirectory = workspace.path('data');
  const wal = join(dataDirectory, 'pg_wal');
  const status = join(wal, 'archive_status');
  const spool = workspace.path('spool');
  const calls = workspace.path('calls.log');
  const segment = (n: number) => `0000000100000000000000${n.toString(16).toUpperCase().padStart(2, '0')}`;
  const contents = new Map<string, Buffer>();

  /** A finished segment, marked ready as PostgreSQL does. */
  const finish = (name: string, data = randomBytes(256 * 1024)) => {
    writeFileSync(join(wal, name), data);
    writeFileSync(join(status, `${name}.ready`), '');
    contents.set(name, data);
  };
  const markers = () =>
    readdirSync(spool)
      .filter((file) => file.endsWith('.ok'))
      .sort();
  const push = (name: string) =>
    workspace.run(['wal-push', '--source', 'db', `pg_wal/${name}`], { cwd: dataDirectory });
  /**
   * What the archiver does for one file: runs the push-ahead archive_command through the shell in the
   * data directory, and on success renames .ready to .done. Returns the exit status.
   */
  const archive = (name: string): number => {
    const fallback = `{ echo %f >> ${calls} && ${NODE} ${BIN} --config ${workspace.configPath} wal-push --source db %p; }`;
    const command = pushAheadArchiveCommand(spool, fallback)
      .replaceAll('%f', name)
      .replaceAll('%p', `pg_wal/${name}`);
    try {
      execFileSync('sh', ['-c', command], { cwd: dataDirectory, stdio: 'pipe' });
    } catch (error) {
      return (error as { status: number }).status;
    }
    renameSync(join(status, `${name}.ready`), join(status, `${name}.done`));
    return 0;
  };
  const nodeCalls = () => (existsSync(calls) ? readFileSync(calls, 'utf8').trim().split('\n') : []);
  const fetch = async (name: string) => {
    const target = workspace.path(`fetched-${name}`);
    const result = await workspace.run(['wal-fetch', '--source', 'db', name, target]);
    expect(result.code, result.stderr).toBe(0);
    return readFileSync(target);
  };

  beforeAll(async () => {
    mkdirSync(status, { recursive: true });
    workspace.writeConfig(`
repository: { url: ${workspace.path('repo')}, password: push-ahead-test }
sources:
  db:
    engine: postgres
    url: postgres://nobody@127.0.0.1:1/none
    mode: physical
    dataDirectory: ${dataDirectory}
    archive: { pushAhead: 4, spoolDirectory: ${spool} }
`);
    expect((await workspace.run(['init'])).code).toBe(0);
  });
  afterAll(() => workspace.remove());

  it('takes the next ready files along; their archive_command returns without starting lifeboat', async () => {
    for (let n = 1; n <= 7; n++) finish(segment(n));
    expect(archive(segment(1))).toBe(0);
    expect(nodeCalls()).toEqual([segment(1)]);
    expect(markers()).toEqual([2, 3, 4, 5].map((n) => `${segment(n)}.ok`));
    for (let n = 2; n <= 5; n++) expect(archive(segment(n))).toBe(0);
    expect(nodeCalls()).toEqual([segment(1)]); // no process for 2..5: their markers answered
    expect(markers()).toEqual([]);
    expect(archive(segment(6))).toBe(0); // takes 7 along
    expect(archive(segment(7))).toBe(0);
    expect(nodeCalls()).toEqual([segment(1), segment(6)]);
    for (let n = 1; n <= 7; n++)
      expect((await fetch(segment(n))).equals(contents.get(segment(n))!)).toBe(true);
    const check = await workspace.run(['check', '--read-data', '--json']);
    expect(check.code, check.stdout + check.stderr).toBe(0);
  }, 120_000);

  it('reports what it took along; a plain wal-push takes a marker only for the same bytes', async () => {
    for (let n = 8; n <= 10; n++) finish(segment(n));
    const first = await workspace.run(['wal-push', '--source', 'db', '--json', `pg_wal/${segment(8)}`], {
      cwd: dataDirectory,
    });
    expect(first.code, first.stderr).toBe(0);
    expect(first.json()).toMatchObject({
      name: segment(8),
      outcome: 'stored',
      ahead: { stored: 2, present: 0 },
    });
    renameSync(join(status, `${segment(8)}.ready`), join(status, `${segment(8)}.done`));
    // A marker holds the file's hashes as its record does: BLAKE3 alone in a format-2 repository.
    const marker = (name: string) => JSON.parse(readFileSync(join(spool, `${name}.ok`), 'utf8')) as object;
    const nine = contents.get(segment(9))!;
    expect(marker(segment(9))).toEqual({ source: 'db', size: nine.length, blake3: blake3Hex(nine) });
    // A marker an earlier build wrote (SHA-256 only) is trusted for the same bytes.
    writeFileSync(
      join(spool, `${segment(9)}.ok`),
      JSON.stringify({
        source: 'db',
        size: nine.length,
        sha256: createHash('sha256').update(nine).digest('hex'),
      }),
    );
    // The plain command (no shell test) takes a valid marker without opening the repository.
    const taken = await push(segment(9));
    expect(taken.code, taken.stderr).toBe(0);
    expect(taken.stdout).toContain('pushed ahead earlier');
    expect(markers()).toEqual([`${segment(10)}.ok`]);
    // Different bytes under a marked name (the marker is even made newer than the file): the shell test
    // passes it on, wal-push finds the BLAKE3 differs, drops the marker and refuses the conflict.
    writeFileSync(join(wal, segment(10)), randomBytes(1000));
    const future = new Date(Date.now() + 60_000);
    utimesSync(join(spool, `${segment(10)}.ok`), future, future);
    const conflict = await push(segment(10));
    expect(conflict.code).toBe(1);
    expect(conflict.stderr).toContain('LB_WAL_CONFLICT');
    expect(markers()).toEqual([]);
    writeFileSync(join(wal, segment(10)), contents.get(segment(10))!);
    expect((await push(segment(10))).stdout).toContain('already archived (same content)');
  }, 120_000);

  it('does not trust a marker older than its file or of another source; removes stale ones', async () => {
    for (const name of readdirSync(status))
      renameSync(join(status, name), join(status, name.replace('.ready', '.done')));
    finish(segment(11));
    finish(segment(12));
    const stale = `${segment(0x30)}.ok`; // no such ready file: left by an earlier cluster
    writeFileSync(join(spool, stale), '{}');
    const torn = join(spool, `.${segment(0x31)}.ok.4242`); // a killed push's temporary file
    writeFileSync(torn, '{"so');
    const hourAgo = new Date(Date.now() - 3_700_000);
    utimesSync(torn, hourAgo, hourAgo);
    const foreign = JSON.stringify({
      source: 'other',
      size: contents.get(segment(11))!.length,
      sha256: execFileSync('sha256sum', [join(wal, segment(11))])
        .toString()
        .slice(0, 64),
    });
    writeFileSync(join(spool, `${segment(11)}.ok`), foreign);
    const past = new Date(Date.now() - 60_000);
    utimesSync(join(spool, `${segment(11)}.ok`), past, past);
    expect(archive(segment(11))).toBe(0); // older than the file: the shell test falls through to lifeboat
    expect(nodeCalls().at(-1)).toBe(segment(11));
    expect(markers()).toEqual([`${segment(12)}.ok`]); // the stale and the foreign marker went
    expect(existsSync(torn)).toBe(false);
    expect((await fetch(segment(11))).equals(contents.get(segment(11))!)).toBe(true);
  }, 120_000);

  it('skips a ready file that conflicts with the archive instead of failing the push', async () => {
    for (const name of readdirSync(status))
      renameSync(join(status, name), join(status, name.replace('.ready', '.done')));
    for (const name of markers()) execFileSync('rm', [join(spool, name)]);
    finish(segment(13));
    finish(segment(1), randomBytes(4096)); // ready again with other bytes than the archived segment 1
    const result = await push(segment(13));
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain(`${segment(1)} not pushed ahead`);
    expect(result.stdout).toContain('different content');
    expect(markers()).toEqual([]);
    const own = await push(segment(1));
    expect(own.code).toBe(1);
    expect(own.stderr).toContain('LB_WAL_CONFLICT');
  }, 120_000);

  it('skips a ready file that fails while it is read (opened, then EISDIR) and archives the rest', async () => {
    for (const name of readdirSync(status))
      renameSync(join(status, name), join(status, name.replace('.ready', '.done')));
    finish(segment(16));
    mkdirSync(join(wal, segment(17))); // opens, then every read fails
    writeFileSync(join(status, `${segment(17)}.ready`), '');
    finish(segment(18));
    const result = await push(segment(16));
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain(`${segment(17)} not pushed ahead`);
    expect(result.stdout).toContain('EISDIR');
    expect(markers().sort()).toEqual([`${segment(18)}.ok`]);
    rmSync(join(wal, segment(17)), { recursive: true });
    rmSync(join(status, `${segment(17)}.ready`));
  }, 120_000);

  it('archives the file asked for when the spool cannot be written; the others then push themselves', async () => {
    for (const name of readdirSync(status))
      renameSync(join(status, name), join(status, name.replace('.ready', '.done')));
    rmSync(spool, { recursive: true, force: true });
    writeFileSync(spool, 'not a directory'); // mkdir and every marker write fail
    finish(segment(14));
    finish(segment(15));
    const result = await push(segment(14));
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain(`${segment(15)}: archived, but no marker`);
    renameSync(join(status, `${segment(14)}.ready`), join(status, `${segment(14)}.done`));
    const next = await push(segment(15));
    expect(next.code, next.stderr).toBe(0);
    expect(next.stdout).toContain('already archived (same content)');
    rmSync(spool);
    mkdirSync(spool);
  }, 120_000);

  it('puts the spool beside the data directory by default', () => {
    const config = (dataDirectory?: string) =>
      ({
        sources: {
          db: { engine: 'postgres', dataDirectory, archive: { checkTimeout: '60s', pushAhead: 8 } },
          off: { engine: 'postgres', archive: { checkTimeout: '60s', pushAhead: 0 } },
        },
      }) as unknown as Parameters<typeof pushAheadOf>[0];
    expect(pushAheadOf(config('/srv/pg/main/'), 'db', 'pg_wal/X')).toEqual({
      count: 8,
      spool: '/srv/pg/main.lifeboat-spool',
    });
    // Without dataDirectory: the pg_wal directory's parent, wherever wal-push runs from.
    expect(pushAheadOf(config(), 'db', '/var/lib/postgresql/15/main/pg_wal/X')?.spool).toBe(
      '/var/lib/postgresql/15/main.lifeboat-spool',
    );
    expect(pushAheadOf(config(), 'off', 'pg_wal/X')).toBeUndefined();
  });
});
