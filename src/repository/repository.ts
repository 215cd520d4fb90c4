// The repository: a content-addressed, deduplicated, compressed, encrypted store of artifacts on a
// storage backend. docs/repository-format.md is the byte-level specification.
//
// Terms:
//   config object  "config": plaintext JSON naming the format, version, repository id and the chunker
//                  and pack parameters. Written last at init (create-only): its presence marks a
//                  repository.
//   backup         a BackupSession: artifacts are chunked, deduplicated against the index and the session
//                  itself, packed and uploaded (a few packs in flight); commit() then uploads the last
//                  pack, waits for every upload, writes the index file, and only then the snapshot. A
//                  crash before that leaves unreferenced packs (removed by prune) and no snapshot.
//   restore        readArtifact(): blobs fetched a few ahead and opened in worker threads, each verified
//                  (tag, size, id), and the whole stream's size and BLAKE3 (SHA-256 for artifacts
//                  recorded without one) checked at the end.
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';

import { LifeboatError, isLifeboatError } from '../errors.js';
import type { StorageBackend } from '../storage/index.js';
import { BackupSession } from './backup-session.js';
import { BlobIndex } from './blob-index.js';
import { RestoreArena } from './restore-arena.js';
import { type RestoreContext, readArtifactChunks } from './restore-stream.js';
import { CryptoPool, takePool } from './workers.js';
import { type IdKey, newKey } from './crypto.js';
import {
  type ChunkerParameters,
  DEFAULT_CHUNKER,
  DEFAULT_PACK_SIZE,
  REPOSITORY_VERSION,
  REPOSITORY_VERSIONS,
  blobIdScheme,
  checkVersion,
} from './format.js';
import {
  type KdfParameters,
  type KeyMode,
  type KeyRing,
  addPasswordKey,
  addPublicKey,
  generateWriterKeys,
  unlockWithPassword,
  unlockWithRecipients,
} from './keys.js';
import { acquireLock } from './locks.js';
import { type RetentionDecision, type RetentionPolicy, applyRetention, isEmptyPolicy } from './retention.js';
import { type RecoveryPoint, listPointIds, loadPoint, resolvePointId, savePoint } from './points.js';
import {
  type ReadableArtifact,
  type Snapshot,
  listSnapshotIds,
  loadSnapshot,
  resolveSnapshotId,
} from './snapshots.js';

/**
 * Shared memory of a borrowed read, and how many segments it may have in flight within it. Measured on
 * `dump` of a 2 GiB artifact (docs/performance.md): with segments of at most 6 MiB of plaintext (or one
 * blob), 64 MiB and 10 segments kept peak RSS at ~275 MiB; 80 MiB was no faster and ~300 MiB.
 */
const ARENA_BYTES = 64 * 1024 * 1024;
const BORROWED_READ_AHEAD = 10;

/** A recovery point as retention sees it: grouped by its sorted source names. */
export type GroupedPoint = RecoveryPoint & { source: string };

export interface RepositoryConfig {
  format: 'lifeboat-repository';
  version: number;
  id: string;
  created: string;
  keyMode: KeyMode;
  chunker: ChunkerParameters;
  packSize: number;
}

/** How a process proves it may use the repository: a password, or age recipients (+ identities). */
export interface Credentials {
  /** Password mode. */
  password?: string;
  /** Public-key mode: the age recipients new data is wrapped to (from this host's config). */
  recipients?: readonly string[];
  /** Public-key mode: age identities that can read (absent on a write-only host). */
  identities?: readonly string[];
}

export interface InitOptions extends Credentials {
  chunker?: ChunkerParameters;
  packSize?: number;
  /** scrypt cost (tests use a cheaper one). */
  kdf?: KdfParameters;
  /** The format version to write (default REPOSITORY_VERSION; 1 for tests of older repositories). */
  formatVersion?: number;
}

