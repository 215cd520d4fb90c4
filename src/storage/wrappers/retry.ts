// The retry wrapper: repeats a backend operation that failed with a retryable storage error
// (LB_STORAGE_UNAVAILABLE, LB_STORAGE_TIMEOUT), with exponential backoff and full jitter, bounded in
// attempts and in total time. Backends classify; this file decides.
//
// Terms:
//   attempt     one call to the wrapped backend; the first is attempt 1.
//   backoff     before attempt n+1 we sleep a random time in [0, min(maxDelay, baseDelay·2^(n-1))].
//   deadline    no retry starts after maxElapsedMs since the first attempt; the last error is thrown.
//   resumable   readStream() reopens a broken download at the byte where it stopped, so a long restore
//   read        does not start over after a dropped connection.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';

import { LifeboatError, isLifeboatError } from '../../errors.js';
import type {
  ByteRange,
  ObjectInfo,
  ProbeOptions,
  StorageBackend,
  StorageCapabilities,
  WriteBody,
  WriteOptions,
} from '../backend.js';
import { isInMemory, openBody } from '../names.js';

export interface RetryEvent {
  operation: string;
  name: string;
  /** The attempt that just failed (1-based). */
  attempt: number;
  delayMs: number;
  error: LifeboatError;
}

export interface RetryOptions {
  /** Attempts in total, the first included. Default 8. */
  maxAttempts?: number;
  /** Backoff base in milliseconds. Default 250. */
  baseDelayMs?: number;
  /** Backoff cap in milliseconds. Default 15 000. */
  maxDelayMs?: number;
  /** No retry starts after this many milliseconds since the first attempt. Default 120 000. */
  maxElapsedMs?: number;
  /** Called before each retry (for logs and metrics). */
  onRetry?: (event: RetryEvent) => void;
  /** Source of randomness in [0, 1), replaceable for tests. */
  random?: () => number;
}

export class RetryingBackend implements StorageBackend {
  readonly kind: string;
  readonly location: string;
  private readonly settings: Required<Omit<RetryOptions, 'onRetry'>> & Pick<RetryOptions, 'onRetry'>;

  constructor(
    private readonly inner: StorageBackend,
    options: RetryOptions = {},
  ) {
    this.kind = inner.kind;
    this.location = inner.location;
    this.settings = {
      maxAttempts: 8,
      baseDelayMs: 250,
      maxDelayMs: 15_000,
      maxElapsedMs: 120_000,
      random: Math.random,
      ...options,
    };
  }

  get capabilities(): StorageCapabilities {
    return this.inner.capabilities;
  }

  probe(options?: ProbeOptions): Promise<void> {
    return this.run('probe', this.location, () => this.inner.probe(options));
  }
  stat(name: string): Promise<ObjectInfo> {
    return this.run('stat', name, () => this.inner.stat(name));
  }
  read(name: string, range?: ByteRange): Promise<Buffer> {
    return this.run('read', name, () => this.inner.read(name, range));
  }
  delete(name: string): Promise<void> {
    return this.run('delete', name, () => this.inner.delete(name));
  }
  close(): Promise<void> {
    return this.inner.close();
  }

  async write(name: string, body: WriteBody, options: WriteOptions = {}): Promise<void> {
    let interrupted = false;
    try {
      await this.run('write', name, async () => {
        try {
          await this.inner.write(name, body, options);
        } catch (error) {
          if (isLifeboatError(error) && error.retryable) interrupted = true;
          throw error;
        }
      });
    } catch (error) {
      // A create whose first try reached the server but lost its answer finds "its own" object on
      // the retry. Identical bytes mean that write succeeded.
      if (options.createOnly && interrupted && isLifeboatError(error, 'LB_STORAGE_EXISTS')) {
        if (await this.sameContent(name, body)) return;
      }
      throw error;
    }
  }

