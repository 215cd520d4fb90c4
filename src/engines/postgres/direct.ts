// Base backups that lifeboat reads from the data directory itself (baseBackup: direct or auto), as
// pgBackRest does, instead of having pg_basebackup relay them from the server's walsender.
//
// Terms:
//   direct read   one session on the server: a temporary replication slot (the WAL hold, as for
//                 pg_basebackup -X fetch), pg_backup_start(fast), the data directory walked and read
//                 into the backup session's memory as one tar, pg_backup_stop(), then backup_label and
//                 the backup's WAL (pg_wal/<segment> plus archive_status/<segment>.done, and the
//                 timeline history files) appended to the same tar. The tar has what pg_basebackup -Ft
//                 -X fetch writes, less backup_manifest: a restore extracts either the same way.
//   possible      lifeboat runs on the server's host and can read its data directory: the directory
//                 the server reports (data_directory) has a global/pg_control whose system identifier
//                 is the server's; the server is not a standby; there are no extra tablespaces; the
//                 session may call pg_backup_start. Otherwise auto falls back to pg_basebackup, saying
//                 why; direct fails with that reason.
//   left out      what basebackup.c leaves out (PostgreSQL 15): the contents of pg_wal (its WAL is
//                 appended at the end), pg_stat_tmp, pg_replslot, pg_dynshmem, pg_notify, pg_serial,
//                 pg_snapshots and pg_subtrans (the directories themselves are kept); postmaster.pid and
//                 .opts, backup_label, tablespace_map, backup_manifest, postgresql.auto.conf.tmp,
//                 current_logfiles.tmp, pg_internal.init*, pgsql_tmp*; in database directories the
//                 temporary relations (t<n>_<node>...) and every fork but the init fork of an unlogged
//                 relation.
//
// Why: a base backup through pg_basebackup costs the walsender (reading the files and sending them),
// pg_basebackup (receiving and relaying them) and the kernel's copies between the three processes:
// ~4 of ~18 CPU-s for a 1.6 GB cluster on this 2-core machine (perf record -a), on top of what the
// repository spends. Files that change while they are read are as safe as in pg_basebackup: full-page
// writes are forced on during a backup and recovery replays the WAL from the backup's start over them;
// a file that shrinks is zero-filled to the size its header announced, one that vanished is left out.
import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  openSync,
  readSync,
  readdirSync,
  readlinkSync,
} from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

import type pg from 'pg';

import { LifeboatError } from '../../errors.js';
import type { DirectSource } from '../../util/read-fd.js';
import { entrySource } from '../files/entry-source.js';
import { END_OF_ARCHIVE, entryHeader, padding, type EntryType } from '../files/tar.js';
import { vanished } from '../files/walk.js';
import { type Endpoint, connect } from './connection.js';
import { isHistoryName, parseBackupLabel, parseLsn, segmentName, segmentOfLsn } from './wal-names.js';

/** Directories kept empty, at any depth (basebackup.c's excludeDirContents). */
const EMPTIED = new Set([
  'pg_stat_tmp',
  'pg_replslot',
  'pg_dynshmem',
  'pg_notify',
  'pg_serial',
  'pg_snapshots',
  'pg_subtrans',
]);
/** Files left out, at any depth (basebackup.c's excludeFiles). */
const LEFT_OUT = new Set([
  'postgresql.auto.conf.tmp',
  'current_logfiles.tmp',
  'backup_label',
  'tablespace_map',
  'backup_manifest',
  'postmaster.pid',
  'postmaster.opts',
]);
const leftOut = (name: string): boolean =>
  LEFT_OUT.has(name) || name.startsWith('pg_internal.init') || name.startsWith('pgsql_tmp');
/** A relation file name in a database directory: node, optional fork, optional segment number. */
const RELATION = /^(\d+)(?:_(fsm|vm|init))?(?:\.\d+)?$/;
const TEMPORARY_RELATION = /^t\d+_\d+(?:_(?:fsm|vm|init))?(?:\.\d+)?$/;

export interface DataDirectoryEntry {
  /** Path in the tar, relative to the data directory ("base/5/16384"). */
  path: string;
  absolute: string;
  type: EntryType;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeNs: bigint;
  ino: bigint;
  dev: bigint;
  linkname?: string;
}

/**
 * The entries of a running cluster's data directory that a base backup carries, in name order, each
 * directory before its contents. Entries that vanish while it walks are left out. pg_wal comes out as
 * a directory (even where it is a symlink) with archive_status, empty.
 */
