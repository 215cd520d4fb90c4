// The concurrency wrapper: at most `limit` backend requests in flight at once, shared by every caller of
// one backend. A stream returned by readStream() holds its slot until it ends, fails or is destroyed;
// list() is not limited (it is one sequential request at a time and may be consumed slowly).
//
// Terms:
//   slot     permission for one request; acquire() waits for a free one, release() returns it.
//
// Written by hand: p-limit and friends limit promise-returning functions, but a slot here must outlive
// the call when it returns a stream, which they do not model.
import { type Readable, finished } from 'node:stream';

import type {
  ByteRange,
  ObjectInfo,
  ProbeOptions,
  StorageBackend,
  StorageCapabilities,
  WriteBody,
  WriteOptions,
} from '../backend.js';

/** A counting semaphore with FIFO waiters. */
export class Semaphore {
  private active = 0;
  private readonly waiters: Array<() => void> = [];

  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1)
      throw new RangeError(`concurrency limit must be ≥ 1, got ${limit}`);
  }

  get inFlight(): number {
    return this.active;
  }

  async acquire(): Promise<() => void> {
    if (this.active < this.limit) this.active++;
    else await new Promise<void>((resolve) => this.waiters.push(resolve)); // slot handed over by release
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiters.shift();
      if (next) next();
      else this.active--;
    };
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    const release = await this.acquire();
    try {
      return await task();
    } finally {
      release();
    }
  }
}

export class ConcurrencyLimitedBackend implements StorageBackend {
  readonly kind: string;
  readonly location: string;
  readonly semaphore: Semaphore;

  constructor(
    private readonly inner: StorageBackend,
    limit: number,
  ) {
    this.kind = inner.kind;
    this.location = inner.location;
    this.semaphore = new Semaphore(limit);
  }

  get capabilities(): StorageCapabilities {
    return this.inner.capabilities;
  }

  probe(options?: ProbeOptions): Promise<void> {
    return this.semaphore.run(() => this.inner.probe(options));
  }
  stat(name: string): Promise<ObjectInfo> {
    return this.semaphore.run(() => this.inner.stat(name));
  }
  read(name: string, range?: ByteRange): Promise<Buffer> {
    return this.semaphore.run(() => this.inner.read(name, range));
  }
  write(name: string, body: WriteBody, options?: WriteOptions): Promise<void> {
    return this.semaphore.run(() => this.inner.write(name, body, options));
  }
  delete(name: string): Promise<void> {
    return this.semaphore.run(() => this.inner.delete(name));
  }
  list(prefix: string): AsyncIterable<ObjectInfo> {
    return this.inner.list(prefix);
  }
  close(): Promise<void> {
    return this.inner.close();
  }

  async readStream(name: string, range?: ByteRange): Promise<Readable> {
    const release = await this.semaphore.acquire();
    try {
      const stream = await this.inner.readStream(name, range);
      finished(stream, () => release());
      stream.once('close', release);
      return stream;
    } catch (error) {
      release();
      throw error;
    }
  }
}
