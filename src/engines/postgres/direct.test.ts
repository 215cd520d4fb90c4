import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import type { DirectSource } from '../../util/read-fd.js';
import { chainedSource, checkOwnDirectory, dataDirectoryEntries } from './direct.js';

describe('dataDirectoryEntries', () => {
  let root = '';
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  const file = (path: string, content = 'x') => {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), content);
  };

  it('leaves out what basebackup.c leaves out, keeps the directories it keeps empty', () => {
    root = mkdtempSync(join(tmpdir(), 'lifeboat-pgdata-'));
    for (const path of [
      'PG_VERSION',
      'postgresql.conf',
      'postgresql.auto.conf',
      'postgresql.auto.conf.tmp',
      'current_logfiles',
      'current_logfiles.tmp',
      'postmaster.pid',
      'postmaster.opts',
      'backup_label',
      'backup_manifest',
      'tablespace_map',
      'global/pg_control',
      'global/1262',
      'global/pg_internal.init',
      'global/pg_internal.init.1234',
      // A database: a logged table with its forks and a second segment, an unlogged one (init fork),
      // a temporary relation, and the relcache init file.
      'base/5/16384',
      'base/5/16384.1',
      'base/5/16384_fsm',
      'base/5/16384_vm',
      'base/5/16390',
      'base/5/16390_fsm',
      'base/5/16390_init',
      'base/5/16390.1',
      'base/5/t3_16400',
      'base/5/t3_16400_fsm',
      'base/5/pg_internal.init',
      'base/5/PG_VERSION',
      'base/pgsql_tmp/pgsql_tmp123.0',
      'pg_wal/000000010000000000000001',
      'pg_wal/archive_status/000000010000000000000001.ready',
      'pg_stat/pgstat.stat',
      'pg_stat_tmp/global.stat',
      'pg_replslot/slot/state',
      'pg_subtrans/0000',
      'pg_notify/0000',
      'pg_serial/0000',
      'pg_snapshots/00000003-00000002-1',
      'pg_dynshmem/mmap.123',
      'pg_xact/0000',
      'log/postgresql.log',
    ])
      file(path);
    mkdirSync(join(root, 'pg_tblspc'));
    symlinkSync('/etc/hostname', join(root, 'a-link'));
    const skipped: string[] = [];
    const paths = [...dataDirectoryEntries(root, (path) => skipped.push(path))].map((entry) =>
      entry.type === 'directory' ? `${entry.path}/` : entry.path,
    );
    // Symlinks outside pg_tblspc are left out (and reported), as basebackup.c leaves them out.
    expect(skipped).toEqual(['a-link']);
    expect(paths).toEqual([
      'PG_VERSION',
      'base/',
      'base/5/',
      'base/5/16384',
      'base/5/16384.1',
      'base/5/16384_fsm',
      'base/5/16384_vm',
      'base/5/16390_init',
      'base/5/PG_VERSION',
      'current_logfiles',
      'global/',
      'global/1262',
      'global/pg_control',
      'log/',
      'log/postgresql.log',
      'pg_dynshmem/',
      'pg_notify/',
      'pg_replslot/',
      'pg_serial/',
      'pg_snapshots/',
      'pg_stat/',
      'pg_stat/pgstat.stat',
      'pg_stat_tmp/',
      'pg_subtrans/',
      'pg_tblspc/',
      'pg_wal/',
      'pg_wal/archive_status/',
      'pg_xact/',
      'pg_xact/0000',
      'postgresql.auto.conf',
      'postgresql.conf',
    ]);
  });

  it('refuses a cluster with tablespaces', () => {
    root = mkdtempSync(join(tmpdir(), 'lifeboat-pgdata-'));
    file('PG_VERSION');
    mkdirSync(join(root, 'pg_tblspc'));
    symlinkSync(tmpdir(), join(root, 'pg_tblspc', '16500'));
    expect(() => [...dataDirectoryEntries(root)]).toThrow(/tablespaces \(pg_tblspc\/16500\)/);
  });

  it('gives emptied directories that are symlinks (pg_stat_tmp on a tmpfs) as empty directories', () => {
    root = mkdtempSync(join(tmpdir(), 'lifeboat-pgdata-'));
    file('PG_VERSION');
    file('../stats-elsewhere/global.stat');
    chmodSync(join(root, '..', 'stats-elsewhere'), 0o750);
    symlinkSync(join(root, '..', 'stats-elsewhere'), join(root, 'pg_stat_tmp'));
    try {
      const entries = [...dataDirectoryEntries(root)];
      expect(entries.map((entry) => [entry.path, entry.type])).toEqual([
        ['PG_VERSION', 'file'],
        ['pg_stat_tmp', 'directory'],
      ]);
      // The directory's own mode (group access kept), not the link's.
      expect(entries[1]!.mode).toBe(0o750);
    } finally {
      rmSync(join(root, '..', 'stats-elsewhere'), { recursive: true, force: true });
    }
  });

  it('always gives pg_wal/archive_status, as basebackup.c does', () => {
    root = mkdtempSync(join(tmpdir(), 'lifeboat-pgdata-'));
    file('pg_wal/000000010000000000000001');
    expect([...dataDirectoryEntries(root)].map((entry) => [entry.path, entry.type])).toEqual([
      ['pg_wal', 'directory'],
      ['pg_wal/archive_status', 'directory'],
    ]);
  });

  it('gives pg_wal as a directory where it is a symlink (initdb --waldir)', () => {
    root = mkdtempSync(join(tmpdir(), 'lifeboat-pgdata-'));
    file('PG_VERSION');
    file('../wal-elsewhere/000000010000000000000001');
    mkdirSync(join(root, '..', 'wal-elsewhere', 'archive_status'));
    symlinkSync(join(root, '..', 'wal-elsewhere'), join(root, 'pg_wal'));
    try {
      const entries = [...dataDirectoryEntries(root)];
      expect(entries.map((entry) => [entry.path, entry.type])).toEqual([
        ['PG_VERSION', 'file'],
        ['pg_wal', 'directory'],
        ['pg_wal/archive_status', 'directory'],
      ]);
    } finally {
      rmSync(join(root, '..', 'wal-elsewhere'), { recursive: true, force: true });
    }
  });
});

