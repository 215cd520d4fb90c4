import { describe, expect, it } from 'vitest';

import { randomBytes, randomInt } from 'node:crypto';

import { blake3Hex, createBlake3, gearScan, keyedBlake3Hex } from './blake3.js';

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
    const gear = new Int32Array(randomBytes(1024).buffer);
    const data = randomBytes(20_000);
    const oneByte = (position: number, end: number, mask: number, hash: number) => {
      for (let at = position; at < end; at++) {
        hash = ((hash << 1) + gear[data[at]!]!) | 0;
        if ((hash & mask) === 0) return { found: at + 1, hash };
      }
      return { found: -1 - end, hash };
    };
    for (let trial = 0; trial < 3000; trial++) {
      const bits = 1 + randomInt(32);
      const mask = (0xffffffff << (32 - bits)) | 0;
      const position = randomInt(data.length);
      const end = position + randomInt(Math.min(data.length - position, 1 << (bits > 12 ? 12 : bits)) + 1);
      const start = randomBytes(4).readInt32LE(0);
      const state = Int32Array.of(start);
      const found = gearScan(gear, data, position, end, mask, state);
      const expected = oneByte(position, end, mask, start);
      expect({ found, hash: state[0] }).toEqual(expected);
    }
  });

  it('the gear scan refuses a mask that is not top bits, a bad range and a short table', () => {
    const gear = new Int32Array(256);
    const data = Buffer.alloc(100);
    const state = new Int32Array(1);
    expect(() => gearScan(gear, data, 0, 100, 0x0f, state)).toThrow(/top bits/);
    expect(() => gearScan(gear, data, 0, 100, 0, state)).toThrow(/top bits/);
    expect(() => gearScan(gear, data, 50, 101, -1, state)).toThrow(/range/);
    expect(() => gearScan(new Int32Array(255), data, 0, 10, -1, state)).toThrow(/256 entries/);
    expect(() => gearScan(gear, data, 0, 10, -1, new Int32Array(2))).toThrow(/one word/);
  });
});
