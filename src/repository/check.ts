// `check`: proves the repository is whole, and names the snapshots any damage affects.
//
// Terms:
//   structure check  every snapshot opens; every blob a snapshot names is in a readable index; every
//                    pack an index names exists and is long enough for the blobs it should hold.
//   data check       (--read-data) every pack is read whole: its SHA-256 matches its name, its directory
//                    opens and agrees with the index, and every blob's tag and id verify.
//   problem          one thing found wrong, naming the object; affected snapshots are those that need a
//                    damaged or missing blob.
//   unreferenced     packs no index names (left by an interrupted backup): garbage for prune, not damage.
import { type LifeboatError, isLifeboatError } from '../errors.js';
import type { BlobIndex } from './blob-index.js';
import { sha256Hex } from './crypto.js';
import { openBlob, openPackKey, packName, readPackDirectory } from './pack.js';
import type { Repository } from './repository.js';
import { archivePrefix, listArchive, listArchiveSources, loadArchiveRecord } from './archive.js';
import { listPointIds } from './points.js';
import { listSnapshotIds } from './snapshots.js';

export interface CheckProblem {
  /** The damaged or missing object ("data/ab/ab12…", "index/…", "snapshots/…"). */
  object: string;
  message: string;
}

export interface CheckReport {
  snapshots: number;
  indexFiles: number;
  packs: number;
  blobs: number;
  /** Whether pack contents were read and verified. */
  readData: boolean;
  problems: CheckProblem[];
  /** Ids of the snapshots that cannot be restored whole. */
  affectedSnapshots: string[];
  /** Recovery points read. */
  points: number;
  /** Archived files (WAL) counted. */
  archiveFiles: number;
  /** Archived files ("wal/<source>/<name>") that cannot be read back whole. */
  affectedArchiveFiles: string[];
  unreferencedPacks: string[];
}

export interface CheckOptions {
  readData?: boolean;
  /** Called after each pack is verified (for a progress display). */
  onPack?: (done: number, total: number, bytes: number) => void;
}

/**
 * Rethrows what is not damage to one file: not holding the key to read (say so once, instead of
 * reporting every snapshot), or anything that is not a LifeboatError.
 */
function throwUnlessDamage(error: unknown): asserts error is LifeboatError {
  if (!isLifeboatError(error) || error.code === 'LB_REPO_WRITE_ONLY' || error.code === 'LB_REPO_WRONG_KEY')
    throw error;
}

export async function checkRepository(
  repository: Repository,
  options: CheckOptions = {},
): Promise<CheckReport> {
  const { storage } = repository;
  const problems: CheckProblem[] = [];
  const badBlobs = new Set<string>();

  // Points are listed before snapshots: a backup saves a point only after its snapshots, so one
  // committing meanwhile cannot make a point seem to name a missing snapshot.
  const pointIds = await listPointIds(storage);
  // Snapshots and the blobs they need.
  const needs = new Map<string, Set<string>>();
  const ids = await listSnapshotIds(storage);
  for (const id of ids) {
    try {
      const snapshot = await repository.loadSnapshot(id);
      needs.set(id, new Set(snapshot.artifacts.flatMap((artifact) => artifact.blobs)));
    } catch (error) {
      throwUnlessDamage(error);
      problems.push({ object: `snapshots/${id}`, message: error.message });
      needs.set(id, new Set(['(unreadable manifest)']));
      badBlobs.add('(unreadable manifest)');
    }
  }
  // Recovery points: each must name snapshots that exist (a point is what `restore ID` starts from).
  const present = new Set(ids);
  for (const id of pointIds) {
    try {
      const point = await repository.loadPoint(id);
      for (const member of point.members)
        if (!present.has(member.snapshot))
          problems.push({
            object: `points/${id}`,
            message: `names snapshot ${member.snapshot.slice(0, 8)} of ${member.source}, which is missing`,
          });
    } catch (error) {
      throwUnlessDamage(error);
      problems.push({ object: `points/${id}`, message: error.message });
    }
  }
  // Archived files (WAL) and their blobs, keyed "wal/<source>/<name>" among the snapshots' needs.
  let archiveFiles = 0;
  for (const source of await listArchiveSources(repository)) {
    for (const name of await listArchive(repository, source)) {
      archiveFiles++;
      const key = `${archivePrefix(source)}${name}`;
      try {
        needs.set(key, new Set((await loadArchiveRecord(repository, source, name)).blobs));
      } catch (error) {
        if (!isLifeboatError(error) || error.code === 'LB_REPO_WRONG_KEY') throw error;
        problems.push({ object: key, message: error.message });
        needs.set(key, new Set(['(unreadable manifest)']));
        badBlobs.add('(unreadable manifest)');
      }
    }
  }
  // The index is read after the manifests and records, the packs after the index: writers store a pack,
  // then its index file, then the manifest or record naming its blobs. So what a manifest read above
  // names is in the index read now, and what that names is in the listing after it, even while a
  // wal-push or a backup commits meanwhile (a check that used the index of its open reported a
  // wal-push finishing during it as blobs in no index, and its pack as unreferenced).
  await repository.reloadIndex();
  const { index } = repository;
  for (const [name, error] of index.damaged) problems.push({ object: name, message: error.message });
  // Packs present in storage, with their sizes.
  const stored = new Map<string, number>();
  for await (const info of storage.list('data/')) stored.set(info.name.split('/').pop()!, info.size);

  for (const blobs of needs.values()) {
    for (const blob of blobs) {
      if (blob !== '(unreadable manifest)' && !index.has(blob) && !badBlobs.has(blob)) {
        badBlobs.add(blob);
        problems.push({
          object: `blob ${blob}`,
          message: 'needed by a snapshot but in no readable index file',
        });
      }
    }
  }

  // Packs the index names: present, and long enough.
  const indexed = blobsByPack(index);
  const reported = new Set<string>(); // missing or truncated: not read again
  for (const [pack, blobs] of indexed) {
    const size = stored.get(pack);
    const end = Math.max(...blobs.map((blob) => blob.offset + blob.length));
    if (size === undefined || size < end + 8) {
      reported.add(pack);
      problems.push({
        object: packName(pack),
        message:
          size === undefined
            ? 'missing (named by the index)'
            : `truncated: ${size} bytes, the index needs ${end + 8}`,
      });
      for (const blob of blobs) if (index.get(blob.id)?.pack === pack) badBlobs.add(blob.id); // the copy restores use
    }
  }

  if (options.readData) {
    let done = 0;
    for (const [pack, blobs] of indexed) {
      const name = packName(pack);
      // Every other pack is read, even one holding a copy of a blob whose used copy is bad elsewhere:
      // its own blobs may be what other snapshots need.
      if (!stored.has(pack) || reported.has(pack)) {
        options.onPack?.(++done, indexed.size, 0);
        continue;
      }
      const damaged = await verifyPack(repository, pack, blobs);
      if (damaged) {
        problems.push({ object: name, message: damaged.message });
        for (const id of damaged.blobs) if (index.get(id)?.pack === pack) badBlobs.add(id); // the copy restores use
      }
      options.onPack?.(++done, indexed.size, stored.get(pack) ?? 0);
    }
  }

  const affected = [...needs.entries()]
    .filter(([, blobs]) => [...blobs].some((blob) => badBlobs.has(blob)))
    .map(([id]) => id);
  const affectedSnapshots = affected.filter((id) => !id.startsWith('wal/'));
  const affectedArchiveFiles = affected.filter((id) => id.startsWith('wal/'));
  return {
    snapshots: ids.length,
    points: pointIds.length,
    indexFiles: index.files.size + index.damaged.size,
    packs: stored.size,
    blobs: index.size,
    readData: options.readData === true,
    problems,
    affectedSnapshots,
    archiveFiles,
    affectedArchiveFiles,
    unreferencedPacks: [...stored.keys()].filter((pack) => !indexed.has(pack)).map(packName),
  };
}

