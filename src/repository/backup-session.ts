// One backup in progress: artifacts are chunked and deduplicated here, compressed and sealed in worker
// threads, collected into packs and uploaded a few at a time; commit() makes the snapshot visible.
//
// Terms:
//   slab          shared memory the input is copied into (slabs.ts); chunks are views of it that the
//                 workers read in place. A chunk cut short by the end of a slab is carried over to the
//                 start of the next one, so every chunk is contiguous.
//   identify      the workers compute each chunk's keyed id and hold the chunk; the main thread only
//                 decides: a duplicate is dropped in the worker, a new blob is sealed there.
//   stream hash   the artifact's SHA-256 and BLAKE3, computed chunk by chunk, in order, in one worker:
//                 the main thread only copies and chunks.
//   open pack     the pack new blobs go to. Once its size reaches the pack size, new blobs go to a new
//                 pack, and the full one is finished and uploaded as soon as its last sealing job lands.
//   window        sealing jobs in flight (the pool's capacity) and uploads in flight (uploadConcurrency)
//                 are both bounded: memory stays a few chunks plus a few packs, whatever the input size.
//   commit order  last pack, every upload, the index file, then the snapshot manifest: a snapshot is
//                 visible only when everything it needs is durable. A crash earlier leaves garbage packs.
import { hostname } from 'node:os';

import { LifeboatError } from '../errors.js';
import { copyBytes } from '../util/blake3.js';
import type { DirectSource } from '../util/read-fd.js';
import { BlobIndex } from './blob-index.js';
import { type ChunkCutter, Chunker, FixedCutter } from './chunker.js';
import { TarCutter } from './tar-cutter.js';
import type { KeyRing } from './keys.js';
import type { HeldLock } from './locks.js';
import { PackWriter, type PackedBlob, packName } from './pack.js';
import type { BackupProgress, Repository } from './repository.js';
import { type Slab, SlabPool } from './slabs.js';
import {
  type ArtifactRecord,
  type SnapshotManifest,
  type StoredArtifact,
  saveSnapshot,
} from './snapshots.js';
import { CryptoPool, takePool } from './workers.js';

/** Slabs per session: enough for the chunks in flight, the stream hash's lag and the one being filled. */
const SLAB_COUNT = 3;
const MIN_SLAB_BYTES = 16 * 1024 * 1024;

interface OpenPack {
  writer: PackWriter;
  /** Sealing jobs for this pack not yet appended. */
  pending: number;
  /** No new blobs go here; finish when pending reaches 0. */
  full: boolean;
}

function isDirectSource(value: unknown): value is DirectSource {
  return typeof (value as Partial<DirectSource>).readInto === 'function';
}

/** Bytes a DirectSource is asked for at a time: chunking starts early, few calls all the same. */
const DIRECT_READ_BYTES = 2 * 1024 * 1024;

/**
 * Consecutive chunks go to the stream hash together, up to this many bytes: one message per chunk
 * cost more than the hashing for small chunks (a files backup makes one chunk per small file).
 */
const HASH_RUN_BYTES = 1024 * 1024;

/**
 * The window of chunks in flight is counted in bytes, each chunk weighing at least this much: the
 * pool's capacity in megabytes of chunks. Counted in chunks, small ones (a files backup) kept the
 * workers waiting on messages; counted in bytes alone, the tiniest would flood them.
 */
const MIN_JOB_WEIGHT = 32 * 1024;
const WINDOW_UNIT = 1024 * 1024;

/**
 * Chunks smaller than this are identified and sealed in batches, one message to a worker for up to
 * BATCH_COUNT of them or BATCH_BYTES: a files backup makes one chunk per small file, and two messages
 * per chunk (identify, then seal or drop) cost more than the chunks' hashing and sealing.
 */
const SMALL_CHUNK = 64 * 1024;
const BATCH_COUNT = 64;
const BATCH_BYTES = 512 * 1024;

/** A small chunk waiting in the batch: a reference to its slab is held until it is sealed or dropped. */
interface BatchedChunk {
  slab: Slab;
  start: number;
  end: number;
  resolve: (id: string) => void;
  reject: (error: unknown) => void;
}

export type Chunking = 'content' | 'fixed' | 'tar';