export interface OpenOptions extends Credentials {
  /** zstd level for new blobs; 0 stores them raw. Default 3. */
  compressionLevel?: number;
  /** Packs uploading at once during a backup. Default 2. */
  uploadConcurrency?: number;
  /**
   * Segments (runs of a pack's blobs, up to 6 MiB once opened, or one larger blob: the chunker's maxSize,
   * 8 MiB by default) fetched ahead during a restore. Default 8.
   */
  readAhead?: number;
  /** How long to keep retrying a lock another client holds. Default 0 (fail at once). */
  lockWaitMs?: number;
  /**
   * 'load' (default) reads every index file. 'skip' reads none: for a process that only appends
   * (wal-push, one process per WAL file), whose blobs then dedupe only within its own session. Every
   * push adds an index file until the next prune merges them, so loading them all made each push slower
   * than the last; a copy of a blob another pack also holds is allowed (concurrent backups make them
   * too) and prune removes it. Reading artifacts from such a repository is refused until
   * loadIndex(), except where the caller says where the blobs are (archive records: wal-fetch).
   */
  index?: 'load' | 'skip';
}

/** Byte counts a backup reports as it goes. */
export interface BackupProgress {
  /** Plaintext bytes read from the input. */
  bytesRead: number;
  /** Bytes of new (not deduplicated) plaintext. */
  bytesNew: number;
  /** Bytes uploaded in packs. */
  bytesStored: number;
}

export { BackupSession };
export type { ArtifactOptions } from './backup-session.js';

export class Repository {
  private constructor(
    readonly storage: StorageBackend,
    readonly config: RepositoryConfig,
    private readonly ring: KeyRing,
    /** The key file this process opened the repository with. */
    readonly keyId: string,
    /** Replaced by a fresh load when a backup takes its lock (a prune may have run since open). */
    public index: BlobIndex,
    readonly options: Required<Omit<OpenOptions, keyof Credentials>>,
  ) {
    this.loaded = options.index !== 'skip';
    this.blobIds = { scheme: blobIdScheme(config.version), key: ring.writer.idKey };
  }

  private loaded: boolean;

  /** Whether the index files were read (at open, or by loadIndex() later). */
  get indexLoaded(): boolean {
    return this.loaded;
  }

  /** Reads every index file of a repository opened without them; from then on it reads artifacts too. */
  async loadIndex(): Promise<void> {
    if (this.indexLoaded) return;
    const index = new BlobIndex();
    await index.load(this.storage, this.ring);
    // What this process stored meanwhile is in the index files just read.
    this.index = index;
    this.loaded = true;
  }

  /** Creates a repository at an empty location; refuses (LB_REPO_EXISTS) if anything is there. */
  static async init(storage: StorageBackend, options: InitOptions): Promise<RepositoryConfig> {
    if (options.formatVersion !== undefined && !REPOSITORY_VERSIONS.includes(options.formatVersion)) {
      throw new LifeboatError(
        'LB_USAGE',
        `this lifeboat writes repository format version ${REPOSITORY_VERSIONS.join(' or ')}, not ${options.formatVersion}`,
      );
    }
    await storage.probe({ create: true });
    for await (const info of storage.list('')) {
      throw new LifeboatError(
        'LB_REPO_EXISTS',
        info.name === 'config'
          ? `a lifeboat repository already exists at ${storage.location}`
          : `${storage.location} is not empty (found ${info.name}): lifeboat init needs an empty location`,
      );
    }
    const writer = generateWriterKeys();
    const keyMode: KeyMode = options.password !== undefined ? 'password' : 'public-key';
    if (options.password !== undefined)
      await addPasswordKey(storage, writer, [newKey()], options.password, options.kdf);
    else if (options.recipients && options.recipients.length > 0)
      await addPublicKey(storage, writer, options.recipients);
    else throw new LifeboatError('LB_USAGE', 'lifeboat init needs a password or age recipients');
    const config: RepositoryConfig = {
      format: 'lifeboat-repository',
      version: options.formatVersion ?? REPOSITORY_VERSION,
      id: randomBytes(16).toString('hex'),
      created: new Date().toISOString(),
      keyMode,
      chunker: options.chunker ?? DEFAULT_CHUNKER,
      packSize: options.packSize ?? DEFAULT_PACK_SIZE,
    };
    try {
      await storage.write('config', Buffer.from(`${JSON.stringify(config, null, 2)}\n`), {
        createOnly: true,
      });
    } catch (error) {
      if (isLifeboatError(error, 'LB_STORAGE_EXISTS')) {
        throw new LifeboatError(
          'LB_REPO_EXISTS',
          `a lifeboat repository was created at ${storage.location} at the same time`,
        );
      }
      throw error;
    }
    return config;
  }

