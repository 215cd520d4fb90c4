import { describe, expect, it } from 'vitest';

import { blake3Hex, copyBytes, createBlake3, gearScan, keyedBlake3Hex } from './blake3.js';

// The official BLAKE3 test vectors (test_vectors.json of the BLAKE3 repository): input bytes i % 251,
// key "whats the Elvish word for friend".
const KEY = Buffer.from('whats the Elvish word for friend');
const input = (length: number) => Buffer.from(Array.from({ length }, (_, index) => index % 251));

describe('blake3 addon', () => {
  it('matches the official test vectors, plain and keyed', () => {
    expect(blake3Hex(input(0))).toBe('af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262');
    expect(keyedBlake3Hex(KEY, input(0))).toBe(
      '92b2b75604ed3c761f9d6f62392c8a9227ad0ea3f09573e783f1498a4ed60d26',
    );
    expect(blake3Hex(input(102400))).toBe('bc3e3d41a1146b069abffad3c0d44860cf664390afce4d9661f7902e7943e085');
    expect(keyedBlake3Hex(KEY, input(102400))).toBe(
      '1c35d1a5811083fd7119f5d5d1ba027b4d01c0c6c49fb6ff2cf75393ea5db4a7',
    );
  });

  it('hashes incrementally and reads views of shared memory in place', () => {
    const data = input(102400);
    const shared = new Uint8Array(new SharedArrayBuffer(data.length + 10)).subarray(5, 5 + data.length);
    shared.set(data);
    const hasher = createBlake3();
    hasher.update(shared.subarray(0, 1000));
    hasher.update(shared.subarray(1000, 1001));
    hasher.update(shared.subarray(1001));
    expect(hasher.digestHex()).toBe(blake3Hex(data));
    expect(keyedBlake3Hex(KEY, shared)).toBe(keyedBlake3Hex(KEY, data));
  });

  it('refuses a key that is not 32 bytes', () => {
    expect(() => keyedBlake3Hex(Buffer.alloc(31), input(1))).toThrow(/32 bytes, not 31/);
  });

  it('the gear scan finds the cut a one-byte loop finds, from any start, hash and mask width', () => {
    // Seeded (mulberry32), so a failure can be replayed.
    let seed = 0x6c1fe;
    const next = () => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), seed | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return (t ^ (t >>> 14)) >>> 0;
    };
    const below = (limit: number) => next() % limit;
    const gear = Int32Array.from({ length: 256 }, () => next() | 0);
    const data = Uint8Array.from({ length: 20_000 }, () => next() & 0xff);
    const oneByte = (table: Int32Array, position: number, end: number, mask: number, hash: number) => {
      for (let at = position; at < end; at++) {
        hash = ((hash << 1) + table[data[at]!]!) | 0;
        if ((hash & mask) === 0) return { found: at + 1, hash };
      }
      return { found: -1 - end, hash };
    };
    for (let trial = 0; trial < 5000; trial++) {
      const bits = 1 + below(32);
      const mask = (0xffffffff << (32 - bits)) | 0;
      const position = below(data.length);
      // Long enough for the eight-byte steps, short enough that wide masks still cut now and then.
      const length = Math.min(data.length - position, 24 + below(bits > 12 ? 4096 : 64));
      const start = next() | 0;
      const state = Int32Array.of(start);
      const found = gearScan(gear, data, position, position + length, mask, state);
      expect({ found, hash: state[0] }, `trial ${trial}`).toEqual(
        oneByte(gear, position, position + length, mask, start),
      );
    }
    // A cut at every place in an eight-byte step, for the widest mask and a narrow one: with a table
    // of zeros the hash only shifts, so a start of 1 << (32 - j) reaches 0 after exactly j bytes.
    const zeros = new Int32Array(256);
    for (const mask of [-1, (0xffffffff << 12) | 0]) {
      for (let position = 0; position < 8; position++) {
        for (let j = 1; j <= 20; j++) {
          const start = mask === -1 ? 1 << (32 - j) : (1 << (32 - j)) | 1;
          const state = Int32Array.of(start);
          const expected = oneByte(zeros, position, position + 40, mask, start);
          expect({
            found: gearScan(zeros, data, position, position + 40, mask, state),
            hash: state[0],
          }).toEqual(expected);
          if (mask === -1) expect(expected.found).toBe(position + j);
        }
      }
    }
  });

  it('the gear scan refuses a mask that is not top bits, a bad range and a short table', () => {
    const gear = new Int32Array(256);
    const data = Buffer.alloc(100);
    const state = new Int32Array(1);
    expect(() => gearScan(gear, data, 0, 100, 0x0f, state)).toThrow(/top bits/);
    expect(() => gearScan(gear, data, 0, 100, 0, state)).toThrow(/top bits/);
    expect(() => gearScan(gear, data, 50, 101, -1, state)).toThrow(/range/);
    expect(() => gearScan(gear, data, 2 ** 32 + 10, 2 ** 32 + 20, -1, state)).toThrow(/range/);
    expect(() => gearScan(gear, data, 1.5, 20, -1, state)).toThrow(/range/);
    expect(() => gearScan(new Int32Array(255), data, 0, 10, -1, state)).toThrow(/256 entries/);
    expect(() => gearScan(gear, data, 0, 10, -1, new Int32Array(2))).toThrow(/one word/);
  });

  it('copies into and out of shared memory at an offset, as many bytes as fit, overlapping or not', () => {
    const shared = Buffer.from(new SharedArrayBuffer(64));
    const source = input(40);
    expect(copyBytes(shared, 10, source)).toBe(40);
    expect(shared.subarray(10, 50)).toEqual(source);
    expect(shared.subarray(0, 10)).toEqual(Buffer.alloc(10));
    // Only what fits: 14 bytes from offset 50.
    expect(copyBytes(shared, 50, source)).toBe(14);
    expect(shared.subarray(50, 64)).toEqual(source.subarray(0, 14));
    // Out of shared memory into plain memory, from a view with an offset of its own.
    const plain = Buffer.alloc(8);
    expect(copyBytes(plain, 0, shared.subarray(12, 20))).toBe(8);
    expect(plain).toEqual(source.subarray(2, 10));
    // Overlapping ranges of one buffer, both ways (a memmove).
    const bytes = input(32);
    copyBytes(bytes, 4, bytes.subarray(0, 16));
    expect(bytes.subarray(4, 20)).toEqual(input(16));
    const back = input(32);
    copyBytes(back, 0, back.subarray(4, 20));
    expect(back.subarray(0, 16)).toEqual(input(20).subarray(4));
    expect(copyBytes(plain, 8, source)).toBe(0);
  });

  it('refuses to copy to an offset outside the target', () => {
    const target = Buffer.alloc(8);
    expect(() => copyBytes(target, 9, Buffer.alloc(1))).toThrow(/outside/);
    expect(() => copyBytes(target, -1, Buffer.alloc(1))).toThrow(/outside/);
    expect(() => copyBytes(target, 1.5, Buffer.alloc(1))).toThrow(/outside/);
  });
});
