// A pool of worker threads that compress and seal blobs, so a backup uses both cores: the main thread
// chunks and hashes, the workers run zstd and AES-256-GCM.
//
// Terms:
//   job      one blob: its plaintext, id and the pack key it is sealed under; the answer is the sealed
//            payload, whether it was compressed, and its plaintext length.
//   window   jobs in flight are bounded (jobsPerWorker × workers), which bounds memory to a few chunks.
//
// The worker's code is a string run with `eval: true` (CommonJS), so it works the same from src/ under
// the test runner and from dist/; it seals exactly as crypto.ts seal() does (nonce ‖ ciphertext ‖ tag,
// aad = the blob id), and a test checks that its output opens with crypto.ts open().
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

import { LifeboatError } from '../errors.js';

export interface SealedBlob {
  sealed: Buffer;
  compression: 0 | 1;
  rawLength: number;
}

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createCipheriv, randomBytes } = require('node:crypto');
const zstd = require(workerData.zstdPath);
const compressor = new zstd.Compressor();
compressor.setParameters({ compressionLevel: Math.max(1, workerData.level) });
parentPort.on('message', (job) => {
  try {
    const plain = Buffer.from(job.data.buffer, job.data.byteOffset, job.data.byteLength);
    let payload = plain;
    let compression = 0;
    if (workerData.level > 0 && plain.length > 64) {
      const compressed = compressor.compress(plain);
      if (compressed.length < plain.length * 0.97) { payload = compressed; compression = 1; }
    }
    const nonce = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', Buffer.from(job.key), nonce);
    cipher.setAAD(Buffer.from(job.id, 'hex'));
    const body = cipher.update(payload);
    cipher.final();
    const sealed = Buffer.concat([nonce, body, cipher.getAuthTag()]);
    const out = new Uint8Array(sealed.buffer.slice(sealed.byteOffset, sealed.byteOffset + sealed.length));
    parentPort.postMessage({ job: job.job, sealed: out, compression, rawLength: plain.length }, [out.buffer]);
  } catch (error) {
    parentPort.postMessage({ job: job.job, error: String(error && error.stack || error) });
  }
});
`;

interface Pending {
  resolve: (blob: SealedBlob) => void;
  reject: (error: Error) => void;
}

export class SealPool {
  private readonly workers: Worker[] = [];
  private readonly pending = new Map<number, Pending>();
  private next = 0;
  private counter = 0;
  private failure: Error | undefined;
  readonly capacity: number;

  constructor(
    compressionLevel: number,
    workerCount = Math.max(1, Math.min(2, availableParallelism())),
    jobsPerWorker = 3,
  ) {
    const zstdPath = createRequire(import.meta.url).resolve('zstd-napi');
    for (let index = 0; index < workerCount; index++) {
      const worker = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: { zstdPath, level: compressionLevel },
      });
      worker.on(
        'message',
        (message: {
          job: number;
          sealed?: Uint8Array;
          compression?: 0 | 1;
          rawLength?: number;
          error?: string;
        }) => {
          const waiter = this.pending.get(message.job);
          this.pending.delete(message.job);
          if (!waiter) return;
          if (message.error !== undefined)
            waiter.reject(new LifeboatError('LB_INTERNAL', `seal worker failed: ${message.error}`));
          else
            waiter.resolve({
              sealed: Buffer.from(message.sealed!.buffer),
              compression: message.compression!,
              rawLength: message.rawLength!,
            });
        },
      );
      worker.on('error', (error) => this.fail(error));
      worker.on('exit', (code) => {
        if (code !== 0) this.fail(new Error(`seal worker exited with code ${code}`));
      });
      this.workers.push(worker);
    }
    this.capacity = workerCount * jobsPerWorker;
  }

  /** Jobs submitted and not yet answered. */
  get inFlight(): number {
    return this.pending.size;
  }

  /** Compresses (when it helps) and seals one blob under packKey, in a worker. */
  seal(id: string, data: Buffer, packKey: Buffer): Promise<SealedBlob> {
    if (this.failure) return Promise.reject(this.failure);
    const job = this.counter++;
    const worker = this.workers[this.next++ % this.workers.length]!;
    return new Promise<SealedBlob>((resolve, reject) => {
      this.pending.set(job, { resolve, reject });
      // A copy: the chunk's memory may be shared with other chunks of the same input buffer.
      const copy = new Uint8Array(data);
      worker.postMessage({ job, id, key: new Uint8Array(packKey), data: copy }, [copy.buffer]);
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((worker) => worker.terminate()));
  }

  private fail(error: Error): void {
    this.failure ??= new LifeboatError('LB_INTERNAL', `seal worker failed: ${error.message}`, {
      cause: error,
    });
    for (const waiter of this.pending.values()) waiter.reject(this.failure);
    this.pending.clear();
  }
}
