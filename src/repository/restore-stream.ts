// Reading an artifact back: blobs are fetched in segments, opened in worker threads, verified, and
// yielded in order; the whole stream's size and hash are checked at the end: its BLAKE3 when the
// manifest records one (every artifact written since BLAKE3 came in), else its SHA-256. BLAKE3 is ~3x
// cheaper, and the stream hash runs on the main thread, on every byte restored.
//
// Terms:
//   segment    consecutive blobs of the artifact that lie back to back in one pack: fetched with one
//              ranged read (at most SEGMENT_BYTES stored and SEGMENT_RAW_BYTES once opened, or one
//              larger blob), which turns thousands of small reads into a few hundred. A blob that
//              repeats, or sits elsewhere, starts a new segment.
//   read-ahead segments fetched and opened ahead of the consumer (bounded: memory stays a few segments).
import { createHash } from 'node:crypto';

import { LifeboatError, isLifeboatError } from '../errors.js';
import { createBlake3 } from '../util/blake3.js';
import type { StorageBackend } from '../storage/index.js';
import type { BlobIndex, IndexEntry } from './blob-index.js';
import type { IdKey } from './crypto.js';
import type { KeyRing } from './keys.js';
import { packName, readPackKey } from './pack.js';
import type { ReadableArtifact } from './snapshots.js';
import type { RestoreArena } from './restore-arena.js';
import type { CryptoPool } from './workers.js';

const SEGMENT_BYTES = 8 * 1024 * 1024;
/**
 * Plaintext a segment may expand to (highly compressible data must not blow up memory); a single blob
 * larger than this (up to the chunker's maxSize, 8 MiB by default) is a segment of its own. 6 MiB: in
 * same-minute runs a 2 GiB `dump` took ~10% less time and ~8% less CPU than with 24 MiB, and less
 * memory (docs/performance.md): a segment's plaintext is still in cache when it is hashed and written.
 */
const SEGMENT_RAW_BYTES = 6 * 1024 * 1024;

export interface RestoreContext {
  storage: StorageBackend;
  ring: KeyRing;
  ids: IdKey;
  index: BlobIndex;
  /** Segments fetched ahead. */
  readAhead: number;
  /** Workers that open segments (shared by every read of a repository: no start-up per artifact). */
  pool: CryptoPool;
}

interface Segment {
  pack: string;
  offset: number;
  length: number;
  rawLength: number;
  entries: IndexEntry[];
}

function entryOf(index: BlobIndex, id: string): IndexEntry {
  const entry = index.get(id);
  if (entry) return entry;
  const damaged = [...index.damaged.keys()];
  throw damaged.length > 0
    ? new LifeboatError(
        'LB_REPO_CORRUPT',
        `blob ${id.slice(0, 16)} is in no readable index file; damaged: ${damaged.join(', ')}`,
        {
          details: { blob: id, damagedIndexFiles: damaged },
        },
      )
    : new LifeboatError('LB_REPO_MISSING_DATA', `blob ${id} is in no index file`, { details: { blob: id } });
}

/** Groups the artifact's blobs into segments, lazily, in order. */
function* segments(index: BlobIndex, blobs: readonly string[]): Generator<Segment> {
  let current: Segment | undefined;
  for (const id of blobs) {
    const entry = entryOf(index, id);
    if (
      current &&
      entry.pack === current.pack &&
      entry.offset === current.offset + current.length &&
      current.length + entry.length <= SEGMENT_BYTES &&
      current.rawLength + entry.rawLength <= SEGMENT_RAW_BYTES
    ) {
      current.length += entry.length;
      current.rawLength += entry.rawLength;
      current.entries.push(entry);
      continue;
    }
    if (current) yield current;
    current = {
      pack: entry.pack,
      offset: entry.offset,
      length: entry.length,
      rawLength: entry.rawLength,
      entries: [entry],
    };
  }
  if (current) yield current;
}

/**
 * The artifact's plaintext in order, verified. With `arena`, segments are opened into it and every chunk
 * is a view of it, valid only until the next chunk is asked for (see Repository.readArtifactBorrowed);
 * without, each chunk owns its memory.
 */
