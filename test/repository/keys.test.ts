// Keys: public-key mode (a write-only host backs up and dedupes but reads nothing; the identity
// restores), rotation in both modes keeps old snapshots restorable, and passwords can be added/removed.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';

import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { afterAll, describe, expect, it } from 'vitest';

import {
  Repository,
  addPassword,
  checkRepository,
  listKeyFiles,
  listKeys,
  removeKey,
  rotateKeys,
} from '../../src/repository/index.js';
import { generateRepositoryKey, isGeneratedKey } from '../../src/repository/keys.js';
import { openStorage } from '../../src/storage/index.js';
import { collect, dumpLike, randomData, sha } from './data.js';

const MiB = 1024 * 1024;
const CHEAP_KDF = { N: 2 ** 10, r: 8, p: 1 };
const scratch = mkdtempSync(join(tmpdir(), 'lifeboat-keys-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
let counter = 0;
const freshStorage = () => openStorage({ url: join(scratch, `repo-${++counter}`) });

async function backup(repository: Repository, name: string, data: Buffer) {
  const session = await repository.startBackup();
  await session.writeArtifact(name, Readable.from([data]));
  const id = await session.commit({
    source: name,
    engine: 'stream',
    tags: [],
    stats: {},
    lifeboatVersion: 'test',
  });
  return { id, bytesNew: session.totals.bytesNew };
}

const restore = async (repository: Repository, id: string) =>
  sha(await collect(repository.readArtifact((await repository.loadSnapshot(id)).artifacts[0]!)));

describe('public-key mode', () => {
  it('lets a write-only host back up and dedupe, refuses it every read, and restores with the identity', async () => {
    const identity = await generateX25519Identity();
    const recipient = await identityToRecipient(identity);
    const storage = freshStorage();
    await Repository.init(storage, { recipients: [recipient] });

    const writer = await Repository.open(storage, { recipients: [recipient] });
    expect(writer.keyRing.canRead).toBe(false);
    const data = dumpLike(12 * MiB, 5);
    const first = await backup(writer, 'db', data);
    const writer2 = await Repository.open(storage, { recipients: [recipient] });
    const second = await backup(writer2, 'db', data);
    expect(first.bytesNew).toBe(data.length);
    expect(second.bytesNew).toBe(0); // deduplicated against the first, without reading any data

    for (const attempt of [
      () => writer2.listSnapshots(),
      () => writer2.loadSnapshot(first.id),
      () => checkRepository(writer2),
    ]) {
      const error = await attempt().catch((caught: unknown) => caught);
      expect(error).toMatchObject({ code: 'LB_REPO_WRITE_ONLY' });
      expect((error as Error).message).toMatch(/write-only/);
    }
    // Even with a manifest in hand, the pack keys do not open.
    const reader = await Repository.open(storage, { recipients: [recipient], identities: [identity] });
    const artifact = (await reader.loadSnapshot(first.id)).artifacts[0]!;
    const refused = await collect(writer2.readArtifact(artifact)).catch((caught: unknown) => caught);
    expect(refused).toMatchObject({ code: 'LB_REPO_WRITE_ONLY' });

    expect(await restore(reader, first.id)).toBe(sha(data));
    expect(await restore(reader, second.id)).toBe(sha(data));
    expect(await checkRepository(reader, { readData: true })).toMatchObject({ problems: [] });

    const typo = await identityToRecipient(await generateX25519Identity());
    await expect(Repository.open(storage, { recipients: [typo] })).rejects.toMatchObject({
      code: 'LB_REPO_WRONG_KEY',
    });

    const stranger = await generateX25519Identity();
    const wrong = await Repository.open(storage, { recipients: [recipient], identities: [stranger] });
    await expect(wrong.listSnapshots()).rejects.toMatchObject({ code: 'LB_REPO_WRONG_KEY' });
  });

  it('rotation: new data goes to the new recipient, old snapshots stay restorable with the retained identity', async () => {
    const oldIdentity = await generateX25519Identity();
    const oldRecipient = await identityToRecipient(oldIdentity);
    const storage = freshStorage();
    await Repository.init(storage, { recipients: [oldRecipient] });
    const before = await backup(
      await Repository.open(storage, { recipients: [oldRecipient] }),
      'db',
      randomData(3 * MiB, 1),
    );

    const rotation = await rotateKeys(
      await Repository.open(storage, { recipients: [oldRecipient], identities: [oldIdentity] }),
    );
    expect(rotation.recipient).toMatch(/^age1/);
    const after = await backup(
      await Repository.open(storage, { recipients: [rotation.recipient!] }),
      'db',
      randomData(3 * MiB, 2),
    );

    const both = await Repository.open(storage, {
      recipients: [rotation.recipient!],
      identities: [oldIdentity, rotation.identity!],
    });
    expect(await restore(both, before.id)).toBe(sha(randomData(3 * MiB, 1)));
    expect(await restore(both, after.id)).toBe(sha(randomData(3 * MiB, 2)));
    const onlyNew = await Repository.open(storage, {
      recipients: [rotation.recipient!],
      identities: [rotation.identity!],
    });
    expect(await restore(onlyNew, after.id)).toBe(sha(randomData(3 * MiB, 2)));
    await expect(onlyNew.loadSnapshot(before.id)).rejects.toMatchObject({ code: 'LB_REPO_WRONG_KEY' });
    expect((await listKeys(both)).map((key) => key.recipients)).toEqual([
      [oldRecipient],
      [rotation.recipient],
    ]);
  });
});

describe('password mode keys', () => {
  it('adds and removes passwords, refuses to remove the key in use or the last one', async () => {
    const storage = freshStorage();
    await Repository.init(storage, { password: 'first', kdf: CHEAP_KDF });
    const repository = await Repository.open(storage, { password: 'first' });
    const secondId = await addPassword(repository, 'second', CHEAP_KDF);
    const viaSecond = await Repository.open(storage, { password: 'second' });
    expect(viaSecond.keyId).toBe(secondId);
    expect((await listKeys(viaSecond)).map((key) => key.current).sort()).toEqual([false, true]);
    await expect(removeKey(viaSecond, secondId.slice(0, 10))).rejects.toMatchObject({ code: 'LB_USAGE' });
    await removeKey(viaSecond, repository.keyId);
    await expect(Repository.open(storage, { password: 'first' })).rejects.toMatchObject({
      code: 'LB_REPO_WRONG_KEY',
    });
    await expect(removeKey(viaSecond, secondId)).rejects.toMatchObject({ code: 'LB_USAGE' });
  });

  it('a generated key: its key file skips scrypt, it opens and restores, a wrong one is refused', async () => {
    const storage = freshStorage();
    const key = generateRepositoryKey();
    expect(key).toMatch(/^lbk1-[A-Za-z0-9_-]{43}$/);
    expect(isGeneratedKey(key)).toBe(true);
    expect(isGeneratedKey('lbk1-too-short')).toBe(false);
    // The last character carries 2 spare bits: a spelling that sets one decodes to the same bytes, but
    // only the canonical spelling is a key.
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const alias = key.slice(0, -1) + alphabet[alphabet.indexOf(key.at(-1)!) + 1]!;
    expect(Buffer.from(alias.slice(5), 'base64url').equals(Buffer.from(key.slice(5), 'base64url'))).toBe(
      true,
    );
    expect(isGeneratedKey(alias)).toBe(false);
    await Repository.init(storage, { password: key });
    const [info] = await listKeyFiles(storage);
    const file = JSON.parse((await storage.read(`keys/${info!.id}`)).toString()) as Record<string, unknown>;
    expect(file).toMatchObject({ kind: 'password', kdf: 'hkdf-sha256' });
    expect(file).not.toHaveProperty('N');
    const repository = await Repository.open(storage, { password: key });
    const data = dumpLike(3 * MiB, 8);
    const { id } = await backup(repository, 'db', data);
    expect(await restore(await Repository.open(storage, { password: key }), id)).toBe(sha(data));
    expect(await listKeys(repository)).toMatchObject([
      { kind: 'password', kdf: 'hkdf-sha256', current: true },
    ]);

    // A second generated key and an ordinary password open the same repository; each its own file.
    const other = generateRepositoryKey();
    const otherId = await addPassword(repository, other);
    await addPassword(repository, 'a human password', CHEAP_KDF);
    expect((await Repository.open(storage, { password: other })).keyId).toBe(otherId);
    const viaPassword = await Repository.open(storage, { password: 'a human password' });
    expect(await restore(viaPassword, id)).toBe(sha(data));
    expect((await listKeys(viaPassword)).map((entry) => entry.kdf).sort()).toEqual([
      'hkdf-sha256',
      'hkdf-sha256',
      'scrypt',
    ]);
    const wrong = Repository.open(storage, { password: generateRepositoryKey() });
    await expect(wrong).rejects.toMatchObject({ code: 'LB_REPO_WRONG_KEY' });
    await expect(wrong).rejects.toThrow(/^wrong generated key: none of the 3 password key file/);
    // The generated key's secret is not a password: typed without its prefix it opens nothing.
    await expect(Repository.open(storage, { password: key.slice(5) })).rejects.toMatchObject({
      code: 'LB_REPO_WRONG_KEY',
    });
  });

  it('opens despite an unusable key file, and refuses absurd scrypt parameters', async () => {
    const storage = freshStorage();
    await Repository.init(storage, { password: 'pw', kdf: CHEAP_KDF });
    await storage.write('keys/garbage', Buffer.from('not json'));
    const bomb = {
      version: 1,
      kind: 'password',
      kdf: 'scrypt',
      N: 2 ** 30,
      r: 8,
      p: 1,
      salt: 'AAAA',
      created: '2000-01-01T00:00:00Z',
      hostname: 'x',
      username: 'x',
      keys: 'AAAA',
    };
    await storage.write('keys/bomb', Buffer.from(JSON.stringify(bomb)));
    expect((await Repository.open(storage, { password: 'pw' })).keyRing.mode).toBe('password');
    await expect(Repository.open(storage, { password: 'wrong' })).rejects.toMatchObject({
      code: 'LB_REPO_WRONG_KEY',
    });
  });

  it('rotation: a new dataKey for new data, old snapshots still restore', async () => {
    const storage = freshStorage();
    await Repository.init(storage, { password: 'pw', kdf: CHEAP_KDF });
    const old = await backup(
      await Repository.open(storage, { password: 'pw' }),
      'db',
      randomData(2 * MiB, 7),
    );
    const rotation = await rotateKeys(await Repository.open(storage, { password: 'pw' }), {
      password: 'pw',
      kdf: CHEAP_KDF,
    });
    expect(rotation.removed).toHaveLength(1);
    const fresh = await backup(
      await Repository.open(storage, { password: 'pw' }),
      'db',
      randomData(2 * MiB, 8),
    );
    const reader = await Repository.open(storage, { password: 'pw' });
    expect(reader.keyRing.dataKeys).toHaveLength(2);
    expect(reader.keyId).toBe(rotation.keyId);
    expect(await restore(reader, old.id)).toBe(sha(randomData(2 * MiB, 7)));
    expect(await restore(reader, fresh.id)).toBe(sha(randomData(2 * MiB, 8)));
    expect(await checkRepository(reader, { readData: true })).toMatchObject({ problems: [] });
    // New data is sealed for the new dataKey alone: a reader holding only the old one reads the old
    // snapshot and nothing of the new one.
    const oldOnly = await Repository.open(storage, { password: 'pw' });
    Object.assign(oldOnly.keyRing, { dataKeys: [reader.keyRing.dataKeys[1]!] });
    expect(await restore(oldOnly, old.id)).toBe(sha(randomData(2 * MiB, 7)));
    await expect(restore(oldOnly, fresh.id)).rejects.toMatchObject({ code: 'LB_REPO_CORRUPT' });
  });
});
