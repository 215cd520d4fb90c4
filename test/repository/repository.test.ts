// The repository on real storage (a local directory and MinIO): bit-exact round trips at chunk edges,
// dedup of a 5%-changed second backup, wrong keys and versions, corruption that is detected and never
// restored, and two backups into one repository at once.
import { createHash, createHmac } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';

import { afterAll, describe, expect, it, type TestContext } from 'vitest';

import { isLifeboatError } from '../../src/errors.js';
import {
  DEFAULT_CHUNKER,
  Repository,
  checkRepository,
  listLocks,
  loadArchiveRecord,
  prune,
  pushArchiveFiles,
  readArchiveFile,
  removeLocks,
} from '../../src/repository/index.js';
import { blobId } from '../../src/repository/crypto.js';
import { sealFile } from '../../src/repository/envelope.js';
import { packName } from '../../src/repository/pack.js';
import { blake3Hex, keyedBlake3Hex } from '../../src/util/blake3.js';
import type { DirectSource } from '../../src/util/read-fd.js';
import { type StorageBackend, openStorage } from '../../src/storage/index.js';
import { needs } from '../harness/needs.js';
import { collect, dumpLike, randomData, sha } from './data.js';

const MiB = 1024 * 1024;
const PASSWORD = 'correct horse battery staple';
const CHEAP_KDF = { N: 2 ** 10, r: 8, p: 1 };
const { minSize, averageSize, maxSize } = DEFAULT_CHUNKER;

async function backup(repository: Repository, name: string, data: Buffer, pieceSize = 256 * 1024) {
  const session = await repository.startBackup();
  const pieces = Array.from({ length: Math.ceil(data.length / pieceSize) }, (_, index) =>
    data.subarray(index * pieceSize, (index + 1) * pieceSize),
  );
  await session.writeArtifact(name, Readable.from(pieces));
  const id = await session.commit({
    source: name,
    engine: 'stream',
    tags: [],
    stats: {},
    lifeboatVersion: 'test',
  });
  return { id, session };
}

/** Backs up each part as a part of one artifact (as a files backup does with its files). */
async function backupParts(repository: Repository, parts: readonly Buffer[]) {
  const session = await repository.startBackup();
  const record = await session.writeArtifactParts(
    'parts',
    parts.map((part) => Readable.from([part])),
  );
  await session.commit({ source: 'parts', engine: 'stream', tags: [], stats: {}, lifeboatVersion: 'test' });
  return record;
}

async function storedBytes(storage: StorageBackend): Promise<number> {
  let total = 0;
  for await (const info of storage.list('data/')) total += info.size;
  return total;
}

