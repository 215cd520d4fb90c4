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
//   durability each file larger than SMALL_FILE (the relation segments: nearly all of the bytes) is
//              fsynced before the extraction returns, in the background, two at a time in libuv's thread
//              pool, while the next files are decompressed and written: the disk writes one relation
//              file while the next is extracted. Left to the server (it fsyncs the whole data directory
//              when it starts from a backup_label, recovery_init_sync_method), that writing came after the
//              extraction: 1.5 s of 25 for the bench's 1.6 GB cluster, against pgBackRest's 0.14 s
//              (pgBackRest fsyncs as it restores; the server's fsync of a clean file is cheap). Small
//              files and directories stay with the server's sync: one fsync each here would be one
//              journal commit each (1.5-100 ms on this machine's disk), where the server first starts
//              the writeback of every file and then waits, so that one commit serves many.
//   write size relation files are written WRITE_PIECE bytes per write(2), never a whole slice at once.
//              Linux (ext4 with large folios, 6.x) caches a file in folios as large as the write that
//              made them, and every later 8 KiB pwrite into such a folio walks all of its block buffers
//              (ext4_block_write_begin): the server's redo, which writes pages at random, spent 50 of its
//              63 s in the kernel on files written 1-4 MiB at a time. 100k random 8 KiB pread+pwrite pairs
//              into a 512 MiB file cost 4.1 s of system time after 4 MiB writes, 1.8 s after 1 MiB, 0.57 s
//              after 64 KiB (docs/performance.md). The writes are synchronous: 64 KiB is microseconds of
//              copying, where each asynchronous call would be a round trip to libuv's thread pool.
import { constants, writeSync } from 'node:fs';
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

/** The largest write(2) of a relation file's bytes (see "write size" above). */
export const WRITE_PIECE = 64 * 1024;

/** Writes all of `data` at `position` of `fd`, at most WRITE_PIECE bytes per call of `write`. */
export function writeInPieces(
  fd: number,
  data: Uint8Array,
  position: number,
  write: (
    fd: number,
    data: Uint8Array,
    offset: number,
    length: number,
    position: number,
  ) => number = writeSync,
): void {
  for (let at = 0; at < data.length;) {
    at += write(fd, data, at, Math.min(WRITE_PIECE, data.length - at), position + at);
  }
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

/** fsyncs a file by its path (not following a symlink). */
async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * fsyncs queued paths in the background, `parallel` at a time. The queue holds paths (not open files),
 * so it needs no bound: a data directory's file count is its size. The first failure is kept and thrown
 * by the next add() or by drain().
 */
class BackgroundSync {
  private readonly queue: string[] = [];
  private readonly running = new Set<Promise<void>>();
  private failure: { path: string; error: unknown } | undefined;

  constructor(
    private readonly sync: (path: string) => Promise<void>,
    private readonly parallel = 2,
  ) {}

  add(path: string): void {
    this.throwIfFailed();
    this.queue.push(path);
    while (this.running.size < this.parallel && this.queue.length > 0) this.startOne();
  }

  /** Waits for every queued fsync; throws the first failure. */
  async drain(): Promise<void> {
    while (this.running.size > 0) await Promise.all(this.running);
    this.throwIfFailed();
  }

  /** Drops what is queued and waits for what runs (after an error: nothing left touching the directory). */
  async stop(): Promise<void> {
    this.queue.length = 0;
    while (this.running.size > 0) await Promise.all(this.running);
  }

  private startOne(): void {
    const task: Promise<void> = (async () => {
      for (let path = this.queue.shift(); path !== undefined; path = this.queue.shift()) {
        if (this.failure) return;
        try {
          await this.sync(path);
        } catch (error) {
          this.failure ??= { path, error };
        }
      }
    })().finally(() => this.running.delete(task));
    this.running.add(task);
  }

  private throwIfFailed(): void {
    if (this.failure)
      throw new LifeboatError(
        'LB_ENGINE_FAILED',
        `could not fsync ${this.failure.path}: ${(this.failure.error as Error).message}`,
        { cause: this.failure.error },
      );
  }
}

/**
 * Extracts the tar `archive` into `dataDirectory` (which exists and is empty). Errors writing are
 * LB_ENGINE_FAILED naming the file; a damaged archive is the reader's LB_REPO_CORRUPT. The input may be
 * borrowed chunks (each valid until the next is asked for): every chunk is written out before the next
 * is read. On an error the input is given up (its iterator returned: a stream is destroyed). Files
 * larger than SMALL_FILE are fsynced before it returns (`sync`: how one path is fsynced; tests inject
 * failures).
 */
export async function extractBaseTar(
  archive: AsyncIterable<Buffer>,
  dataDirectory: string,
  signal?: AbortSignal,
  sync: (path: string) => Promise<void> = fsyncPath,
): Promise<Extracted> {
  const syncs = new BackgroundSync(sync);
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
            let position = 0;
            for await (const slice of data) {
              signal?.throwIfAborted(); // a relation file is up to 1 GiB
              writeInPieces(handle.fd, slice, position);
              position += slice.length;
            }
            await handle.chmod(header.mode & 0o7777);
            await handle.utimes(header.mtime, header.mtime);
          } finally {
            await handle.close();
          }
          syncs.add(target); // reopened to fsync: the queue holds no open files
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
    current = '';
    await syncs.drain();
  } catch (error) {
    await syncs.stop();
    if (error instanceof LifeboatError || signal?.aborted) throw error; // an abort goes up as itself
    throw new LifeboatError(
      'LB_ENGINE_FAILED',
      `could not extract base.tar into ${dataDirectory}${current ? ` (at ${current})` : ''}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  return { files, bytes };
}
