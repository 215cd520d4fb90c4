// The repository layer's public face (docs/repository-format.md is the format).
export {
  Repository,
  BackupSession,
  type ArtifactOptions,
  type BackupProgress,
  type Credentials,
  type GroupedPoint,
  type InitOptions,
  type OpenOptions,
  type RepositoryConfig,
} from './repository.js';
export type { ArtifactRecord, Snapshot, SnapshotManifest } from './snapshots.js';
export { DEFAULT_CHUNKER, DEFAULT_PACK_SIZE, REPOSITORY_VERSION, type ChunkerParameters } from './format.js';
export { DEFAULT_KDF, type KdfParameters, type KeyFileInfo, listKeyFiles, parseIdentities } from './keys.js';
export { checkRepository, type CheckOptions, type CheckProblem, type CheckReport } from './check.js';
export { prune, type PruneOptions, type PruneReport } from './prune.js';
export { applyRetention, isEmptyPolicy, type RetentionDecision, type RetentionPolicy } from './retention.js';
export { acquireLock, listLocks, removeLocks, type LockInfo } from './locks.js';
export {
  addPassword,
  listKeys,
  removeKey,
  rotateKeys,
  type KeyListing,
  type RotationResult,
} from './key-management.js';
export { newPointId, type PointMember, type RecoveryPoint } from './points.js';
export { prestartPool } from './workers.js';
export {
  type ArchiveRecord,
  type PushResult,
  archiveHas,
  deleteArchiveFiles,
  digestsLike,
  listArchive,
  listArchiveSources,
  loadArchiveRecord,
  pushArchiveFiles,
  readArchiveFile,
  sameContent,
} from './archive.js';
