import { createHash, randomBytes } from 'node:crypto';

import { afterAll, describe, expect, it } from 'vitest';

import { blake3Hex } from '../util/blake3.js';
import { type BlobIdScheme, type IdKey, blobId, newKey, open } from './crypto.js';
import { CryptoPool, prestartPool, takePool } from './workers.js';
import { compress, decompress } from './zstd.js';

describe('CryptoPool', () => {
  const pool = new CryptoPool(3, 2);
  afterAll(() => pool.close());

  it('seals exactly as crypto.ts does: the result opens with open() and the blob id as aad', async () => {
    const key = newKey();
    const idKey: IdKey = { scheme: 'blake3', key: newKey() };
    const text = Buffer.from('SELECT 1;\n'.repeat(10_000));
    const noise = randomBytes(100_000);
    const [compressed, raw] = await Promise.all([
      pool.seal(blobId(idKey, text), Buffer.from(text), key), // copies: seal() transfers its input
      pool.seal(blobId(idKey, noise), Buffer.from(noise), key),
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

  it('hashes streams in order in a worker: shared views in place, others copied; streams stay apart', async () => {
    const shared = Buffer.from(new SharedArrayBuffer(300_000));
    randomBytes(300_000).copy(shared);
    const plain = randomBytes(123_457);
    const first = pool.hashStream();
    const second = pool.hashStream();
    const updates = [
      first.update(shared.subarray(0, 100_000)),
      second.update(plain),
      first.update(plain.subarray(7, 50_000)), // a view into a bigger buffer: only its bytes count
      first.update(shared.subarray(100_000)),
    ];
    await Promise.all(updates);
    const expected = createHash('sha256')
      .update(shared.subarray(0, 100_000))
      .update(plain.subarray(7, 50_000))
      .update(shared.subarray(100_000))
      .digest('hex');
    const joined = Buffer.concat([
      shared.subarray(0, 100_000),
      plain.subarray(7, 50_000),
      shared.subarray(100_000),
    ]);
    expect(await first.digest()).toEqual({ sha256: expected, blake3: blake3Hex(joined) });
    expect(await second.digest()).toEqual({
      sha256: createHash('sha256').update(plain).digest('hex'),
      blake3: blake3Hex(plain),
    });
    expect(await pool.hashStream().digest()).toEqual({
      sha256: createHash('sha256').digest('hex'),
      blake3: blake3Hex(Buffer.alloc(0)),
    });
  });

  it('refuses an unknown blob id scheme, in the worker and on the main thread', async () => {
    const ids = { scheme: 'md5', key: newKey() } as unknown as IdKey;
    await expect(pool.identify(Buffer.from('x'.repeat(1000)), ids)).rejects.toThrow(
      /unknown blob id scheme md5/,
    );
    expect(() => blobId(ids, Buffer.from('x'))).toThrow(/unknown blob id scheme md5/);
  });

  it('keeps many jobs apart', async () => {
    const key = newKey();
    const inputs = Array.from({ length: 20 }, (_, index) => Buffer.alloc(50_000 + index, index));
    const results = await Promise.all(
      inputs.map((input, index) => pool.seal(index.toString(16).padStart(64, '0'), Buffer.from(input), key)),
    );
    results.forEach((result, index) => {
      const plain = open(key, result.sealed, 'job', Buffer.from(index.toString(16).padStart(64, '0'), 'hex'));
      expect((result.compression ? decompress(plain) : plain).equals(inputs[index]!)).toBe(true);
      expect(result.rawLength).toBe(inputs[index]!.length);
    });
  });

  const schemes: BlobIdScheme[] = ['blake3', 'hmac-sha256'];

  it.each(schemes)('opens blobs in a worker, verifying tag, size and id (%s ids)', async (scheme) => {
    const key = newKey();
    const idKey: IdKey = { scheme, key: newKey() };
    const text = Buffer.from('COPY t FROM stdin;\n'.repeat(5_000));
    const id = blobId(idKey, text);
    const sealed = await pool.seal(id, Buffer.from(text), key);
    const entry = { id, compression: sealed.compression, rawLength: sealed.rawLength };
    expect((await pool.open(entry, Buffer.from(sealed.sealed), key, idKey, 'pack')).equals(text)).toBe(true);
    const flipped = Buffer.from(sealed.sealed);
    flipped[40]! ^= 1;
    await expect(pool.open(entry, flipped, key, idKey, 'pack')).rejects.toMatchObject({
      code: 'LB_REPO_CORRUPT',
    });
    await expect(
      pool.open(entry, Buffer.from(sealed.sealed), key, { scheme, key: newKey() }, 'pack'),
    ).rejects.toThrow(/does not match its id/);
    await expect(
      pool.open({ ...entry, rawLength: 1 }, Buffer.from(sealed.sealed), key, idKey, 'pack'),
    ).rejects.toThrow(/does not match/);
  });

  it.each(schemes)('identifies in the worker (%s id), then seals or drops the held blob', async (scheme) => {
    const key = newKey();
    const idKey: IdKey = { scheme, key: newKey() };
    const text = Buffer.from('INSERT INTO t VALUES (1);\n'.repeat(4_000));
    const held = await pool.identify(Buffer.from(text), idKey);
    expect(held.id).toBe(blobId(idKey, text));
    expect(held.rawLength).toBe(text.length);
    const sealed = await pool.sealHeld(held, key);
    const plain = open(key, sealed.sealed, 'held', Buffer.from(held.id, 'hex'));
    expect((sealed.compression ? decompress(plain) : plain).equals(text)).toBe(true);
    const duplicate = await pool.identify(Buffer.from(text), idKey);
    pool.drop(duplicate);
    await expect(pool.sealHeld(duplicate, key)).rejects.toThrow(/no held blob/);
  });

  it('seals at the level asked for (precompressed artifacts use level 1), and both open', async () => {
    const key = newKey();
    const idKey: IdKey = { scheme: 'blake3', key: newKey() };
    const text = Buffer.from(
      Array.from({ length: 20_000 }, (_, k) => `row ${k % 997} value ${(k * 7919) % 10007};`).join('\n'),
    );
    for (const level of [1, 19]) {
      const held = await pool.identify(Buffer.from(text), idKey);
      const sealed = await pool.sealHeld(held, key, level);
      const plain = open(key, sealed.sealed, 'held', Buffer.from(held.id, 'hex'));
      expect(sealed.compression).toBe(1);
      expect(decompress(plain).equals(text)).toBe(true);
      // nonce (12) + zstd frame at that level + tag (16)
      expect(sealed.sealed.length).toBe(12 + compress(text, level).length + 16);
    }
  });

  it('opens a whole segment in one job, and stops at a damaged blob after the good ones', async () => {
    const key = newKey();
    const idKey: IdKey = { scheme: 'blake3', key: newKey() };
    const texts = [0, 1, 2].map((index) => Buffer.from(`row ${index};\n`.repeat(3_000 + index)));
    const sealed = await Promise.all(
      texts.map((text) => pool.seal(blobId(idKey, text), Buffer.from(text), key)),
    );
    let offset = 0;
    const blobs = sealed.map((blob, index) => {
      const entry = {
        id: blobId(idKey, texts[index]!),
        compression: blob.compression,
        rawLength: blob.rawLength,
        offset,
        length: blob.sealed.length,
      };
      offset += blob.sealed.length;
      return entry;
    });
    const bytes = Buffer.concat(sealed.map((blob) => blob.sealed));
    const whole = await pool.openSegment(Buffer.from(bytes), blobs, key, idKey, 'pack');
    expect(whole.error).toBeUndefined();
    // One buffer for the segment: the blobs' plaintexts back to back.
    expect(whole.plains).toHaveLength(1);
    expect(Buffer.concat(whole.plains).equals(Buffer.concat(texts))).toBe(true);
    const damaged = Buffer.from(bytes);
    damaged[blobs[1]!.offset + 20]! ^= 1;
    const partial = await pool.openSegment(damaged, blobs, key, idKey, 'pack');
    expect(Buffer.concat(partial.plains).equals(texts[0]!)).toBe(true); // the good blob before it only
    expect(partial.error).toMatchObject({ code: 'LB_REPO_CORRUPT' });
  });
});

describe('prestartPool / takePool', () => {
  it('hands the prestarted pool to one taker, at its level, and it works', async () => {
    prestartPool(3);
    expect(takePool(1)).toBeUndefined(); // another level: not this pool
    const pool = takePool(3);
    expect(pool).toBeInstanceOf(CryptoPool);
    expect(takePool()).toBeUndefined(); // taken once
    try {
      const key = newKey();
      const text = Buffer.from('INSERT INTO t VALUES (1);\n'.repeat(1000));
      const sealed = await pool!.keepAlive().seal('00'.repeat(32), Buffer.from(text), key);
      expect(decompress(open(key, sealed.sealed, 'text', Buffer.alloc(32))).equals(text)).toBe(true);
    } finally {
      await pool!.close();
    }
  });

  it('a reader takes it whatever its level; a second prestart while one waits starts nothing new', () => {
    prestartPool(3);
    const first = takePool(); // (the previous test left none waiting)
    prestartPool(5);
    const second = takePool();
    expect(first).toBeInstanceOf(CryptoPool);
    expect(second?.compressionLevel).toBe(5);
    prestartPool(3);
    prestartPool(1); // one already waits: kept
    const third = takePool();
    expect(third?.compressionLevel).toBe(3);
    return Promise.all([first!.close(), second!.close(), third!.close()]);
  });
});