export function* dataDirectoryEntries(root: string): Generator<DataDirectoryEntry> {
  const stat = (absolute: string) => {
    try {
      return lstatSync(absolute, { bigint: true });
    } catch (error) {
      if (vanished(error)) return undefined;
      throw error;
    }
  };
  const list = (absolute: string): string[] | undefined => {
    try {
      return readdirSync(absolute).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    } catch (error) {
      if (vanished(error)) return undefined;
      throw error;
    }
  };
  const entry = (
    path: string,
    absolute: string,
    info: NonNullable<ReturnType<typeof stat>>,
    type: EntryType,
    extra: Partial<DataDirectoryEntry> = {},
  ): DataDirectoryEntry => ({
    path,
    absolute,
    type,
    mode: Number(info.mode & 0o7777n),
    uid: Number(info.uid),
    gid: Number(info.gid),
    size: type === 'file' ? Number(info.size) : 0,
    mtimeNs: info.mtimeNs,
    ino: info.ino,
    dev: info.dev,
    ...extra,
  });

  function* visit(relative: string, absolute: string): Generator<DataDirectoryEntry> {
    const names = list(absolute);
    if (names === undefined) return;
    // A database directory (base/<oid>): unlogged relations keep only their init fork.
    const database = /^base\/\d+$/.test(relative);
    const unlogged = new Set<string>();
    if (database) {
      for (const name of names) {
        const match = RELATION.exec(name);
        if (match?.[2] === 'init') unlogged.add(match[1]!);
      }
    }
    for (const name of names) {
      if (leftOut(name)) continue;
      const path = relative === '' ? name : `${relative}/${name}`;
      const child = join(absolute, name);
      if (database) {
        if (TEMPORARY_RELATION.test(name)) continue;
        const match = RELATION.exec(name);
        if (match && unlogged.has(match[1]!) && match[2] !== 'init') continue;
      }
      const info = stat(child);
      if (info === undefined) continue;
      if (path === 'pg_wal') {
        // Where pg_wal is a symlink (initdb --waldir), the tar has a directory, as pg_basebackup's.
        const directory = info.isDirectory() ? info : stat(join(child, '.'));
        yield directory?.isDirectory()
          ? entry(path, child, directory, 'directory')
          : { ...entry(path, child, info, 'directory'), mode: 0o700 };
        const status = stat(join(child, 'archive_status'));
        if (status?.isDirectory())
          yield entry('pg_wal/archive_status', join(child, 'archive_status'), status, 'directory');
        continue;
      }
      if (info.isSymbolicLink()) {
        let linkname: string;
        try {
          linkname = readlinkSync(child);
        } catch (error) {
          if (vanished(error)) continue;
          throw error;
        }
        yield entry(path, child, info, 'symlink', { linkname });
      } else if (info.isDirectory()) {
        yield entry(path, child, info, 'directory');
        if (!EMPTIED.has(name)) yield* visit(path, child);
      } else if (info.isFile()) {
        yield entry(path, child, info, 'file');
      }
      // Sockets, FIFOs and devices: not PostgreSQL's, left out as pg_basebackup does.
    }
  }
  yield* visit('', root);
}

const headerOf = (
  entry: Pick<DataDirectoryEntry, 'path' | 'type' | 'mode' | 'uid' | 'gid' | 'size' | 'mtimeNs' | 'linkname'>,
) =>
  entryHeader({
    path: entry.path,
    type: entry.type,
    mode: entry.mode,
    uid: entry.uid,
    gid: entry.gid,
    size: entry.type === 'file' ? entry.size : 0,
    mtime: `${entry.mtimeNs / 1_000_000_000n}.${(entry.mtimeNs % 1_000_000_000n).toString().padStart(9, '0')}`,
    ...(entry.linkname !== undefined ? { linkname: entry.linkname } : {}),
  });

/** A file written into the tar from memory (backup_label, an archive_status .done). */
function contentPiece(path: string, content: Buffer, like: { uid: number; gid: number }): Buffer {
  const nowNs = BigInt(Date.now()) * 1_000_000n;
  const header = headerOf({
    path,
    type: 'file',
    mode: 0o600,
    uid: like.uid,
    gid: like.gid,
    size: content.length,
    mtimeNs: nowNs,
  });
  return Buffer.concat([header, content, padding(content.length)]);
}

