// A pool of worker threads that seal blobs for backups and open them for restores, so both use both
// cores: the main thread chunks and does I/O; the workers run the blob ids (keyed BLAKE3, or HMAC-SHA256
// in a version 1 repository), zstd and AES-256-GCM, and a backup's stream hashes (a restore checks its
// stream's hash on the main thread).
//
// Terms:
//   hash job  one view added to a stream's SHA-256 and BLAKE3 (a backup's artifact), in order, in the
//             one worker that holds that stream's state; views of shared memory are read in place.
//   seal job  one blob's plaintext, id and pack key → the sealed payload, whether it was compressed, and
//             its plaintext length.
//   open job  one sealed blob, its id, pack key, compression, plaintext length and the id key → the
//             verified plaintext (tag, size and id all checked), or a "corrupt" answer.
//   window    jobs in flight are bounded by the callers (capacity = jobsPerWorker × workers), which
//             bounds memory to a few chunks.
//
// The worker's code is a string run with `eval: true` (CommonJS), so it works the same from src/ under
// the test runner and from dist/; it seals and opens exactly as crypto.ts seal()/open() do (nonce ‖
// ciphertext ‖ tag, aad = the blob id), which a test checks both ways.
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

import { LifeboatError } from '../errors.js';
import { blake3AddonPath } from '../util/blake3.js';
import type { IdKey } from './crypto.js';

export interface SealedBlob {
  sealed: Buffer;
  compression: 0 | 1;
  rawLength: number;
}

/** What an open job needs to know about the blob. */
export interface SealedBlobEntry {
  id: string;
  compression: 0 | 1;
  rawLength: number;
}

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes } = require('node:crypto');
const blake3 = require(workerData.blake3Path);
// A blob's id under the repository's scheme (crypto.ts blobId()).
function idOf(scheme, key, data) {
  if (scheme === 'blake3') return blake3.keyedHashHex(key, data);
  if (scheme === 'hmac-sha256') return createHmac('sha256', key).update(data).digest('hex');
  throw new Error('unknown blob id scheme ' + scheme);
}
// zstd's own context, to decompress into a given buffer (the Decompressor allocates its output).
const zstdBinding = require(workerData.zstdBindingPath);
const dctx = new zstdBinding.DCtx();
// Compression into one scratch buffer per worker, reused: zstd-napi's Compressor.compress() allocates
// compressBound() bytes per call and copies the result into a second buffer, and V8 answers that
// external memory (2 MiB per 1 MiB chunk) with full mark-compacts of the worker's heap. The view
// returned is valid until the next call (the caller encrypts it at once: cipher.update copies).
const cctx = new zstdBinding.CCtx();
let scratch = Buffer.alloc(0);
function compressScratch(level, plain) {
  const bound = zstdBinding.compressBound(plain.length);
  if (scratch.length < bound) scratch = Buffer.allocUnsafeSlow(bound);
  return scratch.subarray(0, cctx.compress(scratch, plain, Math.max(1, level)));
}
const owned = (view) => view.byteOffset === 0 && view.byteLength === view.buffer.byteLength
  ? view : new Uint8Array(view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength));
