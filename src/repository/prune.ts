// `prune`: deletes data no snapshot needs, and repacks packs that are mostly garbage.
//
// Terms:
//   used blob        a blob some snapshot needs. Where a blob has several copies, the one the index
//                    maps it to is the used copy; the others are garbage.
//   garbage pack     a pack with no used blob, or a pack no index names (left by an interrupted backup).
//   repack           a pack whose unused share is above `maxUnusedShare`: its used blobs are copied
//                    (decrypted, verified, re-sealed) into new packs, then it is deleted.
// Order, so that a crash at any point leaves a consistent repository: new packs, then one new index
// file for everything kept, then old index files are deleted, then old packs. It runs under an
// exclusive lock and refuses to run on a repository with damaged index files or snapshots, or with
// used blobs missing (it would only make things worse).
import { LifeboatError } from '../errors.js';
import { BlobIndex } from './blob-index.js';
import { PackWriter, type PackedBlob, openBlob, packName, readPackKey } from './pack.js';
import { acquireLock } from './locks.js';
import type { Repository } from './repository.js';
import { listArchive, listArchiveSources, loadArchiveRecord } from './archive.js';
import { listSnapshotIds, loadSnapshot } from './snapshots.js';

export interface PruneOptions {
  dryRun?: boolean;
  /** Repack packs whose unused bytes exceed this share (0..1). Default 0.3. */
  maxUnusedShare?: number;
}

export interface PruneReport {
  dryRun: boolean;
  packsDeleted: number;
  packsRepacked: number;
  unreferencedPacks: number;
  newPacks: number;
  bytesDeleted: number;
  bytesRepacked: number;
  indexFilesReplaced: number;
}

export async function prune(repository: Repository, options: PruneOptions = {}): Promise<PruneReport> {
  const { storage } = repository;
  const ring = repository.keyRing;
  const lock = await acquireLock(
    storage,
    options.dryRun ? 'prune --dry-run' : 'prune',
    true,
    repository.options.lockWaitMs,
  );
  try {
    const index = new BlobIndex();
    await index.load(storage, ring);
    if (index.damaged.size > 0) {
      throw new LifeboatError(
        'LB_REPO_CORRUPT',
        `prune refuses to run: damaged index files ${[...index.damaged.keys()].join(', ')} (run lifeboat check)`,
      );
    }
    const used = new Set<string>();
    for (const id of await listSnapshotIds(storage)) {
      const snapshot = await loadSnapshot(storage, ring, id); // a damaged snapshot throws: refuse
      for (const artifact of snapshot.artifacts) for (const blob of artifact.blobs) used.add(blob);
    }
    for (const source of await listArchiveSources(repository)) {
      for (const name of await listArchive(repository, source)) {
        for (const blob of (await loadArchiveRecord(repository, source, name)).blobs) used.add(blob);
      }
    }
    const missing = [...used].filter((blob) => !index.has(blob));
    if (missing.length > 0) {
      throw new LifeboatError(
        'LB_REPO_MISSING_DATA',
        `prune refuses to run: ${missing.length} blob(s) snapshots need are in no index (run lifeboat check)`,
      );
    }

    const stored = new Map<string, number>();
    for await (const info of storage.list('data/')) stored.set(info.name.split('/').pop()!, info.size);
    const usedHere = (pack: string, blob: PackedBlob) =>
      used.has(blob.id) && index.get(blob.id)!.pack === pack;

    const keep: Array<{ id: string; blobs: PackedBlob[] }> = [];
    const remove: string[] = [];
    const repack: string[] = [];
    for (const pack of index.packs()) {
      const blobs = index.blobsOf(pack);
      const live = blobs.filter((blob) => usedHere(pack, blob));
      const total = blobs.reduce((sum, blob) => sum + blob.length, 0);
      const liveBytes = live.reduce((sum, blob) => sum + blob.length, 0);
      if (live.length === 0) remove.push(pack);
      else if (total - liveBytes > (options.maxUnusedShare ?? 0.3) * total) repack.push(pack);
      else keep.push({ id: pack, blobs: live });
    }
    // Every pack that holds a used blob must be there and long enough: pruning around damage could
    // delete the only good copy of something.
    for (const pack of [...keep.map((kept) => kept.id), ...repack]) {
      const end = Math.max(
        ...index
          .blobsOf(pack)
          .filter((blob) => usedHere(pack, blob))
          .map((blob) => blob.offset + blob.length),
      );
      const size = stored.get(pack);
      if (size === undefined || size < end + 8) {
        throw new LifeboatError(
          'LB_REPO_MISSING_DATA',
          `prune refuses to run: ${packName(pack)} holds used blobs but is ${size === undefined ? 'missing' : 'truncated'} (run lifeboat check)`,
        );
      }
    }
    const indexed = index.packs();
    const unreferenced = [...stored.keys()].filter((pack) => !indexed.has(pack));
    const sizeOf = (packs: string[]) => packs.reduce((sum, pack) => sum + (stored.get(pack) ?? 0), 0);
    const report: PruneReport = {
      dryRun: options.dryRun === true,
      packsDeleted: remove.length,
      packsRepacked: repack.length,
      unreferencedPacks: unreferenced.length,
      newPacks: 0,
      bytesDeleted: sizeOf([...remove, ...unreferenced, ...repack]),
      bytesRepacked: 0,
      indexFilesReplaced: index.files.size,
    };
    // Nothing to delete: still merge many index files into one (each wal-push writes one).
    const nothingToDelete = remove.length + repack.length + unreferenced.length === 0;
    if (options.dryRun || (nothingToDelete && index.files.size <= 1)) return report;

    // 1. Copy the used blobs of packs to repack into new packs.
    const written: Array<{ id: string; blobs: PackedBlob[] }> = [];
    let writer: PackWriter | undefined;
    const flush = async () => {
      if (!writer || writer.count === 0) return;
      const { id, size, body, blobs } = writer.finish();
      await storage.write(packName(id), body);
      written.push({ id, blobs });
      report.bytesRepacked += size;
      writer = undefined;
    };
    for (const pack of repack) {
      const name = packName(pack);
      const packKey = await readPackKey(storage, ring, name);
      for (const blob of index.blobsOf(pack).filter((candidate) => usedHere(pack, candidate))) {
        const sealed = await storage.read(name, { offset: blob.offset, length: blob.length });
        writer ??= await PackWriter.create(ring, repository.options.compressionLevel);
        writer.add(blob.id, openBlob(packKey, repository.blobIds, blob, sealed, name));
        if (writer.size >= repository.config.packSize) await flush();
      }
    }
    await flush();
    report.newPacks = written.length;

    // 2. One index for everything kept, 3. old index files go, 4. old packs go. Only while our lock
    // still holds: otherwise a backup may have started and deduplicated against what we delete.
    await lock.assertHeld();
    const newIndex = await BlobIndex.write(storage, ring, [...keep, ...written]);
    for (const name of index.files.keys()) if (name !== newIndex) await storage.delete(name);
    for (const pack of [...remove, ...repack, ...unreferenced]) await storage.delete(packName(pack));
    return report;
  } finally {
    await lock.release();
  }
}
