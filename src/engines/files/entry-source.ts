// One file's part of a files backup's tar, read straight into the backup session's memory.
import { closeSync, openSync, read as fsRead, readSync } from 'node:fs';
import { type Hash, createHash, hash as hashOnce } from 'node:crypto';

import type { DirectSource } from '../../util/read-fd.js';
import { padding } from './tar.js';

/** Files up to this size are read with one synchronous read (see entrySource). */
export const SMALL_FILE = 256 * 1024;

/**
 * One file's part of the archive as a DirectSource: its headers, then exactly the `size` bytes the
 * header announces, read straight into the backup's memory, then the padding. A file that grows or
 * shrinks while being read must not corrupt the archive: longer is cut, shorter is zero-filled and
 * reported.
 *
 * A small file is opened, read and closed synchronously, a few microseconds each from the page cache:
 * through a read stream each file cost several round trips to libuv's thread pool (open, read, close),
 * and a backup of 100k small files spent most of its time in them. A larger file is read
 * asynchronously (a slow disk must not stall the event loop), in reads as large as the backup asks for.
 */
export function entrySource(
  absolute: string,
  header: Buffer,
  size: number,
  log?: (message: string) => void,
  /** The file, opened already (the source closes it); else it is opened at the first read. */
  opened?: number,
  /** Hash the content for digest() (a files backup's tree hash); a base backup needs no such hash. */
  hashContent = true,
): DirectSource & { digest(): string } {
  const trailer = padding(size);
  let headerAt = 0;
  let read = 0;
  let trailerAt = 0;
  /** The file ended before `size`: the rest is zeros. */
  let shrank = false;
  // The content's SHA-256: in one call when the content came in one read (a small file), which spares
  // a hash object per file; else incrementally.
  let hash: Hash | undefined;
  let digest: string | undefined;
  let fd: number | undefined = opened;
  const close = () => {
    if (fd !== undefined) closeSync(fd);
    fd = undefined;
  };
  // destroy() during an asynchronous read closes the file once that read has settled: closing it
  // under the read would let the descriptor's number be reused by another open while it runs.
  let destroyed = false;
  let reading = false;
  const readAt = (target: Buffer, length: number): Promise<number> | number => {
    if (size <= SMALL_FILE) return readSync(fd!, target, 0, length, read);
    reading = true;
    return new Promise<number>((done, fail) =>
      fsRead(fd!, target, 0, length, read, (error, bytes) => (error ? fail(error) : done(bytes))),
    ).finally(() => {
      reading = false;
      if (destroyed) close();
    });
  };
  return {
    // Header, content and padding in one call when they fit: one chunking step per small file.
    async readInto(target) {
      if (destroyed) throw new Error(`${absolute}: read after the backup gave it up`);
      let placed = 0;
      if (headerAt < header.length) {
        const count = header.copy(target, 0, headerAt);
        headerAt += count;
        placed += count;
      }
      if (read < size && placed < target.length) {
        const length = Math.min(target.length - placed, size - read);
        const into = target.subarray(placed, placed + length);
        let count = 0;
        if (!shrank) {
          try {
            fd ??= openSync(absolute, 'r');
            count = await readAt(into, length);
          } catch (error) {
            close();
            throw error;
          }
          if (count === 0) {
            log?.(`${absolute} shrank while being read; the missing ${size - read} bytes are zeros`);
            shrank = true;
            close();
          }
        }
        if (shrank) {
          count = length;
          into.fill(0);
        }
        if (hashContent) {
          if (read === 0 && count === size) digest = hashOnce('sha256', into.subarray(0, count), 'hex');
          else (hash ??= createHash('sha256')).update(into.subarray(0, count));
        }
        read += count;
        placed += count;
        if (read < size) return placed;
      }
      if (placed < target.length) {
        close();
        const count = trailer.copy(target, placed, trailerAt);
        trailerAt += count;
        placed += count;
      }
      return placed;
    },
    destroy() {
      destroyed = true;
      if (!reading) close();
    },
    /** The SHA-256 of the content read (call at the end). */
    digest() {
      return digest ?? (hash ?? createHash('sha256')).digest('hex');
    },
  };
}
