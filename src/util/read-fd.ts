// Standard input (any file descriptor) as a DirectSource: the backup session's shared memory is read
// into directly (the session accepts DirectSource parts besides iterables of buffers).
//
// Why not createReadStream: it allocates a fresh buffer for every read, which the session then copies.
// For a multi-GiB dump that is gigabytes of short-lived memory outside V8's heap, which V8 answers
// with a full mark-compact every ~64 MB (over a hundred per 2 GiB, 1-2 CPU seconds on two cores),
// plus a copy of every byte. Reading in place costs neither.
import { read } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Input that fills its consumer's memory itself (a file descriptor): no buffer of its own, no copy.
 * readInto() resolves to the bytes placed at the start of `target`, 0 at the end.
 */
export interface DirectSource {
  readInto(target: Buffer): Promise<number>;
  /** Stops the producer (the consumer gave up); a pending readInto() rejects with `error`. */
  destroy?(error?: Error): void;
}

/** How long to wait before reading again a non-blocking descriptor that had nothing (EAGAIN). */
const RETRY_MS = 2;

export function fdSource(fd: number): DirectSource {
  const once = (target: Buffer) =>
    new Promise<number>((resolve, reject) => {
      read(fd, target, 0, target.length, null, (error, bytes) => (error ? reject(error) : resolve(bytes)));
    });
  return {
    async readInto(target) {
      for (;;) {
        try {
          return await once(target);
        } catch (error) {
          // A pipe inherited in non-blocking mode (its other end set it): nothing yet, not the end.
          if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') throw error;
          await sleep(RETRY_MS);
        }
      }
    },
  };
}