/** How one artifact is stored. */
export interface ArtifactOptions {
  /**
   * The data is already compressed by its producer (an RDB's LZF strings): zstd runs at level 1
   * instead of the configured level, which gains most of the size for a fraction of the CPU.
   */
  precompressed?: boolean;
  /**
   * Where chunks are cut (boundaries decide only how the artifact dedups, never what is stored):
   *   content  FastCDC over every byte (the default): finds shifted copies of data.
   *   fixed    every averageSize bytes: for data whose shifted copies never recur, such as a WAL segment
   *            (its bytes sit at fixed offsets for its LSN range, a second push of it is the same bytes
   *            at the same offsets, and its zero-filled tail dedups by whole chunks either way). Rolling
   *            the gear hash over every byte cost ~10% of a WAL push's CPU.
   *   tar      by the members of a tar stream (tar-cutter.ts): a PostgreSQL base backup.
   */
  chunking?: Chunking;
  /**
   * Whether the stream's SHA-256 is computed and recorded beside its BLAKE3 (default true; a snapshot's
   * artifacts need it). The WAL archive of a format-2 repository records BLAKE3 alone: SHA-256 was ~14%
   * of a WAL push's CPU.
   */
  sha256?: boolean;
}

export class BackupSession {
  private current: OpenPack | undefined;
  private creating: Promise<OpenPack> | undefined;
  private readonly pool: CryptoPool;
  private readonly slabs: SlabPool;
  private readonly jobs = new Set<Promise<void>>();
  /** Weight of the chunks in flight (see MIN_JOB_WEIGHT). */
  private inFlight = 0;
  /** Who waits for a job to end (Promise.race over hundreds of jobs per chunk was quadratic). */
  private roomWaiters: Array<() => void> = [];
  /** Small chunks not yet sent to a worker, their bytes, and the zstd level they are sealed at. */
  private batch: BatchedChunk[] = [];
  private batchBytes = 0;
  private batchLevel = 0;
  private readonly uploads = new Set<Promise<void>>();
  private readonly uploaded: Array<{ id: string; blobs: PackedBlob[] }> = [];
  private readonly sessionBlobs = new Set<string>();
  private failure: unknown;
  private readonly progress: BackupProgress = { bytesRead: 0, bytesNew: 0, bytesStored: 0 };
  private readonly artifacts: StoredArtifact[] = [];
  private readonly startTime = new Date().toISOString();

  constructor(
    private readonly repository: Repository,
    private readonly ring: KeyRing,
    private readonly lock: HeldLock,
    private readonly onProgress?: (progress: BackupProgress) => void,
  ) {
    const level = repository.options.compressionLevel;
    this.pool = takePool(level)?.keepAlive() ?? new CryptoPool(level);
    const slabBytes = Math.max(MIN_SLAB_BYTES, 2 * repository.config.chunker.maxSize);
    this.slabs = new SlabPool(slabBytes, SLAB_COUNT);
  }

  /** Byte counts so far. */
  get totals(): BackupProgress {
    return { ...this.progress };
  }

  /** Chunks, deduplicates and stores one artifact; returns its record (also kept for commit). */
  async writeArtifact(
    name: string,
    input: AsyncIterable<unknown> | DirectSource,
    options: ArtifactOptions = {},
  ): Promise<StoredArtifact> {
    return this.writeArtifactParts(name, [input], options);
  }

