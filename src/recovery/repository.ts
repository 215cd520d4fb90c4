// Opening the configured repository: storage from the config's repository block, keys from its password.
import type { LoadedConfig } from '../config/index.js';
import { LifeboatError } from '../errors.js';
import {
  type InitOptions,
  Repository,
  type RepositoryConfig,
  type RetentionPolicy,
} from '../repository/index.js';
import { parseDuration } from '../util/duration.js';
import { type StorageBackend, openStorage } from '../storage/index.js';
import { storageSettingsFrom } from './storage-settings.js';

function passwordOf(loaded: LoadedConfig): string {
  const { password } = loaded.config.repository;
  if (password === undefined) {
    throw new LifeboatError(
      'LB_CONFIG_INVALID',
      `${loaded.path}: repository.recipients: public-key mode is not available in this version yet; use repository.password`,
    );
  }
  return password;
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
    const config = await Repository.init(storage, { ...options, password: passwordOf(loaded) });
    return { config, location: storage.location };
  } finally {
    await storage.close();
  }
}

/** Opens the repository the config names (the caller closes repository.storage). */
export async function openRepository(loaded: LoadedConfig): Promise<Repository> {
  const storage = openConfiguredStorage(loaded);
  try {
    return await Repository.open(storage, { password: passwordOf(loaded) });
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