type IndexedBlob = NonNullable<ReturnType<BlobIndex['get']>>;

/** Every pack an index file names, with every blob listed for it (duplicate copies included). */
function blobsByPack(index: BlobIndex): Map<string, IndexedBlob[]> {
  const byPack = new Map<string, IndexedBlob[]>();
  for (const pack of index.packs())
    byPack.set(
      pack,
      index.blobsOf(pack).map((blob) => ({ ...blob, pack })),
    );
  return byPack;
}

/** Reads one pack whole and verifies it; returns what is wrong, or undefined. */
async function verifyPack(
  repository: Repository,
  pack: string,
  blobs: IndexedBlob[],
): Promise<{ message: string; blobs: string[] } | undefined> {
  const name = packName(pack);
  const all = blobs.map((blob) => blob.id);
  const ring = repository.keyRing;
  const bytes = await repository.storage.read(name);
  const hashMatches = sha256Hex(bytes) === pack;
  let packKey: Buffer;
  try {
    packKey = await openPackKey(ring, bytes, name);
  } catch (error) {
    if (!isLifeboatError(error) || error.code === 'LB_REPO_WRITE_ONLY') throw error;
    return { message: `header damaged: ${error.message}`, blobs: all };
  }
  // Every blob's tag and id, so that exactly the snapshots needing a damaged blob are named.
  const damaged: string[] = [];
  for (const blob of blobs) {
    try {
      openBlob(
        packKey,
        repository.blobIds,
        blob,
        bytes.subarray(blob.offset, blob.offset + blob.length),
        name,
      );
    } catch (error) {
      if (!isLifeboatError(error)) throw error;
      damaged.push(blob.id);
    }
  }
  if (damaged.length > 0 || !hashMatches) {
    return {
      message: `${hashMatches ? '' : 'content does not match its name; '}${damaged.length} of ${blobs.length} blobs fail verification`,
      blobs: damaged,
    };
  }
  try {
    const listed = new Map(readPackDirectory(packKey, bytes, name).map((blob) => [blob.id, blob]));
    const disagreeing = blobs.filter((blob) => listed.get(blob.id)?.offset !== blob.offset);
    if (disagreeing.length > 0) {
      return {
        message: `the index and the pack's directory disagree about ${disagreeing.length} blob(s)`,
        blobs: [],
      };
    }
  } catch (error) {
    if (!isLifeboatError(error)) throw error;
    return { message: `directory damaged (the blobs themselves verify): ${error.message}`, blobs: [] };
  }
  return undefined;
}
