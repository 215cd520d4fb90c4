// Restoring a files snapshot (a tar stream) into a directory, never writing outside it.
//
// Terms:
//   restore root  the target directory ("/" for the original place). Every entry lands at
//                 <root>/<archive path>.
//   unsafe entry  refused with LB_RESTORE_UNSAFE before anything of it is written: an absolute path, a
//                 ".." segment, a path whose parent inside the root is a symlink (writing through it
//                 could leave the root), or, unless the root is "/", a symlink whose target resolves
//                 outside the root.
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
  createWriteStream,
  fchmodSync,
  fchownSync,
  futimesSync,
  lstatSync,
  openSync,
  writeSync,
} from 'node:fs';
import { lchown, lstat, lutimes, mkdir, readdir, rm, symlink, utimes, chmod, chown } from 'node:fs/promises';
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
  if (target !== root && !target.startsWith(root === sep ? root : `${root}${sep}`))
    throw unsafe(path, 'it resolves outside the restore directory');
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
function writeSmallFile(
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
    fchmodSync(fd, mode & 0o7777);
    if (owner) fchownSync(fd, owner.uid, owner.gid);
    futimesSync(fd, mtime, mtime);
  } finally {
    closeSync(fd);
  }
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
  const checkedDirectories = new Set<string>([root]);
  const directories: Array<{ path: string; mode: number; uid: number; gid: number; mtime: number }> = [];
  let files = 0;
  let bytes = 0;

  /** Every directory between root and `target` must be a real directory (never a symlink). */
  const checkParents = async (target: string, path: string) => {
    const parents: string[] = [];
    for (let parent = dirname(target); !checkedDirectories.has(parent); parent = dirname(parent))
      parents.unshift(parent);
    for (const parent of parents) {
      const info = await lstat(parent).catch(() => undefined);
      if (info?.isSymbolicLink())
        throw unsafe(path, `${parent} is a symlink: writing through it could leave the restore directory`);
      if (info && !info.isDirectory()) throw unsafe(path, `${parent} is not a directory`);
      if (!info) await mkdir(parent);
      checkedDirectories.add(parent);
    }
  };

  try {
    await readEntries();
  } catch (error) {
    archive.destroy();
    throw error;
  }

  async function readEntries(): Promise<void> {
    for await (const { header, data } of readTar(archive, SMALL_FILE)) {
      const path = header.name;
      const target = locate(root, path);
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
          await rm(target, { recursive: true, force: true });
        }
        if (!info?.isDirectory()) await mkdir(target, { mode: 0o700 });
        checkedDirectories.add(target);
        directories.push({ path: target, mode, uid, gid, mtime });
      } else if (header.type === 'symlink') {
        const link = header.linkname;
        if (root !== sep) {
          const pointsTo = isAbsolute(link) ? link : resolve(dirname(target), link);
          if (pointsTo !== root && !pointsTo.startsWith(`${root}${sep}`)) {
            throw unsafe(path, `a symlink to ${link} would point outside the restore directory ${root}`);
          }
        }
        if (exists(target)) await rm(target, { recursive: true, force: true });
        await symlink(link, target);
        if (isRoot) await lchown(target, uid, gid);
        await lutimes(target, mtime, mtime);
      } else if (header.type === 'file') {
        if (exists(target)) {
          if (!options.force)
            throw new LifeboatError('LB_TARGET_NOT_EMPTY', `${target} exists (use --force to overwrite)`);
          await rm(target, { recursive: true, force: true });
        }
        if (Buffer.isBuffer(data)) {
          writeSmallFile(target, data, mode, isRoot ? { uid, gid } : undefined, mtime);
        } else {
          // "wx": never follows or truncates something that appeared meanwhile.
          await pipeline(Readable.from(data), createWriteStream(target, { flags: 'wx', mode: 0o600 }));
          await chmod(target, mode & 0o7777);
          if (isRoot) await chown(target, uid, gid);
          await utimes(target, mtime, mtime);
        }
        files++;
        bytes += header.size;
      }
      // Anything else (hard links, devices, FIFOs: lifeboat writes none) carries nothing to restore.
      options.signal?.throwIfAborted();
    }
  }
  for (const directory of directories.reverse()) {
    await chmod(directory.path, directory.mode & 0o7777);
    if (isRoot) await chown(directory.path, directory.uid, directory.gid);
    await utimes(directory.path, directory.mtime, directory.mtime);
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
