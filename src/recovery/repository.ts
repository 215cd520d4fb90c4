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
  prestartPool,
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

export interface OpenRepositoryOptions {
  /** 'skip' for a process that only appends (wal-push): see OpenOptions.index. */
  index?: 'load' | 'skip';
  /**
   * The command will store or read data (not only list): its worker threads start now, while the key
   * is derived (see prestartPool). A number: that many workers (1 for a single WAL file).
   */
  workers?: boolean | number;
}

/** Opens the repository the config names (the caller closes repository.storage). */
export async function openRepository(
  loaded: LoadedConfig,
  options: OpenRepositoryOptions = {},
): Promise<Repository> {
  const { workers, ...open } = options;
  const compressionLevel = loaded.config.repository.compression.level;
  const storage = openConfiguredStorage(loaded);
  try {
    if (workers) prestartPool(compressionLevel, typeof workers === 'number' ? workers : undefined);
    return await Repository.open(storage, {
      ...credentialsOf(loaded),
      compressionLevel,
      // Commands wait for a conflicting lock (a wal-push holds one for about a second) before failing.
      lockWaitMs: 60_000,
      ...open,
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