  /**
   * Stores one artifact given as consecutive parts: the artifact is their concatenation, and a chunk
   * boundary falls at the start of every part. A small unchanged part (a file in a files backup) is
   * then always the same blob, whatever changed around it. A part that iterates buffers has each one
   * copied before the next is asked for (a producer may reuse its buffer); a DirectSource reads
   * straight into the session's memory.
   */
  async writeArtifactParts(
    name: string,
    parts:
      | AsyncIterable<AsyncIterable<unknown> | Iterable<unknown> | DirectSource>
      | Iterable<AsyncIterable<unknown> | DirectSource>,
    options: ArtifactOptions = {},
  ): Promise<StoredArtifact> {
    const configured = this.repository.options.compressionLevel;
    const level = options.precompressed && configured > 1 ? 1 : configured;
    const parameters = this.repository.config.chunker;
    const chunkerKey = this.ring.writer.chunkerKey;
    const chunker: ChunkCutter =
      options.chunking === 'fixed'
        ? new FixedCutter(parameters.averageSize)
        : options.chunking === 'tar'
          ? new TarCutter(chunkerKey, parameters)
          : new Chunker(chunkerKey, parameters);
    const hash = this.pool.hashStream(options.sha256 ?? true);
    const ids: Array<Promise<string>> = [];
    let size = 0;
    // The slab being filled (this call holds a reference to it), where the current chunk starts in
    // it, and how far it is filled.
    let slab = await this.slabs.acquire();
    let start = 0;
    let filled = 0;
    /** Chunks dispatched but not yet given to the stream hash: slab[from, to) of the current slab. */
    let hashFrom = 0;
    let hashTo = 0;
    const flushHash = () => {
      if (hashTo === hashFrom) return;
      const held = slab;
      held.retain();
      this.track(hash.update(held.bytes.subarray(hashFrom, hashTo)).finally(() => held.release()));
      hashFrom = hashTo;
    };
    const dispatch = async (end: number) => {
      if (hashTo !== start) {
        flushHash();
        hashFrom = start;
      }
      hashTo = end;
      if (hashTo - hashFrom >= HASH_RUN_BYTES) flushHash();
      ids.push((await this.addChunk(slab, start, end, level)).id);
      start = end;
    };
    /** Room after `filled`; a full slab first carries the unfinished chunk over to a fresh one. */
    const room = async (): Promise<Buffer> => {
      if (filled === slab.bytes.length) {
        flushHash();
        this.flushBatch(); // no batch holds on to the slab being left
        const next = await this.slabs.acquire();
        copyBytes(next.bytes, 0, slab.bytes.subarray(start, filled));
        filled -= start;
        start = 0;
        slab.release();
        slab = next;
        hashFrom = hashTo = 0;
      }
      return slab.bytes.subarray(filled);
    };
    /** Takes `count` bytes just placed after `filled`: dispatches every chunk they complete. */
    const take = async (count: number): Promise<void> => {
      const base = filled;
      filled += count;
      size += count;
      for (const cut of chunker.cuts(slab.bytes.subarray(base, filled))) await dispatch(base + cut);
      this.progress.bytesRead += count;
      this.onProgress?.(this.progress);
    };
    try {
      for await (const part of parts) {
        if (isDirectSource(part)) {
          try {
            for (;;) {
              const free = await room();
              const count = await part.readInto(free.subarray(0, Math.min(free.length, DIRECT_READ_BYTES)));
              if (count === 0) break;
              await take(count);
            }
          } catch (error) {
            part.destroy?.(error as Error); // the source lets go of what it holds (a file descriptor)
            throw error;
          }
        } else {
          for await (const data of part) {
            const buffer = typeof data === 'string' ? Buffer.from(data) : (data as Buffer);
            for (let offset = 0; offset < buffer.length;) {
              const free = await room();
              // The addon's memmove: Buffer.copy into shared memory is V8's relaxed-atomic loop.
              const count = copyBytes(free, 0, buffer.subarray(offset));
              offset += count;
              await take(count);
            }
          }
        }
        // Whatever follows the last cut is the last chunk (a part's end is a boundary): by the session's
        // own account, not the cutter's, so no cutter can drop a tail.
        chunker.end();
        if (filled > start) await dispatch(filled);
      }
      flushHash();
      this.flushBatch();
    } finally {
      slab.release();
    }
    const { sha256, blake3 } = await hash.digest();
    const record: StoredArtifact = {
      name,
      size,
      ...(sha256 === undefined ? {} : { sha256 }),
      blake3,
      blobs: await Promise.all(ids),
    };
    this.artifacts.push(record);
    return record;
  }

  /** Makes the snapshot visible: last pack, every upload, the index file, then the manifest. */
  async commit(
    manifest: Omit<SnapshotManifest, 'version' | 'artifacts' | 'hostname' | 'time'> &
      Partial<SnapshotManifest>,
  ): Promise<string> {
    try {
      await this.persist();
      const id = await saveSnapshot(this.repository.storage, this.ring, {
        time: new Date().toISOString(),
        startTime: this.startTime,
        hostname: hostname(),
        ...manifest,
        version: 1,
        artifacts: this.artifacts.map(snapshotArtifact),
      });
      await this.lock.release().catch(() => undefined); // the snapshot is visible; a leftover lock goes stale
      return id;
    } finally {
      await this.pool.close();
    }
  }

  /**
   * Makes the artifacts durable without a snapshot (last pack, every upload, the index file) and
   * returns their records; the caller writes what references them, then calls release(). Used by the
   * WAL archive, whose records live outside snapshots.
   */
  async persistArtifacts(): Promise<StoredArtifact[]> {
    try {
      await this.persist();
      return [...this.artifacts];
    } finally {
      await this.pool.close();
    }
  }

  /** Releases the lock after persistArtifacts() and the caller's own writes. */
  async release(): Promise<void> {
    await this.lock.release().catch(() => undefined);
  }

