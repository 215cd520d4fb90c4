// Content-defined chunking: FastCDC (Xia et al., 2016) with normalized chunking and a keyed gear table.
//
// Terms:
//   gear table  256 random 32-bit words; here derived from the repository's chunkerKey with HMAC, so
//               chunk boundaries (and so chunk sizes) reveal nothing about content to someone without
//               the key.
//   gear hash   h = (h << 1) + gear[byte] over 32 bits: bit k depends on the last k + 1 bytes, so the
//               top bits used by the masks see a 32-byte window. Rolled in the native addon
//               (gearScan); kept here as a signed int32.
//   cut point   after min bytes, the first position where (h & mask) == 0; mask has more bits (harder)
//               before the average size and fewer after it ("normalized chunking"), which narrows the
//               size distribution; a chunk never exceeds max bytes.
//
// Written by hand: the npm FastCDC ports use a fixed public gear table (boundaries would leak content)
// and no streaming API with bounded memory. The per-byte loop is native (native/blake3/src/lib.rs).
import { createHmac } from 'node:crypto';

import { gearScan } from '../util/blake3.js';
import type { ChunkerParameters } from './format.js';

/** The 256-entry gear table for a chunker key (signed 32-bit words, as the native gearScan takes them). */
export function gearTable(chunkerKey: Buffer): Int32Array {
  const table = new Int32Array(256);
  for (let index = 0; index < 256; index++) {
    table[index] = createHmac('sha256', chunkerKey).update(`lifeboat gear ${index}`).digest().readInt32BE(0);
  }
  return table;
}

/** A mask of the `bits` highest bits of a 32-bit word, as a signed 32-bit integer. */
function topBits(bits: number): number {
  return (0xffffffff << (32 - bits)) | 0;
}

/** What the backup session asks of a chunker: cut points in a stream fed piece by piece. */
export interface ChunkCutter {
  /** Yields, for every chunk `data` completes, the position in `data` just after its last byte. */
  cuts(data: Uint8Array): Generator<number>;
  /** Ends the stream: true when bytes after the last cut form a last, short chunk. Resets the state. */
  end(): boolean;
}

/** Cuts a stream every `size` bytes (the last chunk may be shorter). */
export class FixedCutter implements ChunkCutter {
  private filled = 0;

  constructor(private readonly size: number) {
    if (!(size > 0)) throw new RangeError(`chunk size must be positive (got ${size})`);
  }

  *cuts(data: Uint8Array): Generator<number> {
    let position = 0;
    while (data.length - position >= this.size - this.filled) {
      position += this.size - this.filled;
      this.filled = 0;
      yield position;
    }
    this.filled += data.length - position;
  }

  end(): boolean {
    const pending = this.filled > 0;
    this.filled = 0;
    return pending;
  }
}

/** Splits a stream of bytes into content-defined chunks; feed with push(), end with finish(). */
export class Chunker implements ChunkCutter {
  private readonly gear: Int32Array;
  private readonly min: number;
  private readonly normal: number;
  private readonly max: number;
  private readonly hardMask: number;
  private readonly easyMask: number;
  private pending: Buffer[] = [];
  private size = 0;
  private hash = 0;
  /** The hash, handed to and from the native scan. */
  private readonly state = new Int32Array(1);

  constructor(chunkerKey: Buffer, parameters: ChunkerParameters) {
    const { minSize, averageSize, maxSize } = parameters;
    if (!(minSize > 0 && minSize < averageSize && averageSize < maxSize)) {
      throw new RangeError(
        `chunker sizes must satisfy 0 < min < average < max (got ${minSize}, ${averageSize}, ${maxSize})`,
      );
    }
    const bits = Math.round(Math.log2(averageSize));
    this.gear = gearTable(chunkerKey);
    this.min = minSize;
    this.normal = averageSize;
    this.max = maxSize;
    this.hardMask = topBits(bits + 2);
    this.easyMask = topBits(bits - 2);
  }

  /**
   * Consumes data and yields, for every chunk completed by it, the position in `data` just after the
   * chunk's last byte (the chunk began at the previous cut, possibly in earlier data). The caller keeps
   * the bytes; end the stream with end().
   */
  *cuts(data: Uint8Array): Generator<number> {
    const { min, normal, max, hardMask, easyMask } = this;
    const length = data.length;
    let position = 0;
    let size = this.size;
    while (position < length) {
      if (size < min) {
        const skip = Math.min(min - size, length - position);
        position += skip;
        size += skip;
        continue;
      }
      // Before the normal point the harder mask, after it the easier one, up to max.
      const before = size < normal;
      const end = Math.min(length, position + (before ? normal : max) - size);
      const found = this.scan(data, position, end, before ? hardMask : easyMask);
      const next = found >= 0 ? found : -1 - found;
      size += next - position;
      position = next;
      if (found >= 0 || size >= max) {
        this.size = 0;
        this.hash = 0;
        yield position;
        size = 0;
      }
    }
    this.size = size;
  }

  /** Ends the stream: true when bytes after the last cut form a last, short chunk. Resets the state. */
  end(): boolean {
    const pending = this.size > 0;
    this.size = 0;
    this.hash = 0;
    return pending;
  }

  /**
   * Consumes data and yields every chunk completed by it, as a buffer that owns its memory (tests and
   * simple callers; the backup session uses cuts() over its own shared memory). The data must not be
   * modified afterwards.
   */
  *push(data: Buffer): Generator<Buffer> {
    let start = 0;
    for (const cut of this.cuts(data)) {
      this.pending.push(data.subarray(start, cut));
      yield this.take();
      start = cut;
    }
    if (start < data.length) this.pending.push(data.subarray(start));
  }

  /**
   * Rolls the gear hash over data[position, end): the position after the first cut point (>= 0), or
   * -1 - end when there is none. Leaves the hash in this.hash. In the native addon (lifeboat's BLAKE3
   * addon carries it): ~2x the speed of the best JavaScript loop (unrolled by eight), whose ~1 CPU-s
   * per GiB chunked was the main thread's largest cost in a second backup. Same cut points: the
   * one-byte FastCDC of chunker.test.ts checks them.
   */
  private scan(data: Uint8Array, position: number, end: number, mask: number): number {
    this.state[0] = this.hash;
    const found = gearScan(this.gear, data, position, end, mask, this.state);
    this.hash = this.state[0]!;
    return found;
  }

  /** Yields the last, possibly short, chunk (nothing if the stream ended on a boundary). */
  *finish(): Generator<Buffer> {
    if (this.end() || this.pending.length > 0) yield this.take();
  }

  /** The pending pieces as one chunk that owns its memory (so it can be transferred to a worker). */
  private take(): Buffer {
    const length = this.pending.reduce((sum, piece) => sum + piece.length, 0);
    const chunk = Buffer.from(new ArrayBuffer(length));
    let offset = 0;
    for (const piece of this.pending) offset += piece.copy(chunk, offset);
    this.pending = [];
    return chunk;
  }
}