  async readStream(name: string, range?: ByteRange): Promise<Readable> {
    const total = range ?? { offset: 0, length: (await this.stat(name)).size };
    const reading: { current: Readable | undefined } = { current: undefined };
    reading.current = await this.run('read', name, () => this.inner.readStream(name, total));
    const out = Readable.from(this.resume(name, total, reading));
    // Destroying the result must release the inner stream (and its concurrency slot) even when reading
    // never started, which an async generator alone does not do.
    out.once('close', () => reading.current?.destroy());
    return out;
  }

  /**
   * Retries a listing from the start, skipping names already yielded (memory: one entry per name).
   * The retry budget starts afresh whenever names arrived since the last failure.
   */
  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const seen = new Set<string>();
    let budget = { attempt: 1, started: Date.now() };
    for (;;) {
      const before = seen.size;
      try {
        for await (const info of this.inner.list(prefix)) {
          if (seen.has(info.name)) continue;
          seen.add(info.name);
          yield info;
        }
        return;
      } catch (error) {
        if (seen.size > before) budget = { attempt: 1, started: Date.now() };
        await this.backoffOrThrow(error, 'list', prefix, budget.attempt++, budget.started);
      }
    }
  }

  /** Yields the range, reopening at the current offset after a retryable failure. */
  private async *resume(
    name: string,
    range: ByteRange,
    reading: { current: Readable | undefined },
  ): AsyncGenerator<Buffer> {
    let offset = range.offset;
    let remaining = range.length;
    let budget = { attempt: 1, started: Date.now() };
    for (;;) {
      const before = remaining;
      try {
        reading.current ??= await this.inner.readStream(name, { offset, length: remaining });
        for await (const chunk of reading.current) {
          const buffer = chunk as Buffer;
          offset += buffer.length;
          remaining -= buffer.length;
          yield buffer;
        }
        if (remaining !== 0) {
          throw new LifeboatError('LB_STORAGE_RANGE', `read ${name}: stream ended ${remaining} bytes early`, {
            details: { name, ...range, missing: remaining },
          });
        }
        return;
      } catch (error) {
        reading.current?.destroy();
        reading.current = undefined;
        // Progress since the last failure: a long download gets a fresh budget for each break.
        if (remaining < before) budget = { attempt: 1, started: Date.now() };
        await this.backoffOrThrow(error, 'read', name, budget.attempt++, budget.started);
      }
    }
  }

  private async run<T>(operation: string, name: string, call: () => Promise<T>): Promise<T> {
    const started = Date.now();
    for (let attempt = 1; ; attempt++) {
      try {
        return await call();
      } catch (error) {
        await this.backoffOrThrow(error, operation, name, attempt, started);
      }
    }
  }

  /** Sleeps before the next attempt, or throws the error when it is final or the budget is spent. */
  private async backoffOrThrow(
    error: unknown,
    operation: string,
    name: string,
    attempt: number,
    started: number,
  ): Promise<void> {
    if (!isLifeboatError(error) || !error.retryable) throw error;
    const { maxAttempts, baseDelayMs, maxDelayMs, maxElapsedMs, random, onRetry } = this.settings;
    const delayMs = Math.round(random() * Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1)));
    const elapsed = Date.now() - started;
    if (attempt >= maxAttempts || elapsed + delayMs > maxElapsedMs) {
      throw new LifeboatError(
        error.code,
        `${error.message} (gave up after ${attempt} attempts in ${(elapsed / 1000).toFixed(1)} s)`,
        {
          cause: error,
          details: { ...error.details, attempts: attempt, elapsedMs: elapsed },
        },
      );
    }
    onRetry?.({ operation, name, attempt, delayMs, error });
    await sleep(delayMs);
  }

  private async sameContent(name: string, body: WriteBody): Promise<boolean> {
    try {
      const stored = await this.read(name);
      if (isInMemory(body)) return Buffer.compare(stored, Buffer.from(body)) === 0;
      const hash = createHash('sha256');
      for await (const chunk of openBody(body)) hash.update(chunk as Buffer);
      return hash.digest('hex') === createHash('sha256').update(stored).digest('hex');
    } catch {
      return false;
    }
  }
}