  /**
   * Makes the in-memory index match storage: unchanged when the same index files are there (a listing,
   * no reads), else a fresh load of every index file (one may have been removed by a prune).
   */
  async reloadIndex(): Promise<void> {
    this.assertIndex();
    if (await this.index.isCurrent(this.storage)) return;
    const index = new BlobIndex();
    await index.load(this.storage, this.ring);
    this.index = index;
  }

  /** Runs `work` under a shared lock (no prune can delete data meanwhile), on a freshly loaded index. */
  async withSharedLock<T>(operation: string, work: () => Promise<T>): Promise<T> {
    const lock = await acquireLock(this.storage, operation, false, this.options.lockWaitMs);
    try {
      await this.reloadIndex();
      return await work();
    } finally {
      await lock.release();
    }
  }

  /** Opens an existing repository: reads its config, unlocks its keys, loads its index. */
  static async open(storage: StorageBackend, options: OpenOptions): Promise<Repository> {
    const config = await readConfig(storage);
    const { ring, keyId } = await unlock(storage, config, options);
    const index = new BlobIndex();
    if (options.index !== 'skip') await index.load(storage, ring);
    return new Repository(storage, config, ring, keyId, index, {
      compressionLevel: options.compressionLevel ?? 3,
      uploadConcurrency: options.uploadConcurrency ?? 2,
      readAhead: options.readAhead ?? 8,
      lockWaitMs: options.lockWaitMs ?? 0,
      index: options.index ?? 'load',
    });
  }

  /** The key ring, for the repository's own modules (check, prune). Never leaves src/repository. */
  get keyRing(): KeyRing {
    return this.ring;
  }

  /** The id key and the id scheme of this repository's format version (for src/repository and tests). */
  readonly blobIds: IdKey;

  /** Starts a backup under a shared lock; its artifacts become visible with commit(). */
  async startBackup(onProgress?: (progress: BackupProgress) => void): Promise<BackupSession> {
    const lock = await acquireLock(this.storage, 'backup', false, this.options.lockWaitMs);
    try {
      // Dedup only against what exists now that no prune can run: an index loaded before the lock may
      // name packs a prune has deleted since. (Without an index: against this session only.)
      if (this.indexLoaded) await this.reloadIndex();
    } catch (error) {
      await lock.release();
      throw error;
    }
    return new BackupSession(this, this.ring, lock, onProgress);
  }

  /**
   * Removes the snapshots the policy does not keep (under an exclusive lock), and returns every
   * decision with its reasons. With dryRun nothing is removed. Data goes with prune.
   */
  async forget(
    policy: RetentionPolicy,
    options: { dryRun?: boolean; sources?: string[]; filter?: (snapshot: Snapshot) => boolean } = {},
  ): Promise<Array<RetentionDecision<Snapshot>>> {
    requirePolicy(policy);
    const lock = options.dryRun
      ? undefined
      : await acquireLock(this.storage, 'forget', true, this.options.lockWaitMs);
    try {
      const snapshots = (await this.listSnapshots()).filter(
        (snapshot) =>
          (options.sources === undefined || options.sources.includes(snapshot.source)) &&
          (options.filter === undefined || options.filter(snapshot)),
      );
      const decisions = applyRetention(snapshots, policy);
      if (!options.dryRun) {
        for (const decision of decisions)
          if (!decision.keep) await this.storage.delete(`snapshots/${decision.snapshot.id}`);
      }
      return decisions;
    } finally {
      await lock?.release();
    }
  }

  /** Runs `work` under an exclusive lock (no backup or other maintenance meanwhile). */
  async withExclusiveLock<T>(operation: string, work: () => Promise<T>): Promise<T> {
    const lock = await acquireLock(this.storage, operation, true, this.options.lockWaitMs);
    try {
      return await work();
    } finally {
      await lock.release();
    }
  }

  /** Makes a recovery point visible; every snapshot it names must already be committed. */
  async savePoint(point: RecoveryPoint): Promise<void> {
    await savePoint(this.storage, this.ring, point);
  }

  /** Every recovery point, oldest first. */
  async listPoints(): Promise<RecoveryPoint[]> {
    const points = await Promise.all(
      (await listPointIds(this.storage)).map((id) => loadPoint(this.storage, this.ring, id)),
    );
    return points.sort((a, b) => a.time.localeCompare(b.time) || a.id.localeCompare(b.id));
  }

