// From the `repository` block of the config to the storage layer's settings: the one place that knows
// both shapes (config and storage do not import each other).
//
// Terms:
//   object lock retention  how long after writing an object stays immutable; the storage layer takes
//                          an absolute retainUntil per write, which the repository computes from this.
import type { RepositoryConfig } from '../config/index.js';
import { parseDuration } from '../util/duration.js';
import type { StorageSettings } from '../storage/index.js';

export interface RepositoryStorage {
  settings: StorageSettings;
  /** Milliseconds each written object stays locked (S3 Object Lock), when configured. */
  objectLockRetainMs?: number;
}

export function storageSettingsFrom(repository: RepositoryConfig): RepositoryStorage {
  const { s3 } = repository;
  const settings: StorageSettings = {
    url: repository.url,
    ...(repository.concurrency === undefined ? {} : { concurrency: repository.concurrency }),
  };
  if (!s3) return { settings };
  settings.s3 = {
    region: s3.region,
    forcePathStyle: s3.forcePathStyle,
    ...(s3.endpoint === undefined ? {} : { endpoint: s3.endpoint }),
    ...(s3.accessKeyId === undefined ? {} : { accessKeyId: s3.accessKeyId }),
    ...(s3.secretAccessKey === undefined ? {} : { secretAccessKey: s3.secretAccessKey }),
    ...(s3.sessionToken === undefined ? {} : { sessionToken: s3.sessionToken }),
    ...(s3.partSizeMiB === undefined ? {} : { partSize: s3.partSizeMiB * 1024 * 1024 }),
    ...(s3.objectLock ? { objectLockMode: s3.objectLock.mode, createWithObjectLock: true } : {}),
  };
  const retain = s3.objectLock ? parseDuration(s3.objectLock.retain) : undefined;
  return retain === undefined ? { settings } : { settings, objectLockRetainMs: retain };
}
