// The storage conformance suite: the contract of src/storage/backend.ts, run against every backend.
// Each backend's test file calls storageConformance() with a factory that opens a backend on a fresh,
// empty location, and adds its own cases.
//
// Terms:
//   fresh(ctx)  opens a backend on a location no other test uses (a new directory, a new S3 prefix).
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';

import { describe, expect, it, type TestContext } from 'vitest';

import { isLifeboatError } from '../../src/errors.js';
import type { StorageBackend } from '../../src/storage/index.js';

export type FreshBackend = (ctx: TestContext) => Promise<StorageBackend>;

const MiB = 1024 * 1024;

/** Resolves to the error code a promise rejects with (fails the test if it resolves). */
export async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (isLifeboatError(error)) return error.code;
    throw error;
  }
  throw new Error('expected a rejection');
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export async function listNames(backend: StorageBackend, prefix = ''): Promise<string[]> {
  const names: string[] = [];
  for await (const info of backend.list(prefix)) names.push(info.name);
  return names.sort();
}

/** A reopenable body of `size` pseudo-random bytes produced in 1 MiB pieces (size unknown to the backend). */
export function generatedBody(size: number, seed: string): { open: () => Readable; digest: string } {
  // Each 1 MiB piece is an AES-256-CTR keystream keyed by (seed, index): reproducible and fast.
  const piece = (index: number) => {
    const key = createHash('sha256').update(`${seed}:${index}`).digest();
    const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
    return cipher.update(Buffer.alloc(Math.min(MiB, size - index * MiB)));
  };
  const pieces = Math.ceil(size / MiB);
  const hash = createHash('sha256');
  for (let index = 0; index < pieces; index++) hash.update(piece(index));
  return {
    open: () =>
      Readable.from(
        (function* () {
          for (let index = 0; index < pieces; index++) yield piece(index);
        })(),
      ),
    digest: hash.digest('hex'),
  };
}

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

