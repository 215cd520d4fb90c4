import { describe, expect, it } from 'vitest';

import { blake3Hex, createBlake3, keyedBlake3Hex } from './blake3.js';

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
});
