// Opening the configured repository: storage from the config's repository block, keys from its
// password or its age recipients and identities.
import type { LoadedConfig } from '../config/index.js';
import {
  type Credentials,
  type InitOptions,
  Repository,
  type RepositoryConfig,
  type RetentionPolicy,
  parseIdentities,
} from '../repository/index.js';
import { parseDuration } from '../util/duration.js';
import { type StorageBackend, openStorage } from '../storage/index.js';
import { storageSettingsFrom } from './storage-settings.js';

/** The credentials the config gives: a password, or age recipients plus any identities. */
export function credentialsOf(loaded: LoadedConfig): Credentials {
  const { password, recipients, identity } = loaded.config.repository;
  if (password !== undefined) return { password };
  return { recipients: recipients ?? [], identities: parseIdentities(identity) };
}

export function openConfiguredStorage(loaded: LoadedConfig): StorageBackend {
  return openStorage(storageSettingsFrom(loaded.config.repository).settings);
}

/** Creates the repository the config names. */
export async function initRepository(
  loaded: LoadedConfig,
  options: Partial<InitOptions> = {},
): Promise<{ config: RepositoryConfig; location: string }> {
  const storage = openConfiguredStorage(loaded);
  try {
    const config = await Repository.init(storage, { ...options, ...credentialsOf(loaded) });
    return { config, location: storage.location };
  } finally {
    await storage.close();
  }
}

/**
 * Opens the repository the config names (the caller closes repository.storage). `index: 'skip'` for a
 * process that only appends (wal-push): see OpenOptions.index.
 */
export async function openRepository(
  loaded: LoadedConfig,
  options: { index?: 'load' | 'skip' } = {},
): Promise<Repository> {
  const storage = openConfiguredStorage(loaded);
  try {
    return await Repository.open(storage, {
      ...credentialsOf(loaded),
      compressionLevel: loaded.config.repository.compression.level,
      // Commands wait for a conflicting lock (a wal-push holds one for about a second) before failing.
      lockWaitMs: 60_000,
      ...options,
    });
  } catch (error) {
    await storage.close();
    throw error;
  }
}

/** The config's retention block (or the same keys from flags) as a repository retention policy. */
export function retentionPolicyFrom(retention: LoadedConfig['config']['retention']): RetentionPolicy {
  const { keepWithin, ...counts } = retention;
  const keepWithinMs = keepWithin === undefined ? undefined : parseDuration(keepWithin);
  return { ...counts, ...(keepWithinMs === undefined ? {} : { keepWithinMs }) };
}