/**
 * Opens a walked file for reading: undefined when it vanished or was replaced since its lstat (left
 * out, as pg_basebackup leaves out a file removed while it runs).
 */
function openWalked(entry: DataDirectoryEntry): number | undefined {
  let fd: number;
  try {
    fd = openSync(entry.absolute, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    if (vanished(error) || (error as NodeJS.ErrnoException).code === 'ELOOP') return undefined;
    throw error;
  }
  const now = fstatSync(fd, { bigint: true });
  if (!now.isFile() || now.ino !== entry.ino || now.dev !== entry.dev) {
    closeSync(fd);
    return undefined;
  }
  return fd;
}

/**
 * One DirectSource over a sequence of pieces (bytes in memory, or sources of their own read in turn):
 * each readInto() fills the target as far as the pieces go, so many small files take one call.
 */
export function chainedSource(
  pieces: AsyncIterator<Buffer | DirectSource> | Iterator<Buffer | DirectSource>,
): DirectSource {
  let bytes: Buffer | undefined;
  let at = 0;
  let current: DirectSource | undefined;
  let ended = false;
  return {
    async readInto(target) {
      let placed = 0;
      while (placed < target.length && !ended) {
        if (bytes !== undefined) {
          const count = bytes.copy(target, placed, at);
          at += count;
          placed += count;
          if (at === bytes.length) bytes = undefined;
          continue;
        }
        if (current !== undefined) {
          const count = await current.readInto(target.subarray(placed));
          if (count === 0) current = undefined;
          placed += count;
          continue;
        }
        const next = await pieces.next();
        if (next.done) ended = true;
        else if (Buffer.isBuffer(next.value)) [bytes, at] = [next.value, 0];
        else current = next.value;
      }
      return placed;
    },
    destroy(error) {
      current?.destroy?.(error);
      try {
        void Promise.resolve(pieces.return?.(undefined)).catch(() => undefined);
      } catch {
        // a generator that throws on return has ended all the same
      }
    },
  };
}

export interface DirectBackup {
  dataDirectory: string;
  startLsn: string;
  /** The data directory's tar; pg_backup_stop() runs once the files are read. */
  tar: DirectSource;
  /** After the tar has ended: what pg_backup_stop() returned. */
  stopped(): { stopLsn: bigint; label: string };
  /** Ends the session (which aborts a backup still running and drops the slot). */
  close(): Promise<void>;
}

/**
 * Starts a direct read, or says why it cannot be done (nothing is left behind then). `major` is the
 * server's major version: pg_backup_start/stop from 15, pg_start_backup/pg_stop_backup (non-exclusive)
 * before.
 */
export async function startDirectBackup(
  endpoint: Endpoint,
  major: number,
  segmentSize: number,
  signal?: AbortSignal,
): Promise<DirectBackup | string> {
  let client: pg.Client;
  try {
    client = await connect(endpoint);
  } catch (error) {
    return (error as Error).message;
  }
  const close = async () => {
    await client.end().catch(() => undefined);
  };
  let dataDirectory: string;
  let startLsn: string;
  try {
    const [facts] = (
      await client.query<{ directory: string; system: string; standby: boolean }>(
        `SELECT current_setting('data_directory') AS directory,
                (SELECT system_identifier::text FROM pg_control_system()) AS system,
                pg_is_in_recovery() AS standby`,
      )
    ).rows;
    dataDirectory = facts!.directory;
    if (facts!.standby) throw new Error('the server is a standby');
    let local: bigint;
    try {
      const control = Buffer.alloc(8);
      const fd = openSync(join(dataDirectory, 'global', 'pg_control'), 'r');
      try {
        readSync(fd, control, 0, 8, 0);
      } finally {
        closeSync(fd);
      }
      local = control.readBigUInt64LE(0);
    } catch (error) {
      throw new Error(
        `cannot read the server's data directory ${dataDirectory} here: ${(error as Error).message}`,
      );
    }
    if (local.toString() !== facts!.system) {
      throw new Error(
        `${dataDirectory} here is another cluster's (system identifier ${local}, the server's ${facts!.system})`,
      );
    }
    const spaces = readdirSync(join(dataDirectory, 'pg_tblspc'));
    if (spaces.length > 0) throw new Error(`the cluster has ${spaces.length} extra tablespace(s)`);
    if (major >= 14) await client.query('SET idle_session_timeout = 0');
    // The WAL hold: the slot reserves WAL from the last checkpoint's redo point, before the backup's own.
    const slot = `lifeboat_${process.pid}_${randomBytes(4).toString('hex')}`;
    await client.query('SELECT pg_create_physical_replication_slot($1, true, true)', [slot]);
    const label = `lifeboat base backup ${new Date().toISOString()}`;
    startLsn = (
      await client.query<{ lsn: string }>(
        major >= 15
          ? 'SELECT pg_backup_start($1, true)::text AS lsn'
          : 'SELECT pg_start_backup($1, true, false)::text AS lsn',
        [label],
      )
    ).rows[0]!.lsn;
  } catch (error) {
    await close();
    return (error as Error).message;
  }

  let stop: { stopLsn: bigint; label: string } | undefined;
  let owner = { uid: 0, gid: 0 };
  async function* pieces(): AsyncGenerator<Buffer | DirectSource> {
    try {
      yield* files();
    } catch (error) {
      if (error instanceof LifeboatError || signal?.aborted) throw error;
      throw new LifeboatError(
        'LB_ENGINE_FAILED',
        `base backup read from ${dataDirectory}: ${(error as Error).message}`,
        { cause: error },
      );
    }
  }
  async function* files(): AsyncGenerator<Buffer | DirectSource> {
    for (const entry of dataDirectoryEntries(dataDirectory)) {
      signal?.throwIfAborted();
      if (entry.path === 'global') owner = { uid: entry.uid, gid: entry.gid };
      if (entry.type !== 'file') {
        yield headerOf(entry);
        continue;
      }
      const fd = openWalked(entry);
      if (fd === undefined) continue;
      // No log for a file that shrinks: relations are truncated by vacuum while a backup runs, and
      // recovery restores them (the WAL from the backup's start is replayed over them).
      yield entrySource(entry.absolute, headerOf(entry), entry.size, undefined, fd, false);
    }
    const [result] = (
      await client.query<{ lsn: string; labelfile: string; spcmapfile: string | null }>(
        major >= 15
          ? 'SELECT lsn::text AS lsn, labelfile, spcmapfile FROM pg_backup_stop(false)'
          : 'SELECT lsn::text AS lsn, labelfile, spcmapfile FROM pg_stop_backup(false, false)',
      )
    ).rows;
    const labelText = result!.labelfile;
    stop = { stopLsn: parseLsn(result!.lsn), label: labelText };
    yield contentPiece('backup_label', Buffer.from(labelText), owner);
    if (result!.spcmapfile) yield contentPiece('tablespace_map', Buffer.from(result!.spcmapfile), owner);
    // The backup's WAL, from its start segment to the one holding its last byte, held on the server by
    // the slot; then every timeline history file, as pg_basebackup -X fetch does.
    const parsed = parseBackupLabel(labelText);
    const timeline = parsed.startTimeline ?? 1;
    const first = segmentOfLsn(parsed.startLsn ?? parseLsn(startLsn), segmentSize);
    const last = segmentOfLsn(stop.stopLsn - 1n, segmentSize);
    const wal = join(dataDirectory, 'pg_wal');
    const names: string[] = [];
    for (let segment = first; segment <= last; segment++)
      names.push(segmentName(timeline, segment, segmentSize));
    names.push(...readdirSync(wal).filter(isHistoryName).sort());
    for (const name of names) {
      const info = lstatSync(join(wal, name), { bigint: true });
      const entry: DataDirectoryEntry = {
        path: `pg_wal/${name}`,
        absolute: join(wal, name),
        type: 'file',
        mode: Number(info.mode & 0o7777n),
        uid: Number(info.uid),
        gid: Number(info.gid),
        size: Number(info.size),
        mtimeNs: info.mtimeNs,
        ino: info.ino,
        dev: info.dev,
      };
      if (!isHistoryName(name) && entry.size !== segmentSize) {
        throw new Error(`WAL segment ${name} is ${entry.size} bytes, not ${segmentSize}`);
      }
      yield entrySource(entry.absolute, headerOf(entry), entry.size, undefined, undefined, false);
      yield contentPiece(`pg_wal/archive_status/${name}.done`, Buffer.alloc(0), owner);
    }
    yield END_OF_ARCHIVE;
  }

  const tar = chainedSource(pieces());
  return {
    dataDirectory,
    startLsn,
    tar,
    stopped() {
      if (stop === undefined) throw new Error('the direct base backup has not ended');
      return stop;
    },
    async close() {
      tar.destroy?.(); // closes a file still open when the backup stopped early
      await close();
    },
  };
}