describe('chainedSource', () => {
  /** A source giving `content` at most `step` bytes per call. */
  const sourceOf = (content: Buffer, step: number): DirectSource => {
    let at = 0;
    return {
      readInto(target) {
        const count = content.copy(target, 0, at, Math.min(content.length, at + step));
        at += count;
        return Promise.resolve(count);
      },
    };
  };

  it('gives the pieces in order, whole, into targets of any size', async () => {
    const random = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 131 + n) % 251));
    const pieces = [random(10), random(0), random(700), random(1), random(5000), random(3), random(0)];
    const expected = Buffer.concat(pieces);
    for (const targetSize of [1, 7, 512, 4096, 100_000]) {
      function* parts() {
        yield pieces[0]!;
        yield sourceOf(pieces[1]!, 3);
        yield sourceOf(pieces[2]!, 100);
        yield pieces[3]!;
        yield sourceOf(pieces[4]!, 999);
        yield pieces[5]!;
        yield pieces[6]!;
      }
      const source = chainedSource(parts());
      const out: Buffer[] = [];
      for (;;) {
        const target = Buffer.alloc(targetSize);
        const count = await source.readInto(target);
        if (count === 0) break;
        out.push(target.subarray(0, count));
      }
      expect(Buffer.concat(out).equals(expected)).toBe(true);
    }
  });

  it('fails for good once a piece failed or the source was destroyed: never a clean end after that', async () => {
    const failing: DirectSource = { readInto: () => Promise.reject(new Error('EIO: i/o error, read')) };
    const broken = chainedSource([Buffer.from('abc'), failing, Buffer.from('never')][Symbol.iterator]());
    await expect(broken.readInto(Buffer.alloc(2))).resolves.toBe(2);
    await expect(broken.readInto(Buffer.alloc(64))).rejects.toThrow('EIO');
    await expect(broken.readInto(Buffer.alloc(64))).rejects.toThrow('EIO');
    let destroyedWith: Error | undefined;
    const endless: DirectSource = {
      readInto: (target) => Promise.resolve(target.fill(1).length),
      destroy: (error) => (destroyedWith = error),
    };
    const given = chainedSource([endless][Symbol.iterator]());
    await expect(given.readInto(Buffer.alloc(8))).resolves.toBe(8);
    given.destroy?.(new Error('the repository failed'));
    expect(destroyedWith?.message).toBe('the repository failed');
    await expect(given.readInto(Buffer.alloc(8))).rejects.toThrow('the repository failed');
  });
});

