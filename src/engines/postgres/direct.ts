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
//                 is the server's, and a postmaster.pid naming the server's port and the process whose
//                 child this session's backend is, started when the server says it was (/proc), so it
//                 is the running server's own and not a standby's or a restored copy's at the same path
//                 (checkOwnDirectory); the server is not a standby; there are no
//                 extra tablespaces; the slot can be made and the session may call pg_backup_start.
//                 Otherwise auto falls back to pg_basebackup, saying why; direct fails with that reason.
//   left out      what basebackup.c leaves out (PostgreSQL 15): the contents of pg_wal (its WAL is
//                 appended at the end), pg_stat_tmp, pg_replslot, pg_dynshmem, pg_notify, pg_serial,
//                 pg_snapshots and pg_subtrans (the directories themselves are kept, as directories
//                 even where they are symlinks); postmaster.pid and .opts, backup_label,
//                 tablespace_map, backup_manifest, postgresql.auto.conf.tmp, current_logfiles.tmp,
//                 pg_internal.init*, pgsql_tmp*; symlinks (logged); in database directories the
//                 temporary relations (t<n>_<node>...) and every fork but the init fork of an unlogged
//                 relation. global/pg_control is read last, as basebackup.c sends it.
//   WAL checks    each segment's first page must name that segment (xlp_pageaddr), and the slot must
//                 not have been given up (max_slot_wal_keep_size) by the time the WAL was read.
//
// Why: a base backup through pg_basebackup costs the walsender (reading the files and sending them),
// pg_basebackup (receiving and relaying them) and the kernel's copies between the three processes:
// ~4 of ~18 CPU-s for a 1.6 GB cluster on this 2-core machine (perf record -a), on top of what the
// repository spends. Files that change while they are read are as safe as in pg_basebackup: full-page
// writes are forced on during a backup and recovery replays the WAL from the backup's start over them;
// a file that shrinks is zero-filled to the size its header announced, one that vanished is left out.
import {
  type BigIntStats,
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
} from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

import type pg from 'pg';

import { LifeboatError } from '../../errors.js';
import type { DirectSource } from '../../util/read-fd.js';
import { entrySource } from '../files/entry-source.js';
import { END_OF_ARCHIVE, entryHeader, mtimeOfNs, padding, type EntryType } from '../files/tar.js';
import { vanished } from '../files/walk.js';
import { type Endpoint, connect } from './connection.js';
import {
  formatLsn,
  isHistoryName,
  parseBackupLabel,
  parseLsn,
  parseSegmentName,
  segmentName,
  segmentOfLsn,
} from './wal-names.js';

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
}

/** An entry from what (l)stat says of it. */
const entryOf = (path: string, absolute: string, info: BigIntStats, type: EntryType): DataDirectoryEntry => ({
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
});

/**
 * The entries of a running cluster's data directory that a base backup carries, in name order, each
 * directory before its contents. Entries that vanish while it walks are left out. pg_wal and the
 * emptied directories come out as directories, empty (pg_wal with archive_status), even where they are
 * symlinks (initdb --waldir, pg_stat_tmp on a tmpfs). Any other symlink is left out, as basebackup.c
 * leaves out every symlink outside pg_tblspc; `skipped` hears of it. Anything in pg_tblspc (a
 * tablespace, maybe made while the walk runs) is an error: this tar cannot carry tablespaces.
 */
