import { describe, expect, it } from 'vitest';

import { randomBytes } from 'node:crypto';

import {
  BLAKE3_CHUNK,
  Blake3Tree,
  blake3Hex,
  blake3SubtreeChainingValues,
  blake3TreeSpan,
  createBlake3,
  keyedBlake3Hex,
} from './blake3.js';

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

  it('a tree hash fed in parts, some hashed ahead into subtrees, equals the BLAKE3 of the whole', () => {
    const C = BLAKE3_CHUNK;
    const sizes = [
      0,
      1,
      C - 1,
      C,
      C + 1,
      2 * C,
      2 * C + 1,
      3 * C,
      4 * C,
      4 * C + 7,
      5 * C,
      17 * C - 3,
      64 * C,
    ];
    for (let round = 0; round < 40; round++) sizes.push(Math.floor(Math.random() * 300 * C));
    sizes.push(3 * 1024 * 1024 + 12345);
    let hashedAhead = 0;
    for (const total of sizes) {
      const data = randomBytes(total);
      const whole = blake3Hex(data);
      for (let trial = 0; trial < 4; trial++) {
        // Parts of random lengths (tiny ones, chunk-sized ones, long ones), each hashed ahead or not.
        const tree = new Blake3Tree(total);
        let at = 0;
        while (at < total) {
          const scale = [3, C, 40 * C, total][Math.floor(Math.random() * 4)]!;
          const length = Math.min(total - at, 1 + Math.floor(Math.random() * scale));
          const part = data.subarray(at, at + length);
          const span = trial === 0 ? undefined : blake3TreeSpan(at, length, total);
          if (span && Math.random() < 0.8) {
            const records = blake3SubtreeChainingValues(data.subarray(span.from, span.to), span.from);
            tree.updateHashed(part, span, records);
            hashedAhead++;
          } else {
            tree.update(part);
          }
          at += length;
        }
        expect(tree.digestHex(), `${total} bytes, trial ${trial}`).toBe(whole);
      }
    }
    expect(hashedAhead).toBeGreaterThan(50);
  });

  it('a tree hash of the wrong length, or given records of another span, does not match', () => {
    const data = randomBytes(10 * BLAKE3_CHUNK + 5);
    const short = new Blake3Tree(data.length + 1);
    short.update(data);
    expect(short.digestHex()).not.toBe(blake3Hex(data));
    const long = new Blake3Tree(data.length - 1);
    long.update(data);
    expect(long.digestHex()).not.toMatch(/^[0-9a-f]{64}$/);
    // Records of the wrong bytes: a digest that does not match (the records are trusted as given).
    const tree = new Blake3Tree(data.length);
    const span = blake3TreeSpan(0, data.length, data.length)!;
    const other = Buffer.from(data);
    other[3 * BLAKE3_CHUNK] = other[3 * BLAKE3_CHUNK]! ^ 1;
    tree.updateHashed(data, span, blake3SubtreeChainingValues(other.subarray(span.from, span.to), span.from));
    expect(tree.digestHex()).not.toBe(blake3Hex(data));
    // Records that do not cover the span they claim: the part is hashed here instead.
    const fallback = new Blake3Tree(data.length);
    fallback.updateHashed(data, span, blake3SubtreeChainingValues(data.subarray(0, BLAKE3_CHUNK), 0));
    expect(fallback.digestHex()).toBe(blake3Hex(data));
  });

  it('refuses subtree shapes BLAKE3 does not have, with an error rather than a crash', () => {
    expect(() => blake3SubtreeChainingValues(Buffer.alloc(BLAKE3_CHUNK), 5)).toThrow(/multiple of 1024/);
    expect(() => blake3SubtreeChainingValues(Buffer.alloc(100), 0)).toThrow(/whole chunks/);
  });
});