const held = new Map();
function identifyJob(job) {
  const plain = Buffer.from(job.data.buffer, job.data.byteOffset, job.data.byteLength);
  held.set(job.job, plain);
  return { job: job.job, id: idOf(job.idScheme, Buffer.from(job.idKey), plain), rawLength: plain.length };
}
function identifyManyJob(job) {
  const key = Buffer.from(job.idKey);
  const ids = job.datas.map((data, index) => {
    const plain = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    held.set(job.job + '/' + index, plain);
    return idOf(job.idScheme, key, plain);
  });
  return { job: job.job, ids };
}
function sealHeldManyJob(job) {
  const sealed = [], compressions = [], rawLengths = [];
  job.held.forEach((name, index) => {
    const plain = held.get(name);
    held.delete(name);
    if (!plain) throw new Error('no held blob ' + name);
    const answer = sealJob({ job: job.job, id: job.ids[index], key: job.key, data: plain, level: job.level });
    sealed.push(answer.sealed); compressions.push(answer.compression); rawLengths.push(answer.rawLength);
  });
  return { job: job.job, sealedMany: sealed, compressions, rawLengths };
}
function sealHeldJob(job) {
  const plain = held.get(job.heldJob);
  held.delete(job.heldJob);
  if (!plain) throw new Error('no held blob for job ' + job.heldJob);
  return sealJob({ job: job.job, id: job.id, key: job.key, data: plain, level: job.level });
}
function sealJob(job) {
  const plain = Buffer.from(job.data.buffer, job.data.byteOffset, job.data.byteLength);
  let payload = plain;
  let compression = 0;
  const level = job.level === undefined ? workerData.level : job.level;
  if (level > 0 && plain.length > 64) {
    const compressed = compressScratch(level, plain);
    if (compressed.length < plain.length * 0.97) { payload = compressed; compression = 1; }
  }
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', Buffer.from(job.key), nonce);
  cipher.setAAD(Buffer.from(job.id, 'hex'));
  const body = cipher.update(payload);
  cipher.final();
  return { job: job.job, sealed: owned(Buffer.concat([nonce, body, cipher.getAuthTag()])), compression, rawLength: plain.length };
}
// One blob: a segment of one.
function openJob(job) {
  const sealed = Buffer.from(job.sealed.buffer, job.sealed.byteOffset, job.sealed.byteLength);
  const answer = openSegmentJob({ job: job.job, bytes: sealed, key: job.key, idKey: job.idKey, idScheme: job.idScheme,
    blobs: [{ id: job.id, compression: job.compression, rawLength: job.rawLength, offset: 0, length: sealed.length }] });
  return answer.corrupt ? { job: job.job, corrupt: answer.corrupt } : { job: job.job, plain: answer.plains[0] };
}
// A segment's blobs are opened into one buffer, each decompressed in place: one allocation and one
// transfer per segment, not one or two per blob (a files backup's small files are one blob each).
function openSegmentJob(job) {
  const bytes = Buffer.from(job.bytes.buffer, job.bytes.byteOffset, job.bytes.byteLength);
  const key = Buffer.from(job.key);
  const idKey = Buffer.from(job.idKey);
  let total = 0;
  for (const blob of job.blobs) total += blob.rawLength;
  // Not zero-filled (every byte returned is written below): fresh zeroed memory for every segment cost
  // a page fault per page, ~20% more CPU on a 2 GiB restore.
  // Into shared memory when the caller gives it (a borrowed read's arena: restore-arena.ts).
  const out = job.into ? Buffer.from(job.into, job.intoOffset, total) : Buffer.allocUnsafeSlow(total);
  let at = 0;
  for (const [index, blob] of job.blobs.entries()) {
    // Only the verified blobs before a damaged one are returned.
    const fail = (corrupt) => ({ job: job.job, plains: [out.subarray(0, at)], corrupt, at: index });
    const sealed = bytes.subarray(blob.offset, blob.offset + blob.length);
    let payload;
    try {
      if (sealed.length < 28) throw new Error('too short');
      const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, 12));
      decipher.setAAD(Buffer.from(blob.id, 'hex'));
      decipher.setAuthTag(sealed.subarray(sealed.length - 16));
      payload = decipher.update(sealed.subarray(12, sealed.length - 16));
      decipher.final();
    } catch (error) {
      return fail('authentication failed (damaged, tampered with, or a wrong key)');
    }
    const region = out.subarray(at, at + blob.rawLength);
    if (blob.compression === 1) {
      let size;
      try {
        // The frame says how large it is: larger than the index says cannot match the id.
        const declared = zstdBinding.getFrameContentSize(payload);
        if (declared !== null && declared !== blob.rawLength) return fail('content does not match its id');
        size = dctx.decompress(region, payload);
      } catch (error) {
        return fail('cannot decompress');
      }
      if (size !== blob.rawLength) return fail('content does not match its id');
    } else {
      if (payload.length !== blob.rawLength) return fail('content does not match its id');
      blake3.copyBytes(region, 0, payload); // a memmove: Buffer.copy into shared memory is not
    }
    if (idOf(job.idScheme, idKey, region) !== blob.id) {
      return fail('content does not match its id');
    }
    at += blob.rawLength;
  }
  return { job: job.job, plains: [out] };
}
const streams = new Map();
const newStream = (sha256) => ({ sha256: sha256 ? createHash('sha256') : undefined, blake3: new blake3.Hasher() });
function hashJob(job) {
  let hash = streams.get(job.stream);
  if (!hash) { hash = newStream(job.sha256); streams.set(job.stream, hash); }
  if (hash.sha256) hash.sha256.update(job.data);
  hash.blake3.update(job.data);
  return { job: job.job };
}
function digestJob(job) {
  const hash = streams.get(job.stream) || newStream(job.sha256);
  streams.delete(job.stream);
  return { job: job.job, digest: hash.sha256 ? hash.sha256.digest('hex') : undefined, blake3: hash.blake3.digestHex() };
}
parentPort.on('message', (job) => {
  if (job.type === 'drop') { held.delete(job.heldJob); return; }
  if (job.type === 'dropMany') { for (const name of job.held) held.delete(name); return; }
  let answer;
  try {
    answer = job.type === 'open' ? openJob(job) : job.type === 'openSegment' ? openSegmentJob(job)
      : job.type === 'hash' ? hashJob(job) : job.type === 'digest' ? digestJob(job)
      : job.type === 'identify' ? identifyJob(job)
      : job.type === 'identifyMany' ? identifyManyJob(job) : job.type === 'sealHeldMany' ? sealHeldManyJob(job)
      : job.type === 'sealHeld' ? sealHeldJob(job) : sealJob(job);
  } catch (error) {
    answer = { job: job.job, error: String((error && error.stack) || error) };
  }
  const out = answer.plains || answer.sealedMany || [answer.sealed || answer.plain].filter(Boolean);
  // Shared memory is shared, not transferred.
  const transfer = out.map((view) => view.buffer).filter((buffer) => !(buffer instanceof SharedArrayBuffer));
  parentPort.postMessage(answer, transfer);
});
`;

interface WorkerAnswer {
  job: number;
  id?: string;
  sealed?: Uint8Array;
  compression?: 0 | 1;
  rawLength?: number;
  plain?: Uint8Array;
  plains?: Uint8Array[];
  at?: number;
  corrupt?: string;
  digest?: string;
  blake3?: string;
  error?: string;
  ids?: string[];
  sealedMany?: Uint8Array[];
  compressions?: Array<0 | 1>;
  rawLengths?: number[];
}

interface Pending {
  resolve: (answer: WorkerAnswer) => void;
  reject: (error: Error) => void;
  worker: number;
}

/**
 * How a view travels to a worker: a view of shared memory is shared as it is (nothing to transfer); a
 * view that owns its whole ArrayBuffer is transferred; anything else is copied first, then transferred.
 */
function transferable(data: Buffer): { view: Uint8Array; transfer?: ArrayBuffer } {
  if (data.buffer instanceof SharedArrayBuffer) return { view: data };
  const view =
    data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data : new Uint8Array(data);
  return { view, transfer: view.buffer as ArrayBuffer };
}

/** A BLAKE3 (and a SHA-256 unless asked not to) over consecutive views, computed in order in one worker. */
export interface StreamHash {
  /** Hashes the view next; resolves once the worker is done reading it. */
  update(view: Buffer): Promise<void>;
  /** The hex digests of everything updated (sha256 undefined when not computed); ends the stream. */
  digest(): Promise<{ sha256?: string; blake3: string }>;
}

/** A blob a worker holds after identifying it, until it is sealed or dropped. */
export interface HeldBlob {
  id: string;
  rawLength: number;
  worker: number;
  job: number;
}

/** Blobs one worker holds after identifyMany(), until sealed or dropped (each at most once). */
export interface HeldBatch {
  ids: string[];
  worker: number;
  job: number;
}

export class CryptoPool {
  private readonly workers: Worker[] = [];
  private readonly pending = new Map<number, Pending>();
  /** Jobs in flight per worker (identify goes to the least busy). */
  private readonly busy: number[] = [];
  private next = 0;
  private counter = 0;
  private streams = 0;
  private failure: Error | undefined;
  /** Jobs worth keeping in flight to keep every worker busy. */
  readonly capacity: number;

  constructor(
    readonly compressionLevel: number,
    workerCount = Math.max(1, Math.min(2, availableParallelism())),
    jobsPerWorker = 3,
  ) {
    const zstdBindingPath = createRequire(import.meta.url).resolve('zstd-napi/binding');
    const blake3Path = blake3AddonPath();
    for (let index = 0; index < workerCount; index++) {
      const worker = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: { zstdBindingPath, blake3Path, level: compressionLevel },
      });
      worker.on('message', (message: WorkerAnswer) => {
        const waiter = this.pending.get(message.job);
        this.pending.delete(message.job);
        this.settled();
        if (!waiter) return;
        this.busy[waiter.worker]!--;
        if (message.error !== undefined)
          waiter.reject(new LifeboatError('LB_INTERNAL', `crypto worker failed: ${message.error}`));
        else waiter.resolve(message);
      });
      worker.on('error', (error) => this.fail(error));
      worker.on('exit', (code) => {
        if (code !== 0) this.fail(new Error(`crypto worker exited with code ${code}`));
      });
      this.workers.push(worker);
      this.busy.push(0);
    }
    this.capacity = workerCount * jobsPerWorker;
  }

  /**
   * Compresses (when it helps) and seals one blob under packKey, in a worker. A chunk that owns its
   * memory is transferred: the caller must not use `data` afterwards.
   */
  async seal(id: string, data: Buffer, packKey: Buffer): Promise<SealedBlob> {
    const { view, transfer } = transferable(data);
    const answer = await this.submit(
      { type: 'seal', id, key: new Uint8Array(packKey), data: view },
      transfer,
    );
    return {
      sealed: Buffer.from(answer.sealed!.buffer),
      compression: answer.compression!,
      rawLength: answer.rawLength!,
    };
  }

  /**
   * Computes a blob's id (under the repository's id key) in the least busy worker, which keeps the blob until
   * sealHeld() or drop(): the main thread decides about dedup without hashing. `data` is shared when it
   * views shared memory (the caller keeps it intact until the blob is sealed or dropped), else
   * transferred.
   */
  async identify(data: Buffer, ids: IdKey): Promise<HeldBlob> {
    const { view, transfer } = transferable(data);
    const worker = this.leastBusy();
    const job = this.counter;
    const answer = await this.submit(
      { type: 'identify', idKey: new Uint8Array(ids.key), idScheme: ids.scheme, data: view },
      transfer,
      worker,
    );
    return { id: answer.id!, rawLength: answer.rawLength!, worker, job };
  }

  /**
   * identify() for many small chunks in one message (a message per chunk cost more than the hash):
   * views of shared memory only, which the caller keeps intact until each is sealed or dropped.
   */
  async identifyMany(views: readonly Buffer[], ids: IdKey): Promise<HeldBatch> {
    const worker = this.leastBusy();
    const job = this.counter;
    const answer = await this.submit(
      { type: 'identifyMany', idKey: new Uint8Array(ids.key), idScheme: ids.scheme, datas: views },
      undefined,
      worker,
    );
    return { ids: answer.ids!, worker, job };
  }

  /** sealHeld() for some blobs of a batch (by their index in it), in one message. */
  async sealHeldMany(
    batch: HeldBatch,
    indexes: readonly number[],
    packKey: Buffer,
    level?: number,
  ): Promise<SealedBlob[]> {
    const answer = await this.submit(
      {
        type: 'sealHeldMany',
        held: indexes.map((index) => `${batch.job}/${index}`),
        ids: indexes.map((index) => batch.ids[index]),
        key: new Uint8Array(packKey),
        level,
      },
      undefined,
      batch.worker,
    );
    return answer.sealedMany!.map((sealed, at) => ({
      sealed: Buffer.from(sealed.buffer),
      compression: answer.compressions![at]!,
      rawLength: answer.rawLengths![at]!,
    }));
  }

  /** drop() for some blobs of a batch. */
  dropMany(batch: HeldBatch, indexes: readonly number[]): void {
    if (indexes.length === 0) return;
    this.workers[batch.worker]!.postMessage({
      type: 'dropMany',
      held: indexes.map((index) => `${batch.job}/${index}`),
    });
  }

  /**
   * A stream's BLAKE3, and its SHA-256 unless `sha256` is false, computed in one worker, off the main
   * thread. Views of shared memory are read in place (keep them intact until update() resolves); others
   * are copied.
   */
  hashStream(sha256 = true): StreamHash {
    const stream = this.streams++;
    const worker = stream % this.workers.length;
    return {
      update: async (view) => {
        await this.submit({ type: 'hash', stream, data: view, sha256 }, undefined, worker);
      },
      digest: async () => {
        const answer = await this.submit({ type: 'digest', stream, sha256 }, undefined, worker);
        return { sha256: answer.digest, blake3: answer.blake3! };
      },
    };
  }

  /** Compresses (at `level`, default the pool's) and seals a blob the worker holds from identify(). */
  async sealHeld(blob: HeldBlob, packKey: Buffer, level?: number): Promise<SealedBlob> {
    const answer = await this.submit(
      { type: 'sealHeld', heldJob: blob.job, id: blob.id, key: new Uint8Array(packKey), level },
      undefined,
      blob.worker,
    );
    return {
      sealed: Buffer.from(answer.sealed!.buffer),
      compression: answer.compression!,
      rawLength: answer.rawLength!,
    };
  }

  /** Lets the worker forget a held blob (a duplicate). */
  drop(blob: HeldBlob): void {
    this.workers[blob.worker]!.postMessage({ type: 'drop', heldJob: blob.job });
  }

  /**
   * Opens a sealed blob in a worker: checks its tag, decompresses it, checks its size and id. Throws
   * LB_REPO_CORRUPT naming `what` when anything does not match. `sealed` is transferred when it owns its
   * memory.
   */
  async open(
    blob: SealedBlobEntry,
    sealed: Buffer,
    packKey: Buffer,
    ids: IdKey,
    what: string,
  ): Promise<Buffer> {
    const { view, transfer } = transferable(sealed);
    const answer = await this.submit(
      {
        type: 'open',
        id: blob.id,
        compression: blob.compression,
        rawLength: blob.rawLength,
        sealed: view,
        key: new Uint8Array(packKey),
        idKey: new Uint8Array(ids.key),
        idScheme: ids.scheme,
      },
      transfer,
    );
    if (answer.corrupt !== undefined) {
      throw new LifeboatError('LB_REPO_CORRUPT', `${what} blob ${blob.id.slice(0, 16)}: ${answer.corrupt}`);
    }
    return Buffer.from(answer.plain!.buffer);
  }

  /**
   * Opens every blob of a segment (bytes read from one pack) in one worker: one transfer, no per-blob
   * copies. Resolves to the verified plaintexts in order, back to back in one buffer; if a blob fails
   * verification, to the ones before it plus the LB_REPO_CORRUPT error for it. With `into`, the
   * plaintexts are written there (shared memory with room for every blob's rawLength) instead of new
   * memory.
   */
  async openSegment(
    bytes: Buffer,
    blobs: ReadonlyArray<SealedBlobEntry & { offset: number; length: number }>,
    packKey: Buffer,
    ids: IdKey,
    what: string,
    into?: { memory: SharedArrayBuffer; offset: number },
  ): Promise<{ plains: Buffer[]; error?: LifeboatError }> {
    const { view, transfer } = transferable(bytes);
    const answer = await this.submit(
      {
        type: 'openSegment',
        bytes: view,
        blobs: blobs.map(({ id, compression, rawLength, offset, length }) => ({
          id,
          compression,
          rawLength,
          offset,
          length,
        })),
        key: new Uint8Array(packKey),
        idKey: new Uint8Array(ids.key),
        idScheme: ids.scheme,
        ...(into ? { into: into.memory, intoOffset: into.offset } : {}),
      },
      transfer,
    );
    const plains = (answer.plains ?? []).map((view) =>
      Buffer.from(view.buffer, view.byteOffset, view.byteLength),
    );
    if (answer.corrupt === undefined) return { plains };
    const blob = blobs[answer.at ?? 0]!;
    return {
      plains,
      error: new LifeboatError('LB_REPO_CORRUPT', `${what} blob ${blob.id.slice(0, 16)}: ${answer.corrupt}`),
    };
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((worker) => worker.terminate()));
  }

  private submit(
    message: Record<string, unknown>,
    transfer?: ArrayBuffer,
    workerIndex?: number,
  ): Promise<WorkerAnswer> {
    if (this.failure) return Promise.reject(this.failure);
    const job = this.counter++;
    const index = workerIndex ?? this.next++ % this.workers.length;
    return new Promise<WorkerAnswer>((resolve, reject) => {
      if (this.pending.size === 0 && this.idleUnref) for (const each of this.workers) each.ref();
      this.pending.set(job, { resolve, reject, worker: index });
      this.busy[index]!++;
      this.workers[index]!.postMessage({ ...message, job }, transfer ? [transfer] : []);
    });
  }

  /** The worker with the fewest jobs in flight (ties in turn). */
  private leastBusy(): number {
    const start = this.next++;
    let best = start % this.workers.length;
    for (let step = 1; step < this.workers.length; step++) {
      const index = (start + step) % this.workers.length;
      if (this.busy[index]! < this.busy[best]!) best = index;
    }
    return best;
  }

  /** A worker failed: every job fails from now on (a shared pool is then replaced). */
  get broken(): boolean {
    return this.failure !== undefined;
  }

  /**
   * For a long-lived shared pool: idle workers do not keep the process alive (they are referenced only
   * while a job is pending), so the pool needs no close().
   */
  unrefWhenIdle(): this {
    this.idleUnref = true;
    if (this.pending.size === 0) for (const worker of this.workers) worker.unref();
    return this;
  }

  private idleUnref = false;

  /** Undoes unrefWhenIdle(): the workers keep the process alive until close(). */
  keepAlive(): this {
    this.idleUnref = false;
    for (const worker of this.workers) worker.ref();
    return this;
  }

  private settled(): void {
    if (this.idleUnref && this.pending.size === 0) for (const worker of this.workers) worker.unref();
  }

  private fail(error: Error): void {
    this.failure ??= new LifeboatError('LB_INTERNAL', `crypto worker failed: ${error.message}`, {
      cause: error,
    });
    for (const waiter of this.pending.values()) waiter.reject(this.failure);
    this.pending.clear();
    this.settled();
  }
}

/**
 * A pool started ahead of its first use: see prestartPool(). At most one waits; idle, its workers keep
 * nothing alive.
 */
let spare: CryptoPool | undefined;

/**
 * Starts a pool's workers now, for the next takePool(). A worker takes ~70 ms to start (a thread, an
 * isolate, the zstd binding), which a command used to spend after unlocking the repository; started
 * before the key derivation (~0.2 s in a thread of its own), that time is hidden behind it.
 * `workerCount` (default: the pool's, two on two cores) is 1 for commands that handle one WAL file: a
 * second worker would cost ~0.09 CPU-s to start for a 16 MiB file that one worker handles.
 */
export function prestartPool(compressionLevel: number, workerCount?: number): void {
  if (!spare || spare.broken) spare = new CryptoPool(compressionLevel, workerCount).unrefWhenIdle();
}

/**
 * The prestarted pool, if there is one (and it seals at `compressionLevel`, when given); the caller
 * owns it from then on.
 */
export function takePool(compressionLevel?: number): CryptoPool | undefined {
  const pool = spare;
  if (!pool || pool.broken) return undefined;
  if (compressionLevel !== undefined && pool.compressionLevel !== compressionLevel) return undefined;
  spare = undefined;
  return pool;
}
