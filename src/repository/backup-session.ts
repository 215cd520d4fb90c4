// One backup in progress: artifacts are chunked and deduplicated here, compressed and sealed in worker
// threads, collected into packs and uploaded a few at a time; commit() makes the snapshot visible.
//
// Terms:
//   open pack     the pack new blobs go to. Once its size reaches the pack size, new blobs go to a new
//                 pack, and the full one is finished and uploaded as soon as its last sealing job lands.
//   window        sealing jobs in flight (the pool's capacity) and uploads in flight (uploadConcurrency)
//                 are both bounded: memory stays a few chunks plus a few packs, whatever the input size.
//   commit order  last pack, every upload, the index file, then the snapshot manifest: a snapshot is
//                 visible only when everything it needs is durable. A crash earlier leaves garbage packs.
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';

import { BlobIndex } from './blob-index.js';
import { Chunker } from './chunker.js';
import { blobId } from './crypto.js';
import type { KeyRing } from './keys.js';
import type { HeldLock } from './locks.js';
import { PackWriter, type PackedBlob, packName } from './pack.js';
import type { BackupProgress, Repository } from './repository.js';
import { type ArtifactRecord, type SnapshotManifest, saveSnapshot } from './snapshots.js';
import { CryptoPool } from './workers.js';

interface OpenPack {
  writer: PackWriter;
  /** Sealing jobs for this pack not yet appended. */
  pending: number;
  /** No new blobs go here; finish when pending reaches 0. */
  full: boolean;
}

export class BackupSession {
  private current: OpenPack | undefined;
  private readonly pool: CryptoPool;
  private readonly jobs = new Set<Promise<void>>();
  private readonly uploads = new Set<Promise<void>>();
  private readonly uploaded: Array<{ id: string; blobs: PackedBlob[] }> = [];
  private readonly sessionBlobs = new Set<string>();
  private failure: unknown;
  private readonly progress: BackupProgress = { bytesRead: 0, bytesNew: 0, bytesStored: 0 };
  private readonly artifacts: ArtifactRecord[] = [];

  constructor(
    private readonly repository: Repository,
    private readonly ring: KeyRing,
    private readonly lock: HeldLock,
    private readonly onProgress?: (progress: BackupProgress) => void,
  ) {
    this.pool = new CryptoPool(repository.options.compressionLevel);
  }

  /** Byte counts so far. */
  get totals(): BackupProgress {
    return { ...this.progress };
  }

  /** Chunks, deduplicates and stores one artifact; returns its record (also kept for commit). */
  async writeArtifact(name: string, input: AsyncIterable<unknown>): Promise<ArtifactRecord> {
    const chunker = new Chunker(this.ring.writer.chunkerKey, this.repository.config.chunker);
    const hash = createHash('sha256');
    const blobs: string[] = [];
    let size = 0;
    for await (const data of input) {
      const buffer = typeof data === 'string' ? Buffer.from(data) : (data as Buffer);
      hash.update(buffer);
      size += buffer.length;
      for (const chunk of chunker.push(buffer)) blobs.push(await this.addChunk(chunk));
      this.progress.bytesRead += buffer.length;
      this.onProgress?.(this.progress);
    }
    for (const chunk of chunker.finish()) blobs.push(await this.addChunk(chunk));
    const record: ArtifactRecord = { name, size, sha256: hash.digest('hex'), blobs };
    this.artifacts.push(record);
    return record;
  }

  /** Makes the snapshot visible: last pack, every upload, the index file, then the manifest. */
  async commit(
    manifest: Omit<SnapshotManifest, 'version' | 'artifacts' | 'hostname' | 'time'> &
      Partial<SnapshotManifest>,
  ): Promise<string> {
    try {
      await Promise.all(this.jobs);
      if (this.current) {
        this.current.full = true;
        this.finishIfDone(this.current);
      }
      await this.waitForUploads(0);
      if (this.uploaded.length > 0) {
        const name = await BlobIndex.write(this.repository.storage, this.ring, this.uploaded);
        // The same Repository object sees (and dedups against) what this session stored.
        for (const pack of this.uploaded) this.repository.index.addPack(pack.id, pack.blobs);
        this.repository.index.files.set(
          name,
          this.uploaded.map((pack) => pack.id),
        );
      }
      const id = await saveSnapshot(this.repository.storage, this.ring, {
        time: new Date().toISOString(),
        hostname: hostname(),
        ...manifest,
        version: 1,
        artifacts: this.artifacts,
      });
      await this.lock.release();
      return id;
    } finally {
      await this.pool.close();
    }
  }

  /** Gives up: releases the lock. Packs already uploaded stay as garbage for prune; no snapshot. */
  async abort(): Promise<void> {
    await Promise.allSettled([...this.jobs, ...this.uploads]);
    await this.pool.close();
    await this.lock.release();
  }

  private async addChunk(chunk: Buffer): Promise<string> {
    if (this.failure !== undefined) throw this.failure as Error;
    const id = blobId(this.ring.writer.idKey, chunk);
    if (this.repository.index.has(id) || this.sessionBlobs.has(id)) return id;
    this.sessionBlobs.add(id);
    this.progress.bytesNew += chunk.length;
    if (!this.current || this.current.full) {
      this.current = {
        writer: await PackWriter.create(this.ring, this.repository.options.compressionLevel),
        pending: 0,
        full: false,
      };
    }
    const pack = this.current;
    pack.pending++;
    const job = this.pool.seal(id, chunk, pack.writer.key).then(
      ({ sealed, rawLength, compression }) => {
        pack.writer.appendSealed(id, sealed, rawLength, compression);
        pack.pending--;
        if (!pack.full && pack.writer.size >= this.repository.config.packSize) pack.full = true;
        this.finishIfDone(pack);
      },
      (error: unknown) => {
        this.failure ??= error;
      },
    );
    this.jobs.add(job);
    void job.finally(() => this.jobs.delete(job));
    while (this.jobs.size >= this.pool.capacity) await Promise.race(this.jobs);
    await this.waitForUploads(this.repository.options.uploadConcurrency);
    return id;
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