describe('checkOwnDirectory', () => {
  let root = '';
  afterEach(() => rmSync(root, { recursive: true, force: true }));
  const SYSTEM = '7312345678901234567';
  const POSTMASTER = 811;
  /**
   * A data directory (pg_control with `system`, postmaster.pid naming `postmaster` on port 5432) and a
   * /proc beside it where process 4242 (the backend) is a child of `parent`, started 123.45 s after a
   * boot at 1700000000.
   */
  const setUp = (options: { system?: bigint; postmaster?: number; path?: string; parent?: number } = {}) => {
    root = mkdtempSync(join(tmpdir(), 'lifeboat-pgdata-'));
    const data = join(root, 'data');
    const control = Buffer.alloc(8192);
    control.writeBigUInt64LE(options.system ?? BigInt(SYSTEM), 0);
    mkdirSync(join(data, 'global'), { recursive: true });
    writeFileSync(join(data, 'global', 'pg_control'), control);
    writeFileSync(
      join(data, 'postmaster.pid'),
      `${options.postmaster ?? POSTMASTER}\n${options.path ?? data}\n1700000010\n5432\n/run\n*\n1 2\nready \n`,
    );
    mkdirSync(join(root, 'proc', '4242'), { recursive: true });
    const filler = Array.from({ length: 17 }, () => '0').join(' ');
    writeFileSync(
      join(root, 'proc', '4242', 'stat'),
      `4242 (postgres: a (b) c) S ${options.parent ?? POSTMASTER} ${filler} 12345 0 0\n`,
    );
    writeFileSync(join(root, 'proc', 'stat'), 'cpu 1 2 3\nbtime 1700000000\nprocesses 9\n');
    return { data, proc: join(root, 'proc') };
  };
  const server = { system: SYSTEM, port: '5432', backend: '4242', backendStart: 1700000123.9 };

  it("accepts the running server's own directory", () => {
    const { data, proc } = setUp();
    expect(() => checkOwnDirectory(data, server, proc)).not.toThrow();
  });

  it('refuses another cluster, a moved directory, another port, another parent, a backend not here', () => {
    const cases: Array<[Parameters<typeof setUp>[0], Partial<typeof server>, RegExp]> = [
      [{ system: 1n }, {}, /another cluster's \(system identifier 1, the server's 7312345678901234567\)/],
      [{ path: '/var/lib/postgresql/15/main' }, {}, /postmaster.pid is for \/var\/lib/],
      [{}, { port: '5433' }, /says port 5432, the server's is 5433/],
      [{ parent: 999 }, {}, /names process 811, the server's backend 4242 has parent 999 here/],
      [{}, { backend: '4243' }, /backend 4243 is not a process here/],
      // A process here with the backend's number and parent, but not the backend: it started earlier.
      [{}, { backendStart: 1700000200 }, /not the server's backend \(started at another time\)/],
    ];
    for (const [options, differences, message] of cases) {
      const { data, proc } = setUp(options);
      expect(() => checkOwnDirectory(data, { ...server, ...differences }, proc)).toThrow(message);
      rmSync(root, { recursive: true, force: true });
    }
    expect(() => checkOwnDirectory(join(tmpdir(), 'no-such-lifeboat-dir'), server)).toThrow(
      /cannot read the server's data directory/,
    );
  });
});