  private async persist(): Promise<void> {
    this.flushBatch();
    while (this.jobs.size > 0) await Promise.all(this.jobs);
    if (this.current) {
      this.current.full = true;
      this.finishIfDone(this.current);
    }
    await this.waitForUploads(0);
    this.assertComplete();
    // A lock lost (stale for others, or removed) means a prune may have deleted our packs.
    await this.lock.assertHeld();
    if (this.uploaded.length > 0) {
      const name = await BlobIndex.write(this.repository.storage, this.ring, this.uploaded);
      // The same Repository object sees (and dedups against) what this session stored.
      this.repository.index.addFile(name, this.uploaded);
      this.uploaded.length = 0;
    }
  }

  /** Every blob of every artifact is in the index or in a pack this session uploaded. */
  private assertComplete(): void {
    const stored = new Set(this.uploaded.flatMap((pack) => pack.blobs.map((blob) => blob.id)));
    for (const artifact of this.artifacts) {
      const missing = artifact.blobs.find((id) => !stored.has(id) && !this.repository.index.has(id));
      if (missing !== undefined) {
        throw new LifeboatError(
          'LB_INTERNAL',
          `backup of ${artifact.name}: blob ${missing.slice(0, 16)} was never stored; no snapshot written`,
        );
      }
    }
  }

  /** Gives up: releases the lock. Packs already uploaded stay as garbage for prune; no snapshot. */
  async abort(): Promise<void> {
    const unsent = this.batch;
    this.batch = [];
    this.batchBytes = 0;
    for (const chunk of unsent) {
      chunk.reject(new LifeboatError('LB_INTERNAL', 'the backup was aborted'));
      chunk.slab.release();
    }
    while (this.jobs.size > 0) await Promise.allSettled([...this.jobs]);
    while (this.uploads.size > 0) await Promise.allSettled([...this.uploads]); // jobs may have started uploads
    await this.pool.close();
    await this.lock.release();
  }

  /** Tracks a job: the session waits for it before persisting, and its failure fails the session. */
  private track(job: Promise<unknown>, weight = 0): void {
    this.inFlight += weight;
    const tracked = job.then(
      () => undefined,
      (error: unknown) => {
        this.failure ??= error;
      },
    );
    this.jobs.add(tracked);
    void tracked.finally(() => {
      this.jobs.delete(tracked);
      this.inFlight -= weight;
      const waiters = this.roomWaiters;
      this.roomWaiters = [];
      for (const wake of waiters) wake();
    });
  }

  /**
   * Hands the chunk slab[start, end) to a worker, which computes its id, then drops a duplicate or
   * seals a new blob into the open pack (the stream hash is the caller's). It holds a reference to the
   * slab until it is done with the chunk. Resolves (once there is room in the window) to a box holding
   * the promise of the id.
   */
  private async addChunk(
    slab: Slab,
    start: number,
    end: number,
    level: number,
  ): Promise<{ id: Promise<string> }> {
    if (this.failure !== undefined) throw this.failure as Error;
    if (end - start < SMALL_CHUNK) {
      if (this.batch.length > 0 && level !== this.batchLevel) this.flushBatch();
      this.batchLevel = level;
      slab.retain();
      const id = new Promise<string>((resolve, reject) =>
        this.batch.push({ slab, start, end, resolve, reject }),
      );
      id.catch(() => undefined); // awaited by writeArtifact; failures also land in this.failure
      this.batchBytes += end - start;
      if (this.batch.length >= BATCH_COUNT || this.batchBytes >= BATCH_BYTES) this.flushBatch();
      await this.waitForRoom();
      return { id };
    }
    const chunk = slab.bytes.subarray(start, end);
    slab.retain();
    const identified = this.pool.identify(chunk, this.repository.blobIds);
    const work = identified.then(async (held) => {
      if (this.repository.index.has(held.id) || this.sessionBlobs.has(held.id)) {
        this.pool.drop(held);
        return held.id;
      }
      this.sessionBlobs.add(held.id);
      this.progress.bytesNew += held.rawLength;
      let pack = await this.openPack();
      while (pack.full) pack = await this.openPack();
      pack.pending++;
      try {
        const { sealed, rawLength, compression } = await this.pool.sealHeld(held, pack.writer.key, level);
        pack.writer.appendSealed(held.id, sealed, rawLength, compression);
      } finally {
        pack.pending--;
      }
      if (!pack.full && pack.writer.size >= this.repository.config.packSize) pack.full = true;
      this.finishIfDone(pack);
      return held.id;
    });
    // The chunk is read by then: by the id hash for a duplicate, by the seal for a new blob; after a
    // failure the worker holds it unread (the session fails anyway).
    this.track(
      work.finally(() => slab.release()),
      Math.max(MIN_JOB_WEIGHT, end - start),
    );
    work.catch(() => undefined); // awaited by writeArtifact; failures also land in this.failure
    await this.waitForRoom();
    return { id: work }; // boxed: returning the promise itself would make this wait for it
  }

