// The local filesystem backend: one file per object under a root directory.
//
// Terms:
//   root      the repository directory; object "data/ab/cd" is the file <root>/data/ab/cd.
//   temp file "<dir>/.lifeboat-tmp-<random>" beside the final file, holding a write in flight.
//
// Durability: a write goes to a temp file, is fsynced, then renamed over the final name (or hard-linked
// for createOnly, which fails atomically with EEXIST), and the directory is fsynced so the rename itself
// survives a power loss. A directory's entry is fsynced into every ancestor up to the root the first
// time this process writes into it.
import { randomBytes } from 'node:crypto';
import { type FileHandle, link, mkdir, open, opendir, rename, rm, stat, unlink } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';

import { LifeboatError } from '../../errors.js';
import type {
  ByteRange,
  ObjectInfo,
  ProbeOptions,
  StorageBackend,
  StorageCapabilities,
  WriteBody,
  WriteOptions,
} from '../backend.js';
import { TEMP_PREFIX, checkName, checkPrefix, checkRange, openBody } from '../names.js';
import { guardedStream, trackSource } from '../streams.js';
import { fsError } from './errors.js';

export interface FsBackendOptions {
  /** Directory that holds the objects; relative paths resolve against the working directory. */
  root: string;
}

export class FsBackend implements StorageBackend {
  readonly kind = 'fs';
  readonly location: string;
  readonly capabilities: StorageCapabilities = { atomicCreate: true, objectLock: false };
  private readonly root: string;
  /** Directories whose entries this process has made durable up to the root. */
  private readonly durableDirectories = new Set<string>();

  constructor(options: FsBackendOptions) {
    this.root = resolve(options.root);
    this.location = this.root;
  }

  async probe(options: ProbeOptions = {}): Promise<void> {
    try {
      if (options.create) await this.makeDirectories(this.root);
      const info = await stat(this.root);
      if (!info.isDirectory()) {
        throw new LifeboatError('LB_STORAGE_FAILED', `${this.root} is not a directory`);
      }
      // Proves the directory is writable the way every write uses it, and that hard links (atomic
      // createOnly) and directory fsync work on this filesystem.
      const probeFile = join(this.root, `${TEMP_PREFIX}-probe-${randomBytes(6).toString('hex')}`);
      await (await open(probeFile, 'wx')).close();
      try {
        await link(probeFile, `${probeFile}-link`);
        await unlink(`${probeFile}-link`);
        this.capabilities.atomicCreate = true;
      } catch {
        this.capabilities.atomicCreate = false;
      } finally {
        await unlink(probeFile);
      }
      await syncDirectory(this.root);
    } catch (error) {
      throw fsError(error, 'probe', this.root);
    }
  }