  async loadPoint(idOrPrefix: string): Promise<RecoveryPoint> {
    const id = idOrPrefix.length === 32 ? idOrPrefix : await resolvePointId(this.storage, idOrPrefix);
    try {
      return await loadPoint(this.storage, this.ring, id);
    } catch (error) {
      if (isLifeboatError(error, 'LB_STORAGE_NOT_FOUND')) {
        throw new LifeboatError('LB_POINT_NOT_FOUND', `no recovery point with id ${idOrPrefix}`, {
          cause: error,
        });
      }
      throw error;
    }
  }

  /**
   * Applies a retention policy to recovery points, grouped by their set of sources (a daily all-sources
   * point and an hourly database-only point are kept separately), under an exclusive lock. A forgotten
   * point's file goes first, then its snapshots. `work` runs under the same lock afterwards (the WAL
   * retention that follows the kept base backups).
   */
  async forgetPoints(
    policy: RetentionPolicy,
    options: {
      dryRun?: boolean;
      sources?: string[];
      after?: (decisions: Array<RetentionDecision<GroupedPoint>>) => Promise<void>;
    } = {},
  ): Promise<Array<RetentionDecision<GroupedPoint>>> {
    requirePolicy(policy);
    const lock = options.dryRun
      ? undefined
      : await acquireLock(this.storage, 'forget', true, this.options.lockWaitMs);
    try {
      const points = (await this.listPoints())
        .filter(
          (point) =>
            options.sources === undefined ||
            point.members.some((member) => options.sources!.includes(member.source)),
        )
        .map((point) => ({
          ...point,
          source: point.members
            .map((member) => member.source)
            .sort()
            .join(','),
        }));
      const decisions = applyRetention(points, policy);
      if (!options.dryRun) {
        for (const decision of decisions) {
          if (decision.keep) continue;
          await this.storage.delete(`points/${decision.snapshot.id}`);
          for (const member of decision.snapshot.members)
            await this.storage.delete(`snapshots/${member.snapshot}`);
        }
      }
      await options.after?.(decisions);
      return decisions;
    } finally {
      await lock?.release();
    }
  }

  /**
   * Every snapshot that can be read, and the ids of those that cannot (damaged, missing data key) with
   * why: for listings, which must still show what is there when part of the repository is damaged.
   * Anything that acts on the whole set (forget, prune, WAL retention) uses listSnapshots, which fails.
   */
  async listSnapshotsReadable(): Promise<{
    snapshots: Snapshot[];
    unreadable: Array<{ id: string; error: LifeboatError }>;
  }> {
    const unreadable: Array<{ id: string; error: LifeboatError }> = [];
    const loaded = await Promise.all(
      (await listSnapshotIds(this.storage)).map((id) =>
        this.loadSnapshot(id).catch((error: unknown) => {
          // Damage to this manifest, or a key this reader lacks; anything else (a write-only host,
          // the storage unreachable) is about the whole repository and fails the listing.
          if (
            !isLifeboatError(error, 'LB_REPO_CORRUPT') &&
            !isLifeboatError(error, 'LB_REPO_WRONG_KEY') &&
            !isLifeboatError(error, 'LB_REPO_VERSION')
          )
            throw error;
          unreadable.push({ id, error });
          return undefined;
        }),
      ),
    );
    const snapshots = loaded.filter((snapshot): snapshot is Snapshot => snapshot !== undefined);
    return { snapshots: snapshots.sort((a, b) => a.time.localeCompare(b.time)), unreadable };
  }

  /** Every snapshot, oldest first; fails if any cannot be read (see listSnapshotsReadable). */
  async listSnapshots(): Promise<Snapshot[]> {
    const { snapshots, unreadable } = await this.listSnapshotsReadable();
    if (unreadable.length > 0) throw unreadable[0]!.error;
    return snapshots;
  }

  async loadSnapshot(idOrPrefix: string): Promise<Snapshot> {
    const id = idOrPrefix.length === 64 ? idOrPrefix : await resolveSnapshotId(this.storage, idOrPrefix);
    try {
      return await loadSnapshot(this.storage, this.ring, id);
    } catch (error) {
      if (isLifeboatError(error, 'LB_STORAGE_NOT_FOUND')) {
        throw new LifeboatError('LB_SNAPSHOT_NOT_FOUND', `no snapshot with id ${idOrPrefix}`, {
          cause: error,
        });
      }
      throw error;
    }
  }

  private assertIndex(): void {
    if (!this.indexLoaded) {
      throw new LifeboatError(
        'LB_INTERNAL',
        'this repository was opened without its index: it can only append',
      );
    }
  }

