import { randomBytes } from 'node:crypto';

import { afterAll, describe, expect, it } from 'vitest';

import { blobId, newKey, open } from './crypto.js';
import { SealPool } from './workers.js';
import { decompress } from './zstd.js';

describe('SealPool', () => {
  const pool = new SealPool(3, 2);
  afterAll(() => pool.close());

  it('seals exactly as crypto.ts does: the result opens with open() and the blob id as aad', async () => {
    const key = newKey();
    const idKey = newKey();
    const text = Buffer.from('SELECT 1;\n'.repeat(10_000));
    const noise = randomBytes(100_000);
    const [compressed, raw] = await Promise.all([
      pool.seal(blobId(idKey, text), text, key),
      pool.seal(blobId(idKey, noise), noise, key),
    ]);
    expect(compressed.compression).toBe(1);
    expect(compressed.sealed.length).toBeLessThan(text.length / 10);
    expect(
      decompress(open(key, compressed.sealed, 'text', Buffer.from(blobId(idKey, text), 'hex'))).equals(text),
    ).toBe(true);
    expect(raw.compression).toBe(0);
    expect(open(key, raw.sealed, 'noise', Buffer.from(blobId(idKey, noise), 'hex')).equals(noise)).toBe(true);
    expect(() => open(key, raw.sealed, 'noise', Buffer.from(blobId(idKey, text), 'hex'))).toThrow(
      /authentication failed/,
    );
  });

  it('keeps many jobs apart', async () => {
    const key = newKey();
    const inputs = Array.from({ length: 20 }, (_, index) => Buffer.alloc(50_000 + index, index));
    const results = await Promise.all(
      inputs.map((input, index) => pool.seal(index.toString(16).padStart(64, '0'), input, key)),
    );
    results.forEach((result, index) => {
      const plain = open(key, result.sealed, 'job', Buffer.from(index.toString(16).padStart(64, '0'), 'hex'));
      expect((result.compression ? decompress(plain) : plain).equals(inputs[index]!)).toBe(true);
      expect(result.rawLength).toBe(inputs[index]!.length);
    });
  });
});
