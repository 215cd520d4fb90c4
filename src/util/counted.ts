// A readable stream that reports the size of each chunk passing through it.
import { type Readable, Transform, pipeline } from 'node:stream';

/**
 * `stream`, with `onBytes` called for each chunk as its consumer reads it. Counted through a
 * Transform, not a 'data' listener: a listener would switch `stream` to flowing mode at once, and
 * whatever it emitted before the consumer attached (a consumer may await something first, e.g. a
 * temporary directory) would be lost. A read error reaches the returned stream; destroying the
 * returned stream destroys `stream`.
 */
export function counted(stream: Readable, onBytes: (bytes: number) => void): Readable {
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      onBytes(chunk.length);
      done(null, chunk);
    },
  });
  pipeline(stream, counter, () => {});
  return counter;
}