function repositorySuite(label: string, fresh: (ctx: TestContext) => Promise<StorageBackend>) {
  describe(`repository on ${label}`, () => {
    const open = async (ctx: TestContext) => {
      const storage = await fresh(ctx);
      await Repository.init(storage, { password: PASSWORD, kdf: CHEAP_KDF });
      return Repository.open(storage, { password: PASSWORD });
    };

    it('round-trips bit-exactly at every chunk edge, for random and dump-like data', async (ctx) => {
      const repository = await open(ctx);
      const sizes = [
        0,
        1,
        minSize - 1,
        minSize,
        minSize + 1,
        averageSize,
        maxSize - 1,
        maxSize,
        maxSize + 1,
        3 * maxSize + 17,
      ];
      const inputs = [
        ...sizes.map((size, index) => ({ name: `random-${size}`, data: randomData(size, index + 1) })),
        { name: 'random-24MiB', data: randomData(24 * MiB, 99) },
        { name: 'dump-24MiB', data: dumpLike(24 * MiB, 7) },
      ];
      const ids = [];
      for (const { name, data } of inputs) ids.push((await backup(repository, name, data)).id);
      const reopened = await Repository.open(repository.storage, { password: PASSWORD });
      for (const [index, { name, data }] of inputs.entries()) {
        const snapshot = await reopened.loadSnapshot(ids[index]!);
        expect(snapshot.artifacts[0]).toMatchObject({ name, size: data.length, sha256: sha(data) });
        expect(Date.parse(snapshot.startTime!)).toBeLessThanOrEqual(Date.parse(snapshot.time));
        const restored = await collect(reopened.readArtifact(snapshot.artifacts[0]!));
        expect(restored.length, name).toBe(data.length);
        expect(sha(restored), name).toBe(sha(data));
      }
    });

    it('round-trips a 1 GiB stream bit-exactly (streamed both ways, never held in memory)', async (ctx) => {
      const repository = await open(ctx);
      const size = 1024 * MiB;
      const text = dumpLike(MiB, 9);
      const piece = (index: number) =>
        index % 3 === 0 ? randomData(MiB, 1000 + index) : text.subarray(index % 7, MiB);
      const inputHash = createHash('sha256');
      let produced = 0;
      const source = Readable.from(
        (function* () {
          for (let index = 0; produced < size; index++) {
            const chunk = piece(index).subarray(0, size - produced);
            produced += chunk.length;
            inputHash.update(chunk);
            yield chunk;
          }
        })(),
      );
      const session = await repository.startBackup();
      const artifact = await session.writeArtifact('big', source);
      await session.commit({ source: 'big', engine: 'stream', tags: [], stats: {}, lifeboatVersion: 'test' });
      const expected = inputHash.digest('hex');
      expect(artifact).toMatchObject({ size, sha256: expected });
      const outputHash = createHash('sha256');
      let restored = 0;
      for await (const chunk of repository.readArtifact(artifact)) {
        outputHash.update(chunk as Buffer);
        restored += (chunk as Buffer).length;
      }
      expect(restored).toBe(size);
      expect(outputHash.digest('hex')).toBe(expected);
    });

    it('stores the same blobs from a direct source with short reads and from a producer that reuses its buffer', async (ctx) => {
      const repository = await open(ctx);
      // 40 MiB: chunks are cut from 16 MiB slabs, so some are carried over from one slab to the next.
      const data = Buffer.concat([dumpLike(24 * MiB, 21), randomData(16 * MiB, 22)]);
      const { id } = await backup(repository, 'db', data);
      const expected = (await repository.loadSnapshot(id)).artifacts[0]!;
      expect(expected.sha256).toBe(sha(data));

      let offset = 0;
      let reads = 0;
      const readInto = (target: Buffer): Promise<number> => {
        // Never what was asked for: 1 byte to 3 MiB, like a pipe.
        const want = [1, 3 * MiB, 4093, 700 * 1024, 2 * MiB + 1][reads++ % 5]!;
        const count = data.copy(target, 0, offset, offset + Math.min(want, target.length));
        offset += count;
        return Promise.resolve(count);
      };
      const direct: DirectSource = { readInto };
      const reused = Buffer.alloc(300 * 1024);
      async function* reusing(): AsyncGenerator<Buffer> {
        for (let at = 0; at < data.length; at += reused.length) {
          const count = data.copy(reused, 0, at, at + reused.length);
          yield await Promise.resolve(reused.subarray(0, count));
          reused.fill(0xee); // whatever the session did not copy is now wrong
        }
      }
      const session = await repository.startBackup();
      const fromDirect = await session.writeArtifact('direct', direct);
      const fromReused = await session.writeArtifact('reused', reusing());
      // Parts: a boundary at the start of each, whatever they are made of.
      const half = 20 * MiB + 12345;
      offset = half;
      const fromParts = await session.writeArtifactParts('parts', [
        Readable.from([data.subarray(0, half)]),
        { readInto },
      ]);
      await session.commit({ source: 'db', engine: 'stream', tags: [], stats: {}, lifeboatVersion: 'test' });
      for (const artifact of [fromDirect, fromReused]) {
        expect(artifact).toMatchObject({ size: data.length, sha256: expected.sha256, blobs: expected.blobs });
      }
      expect(fromParts).toMatchObject({ size: data.length, sha256: expected.sha256 });
      expect(sha(await collect(repository.readArtifact(fromParts)))).toBe(expected.sha256);
    });

    it('stores about the changed share for a second backup with 5% scattered changes', async (ctx) => {
      const repository = await open(ctx);
      const first = dumpLike(128 * MiB, 3);
      await backup(repository, 'db', first);
      const afterFirst = await storedBytes(repository.storage);
      const second = Buffer.from(first);
      // 5% of the bytes, in 16 scattered stretches (each touches one or two ~1 MiB chunks of ~110).
      const stretch = Math.floor((second.length * 0.05) / 16);
      for (let index = 0; index < 16; index++) {
        const at = Math.floor(((index + 0.5) * second.length) / 16);
        randomData(stretch, 200 + index).copy(second, at);
      }
      const { session } = await backup(repository, 'db', second);
      const added = (await storedBytes(repository.storage)) - afterFirst;
      const newShare = session.totals.bytesNew / second.length;
      console.log(
        `[dedup] first backup stored ${(afterFirst / MiB).toFixed(1)} MiB of ${first.length / MiB} MiB; ` +
          `second (5% changed) added ${(added / MiB).toFixed(1)} MiB: new plaintext ${(newShare * 100).toFixed(1)}% of the input, ` +
          `stored ${((added / afterFirst) * 100).toFixed(1)}% of the first backup's size`,
      );
      // Each changed stretch makes the chunks it overlaps new, and the next one when it moved a
      // boundary: with ~1.1 MiB chunks that is about 2-3 MiB per stretch, 25-40% of this input.
      expect(newShare).toBeLessThan(0.5);
      // At least the changed bytes are new. (No tighter upper bound per stretch: the gear table is
      // keyed per repository, so chunk sizes around a stretch vary from run to run up to maxSize;
      // 26-43% new plaintext has been seen for this input.)
      expect(session.totals.bytesNew).toBeGreaterThanOrEqual(16 * stretch);
      // What the second backup adds to the repository is about its new plaintext, compressed.
      expect(added).toBeLessThan(session.totals.bytesNew);
      const snapshots = await repository.listSnapshots();
      const restored = await collect(repository.readArtifact(snapshots[1]!.artifacts[0]!));
      expect(sha(restored)).toBe(sha(second));
    });

    it('refuses a wrong password, an unknown format version, a second init and a missing repository', async (ctx) => {
      const storage = await fresh(ctx);
      await expect(Repository.open(storage, { password: PASSWORD })).rejects.toMatchObject({
        code: 'LB_REPO_NOT_FOUND',
      });
      await Repository.init(storage, { password: PASSWORD, kdf: CHEAP_KDF });
      await expect(Repository.init(storage, { password: PASSWORD, kdf: CHEAP_KDF })).rejects.toMatchObject({
        code: 'LB_REPO_EXISTS',
      });
      await expect(Repository.open(storage, { password: 'wrong password' })).rejects.toMatchObject({
        code: 'LB_REPO_WRONG_KEY',
      });
      const config = JSON.parse((await storage.read('config')).toString()) as { version: number };
      await storage.write('config', Buffer.from(JSON.stringify({ ...config, version: 99 })));
      const error = await Repository.open(storage, { password: PASSWORD }).catch((caught: unknown) => caught);
      expect(error).toMatchObject({ code: 'LB_REPO_VERSION' });
      expect((error as Error).message).toMatch(/format version 99, this lifeboat reads version 1 or 2/);
    });

    it('writes keyed BLAKE3 blob ids and the stream BLAKE3 (version 2), and still reads and writes version 1 (HMAC-SHA256 ids)', async (ctx) => {
      await expect(
        Repository.init(await fresh(ctx), { password: PASSWORD, kdf: CHEAP_KDF, formatVersion: 3 }),
      ).rejects.toMatchObject({ code: 'LB_USAGE' });
      const small = dumpLike(100 * 1024, 41); // under the minimum chunk: one blob, the whole input
      const large = dumpLike(3 * maxSize, 42);
      for (const [formatVersion, scheme] of [
        [2, 'blake3'],
        [1, 'hmac-sha256'],
      ] as const) {
        const storage = await fresh(ctx);
        await Repository.init(storage, {
          password: PASSWORD,
          kdf: CHEAP_KDF,
          ...(formatVersion === 1 ? { formatVersion } : {}),
        });
        expect(JSON.parse((await storage.read('config')).toString())).toMatchObject({
          version: formatVersion,
        });
        const repository = await Repository.open(storage, { password: PASSWORD });
        expect(repository.blobIds.scheme).toBe(scheme);
        await backup(repository, 'small', small);
        await backup(repository, 'large', large);
        const snapshots = await repository.listSnapshots();
        const [one, many] = ['small', 'large'].map(
          (name) => snapshots.find((each) => each.source === name)!.artifacts[0]!,
        );
        expect(one!.blobs).toEqual([blobId({ scheme, key: repository.blobIds.key }, small)]);
        expect(one!.blobs[0]).toBe(
          scheme === 'blake3'
            ? keyedBlake3Hex(repository.blobIds.key, small)
            : createHmac('sha256', repository.blobIds.key).update(small).digest('hex'),
        );
        expect(one).toMatchObject({ sha256: sha(small), blake3: blake3Hex(small), size: small.length });
        expect(many!.blobs.length).toBeGreaterThan(3);
        expect(sha(await collect(repository.readArtifact(many!)))).toBe(sha(large));
        // Small parts (a files backup's files) are identified in batches: the same scheme there.
        const parts = [3000, 1, 40_000].map((size, index) => dumpLike(size, 50 + index));
        const batched = await backupParts(repository, parts);
        expect(batched.blobs).toEqual(
          parts.map((part) => blobId({ scheme, key: repository.blobIds.key }, part)),
        );
        expect((await collect(repository.readArtifact(batched))).equals(Buffer.concat(parts))).toBe(true);
        // An artifact recorded without a BLAKE3 (written before it was) is checked by its SHA-256.
        const { blake3: _recorded, ...older } = many!;
        expect(sha(await collect(repository.readArtifact(older)))).toBe(sha(large));
        await expect(collect(repository.readArtifact({ ...older, sha256: sha(small) }))).rejects.toThrow(
          /SHA-256 of the restored stream does not match/,
        );
        await expect(
          collect(repository.readArtifact({ ...many!, blake3: blake3Hex(small) })),
        ).rejects.toThrow(/BLAKE3 of the restored stream does not match/);
        expect(await checkRepository(repository, { readData: true })).toMatchObject({
          snapshots: 3,
          problems: [],
          affectedSnapshots: [],
        });
      }
    });

    it('records archived files by BLAKE3 alone in version 2 (both hashes in version 1), and compares pushes with older records by the hash they share', async (ctx) => {
      const segment = dumpLike(2 * averageSize + 12345, 60);
      const other = Buffer.from(segment);
      other[1000] = other[1000]! ^ 1;
      for (const formatVersion of [2, 1] as const) {
        const storage = await fresh(ctx);
        await Repository.init(storage, {
          password: PASSWORD,
          kdf: CHEAP_KDF,
          ...(formatVersion === 1 ? { formatVersion } : {}),
        });
        const repository = await Repository.open(storage, { password: PASSWORD });
        const name = '000000010000000000000001';
        const digests = {
          size: segment.length,
          blake3: blake3Hex(segment),
          ...(formatVersion === 1 ? { sha256: sha(segment) } : {}),
        };
        expect(await pushArchiveFiles(repository, 'db', [{ name, data: segment }])).toEqual([
          { name, outcome: 'stored', ...digests },
        ]);
        const record = await loadArchiveRecord(repository, 'db', name);
        expect(record).toMatchObject(digests);
        expect('sha256' in record).toBe(formatVersion === 1);
        expect((await readArchiveFile(repository, 'db', name)).equals(segment)).toBe(true);
        // Pushed again: the same bytes are acknowledged (compared by BLAKE3), other bytes are a conflict.
        expect(await pushArchiveFiles(repository, 'db', [{ name, data: segment }])).toEqual([
          { name, outcome: 'present', size: segment.length, blake3: digests.blake3 },
        ]);
        await expect(pushArchiveFiles(repository, 'db', [{ name, data: other }])).rejects.toMatchObject({
          code: 'LB_WAL_CONFLICT',
        });
        expect(
          await pushArchiveFiles(repository, 'db', [{ name, data: other, optional: true }]),
        ).toMatchObject([{ name, outcome: 'skipped' }]);
        // A record written before BLAKE3 was recorded (SHA-256 only) is compared by its SHA-256.
        const older = '000000010000000000000002';
        const { blake3: _blake3, ...withoutBlake3 } = { ...record, name: older, sha256: sha(segment) };
        await storage.write(
          `wal/db/${older}`,
          await sealFile(repository.keyRing, 'archive', withoutBlake3, true),
        );
        expect(await pushArchiveFiles(repository, 'db', [{ name: older, data: segment }])).toEqual([
          { name: older, outcome: 'present', size: segment.length, sha256: sha(segment) },
        ]);
        await expect(
          pushArchiveFiles(repository, 'db', [{ name: older, data: other }]),
        ).rejects.toMatchObject({ code: 'LB_WAL_CONFLICT' });
        expect((await readArchiveFile(repository, 'db', older)).equals(segment)).toBe(true);
        // A fetch checks the file against its record's BLAKE3 (its SHA-256 when it has no BLAKE3).
        const wrong = '000000010000000000000003';
        for (const [field, value] of [
          ['blake3', blake3Hex(other)],
          ['sha256', sha(other)],
        ] as const) {
          const tampered =
            field === 'blake3' ? { ...record, blake3: value } : { ...withoutBlake3, sha256: value };
          await storage.delete(`wal/db/${wrong}`).catch(() => undefined);
          await storage.write(
            `wal/db/${wrong}`,
            await sealFile(repository.keyRing, 'archive', { ...tampered, name: wrong }, true),
          );
          await expect(readArchiveFile(repository, 'db', wrong)).rejects.toThrow(
            field === 'blake3' ? /BLAKE3 of the restored stream/ : /SHA-256 of the restored stream/,
          );
        }
      }
    });

    it('reads borrowed chunks (views of shared memory reused segment after segment) bit-exactly, through an arena that wraps and fills, and one smaller than a segment', async (ctx) => {
      const storage = await fresh(ctx);
      await Repository.init(storage, { password: PASSWORD, kdf: CHEAP_KDF });
      const repository = await Repository.open(storage, { password: PASSWORD });
      const data = Buffer.concat([randomData(40 * MiB, 70), dumpLike(30 * MiB, 71)]);
      await backup(repository, 'big', data, 4 * MiB);
      const [artifact] = (await repository.listSnapshots())[0]!.artifacts;
      // 20 MiB: a few segments at a time (wraps, and waits while full). 1 MiB: smaller than most
      // segments, which are then opened into memory of their own.
      for (const arenaBytes of [20 * MiB, MiB]) {
        const copies: Buffer[] = [];
        let shared = 0;
        let owned = 0;
        for await (const chunk of repository.readArtifactBorrowed(artifact!, { arenaBytes })) {
          if (chunk.buffer instanceof SharedArrayBuffer) shared++;
          else owned++;
          copies.push(Buffer.from(chunk)); // valid until the next chunk is asked for
        }
        expect(arenaBytes === MiB ? owned : shared).toBeGreaterThan(0);
        expect(Buffer.concat(copies).equals(data)).toBe(true);
      }
    });

    it('checks the restored stream against the manifest: intact blobs in another order, or another BLAKE3, fail after the last byte', async (ctx) => {
      const repository = await open(ctx);
      // Several segments of a few MiB, of random and of dump-like data.
      const data = Buffer.concat([randomData(9 * MiB + 123, 80), dumpLike(11 * MiB, 81)]);
      const { id } = await backup(repository, 'stream', data);
      const artifact = (await repository.loadSnapshot(id)).artifacts[0]!;
      expect(artifact.blobs.length).toBeGreaterThan(6);
      const swapped = [...artifact.blobs];
      [swapped[1], swapped[5]] = [swapped[5]!, swapped[1]!];
      const wrong = [
        { ...artifact, blobs: swapped },
        { ...artifact, blake3: blake3Hex(Buffer.from('something else')) },
      ];
      for (const borrowed of [false, true]) {
        const read = (which: typeof artifact): AsyncIterable<Buffer> =>
          borrowed ? repository.readArtifactBorrowed(which) : repository.readArtifact(which);
        let restored = 0;
        for await (const chunk of read(artifact)) restored += chunk.length;
        expect(restored).toBe(data.length);
        for (const bad of wrong) {
          let size = 0;
          const error = await (async () => {
            for await (const chunk of read(bad)) size += chunk.length;
          })().catch((caught: unknown) => caught);
          expect(error).toMatchObject({ code: 'LB_REPO_CORRUPT' });
          expect((error as Error).message).toMatch(
            /BLAKE3 of the restored stream does not match the manifest/,
          );
          expect(size).toBe(data.length);
        }
      }
    });

    it('detects a flipped byte in a pack, a truncated index and a deleted pack, and restores no wrong bytes', async (ctx) => {
      const repository = await open(ctx);
      const data = randomData(12 * MiB, 5);
      const { id } = await backup(repository, 'victim', data);
      const packs: string[] = [];
      for await (const info of repository.storage.list('data/')) packs.push(info.name);
      expect(packs.length).toBeGreaterThan(0);
      const artifact = (await repository.loadSnapshot(id)).artifacts[0]!;

      // A flipped byte in the middle of a pack.
      const target = packs[0]!;
      const original = await repository.storage.read(target);
      const damaged = Buffer.from(original);
      damaged[Math.floor(damaged.length / 2)]! ^= 0x01;
      await repository.storage.write(target, damaged);
      for (const borrowed of [false, true]) {
        const out: Buffer[] = [];
        const error = await (async () => {
          const chunks = borrowed
            ? repository.readArtifactBorrowed(artifact)
            : repository.readArtifact(artifact);
          for await (const chunk of chunks) out.push(Buffer.from(chunk as Buffer)); // copied: borrowed
        })().catch((caught: unknown) => caught);
        expect(error).toMatchObject({ code: 'LB_REPO_CORRUPT' });
        expect((error as Error).message).toContain(target);
        const written = Buffer.concat(out);
        expect(written.equals(data.subarray(0, written.length))).toBe(true); // only verified bytes came out
      }
      await repository.storage.write(target, original);

      // A truncated index file.
      const indexes: string[] = [];
      for await (const info of repository.storage.list('index/')) indexes.push(info.name);
      const indexBytes = await repository.storage.read(indexes[0]!);
      await repository.storage.write(indexes[0]!, indexBytes.subarray(0, indexBytes.length - 10));
      // The repository still opens (other snapshots stay restorable); this artifact fails clearly.
      const withDamagedIndex = await Repository.open(repository.storage, { password: PASSWORD });
      expect([...withDamagedIndex.index.damaged.keys()]).toEqual([indexes[0]]);
      const indexError = await collect(withDamagedIndex.readArtifact(artifact)).catch(
        (caught: unknown) => caught,
      );
      expect(indexError).toMatchObject({ code: 'LB_REPO_CORRUPT' });
      expect((indexError as Error).message).toContain(indexes[0]);
      await repository.storage.write(indexes[0]!, indexBytes);

      // A deleted pack.
      await repository.storage.delete(target);
      const missing = await collect(repository.readArtifact(artifact)).catch((caught: unknown) => caught);
      expect(isLifeboatError(missing, 'LB_REPO_MISSING_DATA')).toBe(true);
      expect((missing as Error).message).toContain(target);
    });

    it('check names exactly the snapshots affected by a flipped byte, a truncated index, a deleted pack', async (ctx) => {
      const repository = await open(ctx);
      const a = await backup(repository, 'a', randomData(10 * MiB, 31));
      const b = await backup(repository, 'b', randomData(10 * MiB, 32));
      const clean = await checkRepository(repository, { readData: true });
      expect(clean).toMatchObject({ snapshots: 2, problems: [], affectedSnapshots: [] });

      const snapshotA = await repository.loadSnapshot(a.id);
      const packOfA = packName(repository.index.get(snapshotA.artifacts[0]!.blobs[0]!)!.pack);
      const original = await repository.storage.read(packOfA);
      const flipped = Buffer.from(original);
      flipped[200]! ^= 0x80;
      await repository.storage.write(packOfA, flipped);
      const flippedReport = await checkRepository(
        await Repository.open(repository.storage, { password: PASSWORD }),
        { readData: true },
      );
      expect(flippedReport.problems.map((problem) => problem.object)).toEqual([packOfA]);
      expect(flippedReport.affectedSnapshots).toEqual([a.id]);
      await repository.storage.write(packOfA, original);

      const reopened = await Repository.open(repository.storage, { password: PASSWORD });
      const packOfB = reopened.index.get((await reopened.loadSnapshot(b.id)).artifacts[0]!.blobs[0]!)!.pack;
      const indexOfB = [...reopened.index.files.entries()].find(([, packs]) => packs.includes(packOfB))![0];
      const indexBytes = await repository.storage.read(indexOfB);
      await repository.storage.write(indexOfB, indexBytes.subarray(0, 100));
      const indexReport = await checkRepository(
        await Repository.open(repository.storage, { password: PASSWORD }),
      );
      expect(indexReport.problems.map((problem) => problem.object)).toContain(indexOfB);
      expect(indexReport.affectedSnapshots).toEqual([b.id]);
      await repository.storage.write(indexOfB, indexBytes);

      await repository.storage.delete(packOfA);
      const deletedReport = await checkRepository(
        await Repository.open(repository.storage, { password: PASSWORD }),
      );
      expect(deletedReport.problems).toEqual([{ object: packOfA, message: 'missing (named by the index)' }]);
      expect(deletedReport.affectedSnapshots).toEqual([a.id]);
    });

    it('check --read-data reads a pack holding a copy of a blob whose used copy is lost, and names what its own damage affects', async (ctx) => {
      const repository = await open(ctx);
      // Two sessions that did not know of each other store their own copies of D's blobs, each with
      // a tail of its own; two later backups need only one tail each.
      const other = await Repository.open(repository.storage, { password: PASSWORD });
      const shared = randomData(3 * MiB, 71);
      const tails = [randomData(3 * MiB, 72), randomData(3 * MiB, 73)];
      const sessions = [await repository.startBackup(), await other.startBackup()];
      for (const [index, session] of sessions.entries())
        // In parts: a chunk starts where the tail does, so a backup of the tail alone has its blobs.
        await session.writeArtifactParts(index === 0 ? 'a' : 'b', [
          Readable.from([shared]),
          Readable.from([tails[index]!]),
        ]);
      for (const [index, session] of sessions.entries())
        await session.commit({
          source: index === 0 ? 'a' : 'b',
          engine: 'stream',
          tags: [],
          stats: {},
          lifeboatVersion: 'test',
        });
      const reader = await Repository.open(repository.storage, { password: PASSWORD });
      const onlyTail = [];
      for (const [index, tail] of tails.entries()) {
        const session = await reader.startBackup();
        await session.writeArtifactParts(`t${index}`, [Readable.from([tail])]);
        const source = `t${index}`;
        onlyTail.push({
          id: await session.commit({
            source,
            engine: 'stream',
            tags: [],
            stats: {},
            lifeboatVersion: 'test',
          }),
        });
      }
      const fresh = await Repository.open(repository.storage, { password: PASSWORD });
      const tailSnapshots = await Promise.all(onlyTail.map(async ({ id }) => fresh.loadSnapshot(id)));
      // A blob stored twice whose other copy shares its pack with a blob only a tail backup needs.
      const copiesOf = (id: string) =>
        [...fresh.index.packs()].filter((pack) => fresh.index.blobsOf(pack).some((blob) => blob.id === id));
      let found:
        { used: string; copy: string; victim: (typeof tailSnapshots)[number]; blob: string } | undefined;
      for (const id of new Set([...fresh.index.entries()].map((entry) => entry.id))) {
        const copies = copiesOf(id);
        if (copies.length !== 2) continue;
        const used = fresh.index.get(id)!.pack;
        const copy = copies.find((pack) => pack !== used)!;
        for (const victim of tailSnapshots) {
          const blob = victim.artifacts[0]!.blobs.find(
            (candidate) => fresh.index.get(candidate)!.pack === copy,
          );
          if (blob !== undefined && copiesOf(blob).length === 1) found ??= { used, copy, victim, blob };
        }
      }
      expect(found).toBeDefined();
      const { used, copy, victim, blob } = found!;
      const entry = fresh.index.get(blob)!;
      const bytes = Buffer.from(await repository.storage.read(packName(copy)));
      bytes[entry.offset + 40]! ^= 0x01;
      await repository.storage.write(packName(copy), bytes);
      await repository.storage.delete(packName(used));
      const report = await checkRepository(
        await Repository.open(repository.storage, { password: PASSWORD }),
        { readData: true },
      );
      expect(report.problems.map((problem) => problem.object).sort()).toEqual(
        [packName(used), packName(copy)].sort(),
      );
      expect(report.affectedSnapshots).toContain(victim.id);
    });

    it('forget and prune free what only forgotten snapshots used, repack mostly-unused packs, and keep the rest whole', async (ctx) => {
      const repository = await open(ctx);
      const a = randomData(10 * MiB, 41);
      const c = Buffer.concat([a.subarray(0, 2 * MiB), randomData(2 * MiB, 43)]);
      await backup(repository, 'db', a);
      await backup(repository, 'db', randomData(4 * MiB, 42));
      const { id: keptId } = await backup(repository, 'db', c);
      const before = await storedBytes(repository.storage);

      const dry = await repository.forget({ keepLast: 1 }, { dryRun: true });
      expect(dry.map((decision) => decision.keep)).toEqual([true, false, false]);
      expect(dry[0]!.reasons).toEqual(['last 1']);
      expect((await repository.listSnapshots()).length).toBe(3);

      await repository.forget({ keepLast: 1 });
      expect((await repository.listSnapshots()).map((snapshot) => snapshot.id)).toEqual([keptId]);
      const report = await prune(repository);
      expect(report.packsRepacked + report.packsDeleted).toBeGreaterThan(0);
      const after = await storedBytes(repository.storage);
      expect(after).toBeLessThan(before / 2);

      const reopened = await Repository.open(repository.storage, { password: PASSWORD });
      expect(await checkRepository(reopened, { readData: true })).toMatchObject({
        problems: [],
        unreferencedPacks: [],
      });
      const restored = await collect(
        reopened.readArtifact((await reopened.loadSnapshot(keptId)).artifacts[0]!),
      );
      expect(sha(restored)).toBe(sha(c));
    });

    it('check opened before a wal-push and a backup committed sees them whole, not blobs in no index', async (ctx) => {
      const repository = await open(ctx);
      await backup(repository, 'db', randomData(2 * MiB, 70));
      const checker = await Repository.open(repository.storage, { password: PASSWORD }); // its index: before
      const writer = await Repository.open(repository.storage, { password: PASSWORD });
      const segment = randomData(16 * MiB, 71);
      await pushArchiveFiles(writer, 'db', [{ name: '000000010000000000000042', data: segment }]);
      await backup(writer, 'db', randomData(3 * MiB, 72));
      expect(await checkRepository(checker, { readData: true })).toMatchObject({
        problems: [],
        unreferencedPacks: [],
        affectedArchiveFiles: [],
        archiveFiles: 1,
        snapshots: 2,
      });
    });

    it('a backup that opened before a prune does not dedupe against pruned data', async (ctx) => {
      const repository = await open(ctx);
      const data = randomData(6 * MiB, 60);
      await backup(repository, 'db', data);
      const early = await Repository.open(repository.storage, { password: PASSWORD }); // index names the packs
      await repository.forget({ keepLast: 1 }, { sources: ['nothing'] });
      const other = await Repository.open(repository.storage, { password: PASSWORD });
      await other.storage.delete(`snapshots/${(await other.listSnapshots())[0]!.id}`);
      await prune(other); // deletes every pack: no snapshot needs them
      const { id } = await backup(early, 'db', data);
      const reader = await Repository.open(repository.storage, { password: PASSWORD });
      expect(await checkRepository(reader, { readData: true })).toMatchObject({ problems: [] });
      expect(sha(await collect(reader.readArtifact((await reader.loadSnapshot(id)).artifacts[0]!)))).toBe(
        sha(data),
      );
    });

    it('a backup whose lock was removed (taken for stale) commits nothing', async (ctx) => {
      const repository = await open(ctx);
      const session = await repository.startBackup();
      await session.writeArtifact('x', Readable.from([randomData(2 * MiB, 61)]));
      for (const lock of await listLocks(repository.storage)) await repository.storage.delete(lock.name);
      const error = await session
        .commit({ source: 'x', engine: 'stream', tags: [], stats: {}, lifeboatVersion: 'test' })
        .catch((caught: unknown) => caught);
      expect(error).toMatchObject({ code: 'LB_REPO_LOCKED' });
      expect((error as Error).message).toMatch(/lost its lock/);
      await session.abort().catch(() => undefined);
      expect(await repository.listSnapshots()).toEqual([]);
    });

    it('refuses prune while a backup holds its lock; ignores and removes stale locks', async (ctx) => {
      const repository = await open(ctx);
      const session = await repository.startBackup();
      await session.writeArtifact('x', Readable.from([randomData(MiB, 50)]));
      const locked = await prune(repository).catch((caught: unknown) => caught);
      expect(locked).toMatchObject({ code: 'LB_REPO_LOCKED' });
      expect((locked as Error).message).toMatch(/shared lock for backup by pid \d+/);
      await session.commit({ source: 'x', engine: 'stream', tags: [], stats: {}, lifeboatVersion: 'test' });
      // A lock of a process of this host that no longer runs (staleness by age uses the storage's clock).
      const stale = {
        version: 1,
        hostname: hostname(),
        pid: 2 ** 22 + 12_345,
        operation: 'backup',
        exclusive: true,
        created: '2020-01-01T00:00:00Z',
        refreshed: '2020-01-01T00:00:00Z',
      };
      await repository.storage.write('locks/stale', Buffer.from(JSON.stringify(stale)));
      await expect(prune(repository)).resolves.toMatchObject({ dryRun: false });
      expect(await removeLocks(repository.storage)).toEqual(['locks/stale']);
      expect(await listLocks(repository.storage)).toEqual([]);
    });

    it('appends without its index (wal-push): reads no index file, stores a copy of a known blob, which prune removes; fetches by the places records name, and by the index once a prune moved them', async (ctx) => {
      const storage = await fresh(ctx);
      await Repository.init(storage, { password: PASSWORD, kdf: CHEAP_KDF });
      const full = await Repository.open(storage, { password: PASSWORD });
      const segment = randomData(3 * MiB, 21);
      const third = randomData(MiB, 22);
      await pushArchiveFiles(full, 'db', [{ name: '000000010000000000000001', data: segment }]);
      // WAL is cut at fixed offsets (the chunker's average size), not at content boundaries.
      const pushed = await loadArchiveRecord(full, 'db', '000000010000000000000001');
      expect(pushed.blobs.map((id) => full.index.get(id)?.rawLength)).toEqual([
        averageSize,
        averageSize,
        averageSize,
      ]);
      // An appender opened without the index: the storage it uses must never read an index file.
      const reads: string[] = [];
      const watched = new Proxy(storage, {
        get(target, property) {
          const value = Reflect.get(target, property, target) as unknown;
          if (typeof value !== 'function') return value;
          const method = value as (...args: unknown[]) => unknown;
          return (...args: unknown[]) => {
            if (property === 'read' || property === 'readStream') reads.push(String(args[0]));
            return method.apply(target, args);
          };
        },
      });
      const appender = await Repository.open(watched, { password: PASSWORD, index: 'skip' });
      // The same bytes under a second name: stored again (no index to dedupe against), as a copy.
      await pushArchiveFiles(appender, 'db', [
        { name: '000000010000000000000002', data: segment },
        { name: '000000010000000000000003', data: third },
      ]);
      expect(reads.length).toBeGreaterThan(0); // config, keys, archive records: the proxy sees reads
      expect(reads.filter((name) => name.startsWith('index/'))).toEqual([]);
      expect(() => appender.readArtifact({ name: 'x', size: 0, sha256: '', blobs: [] })).toThrow(
        /without its index/,
      );
      // A fetcher opened without the index (wal-fetch) reads each file where its record says.
      const fetcher = await Repository.open(watched, { password: PASSWORD, index: 'skip' });
      const expected: Record<string, Buffer> = {
        '000000010000000000000001': segment,
        '000000010000000000000002': segment,
        '000000010000000000000003': third,
      };
      for (const [name, data] of Object.entries(expected))
        expect(sha(await readArchiveFile(fetcher, 'db', name))).toBe(sha(data));
      expect(reads.filter((name) => name.startsWith('index/'))).toEqual([]);
      expect(fetcher.indexLoaded).toBe(false);

      const reader = await Repository.open(storage, { password: PASSWORD });
      expect(sha(await readArchiveFile(reader, 'db', '000000010000000000000002'))).toBe(sha(segment));
      const before = await storedBytes(storage);
      const packsBefore = new Set<string>();
      for await (const info of storage.list('data/')) packsBefore.add(info.name);
      await prune(reader);
      expect(await storedBytes(storage)).toBeLessThan(before);
      const afterPrune = await Repository.open(storage, { password: PASSWORD });
      expect(await checkRepository(afterPrune, { readData: true })).toMatchObject({ problems: [] });
      for (const name of ['000000010000000000000001', '000000010000000000000002']) {
        expect(sha(await readArchiveFile(afterPrune, 'db', name))).toBe(sha(segment));
      }
      // The prune deleted or rewrote a pack some record names: fetching without the index still gives
      // every file, loading the index only for a record whose places are gone.
      const packsAfter = new Set<string>();
      for await (const info of storage.list('data/')) packsAfter.add(info.name);
      expect([...packsBefore].some((pack) => !packsAfter.has(pack))).toBe(true);
      let indexReads = 0;
      for (const [name, data] of Object.entries(expected)) {
        const again = await Repository.open(watched, { password: PASSWORD, index: 'skip' });
        reads.length = 0;
        expect(sha(await readArchiveFile(again, 'db', name))).toBe(sha(data));
        const read = reads.filter((object) => object.startsWith('index/')).length;
        expect(again.indexLoaded).toBe(read > 0);
        indexReads += read;
      }
      expect(indexReads).toBeGreaterThan(0);
    });

    it('stores small parts in batches: each part one blob, duplicates within and across batches stored once, bit-exact', async (ctx) => {
      const repository = await open(ctx);
      const unique = Array.from({ length: 300 }, (_, index) =>
        randomData(1 + ((index * 997) % 5000), 100 + index),
      );
      // Every part three times, spread out; a large part now and then (a chunk of its own, not batched).
      const large = randomData(300 * 1024, 99);
      const parts: Buffer[] = [];
      for (let round = 0; round < 3; round++)
        unique.forEach((part, index) => {
          parts.push(part);
          if (index % 97 === 0) parts.push(large);
        });
      const record = await backupParts(repository, parts);
      const whole = Buffer.concat(parts);
      expect(record.size).toBe(whole.length);
      expect(record.blobs).toHaveLength(parts.length);
      const reader = await Repository.open(repository.storage, { password: PASSWORD });
      expect(new Set(record.blobs).size).toBe(unique.length + 1);
      expect(reader.index.size).toBe(unique.length + 1);
      expect(sha(await collect(reader.readArtifact(record)))).toBe(sha(whole));
      expect(await checkRepository(reader, { readData: true })).toMatchObject({ problems: [] });
    });

    it('takes two backups into one repository at once', async (ctx) => {
      const storage = await fresh(ctx);
      await Repository.init(storage, { password: PASSWORD, kdf: CHEAP_KDF });
      const [a, b] = await Promise.all([
        Repository.open(storage, { password: PASSWORD }),
        Repository.open(storage, { password: PASSWORD }),
      ]);
      const dataA = dumpLike(20 * MiB, 11);
      const dataB = randomData(20 * MiB, 12);
      const [first, second] = await Promise.all([backup(a, 'a', dataA), backup(b, 'b', dataB)]);
      const reader = await Repository.open(storage, { password: PASSWORD });
      expect((await reader.listSnapshots()).map((snapshot) => snapshot.source).sort()).toEqual(['a', 'b']);
      expect(
        sha(await collect(reader.readArtifact((await reader.loadSnapshot(first.id)).artifacts[0]!))),
      ).toBe(sha(dataA));
      expect(
        sha(await collect(reader.readArtifact((await reader.loadSnapshot(second.id)).artifacts[0]!))),
      ).toBe(sha(dataB));
      // Then a prune: nothing lost, check passes.
      await prune(reader);
      const afterPrune = await Repository.open(storage, { password: PASSWORD });
      expect(await checkRepository(afterPrune, { readData: true })).toMatchObject({
        problems: [],
        affectedSnapshots: [],
      });
      const restore = async (id: string) =>
        sha(await collect(afterPrune.readArtifact((await afterPrune.loadSnapshot(id)).artifacts[0]!)));
      expect(await restore(first.id)).toBe(sha(dataA));
      expect(await restore(second.id)).toBe(sha(dataB));
    });
  });
}

const scratch = mkdtempSync(join(tmpdir(), 'lifeboat-repository-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
let counter = 0;

repositorySuite('a local directory', () =>
  Promise.resolve(openStorage({ url: join(scratch, `repo-${++counter}`) })),
);

describe('on MinIO', () => {
  const minio = needs('minio');
  repositorySuite('MinIO (S3)', async (ctx) => {
    const handle = minio.get(ctx);
    const storage = openStorage({
      url: `s3://lifeboat-repository/run-${process.pid}-${++counter}`,
      s3: {
        endpoint: handle.endpoint,
        region: handle.region,
        accessKeyId: handle.accessKeyId,
        secretAccessKey: handle.secretAccessKey,
        forcePathStyle: true,
      },
    });
    await storage.probe({ create: true });
    return storage;
  });
});