  /**
   * The artifact's plaintext, verified blob by blob and as a whole. `options.index` finds the blobs
   * instead of the repository's index (archive records carry their blobs' places).
   */
  readArtifact(artifact: ReadableArtifact, options: { index?: BlobIndex } = {}): Readable {
    return Readable.from(readArtifactChunks(this.restoreContext(options.index), artifact));
  }

  /**
   * The artifact's plaintext like readArtifact(), as chunks that are views of shared memory reused from
   * one segment to the next: a chunk is valid only until the next one is asked for (write it out, or
   * copy it, before). Segments are opened straight into that memory, so no new memory reaches the main
   * thread for the garbage collector to count and sweep (restore-arena.ts): for consumers that finish
   * with each chunk in turn, such as `dump`. `arenaBytes` sizes the shared memory (tests).
   */
  readArtifactBorrowed(
    artifact: ReadableArtifact,
    options: { index?: BlobIndex; arenaBytes?: number } = {},
  ): AsyncGenerator<Buffer> {
    const context = this.restoreContext(options.index);
    // The arena bounds the plaintext ahead, so more segments may be in flight than readArtifact's window.
    context.readAhead = Math.max(context.readAhead, BORROWED_READ_AHEAD);
    return readArtifactChunks(context, artifact, new RestoreArena(options.arenaBytes ?? ARENA_BYTES));
  }

  private restoreContext(index: BlobIndex | undefined): RestoreContext {
    if (index === undefined) this.assertIndex();
    // One pool for every read: starting two workers per artifact cost ~0.1 s, which dominated reads of
    // many small artifacts (a replay fetching hundreds of WAL files). Idle, it keeps nothing alive.
    if (!this.readPool || this.readPool.broken)
      this.readPool = (takePool() ?? new CryptoPool(0)).unrefWhenIdle();
    return {
      storage: this.storage,
      ring: this.ring,
      ids: this.blobIds,
      index: index ?? this.index,
      readAhead: this.options.readAhead,
      pool: this.readPool,
    };
  }

  private readPool: CryptoPool | undefined;
}

function requirePolicy(policy: RetentionPolicy): void {
  if (isEmptyPolicy(policy)) {
    throw new LifeboatError(
      'LB_USAGE',
      'no retention policy: set retention in the config or give --keep-* options',
    );
  }
}

async function readConfig(storage: StorageBackend): Promise<RepositoryConfig> {
  let bytes: Buffer;
  try {
    bytes = await storage.read('config');
  } catch (error) {
    if (isLifeboatError(error, 'LB_STORAGE_NOT_FOUND')) {
      throw new LifeboatError(
        'LB_REPO_NOT_FOUND',
        `no lifeboat repository at ${storage.location} (run lifeboat init)`,
        {
          cause: error,
        },
      );
    }
    throw error;
  }
  let config: RepositoryConfig;
  try {
    config = JSON.parse(bytes.toString('utf8')) as RepositoryConfig;
  } catch (error) {
    throw new LifeboatError('LB_REPO_CORRUPT', `${storage.location}/config is not valid JSON`, {
      cause: error,
    });
  }
  if (config.format !== 'lifeboat-repository') {
    throw new LifeboatError(
      'LB_REPO_CORRUPT',
      `${storage.location}/config is not a lifeboat repository config`,
    );
  }
  checkVersion(config.version, REPOSITORY_VERSIONS, `the repository at ${storage.location}`);
  return config;
}

/** Unlocks the repository's keys with the credentials its key mode needs. */
async function unlock(
  storage: StorageBackend,
  config: RepositoryConfig,
  credentials: Credentials,
): Promise<{ ring: KeyRing; keyId: string }> {
  if (config.keyMode === 'password') {
    if (credentials.password === undefined) {
      throw new LifeboatError(
        'LB_REPO_WRONG_KEY',
        `the repository at ${storage.location} uses password mode: set repository.password`,
      );
    }
    return unlockWithPassword(storage, credentials.password);
  }
  if (!credentials.recipients || credentials.recipients.length === 0) {
    throw new LifeboatError(
      'LB_REPO_WRONG_KEY',
      `the repository at ${storage.location} uses public-key mode: set repository.recipients`,
    );
  }
  return unlockWithRecipients(storage, credentials.recipients, credentials.identities ?? []);
}
