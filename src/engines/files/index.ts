// The files engine: paths with include/exclude globs backed up as one tar artifact (docs/engines/files.md).
//
// Terms:
//   parts      the artifact "files.tar" is yielded part by part, one part per entry (its headers, data
//              and padding) and a last part with the end-of-archive blocks: the repository starts a
//              chunk at every part, so an unchanged file is stored once whatever changed around it,
//              and a large file is chunked on its own (unchanged parts of it dedupe too).
//   stats      items files, directories, symlinks, bytes; fingerprint tree (walk.ts); facts skipped.
//   target     a directory: drills.targets.<source>.directory, or "/" for the original place.
import { closeSync, constants, createReadStream, fstatSync, openSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { statfs } from 'node:fs/promises';
import { resolve } from 'node:path';

import { LifeboatError } from '../../errors.js';
import type {
  ArtifactSource,
  ArtifactStream,
  BackupOptions,
  BackupResult,
  Engine,
  ProbeResult,
  RestoreOptions,
  Stats,
} from '../engine.js';
import type { DirectSource } from '../../util/read-fd.js';
import { SMALL_FILE, entrySource } from './entry-source.js';
import type { FilesSource, FilesTarget } from './config.js';
import { type FilesMetadata, restoreFiles } from './restore.js';
import { END_OF_ARCHIVE, entryHeader, mtimeOfNs } from './tar.js';
import { type Skipped, TreeHasher, archivePathOf, leftOut, unreadable, vanished, walk } from './walk.js';

const ARTIFACT = 'files.tar';

const rootsOf = (source: FilesSource) =>
  source.paths.map((path) => ({ disk: resolve(path), archive: archivePathOf(path) }));

function statsOf(tree: TreeHasher, skipped: Skipped): Stats {
  return {
    items: [
      { key: 'files', count: tree.files, exact: true },
      { key: 'directories', count: tree.directories, exact: true },
      { key: 'symlinks', count: tree.symlinks, exact: true },
      { key: 'bytes', count: tree.bytes, exact: true },
    ],
    fingerprints: { tree: tree.digest() },
    facts: { skipped: skipped.count, vanished: skipped.vanished },
  };
}

async function probe(source: FilesSource): Promise<ProbeResult> {
  const roots = rootsOf(source);
  const details: Record<string, unknown> = {};
  for (const root of roots) {
    try {
      const fs = await statfs(root.disk);
      details[root.disk] = { freeBytes: fs.bavail * fs.bsize };
    } catch (error) {
      throw new LifeboatError(
        'LB_ENGINE_UNAVAILABLE',
        `cannot read ${root.disk}: ${(error as Error).message}`,
        { cause: error },
      );
    }
  }
  return { version: `files (${process.platform})`, details };
}

async function* backup(
  source: FilesSource,
  options: BackupOptions,
): AsyncGenerator<ArtifactStream, BackupResult, void> {
  const tree = new TreeHasher();
  const skipped: Skipped = { count: 0, vanished: 0 };
  const roots = rootsOf(source);
  for (const root of roots) {
    try {
      await statfs(root.disk);
    } catch (error) {
      throw new LifeboatError(
        'LB_ENGINE_UNAVAILABLE',
        `cannot read ${root.disk}: ${(error as Error).message}`,
        { cause: error },
      );
    }
  }
  async function* parts(): AsyncGenerator<Iterable<unknown> | DirectSource> {
    for await (const entry of walk(roots, source, skipped, options.log)) {
      options.signal?.throwIfAborted();
      const header = entryHeader({
        path: entry.path,
        type: entry.type,
        mode: entry.stat.mode,
        uid: entry.stat.uid,
        gid: entry.stat.gid,
        size: entry.type === 'file' ? entry.stat.size : 0,
        mtime: mtimeOfNs(entry.stat.mtimeNs),
        ...(entry.linkname !== undefined ? { linkname: entry.linkname } : {}),
      });
      if (entry.type !== 'file') {
        tree.add(entry);
        yield [header];
        continue;
      }
      // Opened before its header goes out: a file deleted since its lstat is left out whole (a header
      // already written would have to be followed by its size in zeros).
      // O_NOFOLLOW and O_NONBLOCK: a file replaced since its lstat by a symlink is not followed, and one
      // replaced by a FIFO does not block; one replaced by anything else (another inode) is left out
      // as vanished, never stored under the walked entry's header.
      let fd: number | undefined;
      try {
        fd = openSync(entry.absolute, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
        const now = fstatSync(fd, { bigint: true });
        if (!now.isFile() || now.ino !== entry.stat.ino || now.dev !== entry.stat.dev) {
          closeSync(fd);
          fd = undefined;
        }
      } catch (error) {
        if (!vanished(error) && (error as NodeJS.ErrnoException).code !== 'ELOOP')
          throw unreadable(entry.absolute, error);
      }
      if (fd === undefined) {
        leftOut(skipped, entry.absolute, options.log);
        continue;
      }
      const source = entrySource(entry.absolute, header, entry.stat.size, options.log, fd);
      yield source;
      tree.add(entry, source.digest());
    }
    yield [END_OF_ARCHIVE];
  }
  yield { name: ARTIFACT, parts: parts() };
  const metadata: FilesMetadata = {
    kind: 'files',
    roots: roots.map((root) => root.archive),
    artifact: ARTIFACT,
  };
  return { stats: statsOf(tree, skipped), metadata: metadata as unknown as Record<string, unknown> };
}

/** Stats of the live paths, or of a restore target (the snapshot's roots under its directory). */
async function stats(config: FilesSource | FilesTarget, metadata?: Record<string, unknown>): Promise<Stats> {
  const files = metadata as FilesMetadata | undefined;
  const roots =
    'directory' in config
      ? (files?.roots ?? []).map((archive) => ({ disk: resolve(config.directory, archive), archive }))
      : rootsOf(config);
  const tree = new TreeHasher();
  const skipped: Skipped = { count: 0, vanished: 0 };
  for await (const entry of walk(roots, 'directory' in config ? {} : config, skipped)) {
    if (entry.type !== 'file') {
      tree.add(entry);
      continue;
    }
    const hash = createHash('sha256');
    // Small files in one synchronous read (see entrySource).
    if (entry.stat.size <= SMALL_FILE) hash.update(readFileSync(entry.absolute));
    else
      for await (const chunk of createReadStream(entry.absolute) as AsyncIterable<Buffer>) hash.update(chunk);
    tree.add(entry, hash.digest('hex'));
  }
  return statsOf(tree, skipped);
}

async function restore(
  target: FilesTarget | FilesSource,
  artifacts: ArtifactSource,
  metadata: Record<string, unknown>,
  options: RestoreOptions,
) {
  const directory = 'directory' in target ? target.directory : '/';
  const files = metadata as unknown as FilesMetadata;
  return restoreFiles(directory, artifacts.open(files.artifact), files, options);
}

export const filesEngine: Engine<FilesSource, FilesTarget> = {
  name: 'files',
  probe,
  backup,
  stats,
  restore: restore,
};
