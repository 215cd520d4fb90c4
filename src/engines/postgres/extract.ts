// Extracting base.tar into an empty data directory, in lifeboat's own process.
//
// Written by hand (over the files engine's tar reader) rather than piping the artifact into `tar -x`:
// the pipe cost three copies of every byte (into the pipe, out of it, into the file) and a second
// process beside the repository's workers, ~3 CPU-s per 1.5 GB base backup on two cores, and GNU tar
// is one more tool the restore host must have. Here each byte is copied once, into its file.
//
// What it writes, and refuses:
//   entries    directories, regular files and symbolic links, with their modes and mtimes (owners are
//              the restoring user's; the caller chowns the tree when it runs as root). A symlink only as
//              pg_tblspc/<oid> (a tablespace's link; lifeboat's own base backups hold none). Anything
//              else (a hard link, a device, a FIFO: pg_basebackup and lifeboat write none) is an error.
//   paths      relative, inside the data directory: an absolute path or a ".." segment is refused
//              (LB_RESTORE_UNSAFE) before anything of that entry is written.
//   no following  files are created with O_EXCL ("wx"), so nothing is written through a symlink or over
//              a file already there; an entry below a symlink the archive made (a tablespace link in
//              pg_tblspc) is refused, since writing it would leave the data directory.
//   durability none here, as with tar: the server fsyncs the whole data directory when it starts
//              recovery from a backup_label (recovery_init_sync_method).
import { chmod, lutimes, mkdir, open, symlink, utimes } from 'node:fs/promises';
import { join, posix } from 'node:path';

import { LifeboatError } from '../../errors.js';
import { SMALL_FILE } from '../files/entry-source.js';
import { writeSmallFile } from '../files/restore.js';
import { readTar, type TarReadHeader } from '../files/tar-reader.js';

export interface Extracted {
  files: number;
  bytes: number;
}

/** The entry's path inside the data directory ("" for the directory itself), or an error. */
function relativePathOf(header: TarReadHeader): string {
  const name = header.name;
  if (name.startsWith('/') || name.split('/').includes('..'))
    throw new LifeboatError(
      'LB_RESTORE_UNSAFE',
      `refusing the base backup's entry ${JSON.stringify(name)}: it would be written outside the data directory`,
    );
  const normal = posix.normalize(name).replace(/\/+$/, '');
  return normal === '.' ? '' : normal;
}

/**
 * Extracts the tar `archive` into `dataDirectory` (which exists and is empty). Errors writing are
 * LB_ENGINE_FAILED naming the file; a damaged archive is the reader's LB_REPO_CORRUPT. The input may be
 * borrowed chunks (each valid until the next is asked for): every chunk is written out before the next
 * is read. On an error the input is given up (its iterator returned: a stream is destroyed).
 */
export async function extractBaseTar(
  archive: AsyncIterable<Buffer>,
  dataDirectory: string,
  signal?: AbortSignal,
): Promise<Extracted> {
  const directories: Array<{ path: string; mode: number; mtime: number }> = [];
  const links = new Set<string>();
  const made = new Set<string>(['']);
  let files = 0;
  let bytes = 0;
  /** The parents of `path` inside the data directory: made when missing, never a symlink. */
  const parentsOf = async (path: string, name: string) => {
    const parts = path.split('/');
    for (let depth = 1; depth < parts.length; depth++) {
      const parent = parts.slice(0, depth).join('/');
      if (links.has(parent))
        throw new LifeboatError(
          'LB_RESTORE_UNSAFE',
          `refusing the base backup's entry ${JSON.stringify(name)}: ${parent} is a symlink, and writing through it would leave the data directory`,
        );
      if (!made.has(parent)) {
        await mkdir(join(dataDirectory, parent), { recursive: true, mode: 0o700 });
        made.add(parent);
      }
    }
  };
  let current = '';
  try {
    for await (const { header, data } of readTar(archive, SMALL_FILE)) {
      signal?.throwIfAborted();
      const path = relativePathOf(header);
      current = path;
      if (path === '') {
        if (header.type !== 'directory')
          throw new LifeboatError(
            'LB_RESTORE_UNSAFE',
            `refusing the base backup's entry ${JSON.stringify(header.name)}: a ${header.type} in place of the data directory`,
          );
        directories.push({ path: dataDirectory, mode: header.mode, mtime: header.mtime });
        continue;
      }
      await parentsOf(path, header.name);
      const target = join(dataDirectory, path);
      if (header.type === 'directory') {
        if (!made.has(path)) {
          await mkdir(target, { mode: 0o700 });
          made.add(path);
        }
        directories.push({ path: target, mode: header.mode, mtime: header.mtime });
      } else if (header.type === 'symlink') {
        if (!/^pg_tblspc\/[^/]+$/.test(path))
          throw new LifeboatError(
            'LB_RESTORE_UNSAFE',
            `refusing the base backup's entry ${JSON.stringify(header.name)}: a symlink (-> ${header.linkname}) outside pg_tblspc`,
          );
        await symlink(header.linkname, target);
        links.add(path);
        await lutimes(target, header.mtime, header.mtime);
      } else if (header.type === 'file') {
        if (Buffer.isBuffer(data)) {
          // Small files with synchronous calls: microseconds each, where every asynchronous call is a
          // round trip to libuv's thread pool (a base backup has thousands of files under 256 KiB).
          writeSmallFile(target, data, header.mode, undefined, header.mtime); // the files engine's: O_EXCL, exact mode
        } else {
          const handle = await open(target, 'wx', 0o600);
          try {
            for await (const slice of data) {
              signal?.throwIfAborted(); // a relation file is up to 1 GiB
              for (let at = 0; at < slice.length;)
                at += (await handle.write(slice, at, slice.length - at)).bytesWritten;
            }
            await handle.chmod(header.mode & 0o7777);
            await handle.utimes(header.mtime, header.mtime);
          } finally {
            await handle.close();
          }
        }
        files++;
        bytes += header.size;
      } else {
        throw new LifeboatError(
          'LB_ENGINE_FAILED',
          `the base backup holds ${JSON.stringify(header.name)}, of tar type ${JSON.stringify(header.flag)} (${header.type}): lifeboat restores only directories, files and symlinks`,
        );
      }
    }
    // Directories last (writing into one changes its mtime), deepest first.
    for (const directory of directories.reverse()) {
      current = directory.path;
      await chmod(directory.path, directory.mode & 0o7777);
      await utimes(directory.path, directory.mtime, directory.mtime);
    }
  } catch (error) {
    if (error instanceof LifeboatError || signal?.aborted) throw error; // an abort goes up as itself
    throw new LifeboatError(
      'LB_ENGINE_FAILED',
      `could not extract base.tar into ${dataDirectory}${current ? ` (at ${current})` : ''}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  return { files, bytes };
}