  async stat(name: string): Promise<ObjectInfo> {
    checkName(name);
    try {
      const info = await stat(this.path(name));
      if (!info.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'ENOENT' });
      return { name, size: info.size, modified: info.mtime };
    } catch (error) {
      throw fsError(error, 'stat', name);
    }
  }

  async read(name: string, range?: ByteRange): Promise<Buffer> {
    checkName(name);
    let handle;
    try {
      handle = await open(this.path(name), 'r');
      const size = (await handle.stat()).size;
      const { offset, length } = this.resolveRange(name, size, range);
      // Not zero-filled: every byte is read into it before it is returned (or the read fails). The
      // zero-fill was ~7% of a restore's main-thread CPU.
      const buffer = Buffer.allocUnsafeSlow(length);
      let filled = 0;
      while (filled < length) {
        const { bytesRead } = await handle.read(buffer, filled, length - filled, offset + filled);
        if (bytesRead === 0) {
          throw new LifeboatError('LB_STORAGE_RANGE', `read ${name}: object shrank while reading`);
        }
        filled += bytesRead;
      }
      return buffer;
    } catch (error) {
      throw fsError(error, 'read', name);
    } finally {
      await handle?.close();
    }
  }

  async readStream(name: string, range?: ByteRange): Promise<Readable> {
    checkName(name);
    // One open handle: the size checked and the bytes streamed belong to the same file (inode).
    let handle: FileHandle | undefined;
    try {
      handle = await open(this.path(name), 'r');
      const info = await handle.stat();
      if (!info.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'ENOENT' });
      const { offset, length } = this.resolveRange(name, info.size, range);
      if (length === 0) {
        await handle.close();
        return Readable.from([]);
      }
      const source = handle.createReadStream({ start: offset, end: offset + length - 1, autoClose: true });
      return guardedStream(source, {
        expected: length,
        name,
        mapError: (error) => fsError(error, 'read', name),
      });
    } catch (error) {
      await handle?.close().catch(() => undefined);
      throw fsError(error, 'read', name);
    }
  }

  async write(name: string, body: WriteBody, options: WriteOptions = {}): Promise<void> {
    checkName(name);
    if (options.retainUntil) {
      throw new LifeboatError(
        'LB_STORAGE_UNSUPPORTED',
        'the filesystem backend cannot lock objects (Object Lock)',
      );
    }
    const final = this.path(name);
    const directory = dirname(final);
    const temp = join(directory, `${TEMP_PREFIX}-${randomBytes(8).toString('hex')}`);
    const source = trackSource(openBody(body));
    try {
      await this.makeDirectories(directory);
      const handle = await open(temp, 'wx', 0o600);
      try {
        for await (const chunk of source.stream) await writeFully(handle, chunk as Buffer);
        await handle.sync();
      } finally {
        await handle.close();
      }
      if (options.createOnly && this.capabilities.atomicCreate) {
        await link(temp, final); // EEXIST if another writer got there first
        await unlink(temp);
      } else {
        // Without hard links createOnly is check-then-rename: not atomic (capabilities say so).
        if (options.createOnly && (await exists(final)))
          throw Object.assign(new Error('exists'), { code: 'EEXIST' });
        await rename(temp, final);
      }
      await syncDirectory(directory);
    } catch (error) {
      source.stream.destroy();
      await rm(temp, { force: true }).catch(() => undefined);
      // An error of the body being written is the caller's, not the storage's: re-thrown unclassified.
      if (source.failure !== undefined) throw source.failure as Error;
      throw fsError(error, 'write', name);
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    checkPrefix(prefix);
    // Walk only the directory the prefix points into, then filter by the full prefix.
    const slash = prefix.lastIndexOf('/');
    const start = slash === -1 ? '' : prefix.slice(0, slash);
    yield* this.walk(start, prefix);
  }

  async delete(name: string): Promise<void> {
    checkName(name);
    try {
      await unlink(this.path(name));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw fsError(error, 'delete', name);
    }
  }

  async close(): Promise<void> {
    // Nothing is held open between calls.
  }

  private async *walk(relativeDirectory: string, prefix: string): AsyncIterable<ObjectInfo> {
    const absolute = relativeDirectory === '' ? this.root : this.path(relativeDirectory);
    let directory;
    try {
      directory = await opendir(absolute);
    } catch (error) {
      const errno = (error as NodeJS.ErrnoException).code;
      if ((errno === 'ENOENT' || errno === 'ENOTDIR') && relativeDirectory !== '') return;
      throw fsError(error, 'list', relativeDirectory || '/');
    }
    for await (const entry of directory) {
      if (entry.name.startsWith(TEMP_PREFIX)) continue;
      const name = relativeDirectory === '' ? entry.name : `${relativeDirectory}/${entry.name}`;
      if (entry.isDirectory()) {
        if (name.startsWith(prefix) || prefix.startsWith(`${name}/`)) yield* this.walk(name, prefix);
      } else if (entry.isFile() && name.startsWith(prefix)) {
        try {
          const info = await stat(join(absolute, entry.name));
          yield { name, size: info.size, modified: info.mtime };
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw fsError(error, 'list', name);
        }
      }
    }
  }

  private path(name: string): string {
    return join(this.root, ...name.split('/'));
  }

  private resolveRange(name: string, size: number, range?: ByteRange): ByteRange {
    if (range === undefined) return { offset: 0, length: size };
    checkRange(range);
    if (range.offset + range.length > size) {
      throw new LifeboatError(
        'LB_STORAGE_RANGE',
        `read ${name}: range ${range.offset}+${range.length} is outside the object (${size} bytes)`,
        { details: { name, size, ...range } },
      );
    }
    return range;
  }

  /**
   * mkdir -p, then makes the directory's entry durable in every ancestor up to the root, once per
   * directory and process (another writer may have created it and not synced it yet).
   */
  private async makeDirectories(directory: string): Promise<void> {
    if (this.durableDirectories.has(directory)) return;
    await mkdir(directory, { recursive: true });
    for (
      let current = directory;
      current !== this.root && current.startsWith(this.root);
      current = dirname(current)
    ) {
      await syncDirectory(dirname(current));
    }
    this.durableDirectories.add(directory);
  }
}

/** Writes all of buffer: a short write (disk full) must never pass for a complete one. */
async function writeFully(handle: FileHandle, buffer: Buffer): Promise<void> {
  let written = 0;
  while (written < buffer.length) {
    const { bytesWritten } = await handle.write(buffer, written, buffer.length - written);
    if (bytesWritten === 0) throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
    written += bytesWritten;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

async function syncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
