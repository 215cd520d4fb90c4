// Restoring a files snapshot (a tar stream) into a directory, never writing outside it.
//
// Terms:
//   restore root  the target directory ("/" for the original place). Every entry lands at
//                 <root>/<archive path>.
//   unsafe entry  refused with LB_RESTORE_UNSAFE before anything of it is written: an absolute path, a
//                 ".." segment, a path outside the snapshot's roots, a path whose parent inside the
//                 root is a symlink (writing through it could leave the root), or, unless the root is
//                 "/", a symlink whose target resolves outside the root.
//   no following  nothing is ever written through a symlink: every parent of an entry is checked with
//                 lstat (a directory checked once is trusted until an entry replaces it or an
//                 ancestor), files are created with O_EXCL, and the directories' metadata is applied
//                 through a descriptor opened with O_NOFOLLOW. Symlinks are checked again once all are
//                 written, against the tree on disk: a chain of links ("a -> ." then "b -> a/../..")
//                 can point where no single link's text does.
//   existing      before the first write, the snapshot's roots are looked up in the restore root: any
//                 that exists (and is not an empty directory) needs --force. With --force, existing files
//                 and symlinks are replaced; existing directories are kept and updated.
//   metadata      modes, owners (as root) and mtimes (nanoseconds from the pax header) are applied; the
//                 directories' last, deepest first, once nothing more is written into them.
//
// Small files (up to SMALL_FILE, handed over by readTar as one Buffer) are written with synchronous calls
// (open, write, fchmod, fchown, futimes, close: microseconds each). Each asynchronous call was a round
// trip to libuv's thread pool, and a restore of 100k small files spent most of its time in them. Larger
// files are streamed, so a slow disk never stalls the event loop for long.
import {
  closeSync,
  constants,
  createWriteStream,
  fchmodSync,
  fchownSync,
  futimesSync,
  lstatSync,
  openSync,
  readlinkSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import {
  lchown,
  lstat,
  lutimes,
  mkdir,
  readdir,
  rm,
  stat,
  symlink,
  utimes,
  chmod,
  chown,
} from 'node:fs/promises';
import { dirname, isAbsolute, join, posix, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';

import { LifeboatError } from '../../errors.js';
import type { RestoreOptions, RestoreResult } from '../engine.js';
import { SMALL_FILE } from './entry-source.js';
import { readTar } from './tar-reader.js';

export interface FilesMetadata {
  kind: 'files';
  /** Archive paths of the configured roots. */
  roots: string[];
  artifact: string;
}

function unsafe(path: string, why: string): LifeboatError {
  return new LifeboatError(
    'LB_RESTORE_UNSAFE',
    `refusing archive entry ${JSON.stringify(path)}: ${why} (nothing of it was written)`,
  );
}

/** The checked on-disk location of an archive path under root. */
function locate(root: string, path: string): string {
  const clean = path.replace(/\/+$/, '');
  if (clean === '' || isAbsolute(clean) || clean.includes('\0')) throw unsafe(path, 'not a relative path');
  if (clean.split('/').some((segment) => segment === '..' || segment === '.' || segment === '')) {
    throw unsafe(path, 'it has "..", "." or empty segments (path traversal)');
  }
  const target = resolve(root, clean);
  if (!within(root, target)) throw unsafe(path, 'it resolves outside the restore directory');
  return target;
}

/** Whether something (even a dangling symlink) is at `path`. */
function exists(path: string): boolean {
  return lstatSync(path, { throwIfNoEntry: false }) !== undefined;
}

/**
 * Creates `target` ("wx": never follows or truncates something that appeared meanwhile) with the
 * content, mode, owner (when given) and mtime, all through one descriptor.
 */
export function writeSmallFile(
  target: string,
  content: Buffer,
  mode: number,
  owner: { uid: number; gid: number } | undefined,
  mtime: number,
): void {
  const fd = openSync(target, 'wx', 0o600);
  try {
    for (let offset = 0; offset < content.length;)
      offset += writeSync(fd, content, offset, content.length - offset);
    // Owner first: chown clears the setuid and setgid bits.
    if (owner) fchownSync(fd, owner.uid, owner.gid);
    fchmodSync(fd, mode & 0o7777);
    futimesSync(fd, mtime, mtime);
  } finally {
    closeSync(fd);
  }
}

/** Whether `path` is `base` or inside it. */
function within(base: string, path: string): boolean {
  return path === base || path.startsWith(base === sep ? base : `${base}${sep}`);
}

/**
 * Where `link` (the text of a symlink in directory `from`) leads on the disk as it is now, following
 * every symlink on the way; the part after a missing component is taken as text. Undefined for a loop.
 */
function followOnDisk(from: string, link: string): string | undefined {
  let current = isAbsolute(link) ? sep : from;
  const pending = link.split(sep).filter((part) => part !== '' && part !== '.');
  for (let hops = 0; pending.length > 0;) {
    const part = pending.shift()!;
    if (part === '..') {
      current = dirname(current);
      continue;
    }
    const next = join(current, part);
    const info = lstatSync(next, { throwIfNoEntry: false });
    if (info?.isSymbolicLink()) {
      if (++hops > 40) return undefined;
      const text = readlinkSync(next);
      pending.unshift(...text.split(sep).filter((piece) => piece !== '' && piece !== '.'));
      if (isAbsolute(text)) current = sep;
      continue;
    }
    current = next;
  }
  return current;
}

/**
 * Whether `directory` and every directory below `root` on the way to it are real directories (not
 * symlinks). The root itself is the user's choice and may be a symlink.
 */
function realDirectories(root: string, directory: string): boolean {
  for (let at = directory; within(root, at); at = dirname(at)) {
    if (at === root) return true;
    if (!lstatSync(at, { throwIfNoEntry: false })?.isDirectory()) return false;
  }
  return false;
}

export async function restoreFiles(
  root: string,
  archive: Readable,
  metadata: FilesMetadata,
  options: RestoreOptions,
): Promise<RestoreResult> {
  root = resolve(root);
  for (const path of metadata.roots) {
    const target = locate(root, path);
    if (!exists(target)) continue;
    const info = await lstat(target);
    const empty = info.isDirectory() && (await readdir(target)).length === 0;
    if (!empty && !options.force) {
      throw new LifeboatError(
        'LB_TARGET_NOT_EMPTY',
        `${target} already exists: restore into another directory, or add --force to overwrite (nothing was changed)`,
      );
    }
  }
  await mkdir(root, { recursive: true });
  const isRoot = process.getuid?.() === 0;
  const roots = metadata.roots.map((path) => locate(root, path));
  const checkedDirectories = new Set<string>([root]);
  let directories: Array<{ path: string; mode: number; uid: number; gid: number; mtime: number }> = [];
  const links: Array<{ target: string; path: string; link: string }> = [];
  let files = 0;
  let bytes = 0;

  /**
   * Before something at `target` is removed to make room for an entry: what was checked or recorded
   * at or under it is gone, and must be neither trusted nor touched again (it may become a symlink).
   */
  const replacing = async (target: string) => {
    for (const checked of checkedDirectories) if (within(target, checked)) checkedDirectories.delete(checked);
    directories = directories.filter((directory) => !within(target, directory.path));
    await rm(target, { recursive: true, force: true });
  };

  /** Every directory between root and `target` must be a real directory (never a symlink). */
  const checkParents = async (target: string, path: string) => {
    const parents: string[] = [];
    for (let parent = dirname(target); !checkedDirectories.has(parent); parent = dirname(parent))
      parents.unshift(parent);
    for (const parent of parents) {
      const info = await lstat(parent).catch(() => undefined);
      if (info?.isSymbolicLink()) {
        // Restoring to the original place: above the snapshot's roots is the system's own layout
        // (merged /usr: /lib -> usr/lib), which no archive entry can create; it is followed.
        if (root === sep && roots.some((base) => base !== parent && within(parent, base))) {
          if ((await stat(parent).catch(() => undefined))?.isDirectory()) {
            checkedDirectories.add(parent);
            continue;
          }
        }
        throw unsafe(path, `${parent} is a symlink: writing through it could leave the restore directory`);
      }
      if (info && !info.isDirectory()) throw unsafe(path, `${parent} is not a directory`);
      if (!info) await mkdir(parent);
      checkedDirectories.add(parent);
    }
  };

  try {
    await readEntries();
  } catch (error) {
    archive.destroy();
    removeEscapingLinks(); // whatever was written before the failure is checked all the same
    throw error;
  }
  const escaping = removeEscapingLinks();
  if (escaping.length > 0)
    throw new LifeboatError(
      'LB_RESTORE_UNSAFE',
      `refusing ${escaping.map(({ path, link }) => `the symlink ${JSON.stringify(path)} -> ${link}`).join(', ')}: it leads outside the restore directory ${root} through other symlinks; removed (the rest of the archive was restored)`,
    );

  /**
   * Follows every symlink the restore made on the disk as it is now, through the other symlinks, and
   * removes each that leads outside the restore directory (a chain can, where no single link's text
   * does). Returns those removed.
   */
  function removeEscapingLinks(): Array<{ path: string; link: string }> {
    if (root === sep) return [];
    const removed: Array<{ path: string; link: string }> = [];
    for (const { target, path, link } of links) {
      // Only a link still at its place: every directory from the root down to it real (a path through
      // a symlink made since could reach, and unlink, something outside).
      if (!realDirectories(root, dirname(target))) continue;
      const info = lstatSync(target, { throwIfNoEntry: false });
      if (!info?.isSymbolicLink() || readlinkSync(target) !== link) continue; // replaced since
      const leadsTo = followOnDisk(dirname(target), link);
      if (leadsTo === undefined || !within(root, leadsTo)) {
        unlinkSync(target);
        removed.push({ path, link });
      }
    }
    return removed;
  }

  async function readEntries(): Promise<void> {
    for await (const { header, data } of readTar(archive, SMALL_FILE)) {
      const path = header.name;
      const target = locate(root, path);
      if (!roots.some((base) => within(base, target)))
        throw unsafe(path, `it is outside the snapshot's roots (${metadata.roots.join(', ')})`);
      // readTar applies the pax records: path, link path, size, ids beyond ustar's 2097151, and
      // nanosecond mtimes.
      const { mtime, mode, uid, gid } = header;
      await checkParents(target, path);
      if (header.type === 'directory') {
        const info = await lstat(target).catch(() => undefined);
        if (info && !info.isDirectory()) {
          if (!options.force)
            throw new LifeboatError(
              'LB_TARGET_NOT_EMPTY',
              `${target} exists and is not a directory (use --force)`,
            );
          await replacing(target);
        }
        if (!info?.isDirectory()) await mkdir(target, { mode: 0o700 });
        checkedDirectories.add(target);
        directories.push({ path: target, mode, uid, gid, mtime });
      } else if (header.type === 'symlink') {
        const link = header.linkname;
        if (root !== sep) {
          const pointsTo = resolve(dirname(target), link); // an absolute link too, normalised
          if (!within(root, pointsTo)) {
            throw unsafe(path, `a symlink to ${link} would point outside the restore directory ${root}`);
          }
        }
        if (exists(target)) {
          if (!options.force && !links.some((created) => created.target === target))
            throw new LifeboatError('LB_TARGET_NOT_EMPTY', `${target} exists (use --force to overwrite)`);
          await replacing(target);
        }
        await symlink(link, target);
        links.push({ target, path, link });
        if (isRoot) await lchown(target, uid, gid);
        await lutimes(target, mtime, mtime);
      } else if (header.type === 'file') {
        if (exists(target)) {
          if (!options.force)
            throw new LifeboatError('LB_TARGET_NOT_EMPTY', `${target} exists (use --force to overwrite)`);
          await replacing(target);
        }
        if (Buffer.isBuffer(data)) {
          writeSmallFile(target, data, mode, isRoot ? { uid, gid } : undefined, mtime);
        } else {
          // "wx": never follows or truncates something that appeared meanwhile.
          await pipeline(Readable.from(data), createWriteStream(target, { flags: 'wx', mode: 0o600 }));
          if (isRoot) await chown(target, uid, gid); // first: chown clears setuid and setgid
          await chmod(target, mode & 0o7777);
          await utimes(target, mtime, mtime);
        }
        files++;
        bytes += header.size;
      }
      // Anything else (hard links, devices, FIFOs: lifeboat writes none) carries nothing to restore.
      options.signal?.throwIfAborted();
    }
  }
  // Deepest first, each through a descriptor that refuses a symlink in the last place; every parent
  // was checked to be a real directory, and none was replaced since (replacing() drops those).
  for (const directory of directories.reverse()) {
    const fd = openSync(directory.path, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
    try {
      if (isRoot) fchownSync(fd, directory.uid, directory.gid); // first: chown clears setgid
      fchmodSync(fd, directory.mode & 0o7777);
      futimesSync(fd, directory.mtime, directory.mtime);
    } finally {
      closeSync(fd);
    }
  }
  return {
    actions: [`restored ${files} files (${bytes} bytes) and ${directories.length} directories into ${root}`],
    details: {
      root,
      files,
      bytes,
      directories: directories.length,
      roots: metadata.roots.map((path) => join(root, ...path.split(posix.sep))),
    },
  };
}
