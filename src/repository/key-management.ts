// `lifeboat key list|add|remove|rotate`: managing the key files of a repository.
//
// Terms:
//   current key   the key file this process opened the repository with (password mode), or the newest
//                 public-key file (public-key mode).
//   rotate        password mode: a new dataKey wraps all new data; the old dataKeys stay in the new key
//                 file so old data stays readable; the key file is rewritten for the current password
//                 and other passwords' key files are removed (they would not know the new dataKey: add
//                 them again with `key add`). Public-key mode: a new age identity is generated; new data
//                 goes to its recipient once hosts' configs name it; old data stays readable with the
//                 retained identities.

import { LifeboatError } from '../errors.js';
import { newKey } from './crypto.js';
import { type KdfParameters, type KeyFileInfo, addPasswordKey, addPublicKey, listKeyFiles } from './keys.js';
import { acquireLock } from './locks.js';
import type { Repository } from './repository.js';

export interface KeyListing extends KeyFileInfo {
  current: boolean;
}

export async function listKeys(repository: Repository): Promise<KeyListing[]> {
  return (await listKeyFiles(repository.storage)).map((key) => ({
    ...key,
    current: key.id === repository.keyId,
  }));
}

/** Adds a password (password mode): a new key file for the same keys. */
export async function addPassword(
  repository: Repository,
  password: string,
  kdf?: KdfParameters,
): Promise<string> {
  const ring = repository.keyRing;
  if (ring.mode !== 'password') {
    throw new LifeboatError(
      'LB_USAGE',
      'this repository uses public-key mode: readers are age identities; use key rotate to change them',
    );
  }
  return exclusively(repository, 'key add', () =>
    addPasswordKey(repository.storage, ring.writer, ring.dataKeys, password, kdf),
  );
}

/** Key changes take the repository alone: a rotate racing an add could leave a key without the new dataKey. */
async function exclusively<T>(repository: Repository, operation: string, work: () => Promise<T>): Promise<T> {
  const lock = await acquireLock(repository.storage, operation, true, repository.options.lockWaitMs);
  try {
    return await work();
  } finally {
    await lock.release();
  }
}

/** Removes a key file; never the one in use, nor the last one of its kind. */
export async function removeKey(repository: Repository, id: string): Promise<void> {
  const keys = await listKeys(repository);
  const matches = keys.filter((key) => key.id.startsWith(id));
  if (matches.length !== 1) {
    throw new LifeboatError(
      'LB_USAGE',
      matches.length === 0 ? `no key ${id}` : `${matches.length} keys start with ${id}`,
    );
  }
  const key = matches[0]!;
  if (key.current)
    throw new LifeboatError(
      'LB_USAGE',
      `key ${key.id.slice(0, 8)} is the one in use: open with another key to remove it`,
    );
  if (keys.filter((other) => other.kind === key.kind).length === 1) {
    throw new LifeboatError(
      'LB_USAGE',
      `key ${key.id.slice(0, 8)} is the last ${key.kind} key of the repository`,
    );
  }
  await exclusively(repository, 'key remove', () => repository.storage.delete(`keys/${key.id}`));
}

export interface RotationResult {
  /** The new key file. */
  keyId: string;
  /** Key files removed (password mode: other passwords' files). */
  removed: string[];
  /** Public-key mode: the new identity (to keep secret) and its recipient (to put in configs). */
  identity?: string;
  recipient?: string;
}

/** Rotates the repository's reader key; see the module comment. */
export interface RotateOptions {
  password?: string;
  kdf?: KdfParameters;
  /**
   * Public-key mode: keeps the new identity somewhere durable. Called before the repository accepts
   * the new recipient: if it throws, nothing changed, and no data can be sealed to a recipient whose
   * identity was lost.
   */
  keepIdentity?: (identity: string, recipient: string) => Promise<void>;
}

export async function rotateKeys(
  repository: Repository,
  options: RotateOptions = {},
): Promise<RotationResult> {
  return exclusively(repository, 'key rotate', () => rotate(repository, options));
}

async function rotate(repository: Repository, options: RotateOptions): Promise<RotationResult> {
  const ring = repository.keyRing;
  const before = await listKeys(repository);
  if (ring.mode === 'password') {
    if (options.password === undefined)
      throw new LifeboatError('LB_USAGE', 'key rotate needs the current password');
    const keyId = await addPasswordKey(
      repository.storage,
      ring.writer,
      [newKey(), ...ring.dataKeys],
      options.password,
      options.kdf,
    );
    const removed = before.filter((key) => key.kind === 'password').map((key) => key.id);
    for (const id of removed) await repository.storage.delete(`keys/${id}`);
    return { keyId, removed };
  }
  const { generateX25519Identity, identityToRecipient } = await import('age-encryption');
  const identity = await generateX25519Identity();
  const recipient = await identityToRecipient(identity);
  await options.keepIdentity?.(identity, recipient);
  const keyId = await addPublicKey(repository.storage, ring.writer, [recipient]);
  return { keyId, removed: [], identity, recipient };
}
