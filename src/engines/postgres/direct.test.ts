import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
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
    symlinkSync(join(root, '..', 'stats-elsewhere'), join(root, 'pg_stat_tmp'));
    try {
      expect([...dataDirectoryEntries(root)].map((entry) => [entry.path, entry.type])).toEqual([
        ['PG_VERSION', 'file'],
        ['pg_stat_tmp', 'directory'],
      ]);
    } finally {
      rmSync(join(root, '..', 'stats-elsewhere'), { recursive: true, force: true });
    }
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
  /** A data directory whose pg_control has `system` and whose postmaster.pid names `postmaster`. */
  const directory = (system: bigint, postmaster: number, path?: string) => {
    root = mkdtempSync(join(tmpdir(), 'lifeboat-pgdata-'));
    const control = Buffer.alloc(8192);
    control.writeBigUInt64LE(system, 0);
    mkdirSync(join(root, 'global'));
    writeFileSync(join(root, 'global', 'pg_control'), control);
    writeFileSync(
      join(root, 'postmaster.pid'),
      `${postmaster}\n${path ?? root}\n1700000000\n5432\n/run\n*\n1 2\nready\n`,
    );
    return root;
  };
  // This test process stands in for a backend: its parent is the "postmaster".
  const backend = String(process.pid);

  it("accepts the running server's own directory", () => {
    expect(() =>
      checkOwnDirectory(directory(7312345678901234567n, process.ppid), '7312345678901234567', backend),
    ).not.toThrow();
  });

  it('refuses another cluster, another server of the same cluster, a moved directory, or a backend not here', () => {
    expect(() => checkOwnDirectory(directory(1n, process.ppid), '7312345678901234567', backend)).toThrow(
      /another cluster's \(system identifier 1, the server's 7312345678901234567\)/,
    );
    rmSync(root, { recursive: true, force: true });
    expect(() => checkOwnDirectory(directory(5n, process.ppid + 100_000), '5', backend)).toThrow(
      /not the running server's/,
    );
    rmSync(root, { recursive: true, force: true });
    expect(() =>
      checkOwnDirectory(directory(5n, process.ppid, '/var/lib/postgresql/15/main'), '5', backend),
    ).toThrow(/not the running server's/);
    rmSync(root, { recursive: true, force: true });
    expect(() => checkOwnDirectory(directory(5n, process.ppid), '5', '999999999')).toThrow(/unknown here/);
    expect(() => checkOwnDirectory(join(root, 'missing'), '5', backend)).toThrow(
      /cannot read the server's data directory/,
    );
  });
});