  /** Waits until the window has room (chunks in flight, uploads in flight). */
  private async waitForRoom(): Promise<void> {
    while (this.inFlight >= this.pool.capacity * WINDOW_UNIT && this.jobs.size > 0)
      await new Promise<void>((wake) => this.roomWaiters.push(wake));
    await this.waitForUploads(this.repository.options.uploadConcurrency);
  }

  /**
   * Sends the batched small chunks to one worker: it computes their ids, the duplicates are dropped,
   * and the new ones sealed into the open pack, each step one message for the whole batch.
   */
  private flushBatch(): void {
    const batch = this.batch;
    if (batch.length === 0) return;
    const bytes = this.batchBytes;
    const level = this.batchLevel;
    this.batch = [];
    this.batchBytes = 0;
    const work = async () => {
      const held = await this.pool.identifyMany(
        batch.map((chunk) => chunk.slab.bytes.subarray(chunk.start, chunk.end)),
        this.repository.blobIds,
      );
      const fresh: number[] = [];
      const duplicates: number[] = [];
      held.ids.forEach((id, index) => {
        if (this.repository.index.has(id) || this.sessionBlobs.has(id)) {
          duplicates.push(index);
          return;
        }
        this.sessionBlobs.add(id);
        this.progress.bytesNew += batch[index]!.end - batch[index]!.start;
        fresh.push(index);
      });
      this.pool.dropMany(held, duplicates);
      if (fresh.length > 0) {
        let pack = await this.openPack();
        while (pack.full) pack = await this.openPack();
        pack.pending++;
        try {
          const sealed = await this.pool.sealHeldMany(held, fresh, pack.writer.key, level);
          sealed.forEach((blob, at) =>
            pack.writer.appendSealed(held.ids[fresh[at]!]!, blob.sealed, blob.rawLength, blob.compression),
          );
        } finally {
          pack.pending--;
        }
        if (!pack.full && pack.writer.size >= this.repository.config.packSize) pack.full = true;
        this.finishIfDone(pack);
      }
      return held.ids;
    };
    const done = work().then(
      (ids) => ids.forEach((id, index) => batch[index]!.resolve(id)),
      (error: unknown) => {
        for (const chunk of batch) chunk.reject(error);
        throw error;
      },
    );
    this.track(
      done.finally(() => {
        for (const chunk of batch) chunk.slab.release();
      }),
      Math.max(MIN_JOB_WEIGHT, bytes),
    );
  }

  /** The pack new blobs go to, creating one (once) when there is none or it is full. */
  private openPack(): Promise<OpenPack> {
    if (this.current && !this.current.full) return Promise.resolve(this.current);
    this.creating ??= PackWriter.create(this.ring, this.repository.options.compressionLevel).then(
      (writer) => {
        this.current = { writer, pending: 0, full: false };
        this.creating = undefined;
        return this.current;
      },
    );
    return this.creating;
  }

  /** Finishes and uploads a full pack once its last sealing job has landed. */
  private finishIfDone(pack: OpenPack): void {
    if (!pack.full || pack.pending > 0 || pack.writer.count === 0) return;
    if (this.current === pack) this.current = undefined;
    const { id, size, body, blobs } = pack.writer.finish();
    const upload = this.repository.storage.write(packName(id), body).then(
      () => {
        this.uploaded.push({ id, blobs });
        this.progress.bytesStored += size;
        this.onProgress?.(this.progress);
      },
      (error: unknown) => {
        this.failure ??= error;
      },
    );
    this.uploads.add(upload);
    void upload.finally(() => this.uploads.delete(upload));
  }

  /** Waits until at most `limit` uploads are in flight; rethrows the first failure. */
  private async waitForUploads(limit: number): Promise<void> {
    while (this.uploads.size > limit) await Promise.race(this.uploads);
    if (limit === 0) await Promise.all(this.uploads);
    if (this.failure !== undefined) throw this.failure as Error;
  }
}

/** A stored artifact as a snapshot lists it: with its SHA-256, which every manifest carries. */
function snapshotArtifact(artifact: StoredArtifact): ArtifactRecord {
  const { sha256 } = artifact;
  if (sha256 === undefined) {
    throw new Error(`internal: artifact ${artifact.name} was stored without its SHA-256 for a snapshot`);
  }
  return { ...artifact, sha256 };
}
