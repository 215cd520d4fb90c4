import { createCipheriv, randomBytes } from 'node:crypto';

import { describe, expect, it } from 'vitest';

import { Chunker, FixedCutter, gearTable } from './chunker.js';
import { DEFAULT_CHUNKER } from './format.js';

const SMALL = { minSize: 2048, averageSize: 8192, maxSize: 65536 };

function pseudoRandom(size: number, seed = 1): Buffer {
  const cipher = createCipheriv('aes-256-ctr', Buffer.alloc(32, seed), Buffer.alloc(16));
  return cipher.update(Buffer.alloc(size));
}

function chunk(key: Buffer, data: Buffer, pieceSize: number, parameters = SMALL): Buffer[] {
  const chunker = new Chunker(key, parameters);
  const out: Buffer[] = [];
  for (let offset = 0; offset < data.length; offset += pieceSize)
    out.push(...chunker.push(data.subarray(offset, offset + pieceSize)));
  out.push(...chunker.finish());
  return out;
}

/** FastCDC one byte at a time, as the paper states it: the unrolled scan must cut exactly here. */
function referenceSizes(key: Buffer, data: Buffer, parameters = SMALL): number[] {
  const gear = gearTable(key);
  const bits = Math.round(Math.log2(parameters.averageSize));
  const hard = (0xffffffff << (32 - bits - 2)) | 0;
  const easy = (0xffffffff << (32 - bits + 2)) | 0;
  const sizes: number[] = [];
  let start = 0;
  while (start < data.length) {
    let hash = 0;
    let size = Math.min(parameters.minSize, data.length - start);
    for (; start + size < data.length && size < parameters.maxSize;) {
      hash = ((hash << 1) + gear[data[start + size]!]!) | 0;
      size++;
      if ((hash & (size <= parameters.averageSize ? hard : easy)) === 0) break;
    }
    sizes.push(size);
    start += size;
  }
  return sizes;
}

describe('Chunker', () => {
  const key = randomBytes(32);
  const data = pseudoRandom(3 * 1024 * 1024);

  it('reassembles exactly and respects min and max sizes', () => {
    const chunks = chunk(key, data, 100_000);
    expect(Buffer.concat(chunks).equals(data)).toBe(true);
    chunks.slice(0, -1).forEach((piece) => {
      expect(piece.length).toBeGreaterThanOrEqual(SMALL.minSize);
      expect(piece.length).toBeLessThanOrEqual(SMALL.maxSize);
    });
  });

  it('finds the same boundaries however the input is split', () => {
    const sizes = (pieces: Buffer[]) => pieces.map((piece) => piece.length);
    const reference = sizes(chunk(key, data, data.length));
    for (const pieceSize of [1, 7, 4096, 65_537, 1_000_000]) {
      expect(sizes(chunk(key, data.subarray(0, pieceSize === 1 ? 300_000 : data.length), pieceSize))).toEqual(
        pieceSize === 1 ? sizes(chunk(key, data.subarray(0, 300_000), 300_000)) : reference,
      );
    }
  });

  it('resynchronizes after an insertion, so later chunks stay identical', () => {
    const edited = Buffer.concat([
      data.subarray(0, 1_000_000),
      Buffer.from('an insertion'),
      data.subarray(1_000_000),
    ]);
    const before = new Set(chunk(key, data, 65_536).map((piece) => piece.toString('hex')));
    const after = chunk(key, edited, 65_536);
    const shared = after.filter((piece) => before.has(piece.toString('hex'))).length;
    expect(shared / after.length).toBeGreaterThan(0.9);
  });

  it('cuts exactly where a one-byte-at-a-time FastCDC cuts, on random and on repetitive data', () => {
    const repetitive = Buffer.concat(
      Array.from({ length: 400 }, (_, index) =>
        index % 3 === 0 ? Buffer.alloc(5000 + index, index % 7) : Buffer.from(`row ${index};`.repeat(300)),
      ),
    );
    for (const input of [data, repetitive, Buffer.alloc(200_000)]) {
      const expected = referenceSizes(key, input);
      for (const pieceSize of [1_000, 4_099, 65_536, input.length]) {
        expect(chunk(key, input, pieceSize).map((piece) => piece.length)).toEqual(expected);
      }
    }
  });

  it('depends on the key: another key cuts elsewhere', () => {
    const other = chunk(randomBytes(32), data, 65_536).map((piece) => piece.length);
    expect(other).not.toEqual(chunk(key, data, 65_536).map((piece) => piece.length));
  });

  it('handles empty input, tiny input and input ending on a boundary', () => {
    expect(chunk(key, Buffer.alloc(0), 10)).toEqual([]);
    expect(chunk(key, Buffer.from('x'), 10).map((piece) => piece.toString())).toEqual(['x']);
    const zeros = Buffer.alloc(SMALL.maxSize * 2); // no natural boundary: cut at max, twice, nothing after
    expect(chunk(key, zeros, 1000).map((piece) => piece.length)).toEqual([SMALL.maxSize, SMALL.maxSize]);
  });

  it('gives chunks near the configured average with the default sizes', () => {
    const big = pseudoRandom(48 * 1024 * 1024, 2);
    const sizes = chunk(key, big, 1024 * 1024, DEFAULT_CHUNKER).map((piece) => piece.length);
    const average = big.length / sizes.length;
    expect(average).toBeGreaterThan(DEFAULT_CHUNKER.minSize);
    expect(average).toBeLessThan(2 * DEFAULT_CHUNKER.averageSize);
  });
});

describe('FixedCutter', () => {
  /** Chunk sizes from feeding `total` bytes in pieces of `piece`, and whether a short chunk is left. */
  function sizes(size: number, total: number, piece: number): number[] {
    const cutter = new FixedCutter(size);
    const out: number[] = [];
    let last = 0;
    for (let offset = 0; offset < total; offset += piece) {
      const length = Math.min(piece, total - offset);
      for (const cut of cutter.cuts(new Uint8Array(length))) {
        out.push(offset + cut - last);
        last = offset + cut;
      }
    }
    if (cutter.end()) out.push(total - last);
    return out;
  }

  it('cuts every size bytes however the input is split, with a short last chunk', () => {
    for (const piece of [1, 7, 100, 1000, 1024, 5000]) {
      expect(sizes(1000, 3500, piece)).toEqual([1000, 1000, 1000, 500]);
      expect(sizes(1000, 3000, piece)).toEqual([1000, 1000, 1000]); // ends on a boundary: nothing after
    }
    expect(sizes(1000, 0, 10)).toEqual([]);
    expect(sizes(1000, 1, 10)).toEqual([1]);
  });

  it('starts afresh after end()', () => {
    const cutter = new FixedCutter(10);
    expect([...cutter.cuts(new Uint8Array(15))]).toEqual([10]);
    expect(cutter.end()).toBe(true);
    expect([...cutter.cuts(new Uint8Array(15))]).toEqual([10]);
  });

  it('refuses a size that is not positive', () => {
    expect(() => new FixedCutter(0)).toThrow(RangeError);
  });
});
