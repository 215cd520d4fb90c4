// Format constants and version checks of the repository (docs/repository-format.md is the spec).
//
// Terms:
//   format version  an integer per kind of file. A reader refuses a version it does not know with
//                   LB_REPO_VERSION, before it acts on anything.
import { LifeboatError } from '../errors.js';
import type { BlobIdScheme } from './crypto.js';

/**
 * The version `init` writes. Version 2 differs from 1 only in its blob ids (keyed BLAKE3 instead of
 * HMAC-SHA256); this lifeboat reads and writes both.
 */
export const REPOSITORY_VERSION = 2;
export const REPOSITORY_VERSIONS: readonly number[] = [1, 2];
export const KEY_FILE_VERSION = 1;
export const PACK_VERSION = 1;
export const INDEX_VERSION = 1;
export const SNAPSHOT_VERSION = 1;

/** Throws LB_REPO_VERSION unless version is one this code reads. */
export function checkVersion(version: unknown, known: number | readonly number[], what: string): void {
  const versions = typeof known === 'number' ? [known] : known;
  if (!versions.includes(version as number)) {
    throw new LifeboatError(
      'LB_REPO_VERSION',
      `${what} has format version ${JSON.stringify(version)}, this lifeboat reads version ${versions.join(' or ')}: upgrade lifeboat`,
      { details: { what, version, known } },
    );
  }
}

/** The blob id scheme of a repository format version (one that checkVersion accepted). */
export function blobIdScheme(repositoryVersion: number): BlobIdScheme {
  return repositoryVersion >= 2 ? 'blake3' : 'hmac-sha256';
}

/** Chunk sizes (bytes) of the content-defined chunker. */
export interface ChunkerParameters {
  minSize: number;
  averageSize: number;
  maxSize: number;
}

export const DEFAULT_CHUNKER: ChunkerParameters = {
  minSize: 512 * 1024,
  averageSize: 1024 * 1024,
  maxSize: 8 * 1024 * 1024,
};

/** Target size of a pack before it is closed and uploaded. */
export const DEFAULT_PACK_SIZE = 16 * 1024 * 1024;