export async function* readArtifactChunks(
  context: RestoreContext,
  artifact: ReadableArtifact,
  arena?: RestoreArena,
): AsyncGenerator<Buffer> {
  const { storage, ring } = context;
  const blake3 = artifact.blake3 !== undefined;
  const hash = blake3 ? createBlake3() : createHash('sha256');
  let size = 0;
  const packKeys = new Map<string, Promise<Buffer>>();
  const pool = context.pool;

  const packKey = (pack: string): Promise<Buffer> => {
    let key = packKeys.get(pack);
    if (!key) {
      key = readPackKey(storage, ring, packName(pack));
      key.catch(() => undefined); // observed by the segment that awaits it
      packKeys.set(pack, key);
      if (packKeys.size > 64) packKeys.delete(packKeys.keys().next().value!);
    }
    return key;
  };

  /** Fetches one segment and opens its blobs in one worker job; resolves to their plaintexts, in order. */
  const fetchSegment = async (
    segment: Segment,
    into: number | undefined,
  ): Promise<{ plains: Buffer[]; error?: LifeboatError }> => {
    const name = packName(segment.pack);
    try {
      const [key, bytes] = await Promise.all([
        packKey(segment.pack),
        storage.read(name, { offset: segment.offset, length: segment.length }),
      ]);
      const blobs = segment.entries.map((entry) => ({ ...entry, offset: entry.offset - segment.offset }));
      const target = into === undefined ? undefined : { memory: arena!.memory, offset: into };
      return await pool.openSegment(bytes, blobs, key, context.ids, name, target);
    } catch (error) {
      if (isLifeboatError(error, 'LB_STORAGE_NOT_FOUND')) {
        throw new LifeboatError(
          'LB_REPO_MISSING_DATA',
          `pack ${name} is missing (holds blob ${segment.entries[0]!.id.slice(0, 16)})`,
          {
            cause: error,
            details: { pack: segment.pack, blob: segment.entries[0]!.id },
          },
        );
      }
      if (isLifeboatError(error, 'LB_STORAGE_RANGE')) {
        throw new LifeboatError(
          'LB_REPO_CORRUPT',
          `pack ${name} is shorter than its index says (truncated)`,
          { cause: error },
        );
      }
      throw error;
    }
  };

  const upcoming = segments(context.index, artifact.blobs);
  /** Segments fetched ahead, in order; `region` when it was opened into the arena. */
  const window: Array<{ pending: Promise<{ plains: Buffer[]; error?: LifeboatError }>; region: boolean }> =
    [];
  let exhausted = false;
  /** The next segment, taken from `upcoming` but not fetched yet (no room in the arena). */
  let waiting: Segment | undefined;
  const fill = () => {
    while (!exhausted && window.length < context.readAhead) {
      let pending: Promise<{ plains: Buffer[]; error?: LifeboatError }>;
      let region = false;
      try {
        if (waiting === undefined) {
          const next = upcoming.next();
          if (next.done) return;
          waiting = next.value;
        }
        // Into the arena when there is room; an empty segment, or one larger than the whole arena (a
        // chunker's maxSize over it), into memory of its own.
        let into: number | undefined;
        if (arena && waiting.rawLength > 0 && waiting.rawLength <= arena.size) {
          into = arena.tryReserve(waiting.rawLength);
          if (into === undefined) return; // full: the consumer releases a region, then fill() again
          region = true;
        }
        pending = fetchSegment(waiting, into);
        waiting = undefined;
      } catch (error) {
        // A blob missing from the index: fail at its turn, after the blobs before it.
        exhausted = true;
        pending = Promise.reject(error instanceof Error ? error : new Error(String(error)));
      }
      pending.catch(() => undefined); // observed when its turn comes
      window.push({ pending, region });
    }
  };
  try {
    fill();
    while (window.length > 0) {
      const head = window.shift()!;
      const { plains, error } = await head.pending;
      fill();
      for (const chunk of plains) {
        hash.update(chunk);
        size += chunk.length;
        yield chunk;
      }
      if (error) throw error; // after the verified blobs before the damaged one
      // The consumer asked for more: it is done with this segment's chunks.
      if (head.region) {
        arena!.releaseOldest();
        fill();
      }
    }
  } finally {
    await Promise.allSettled(window.map((entry) => entry.pending));
  }
  const digest = 'digestHex' in hash ? hash.digestHex() : hash.digest('hex');
  if (size !== artifact.size || digest !== (blake3 ? artifact.blake3 : artifact.sha256)) {
    throw new LifeboatError(
      'LB_REPO_CORRUPT',
      `artifact ${artifact.name}: size or ${blake3 ? 'BLAKE3' : 'SHA-256'} of the restored stream does not match the manifest`,
    );
  }
}