export function* dataDirectoryEntries(
  root: string,
  skipped?: (path: string, why: string) => void,
): Generator<DataDirectoryEntry> {
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
  /** A directory entry for a directory or a symlink to one (its target's mode; 0700 if unresolved). */
  const directoryEntry = (path: string, absolute: string, info: NonNullable<ReturnType<typeof stat>>) => {
    // `${absolute}/.` (not join(), which normalizes the dot away): lstat resolves the link for it.
    const target = info.isDirectory() ? info : stat(`${absolute}/.`);
    return target?.isDirectory()
      ? entryOf(path, absolute, target, 'directory')
      : { ...entryOf(path, absolute, info, 'directory'), mode: 0o700 };
  };

  function* visit(relative: string, absolute: string): Generator<DataDirectoryEntry> {
    const names = list(absolute);
    if (names === undefined) return;
    if (relative === 'pg_tblspc' && names.length > 0) {
      throw new Error(
        `the cluster has tablespaces (pg_tblspc/${names.join(', pg_tblspc/')}), which this backup cannot carry`,
      );
    }
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
      const directoryLike = info.isDirectory() || info.isSymbolicLink();
      if (path === 'pg_wal' && directoryLike) {
        yield directoryEntry(path, child, info);
        // Always there, as basebackup.c writes it: the restored server keeps its archive status in it.
        const status = stat(join(child, 'archive_status'));
        yield status !== undefined && (status.isDirectory() || status.isSymbolicLink())
          ? directoryEntry('pg_wal/archive_status', join(child, 'archive_status'), status)
          : {
              ...entryOf('pg_wal/archive_status', join(child, 'archive_status'), info, 'directory'),
              mode: 0o700,
            };
      } else if (EMPTIED.has(name) && directoryLike) {
        yield directoryEntry(path, child, info);
      } else if (info.isSymbolicLink()) {
        skipped?.(path, 'a symbolic link (pg_basebackup too keeps none outside pg_tblspc)');
      } else if (info.isDirectory()) {
        yield entryOf(path, child, info, 'directory');
        yield* visit(path, child);
      } else if (info.isFile()) {
        yield entryOf(path, child, info, 'file');
      } else {
        skipped?.(path, 'not a file, directory or symbolic link');
      }
    }
  }
  yield* visit('', root);
}

const headerOf = (
  entry: Pick<DataDirectoryEntry, 'path' | 'type' | 'mode' | 'uid' | 'gid' | 'size' | 'mtimeNs'>,
) =>
  entryHeader({
    path: entry.path,
    type: entry.type,
    mode: entry.mode,
    uid: entry.uid,
    gid: entry.gid,
    size: entry.type === 'file' ? entry.size : 0,
    mtime: mtimeOfNs(entry.mtimeNs),
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
  try {
    const now = fstatSync(fd, { bigint: true });
    if (now.isFile() && now.ino === entry.ino && now.dev === entry.dev) return fd;
  } catch (error) {
    closeSync(fd);
    throw error;
  }
  closeSync(fd);
  return undefined;
}

/**
 * One DirectSource over a sequence of pieces (bytes in memory, or sources of their own read in turn):
 * each readInto() fills the target as far as the pieces go, so many small files take one call. Once a
 * piece has failed, or the source was destroyed, every later readInto() rejects: only the true end of
 * the pieces resolves to 0.
 */
export function chainedSource(
  pieces: AsyncIterator<Buffer | DirectSource> | Iterator<Buffer | DirectSource>,
): DirectSource {
  let bytes: Buffer | undefined;
  let at = 0;
  let current: DirectSource | undefined;
  let ended = false;
  let failure: Error | undefined;
  const failed = () => failure;
  return {
    async readInto(target) {
      if (failure !== undefined) throw failure;
      let placed = 0;
      try {
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
          const destroyed = failed(); // destroy() while this waited
          if (destroyed !== undefined) {
            if (!next.done && !Buffer.isBuffer(next.value)) next.value.destroy?.(destroyed);
            throw destroyed;
          }
          if (next.done) ended = true;
          else if (Buffer.isBuffer(next.value)) [bytes, at] = [next.value, 0];
          else current = next.value;
        }
      } catch (error) {
        const thrown = (failure ??= error as Error);
        current?.destroy?.(thrown);
        current = undefined;
        throw thrown;
      }
      return placed;
    },
    destroy(error) {
      failure ??= error ?? new Error('the tar was given up before its end');
      current?.destroy?.(failure);
      current = undefined;
      try {
        void Promise.resolve(pieces.return?.(undefined)).catch(() => undefined);
      } catch {
        // a generator that throws on return has ended all the same
      }
    },
  };
}

/**
 * The WAL hold on a session: a temporary physical replication slot that reserves WAL from the last
 * checkpoint's redo point (before a backup's own), dropped by the server when the session ends. The
 * session sits idle through a whole backup: idle_session_timeout (PostgreSQL 14+) is turned off for
 * it. Resolves to the slot's name.
 */
export async function holdWalOn(client: pg.Client, major: number): Promise<string> {
  const slot = `lifeboat_${process.pid}_${randomBytes(4).toString('hex')}`;
  if (major >= 14) await client.query('SET idle_session_timeout = 0');
  await client.query('SELECT pg_create_physical_replication_slot($1, true, true)', [slot]);
  return slot;
}

