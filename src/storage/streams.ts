// Stream helpers shared by the backends and the retry wrapper.
//
// Terms:
//   guarded stream  a stream that passes bytes through, counts them, maps errors with `mapError`, and
//                   fails if it ends before (or runs past) the expected byte count; destroying it
//                   destroys its source, whether or not reading had started.
//   source error    an error raised by the body a caller asked us to write (not by the storage). It is
//                   re-thrown as it was, never classified as a storage error and never retried.
import { PassThrough, Readable } from 'node:stream';

import { LifeboatError } from '../errors.js';

export interface GuardOptions {
  /** Exact number of bytes the source must deliver. */
  expected: number;
  /** Turns a source stream error into the backend's classified error. */
  mapError: (error: unknown) => unknown;
  /** The error for a stream that ended early (default: LB_STORAGE_RANGE, permanent). */
  shortRead?: (received: number) => LifeboatError;
  /** Object name, for messages. */
  name: string;
}

export function guardedStream(source: Readable, options: GuardOptions): Readable {
  const { expected, mapError, name } = options;
  async function* pass(): AsyncGenerator<Buffer> {
    let received = 0;
    try {
      for await (const chunk of source) {
        const buffer = chunk as Buffer;
        received += buffer.length;
        if (received > expected) {
          throw new LifeboatError(
            'LB_STORAGE_RANGE',
            `read ${name}: got more than the ${expected} bytes asked for`,
          );
        }
        yield buffer;
      }
    } catch (error) {
      throw error instanceof LifeboatError ? error : mapError(error);
    }
    if (received < expected) {
      throw (
        options.shortRead?.(received) ??
        new LifeboatError(
          'LB_STORAGE_RANGE',
          `read ${name}: object ended after ${received} of ${expected} bytes`,
          {
            details: { name, received, expected },
          },
        )
      );
    }
  }
  const out = Readable.from(pass());
  out.once('close', () => source.destroy());
  return out;
}

/** A body stream whose failure is remembered, so a backend can tell it from its own errors. */
export interface TrackedSource {
  stream: Readable;
  /** The error the body raised, if it did. */
  readonly failure: unknown;
}

export function trackSource(body: Readable): TrackedSource {
  const tracked: { stream: Readable; failure: unknown } = { stream: new PassThrough(), failure: undefined };
  body.once('error', (error) => {
    tracked.failure ??= error;
    tracked.stream.destroy(error);
  });
  body.pipe(tracked.stream as PassThrough);
  tracked.stream.once('close', () => body.destroy());
  return tracked;
}
