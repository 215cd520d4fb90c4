// Walking the configured paths: which files, directories and symlinks a files backup holds, in a
// stable order, and the tree hash that proves a restored tree equal to the backed-up one.
//
// Terms:
//   root          one configured path; its archive path is the absolute path without the leading "/".
//   order         depth first, directory entries sorted by name (byte order): the same tree always
//                 yields the same sequence, so unchanged files fall on the same parts.
//   exclude       globs matched against the absolute path, and against the base name when the glob has
//                 no "/"; an excluded directory is not entered.
//   include       when given, a regular file must match one to be kept (directories are always walked).
//   tree hash     SHA-256 over one line per entry: archive path, type, permission bits, size, mtime in
//                 milliseconds (directories too: a restore sets them last), SHA-256 of the content (files) or the link target (symlinks), and the
//                 owner when running as root (only root can restore owners).
//   skipped       sockets, FIFOs and devices are not backed up; they are counted.
//   vanished      an entry deleted between its directory's listing and its own lstat (or readdir,
//                 readlink) is left out, counted and logged, as restic and tar do on a live tree. An
//                 entry that cannot be read (EACCES) fails the backup, naming it: a backup that quietly
//                 lacks files would be found out on the worst day.
//
// The file system calls are synchronous: one lstat per entry and one readdir per directory, each a few
// microseconds on a local disk. Through the promise API every call was a round trip to libuv's thread
// pool and back through the event loop, and a walk of 100k files spent more time in those round trips
// (and in the context switches they cost) than in the calls themselves.
import { createHash } from 'node:crypto';
import { type BigIntStats, lstatSync, readdirSync, readlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';

import picomatch from 'picomatch';

import { LifeboatError } from '../../errors.js';
import type { EntryType } from './tar.js';

/** What a walk left out: special files, and entries gone before they could be read. */
export interface Skipped {
  count: number;
  vanished: number;
}

/** Records an entry left out because it vanished (or was replaced) while the backup ran. */
export function leftOut(skipped: Skipped, path: string, log?: (line: string) => void): void {
  skipped.vanished++;
  log?.(`${path} vanished during the backup; left out`);
}

/** Whether a file system error means the entry was deleted (or replaced) while the walk ran. */
export function vanished(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** The error for an entry the backup cannot read. */
export function unreadable(path: string, error: unknown): LifeboatError {
  const code = (error as NodeJS.ErrnoException).code;
  return new LifeboatError(
    'LB_ENGINE_FAILED',
    `cannot read ${path} (${code ?? (error as Error).message}): run lifeboat as a user that can read it, or leave it out with the source's exclude globs`,
    { cause: error },
  );
}

export interface WalkOptions {
  include?: string[];
  exclude?: string[];
  oneFileSystem?: boolean;
}

/** What a walk keeps of an entry's lstat. */
export interface EntryStat {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeNs: bigint;
  /** Which file it was (a backup opens it later and checks it is still the same one). */
  dev: bigint;
  ino: bigint;
}

export interface WalkedEntry {
  /** Path on disk. */
  absolute: string;
  /** Archive path ("srv/uploads/a.txt"). */
  path: string;
  type: EntryType;
  stat: EntryStat;
  linkname?: string;
}

function entryStat(stat: BigIntStats): EntryStat {
  return {
    mode: Number(stat.mode),
    uid: Number(stat.uid),
    gid: Number(stat.gid),
    size: Number(stat.size),
    mtimeNs: stat.mtimeNs,
    dev: stat.dev,
    ino: stat.ino,
  };
}

/** Archive path of a root on disk: absolute, without the leading "/". */
export const archivePathOf = (root: string): string => resolve(root).replace(/^\/+/, '');

const byteOrder = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Walks roots on disk. `archiveRoot` maps a root to its archive path (by default its absolute path);
 * a restored tree is walked with its original archive paths this way.
 */
export async function* walk(
  roots: ReadonlyArray<{ disk: string; archive: string }>,
  options: WalkOptions,
  skipped: Skipped = { count: 0, vanished: 0 },
  log?: (line: string) => void,
): AsyncGenerator<WalkedEntry> {
  const exclude = (options.exclude ?? []).map((glob) =>
    picomatch(glob, { dot: true, basename: !glob.includes('/') }),
  );
  const include = (options.include ?? []).map((glob) =>
    picomatch(glob, { dot: true, basename: !glob.includes('/') }),
  );
  const excluded = (path: string) => exclude.some((matches) => matches(path));
  const included = (path: string) => include.length === 0 || include.some((matches) => matches(path));

  async function* visit(
    disk: string,
    archive: string,
    device: bigint | undefined,
  ): AsyncGenerator<WalkedEntry> {
    if (excluded(disk)) return;
    /** Runs a file system call on this entry; undefined when the entry vanished meanwhile. */
    const attempt = <T>(call: () => T): T | undefined => {
      try {
        return call();
      } catch (error) {
        if (!vanished(error)) throw unreadable(disk, error);
        leftOut(skipped, disk, log);
        return undefined;
      }
    };
    const info = attempt(() => lstatSync(disk, { bigint: true }));
    if (info === undefined) return;
    const stat = entryStat(info);
    if (info.isSymbolicLink()) {
      if (!included(disk)) return;
      const linkname = attempt(() => readlinkSync(disk));
      if (linkname !== undefined) yield { absolute: disk, path: archive, type: 'symlink', stat, linkname };
    } else if (info.isFile()) {
      if (included(disk)) yield { absolute: disk, path: archive, type: 'file', stat };
    } else if (info.isDirectory()) {
      // A mount point under oneFileSystem is kept as an empty directory, and not read (an automount,
      // a stale NFS mount or one this user cannot list must not be touched).
      if (options.oneFileSystem && device !== undefined && info.dev !== device) {
        yield { absolute: disk, path: archive, type: 'directory', stat };
        return;
      }
      const names = attempt(() => readdirSync(disk));
      if (names === undefined) return;
      yield { absolute: disk, path: archive, type: 'directory', stat };
      for (const name of names.sort(byteOrder))
        yield* visit(join(disk, name), `${archive}/${name}`, device ?? info.dev);
    } else {
      skipped.count++;
    }
  }

  for (const root of roots) {
    yield* visit(root.disk, root.archive, undefined);
  }
}

/** Accumulates the tree hash and the counts of a walk. */
export class TreeHasher {
  private readonly hash = createHash('sha256');
  files = 0;
  directories = 0;
  symlinks = 0;
  bytes = 0;

  add(entry: WalkedEntry, contentSha256?: string): void {
    if (entry.type === 'file') {
      this.files++;
      this.bytes += entry.stat.size;
    } else if (entry.type === 'directory') this.directories++;
    else this.symlinks++;
    const owner = process.getuid?.() === 0 ? `${entry.stat.uid}:${entry.stat.gid}` : '';
    const size = entry.type === 'file' ? entry.stat.size : 0;
    const mtime = String(entry.stat.mtimeNs / 1_000_000n);
    this.hash.update(
      `${entry.path}\0${entry.type}\0${(entry.stat.mode & 0o7777).toString(8)}\0${size}\0${mtime}\0${contentSha256 ?? entry.linkname ?? ''}\0${owner}\n`,
    );
  }

  digest(): string {
    return this.hash.digest('hex');
  }
}