/** What the server says about itself and this session, for checkOwnDirectory. */
export interface ServerIdentity {
  /** pg_control_system().system_identifier */
  system: string;
  /** current_setting('port') */
  port: string;
  /** pg_backend_pid() */
  backend: string;
  /** This session's backend_start, seconds since the epoch. */
  backendStart: number;
}

/**
 * Throws unless `dataDirectory` here is the running server's own. Its pg_control must carry the
 * server's system identifier, but a standby's directory, or a restored copy's at the same path on
 * another host, has that too. So its postmaster.pid must name the server's port and a process that is
 * the parent of this session's backend as seen here (/proc/<pid>/stat, so Linux only), and that
 * process here must have started when the server says the backend did (within 2 s): a process of
 * another host or pid namespace that merely has the same number does not pass.
 */
export function checkOwnDirectory(dataDirectory: string, server: ServerIdentity, proc = '/proc'): void {
  let system: bigint;
  let postmaster: string[];
  try {
    system = readFileSync(join(dataDirectory, 'global', 'pg_control')).readBigUInt64LE(0);
    postmaster = readFileSync(join(dataDirectory, 'postmaster.pid'), 'utf8').split('\n');
  } catch (error) {
    throw new Error(
      `cannot read the server's data directory ${dataDirectory} here: ${(error as Error).message}`,
    );
  }
  if (system.toString() !== server.system) {
    throw new Error(
      `${dataDirectory} here is another cluster's (system identifier ${system}, the server's ${server.system})`,
    );
  }
  // /proc/<pid>/stat: "pid (comm) state ppid ... starttime(22nd, clock ticks after boot) ...".
  let parent: string | undefined;
  let started: number | undefined;
  try {
    const fields = readFileSync(`${proc}/${server.backend}/stat`, 'utf8')
      .replace(/^.*\)\s*/s, '')
      .split(' ');
    const boot = Number(/^btime\s+(\d+)$/m.exec(readFileSync(`${proc}/stat`, 'utf8'))?.[1]);
    parent = fields[1];
    started = boot + Number(fields[19]) / 100; // USER_HZ is 100 on Linux
  } catch {
    parent = undefined; // not on this host, or no /proc
  }
  const named = postmaster[0]?.trim();
  const why =
    postmaster[1] !== dataDirectory
      ? `its postmaster.pid is for ${postmaster[1]}`
      : postmaster[3]?.trim() !== server.port
        ? `its postmaster.pid says port ${postmaster[3]?.trim()}, the server's is ${server.port}`
        : parent === undefined
          ? `the server's backend ${server.backend} is not a process here`
          : parent !== named
            ? `its postmaster.pid names process ${named}, the server's backend ${server.backend} has parent ${parent} here`
            : !(Math.abs((started ?? 0) - server.backendStart) <= 2)
              ? `process ${server.backend} here is not the server's backend (started at another time)`
              : undefined;
  if (why !== undefined) {
    throw new Error(
      `${dataDirectory} here is not the running server's (another host, or another server of the same cluster): ${why}`,
    );
  }
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
  log?: (line: string) => void,
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
  let slot: string;
  try {
    const [facts] = (
      await client.query<{
        directory: string;
        system: string;
        standby: boolean;
        port: string;
        backend: string;
        backendStart: number;
      }>(
        `SELECT current_setting('data_directory') AS directory,
                (SELECT system_identifier::text FROM pg_control_system()) AS system,
                pg_is_in_recovery() AS standby,
                current_setting('port') AS port,
                pg_backend_pid()::text AS backend,
                (SELECT extract(epoch FROM backend_start)::float8 FROM pg_stat_activity
                  WHERE pid = pg_backend_pid()) AS "backendStart"`,
      )
    ).rows;
    dataDirectory = facts!.directory;
    if (facts!.standby) throw new Error('the server is a standby');
    checkOwnDirectory(dataDirectory, facts!);
    const spaces = readdirSync(join(dataDirectory, 'pg_tblspc'));
    if (spaces.length > 0) throw new Error(`the cluster has ${spaces.length} extra tablespace(s)`);
    slot = await holdWalOn(client, major);
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
  /** A file's part of the tar, from a descriptor open on it. */
  const filePiece = (entry: DataDirectoryEntry, fd: number) =>
    entrySource(entry.absolute, headerOf(entry), entry.size, undefined, fd, false);
  async function* files(): AsyncGenerator<Buffer | DirectSource> {
    let control: DataDirectoryEntry | undefined;
    const skipped = (path: string, why: string) => log?.(`left out of the base backup: ${path}, ${why}`);
    for (const entry of dataDirectoryEntries(dataDirectory, skipped)) {
      signal?.throwIfAborted();
      if (entry.path === 'global') owner = { uid: entry.uid, gid: entry.gid };
      if (entry.type !== 'file') {
        yield headerOf(entry);
        continue;
      }
      // pg_control goes last, as basebackup.c sends it.
      if (entry.path === 'global/pg_control') {
        control = entry;
        continue;
      }
      const fd = openWalked(entry);
      // No log for a file that shrinks: relations are truncated by vacuum while a backup runs, and
      // recovery restores them (the WAL from the backup's start is replayed over them).
      if (fd !== undefined) yield filePiece(entry, fd);
    }
    const controlFd = control === undefined ? undefined : openWalked(control);
    if (controlFd === undefined) throw new Error('global/pg_control vanished during the backup');
    yield filePiece(control!, controlFd);
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
    // A tablespace made after the walk passed pg_tblspc would be missing from this tar.
    const spaces = readdirSync(join(dataDirectory, 'pg_tblspc'));
    if (spaces.length > 0 || result!.spcmapfile) {
      throw new Error(
        `a tablespace was created during the backup (pg_tblspc/${spaces.join(', pg_tblspc/')}), which this backup cannot carry`,
      );
    }
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
      signal?.throwIfAborted();
      const absolute = join(wal, name);
      let fd: number;
      try {
        fd = openSync(absolute, 'r');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
        throw new Error(
          `WAL file ${name} is gone from pg_wal before it was read (was the replication slot holding it given up? max_slot_wal_keep_size)`,
        );
      }
      let entry: DataDirectoryEntry;
      try {
        entry = entryOf(`pg_wal/${name}`, absolute, fstatSync(fd, { bigint: true }), 'file');
        if (!isHistoryName(name)) {
          // A segment's first page says which segment it holds (xlp_pageaddr): a file recycled under
          // this name would still hold an older one.
          const page = Buffer.alloc(16);
          readSync(fd, page, 0, 16, 0);
          const address = page.readBigUInt64LE(8);
          const expected = parseSegmentName(name, segmentSize)!.number * BigInt(segmentSize);
          if (entry.size !== segmentSize || address !== expected) {
            throw new Error(
              `WAL segment ${name} in pg_wal is not the backup's (${entry.size} bytes, first page at ${formatLsn(address)}, expected ${segmentSize} bytes at ${formatLsn(expected)})`,
            );
          }
        }
      } catch (error) {
        closeSync(fd);
        throw error;
      }
      yield filePiece(entry, fd);
      yield contentPiece(`pg_wal/archive_status/${name}.done`, Buffer.alloc(0), owner);
    }
    // The slot held that WAL unless the server gave it up meanwhile (max_slot_wal_keep_size): then a
    // segment may have been recycled while it was read.
    if (major >= 13) {
      const [held] = (
        await client.query<{ status: string | null }>(
          'SELECT wal_status AS status FROM pg_replication_slots WHERE slot_name = $1',
          [slot],
        )
      ).rows;
      if (held === undefined || held.status === 'lost') {
        throw new Error(
          `the server gave up the replication slot that held this backup's WAL (max_slot_wal_keep_size) while it was read`,
        );
      }
    }
    yield END_OF_ARCHIVE;
  }

  const chained = chainedSource(files());
  /** The error the consumer gave up with (destroy): rethrown as it is, not blamed on the server. */
  let givenUp: Error | undefined;
  const tar: DirectSource = {
    async readInto(target) {
      try {
        return await chained.readInto(target);
      } catch (error) {
        if (error instanceof LifeboatError || signal?.aborted || error === givenUp) throw error;
        throw new LifeboatError(
          'LB_ENGINE_FAILED',
          `base backup read from ${dataDirectory}: ${(error as Error).message}`,
          { cause: error },
        );
      }
    },
    destroy(error) {
      givenUp ??= error;
      chained.destroy?.(error);
    },
  };
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