export function storageConformance(label: string, fresh: FreshBackend): void {
  describe(`storage conformance: ${label}`, () => {
    it('probes a usable location', async (ctx) => {
      const backend = await fresh(ctx);
      await expect(backend.probe()).resolves.toBeUndefined();
    });

    it('round-trips small, empty and binary objects, with stat', async (ctx) => {
      const backend = await fresh(ctx);
      const binary = randomBytes(70_001);
      await backend.write('data/00/small', Buffer.from('hello lifeboat'));
      await backend.write('data/00/empty', new Uint8Array(0));
      await backend.write('keys/binary', binary);
      expect((await backend.read('data/00/small')).toString()).toBe('hello lifeboat');
      expect((await backend.read('data/00/empty')).length).toBe(0);
      expect(sha256(await backend.read('keys/binary'))).toBe(sha256(binary));
      expect(sha256(await readAll(await backend.readStream('keys/binary')))).toBe(sha256(binary));
      const info = await backend.stat('keys/binary');
      expect(info).toMatchObject({ name: 'keys/binary', size: 70_001 });
      expect(info.modified.getTime()).toBeGreaterThan(Date.now() - 3_600_000);
    });

    it('reports a missing object as LB_STORAGE_NOT_FOUND on every read path', async (ctx) => {
      const backend = await fresh(ctx);
      expect(await codeOf(backend.stat('data/missing'))).toBe('LB_STORAGE_NOT_FOUND');
      expect(await codeOf(backend.read('data/missing'))).toBe('LB_STORAGE_NOT_FOUND');
      expect(await codeOf(backend.read('data/missing', { offset: 0, length: 4 }))).toBe(
        'LB_STORAGE_NOT_FOUND',
      );
      expect(await codeOf(backend.readStream('data/missing').then(readAll))).toBe('LB_STORAGE_NOT_FOUND');
    });

    it('serves byte ranges exactly and refuses ranges outside the object', async (ctx) => {
      const backend = await fresh(ctx);
      const data = randomBytes(10_000);
      await backend.write('packs/ranged', data);
      for (const [offset, length] of [
        [0, 1],
        [0, 10_000],
        [1234, 4321],
        [9_999, 1],
        [5_000, 0],
      ] as const) {
        const expected = data.subarray(offset, offset + length);
        expect(Buffer.compare(await backend.read('packs/ranged', { offset, length }), expected)).toBe(0);
        const streamed = await readAll(await backend.readStream('packs/ranged', { offset, length }));
        expect(Buffer.compare(streamed, expected)).toBe(0);
      }
      expect(await codeOf(backend.read('packs/ranged', { offset: 9_990, length: 20 }))).toBe(
        'LB_STORAGE_RANGE',
      );
      expect(await codeOf(backend.read('packs/ranged', { offset: 20_000, length: 1 }))).toBe(
        'LB_STORAGE_RANGE',
      );
      expect(
        await codeOf(backend.readStream('packs/ranged', { offset: 9_000, length: 2_000 }).then(readAll)),
      ).toBe('LB_STORAGE_RANGE');
      expect(await codeOf(backend.read('packs/ranged', { offset: -1, length: 1 }))).toBe('LB_STORAGE_RANGE');
    });

    it('replaces an object on a plain write', async (ctx) => {
      const backend = await fresh(ctx);
      await backend.write('index/one', Buffer.from('first version'));
      await backend.write('index/one', Buffer.from('second'));
      expect((await backend.read('index/one')).toString()).toBe('second');
      expect((await backend.stat('index/one')).size).toBe(6);
    });

    it('refuses a createOnly write over an existing object and keeps its content', async (ctx) => {
      const backend = await fresh(ctx);
      await backend.write('locks/a', Buffer.from('mine'), { createOnly: true });
      expect(await codeOf(backend.write('locks/a', Buffer.from('theirs'), { createOnly: true }))).toBe(
        'LB_STORAGE_EXISTS',
      );
      expect((await backend.read('locks/a')).toString()).toBe('mine');
    });

    it('lets exactly one of several racing createOnly writers win (when atomicCreate)', async (ctx) => {
      const backend = await fresh(ctx);
      await backend.probe();
      if (!backend.capabilities.atomicCreate) ctx.skip('this backend reports atomicCreate = false');
      const racers = Array.from({ length: 8 }, (_, index) =>
        backend.write('locks/race', Buffer.from(`writer-${index}`), { createOnly: true }).then(
          () => index,
          (error: unknown) => {
            if (isLifeboatError(error, 'LB_STORAGE_EXISTS')) return -1;
            throw error;
          },
        ),
      );
      const winners = (await Promise.all(racers)).filter((index) => index >= 0);
      expect(winners).toHaveLength(1);
      expect((await backend.read('locks/race')).toString()).toBe(`writer-${winners[0]}`);
    });

    it('streams a large body of unknown size in and out bit-exactly', async (ctx) => {
      const backend = await fresh(ctx);
      const body = generatedBody(21 * MiB + 12_345, 'large');
      await backend.write('packs/large', { open: body.open });
      expect((await backend.stat('packs/large')).size).toBe(21 * MiB + 12_345);
      const hash = createHash('sha256');
      for await (const chunk of await backend.readStream('packs/large')) hash.update(chunk as Buffer);
      expect(hash.digest('hex')).toBe(body.digest);
      const tail = await backend.read('packs/large', { offset: 21 * MiB, length: 12_345 });
      expect(tail.length).toBe(12_345);
    });

    it('leaves no object when the source stream fails mid-way', async (ctx) => {
      const backend = await fresh(ctx);
      const failing = {
        open: () =>
          Readable.from(
            (function* () {
              yield randomBytes(MiB);
              yield randomBytes(MiB);
              throw new Error('source died');
            })(),
          ),
      };
      // The body's own error comes back as it was: not a storage error, and not retried.
      const error = await backend.write('packs/broken', failing).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(Error);
      expect((error as Error).message).toBe('source died');
      expect(isLifeboatError(error)).toBe(false);
      expect(await codeOf(backend.stat('packs/broken'))).toBe('LB_STORAGE_NOT_FOUND');
      expect(await listNames(backend)).toEqual([]);
    });

    it('lists every object under a prefix exactly once, and nothing else', async (ctx) => {
      const backend = await fresh(ctx);
      const names = [
        ...Array.from(
          { length: 25 },
          (_, index) => `data/${String(index % 3).padStart(2, '0')}/blob-${index}`,
        ),
        'index/a',
        'index/b',
        'config',
        'snapshots/s1',
      ];
      await Promise.all(names.map((name) => backend.write(name, Buffer.from(name))));
      expect(await listNames(backend)).toEqual([...names].sort());
      expect(await listNames(backend, 'data/')).toEqual(
        names.filter((name) => name.startsWith('data/')).sort(),
      );
      expect(await listNames(backend, 'data/01/')).toEqual(
        names.filter((name) => name.startsWith('data/01/')).sort(),
      );
      expect(await listNames(backend, 'index/')).toEqual(['index/a', 'index/b']);
      expect(await listNames(backend, 'nothing-here/')).toEqual([]);
      for await (const info of backend.list('index/')) expect(info.size).toBe(info.name.length);
    });

    it('deletes idempotently', async (ctx) => {
      const backend = await fresh(ctx);
      await backend.write('locks/gone', Buffer.from('x'));
      await backend.delete('locks/gone');
      await backend.delete('locks/gone');
      await backend.delete('locks/never-existed');
      expect(await codeOf(backend.stat('locks/gone'))).toBe('LB_STORAGE_NOT_FOUND');
    });

    it('rejects invalid object names before touching storage', async (ctx) => {
      const backend = await fresh(ctx);
      for (const name of [
        '',
        '../escape',
        'data/../../x',
        '/absolute',
        'a//b',
        'data/.lifeboat-tmp-x',
        'sp ace',
        'a/./b',
      ]) {
        expect(await codeOf(backend.write(name, Buffer.from('x'))), name).toBe('LB_STORAGE_INVALID_NAME');
        expect(await codeOf(backend.read(name)), name).toBe('LB_STORAGE_INVALID_NAME');
      }
      expect(await listNames(backend)).toEqual([]);
    });

    it('handles many concurrent writes and reads', async (ctx) => {
      const backend = await fresh(ctx);
      const blobs = Array.from({ length: 40 }, (_, index) => ({
        name: `data/c/${index}`,
        data: randomBytes(1000 + index * 997),
      }));
      await Promise.all(blobs.map(({ name, data }) => backend.write(name, data)));
      const read = await Promise.all(blobs.map(({ name }) => backend.read(name)));
      read.forEach((data, index) => expect(sha256(data)).toBe(sha256(blobs[index]!.data)));
    });

    it('releases everything when a stream is destroyed before it is read', async (ctx) => {
      const backend = await fresh(ctx);
      await backend.write('packs/unread', randomBytes(256 * 1024));
      for (let round = 0; round < 20; round++) (await backend.readStream('packs/unread')).destroy();
      expect((await backend.stat('packs/unread')).size).toBe(256 * 1024);
      expect((await backend.read('packs/unread')).length).toBe(256 * 1024);
    });

    it('stays usable after a reader abandons a stream half-way', async (ctx) => {
      const backend = await fresh(ctx);
      const body = generatedBody(6 * MiB, 'abandoned');
      await backend.write('packs/abandoned', { open: body.open, size: 6 * MiB });
      for (let round = 0; round < 12; round++) {
        const stream = await backend.readStream('packs/abandoned');
        for await (const _chunk of stream) break; // destroys the stream after its first chunk
      }
      expect(sha256(await backend.read('packs/abandoned'))).toBe(body.digest);
    });
  });
}
