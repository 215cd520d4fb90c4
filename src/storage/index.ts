// The storage layer's public face: the backend interface, the registry of backends (one explicit list;
// a duplicate scheme is an error), and openStorage(), the one place where a backend is composed with its
// wrappers (concurrency limit inside, retry outside, so a backoff sleep holds no slot).
//
// Terms:
//   location  the repository URL: a local path ("./repo", "/srv/repo", "file:///srv/repo") or
//             "s3://bucket/prefix".
import { fileURLToPath } from 'node:url';

import { LifeboatError } from '../errors.js';
import type { StorageBackend } from './backend.js';
import { FsBackend } from './fs/index.js';
import type { S3BackendOptions } from './s3/index.js';
import { LazyS3Backend } from './s3/lazy.js';
import { ConcurrencyLimitedBackend } from './wrappers/concurrency.js';
import { RetryingBackend, type RetryOptions } from './wrappers/retry.js';

export type * from './backend.js';
export { checkName, TEMP_PREFIX } from './names.js';
export { FsBackend } from './fs/index.js';
export type { S3BackendOptions } from './s3/index.js';
export { ConcurrencyLimitedBackend, Semaphore } from './wrappers/concurrency.js';
export { RetryingBackend, type RetryEvent, type RetryOptions } from './wrappers/retry.js';

/** S3 connection settings (the `repository.s3` block of the config). */
export type S3Settings = Omit<S3BackendOptions, 'bucket' | 'prefix'>;

/** Everything needed to open the repository's storage. */
export interface StorageSettings {
  /** Local path, file:// URL, or s3://bucket/prefix. */
  url: string;
  s3?: Partial<S3Settings>;
  /** Requests in flight at once. Default 8 (s3) or 4 (fs). */
  concurrency?: number;
  retry?: RetryOptions;
}

interface BackendFactory {
  /** URL schemes this backend serves; "" is a plain local path. */
  schemes: readonly string[];
  create(url: string, settings: StorageSettings): StorageBackend;
  defaultConcurrency: number;
}

const BACKENDS: readonly BackendFactory[] = [
  {
    schemes: ['', 'file'],
    defaultConcurrency: 4,
    create: (url) => new FsBackend({ root: url.startsWith('file://') ? fileURLToPath(url) : url }),
  },
  {
    schemes: ['s3'],
    defaultConcurrency: 8,
    create: (url, settings) => {
      const { bucket, prefix } = parseS3Url(url);
      // Loaded on first use: importing the AWS SDK costs ~0.3 s, too much for one wal-push per WAL file.
      return new LazyS3Backend({ region: 'us-east-1', ...settings.s3, bucket, prefix });
    },
  },
];

const BY_SCHEME = new Map<string, BackendFactory>();
for (const factory of BACKENDS) {
  for (const scheme of factory.schemes) {
    if (BY_SCHEME.has(scheme)) throw new Error(`storage backend scheme "${scheme}" is registered twice`);
    BY_SCHEME.set(scheme, factory);
  }
}

/** The URL scheme of a repository location ("" for a plain path). */
export function schemeOf(url: string): string {
  return /^([a-z][a-z0-9+.-]*):\/\//i.exec(url)?.[1]?.toLowerCase() ?? '';
}

/** Schemes lifeboat can store to, for error messages and config validation. */
export const SUPPORTED_SCHEMES: readonly string[] = [...BY_SCHEME.keys()];

export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const match = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(url);
  if (!match?.[1]) {
    throw new LifeboatError('LB_STORAGE_INVALID_NAME', `not a valid s3://bucket/prefix URL: ${url}`);
  }
  return { bucket: match[1], prefix: (match[2] ?? '').replace(/^\/+|\/+$/g, '') };
}

/** Opens the backend for a location, wrapped with its concurrency limit and retries. */
export function openStorage(settings: StorageSettings): StorageBackend {
  const factory = BY_SCHEME.get(schemeOf(settings.url));
  if (!factory) {
    throw new LifeboatError(
      'LB_STORAGE_UNSUPPORTED',
      `unsupported repository URL scheme "${schemeOf(settings.url)}://" (use a local path or s3://bucket/prefix)`,
    );
  }
  const backend = factory.create(settings.url, settings);
  const limited = new ConcurrencyLimitedBackend(backend, settings.concurrency ?? factory.defaultConcurrency);
  return new RetryingBackend(limited, settings.retry);
}
