// Snapshot manifests: what one engine produced for one source in one backup.
//
// Terms:
//   artifact   one named stream of a snapshot (e.g. "main.dump", "globals.sql"): its size, the SHA-256 and
//              the BLAKE3 of its plaintext, and the ordered list of blob ids that make it up.
//   snapshot   snapshots/<sha256 of the file>: a sealed envelope (kind "snapshot") of the manifest. The
//              file name is the snapshot id; a unique prefix of it names the snapshot too.
import { LifeboatError } from '../errors.js';
import type { StorageBackend } from '../storage/index.js';
import { sha256Hex } from './crypto.js';
import { openFile, sealFile } from './envelope.js';
import { SNAPSHOT_VERSION, checkVersion } from './format.js';
import type { KeyRing } from './keys.js';

export interface ArtifactRecord {
  name: string;
  size: number;
  /** SHA-256 (hex) of the artifact's plaintext. */
  sha256: string;
  /**
   * BLAKE3 (hex, unkeyed) of the artifact's plaintext: what a restore checks the stream against
   * (absent in artifacts written before it was recorded: those are checked by their SHA-256).
   */
  blake3?: string;
  blobs: string[];
}

/**
 * What a backup session stored for one artifact: an ArtifactRecord, without the SHA-256 when the caller
 * asked for BLAKE3 alone (the WAL archive of a format-2 repository, see archive.ts). A snapshot's
 * artifacts always have both.
 */
export type StoredArtifact = Omit<ArtifactRecord, 'sha256' | 'blake3'> & { sha256?: string; blake3: string };

/** What a read needs of an artifact: its blobs, and its size and stream hash to check the whole against. */
export type ReadableArtifact = Pick<ArtifactRecord, 'name' | 'size' | 'blobs'> & {
  sha256?: string;
  blake3?: string;
};

export interface SnapshotManifest {
  version: number;
  /** When the snapshot was committed (made visible). */
  time: string;
  /** When its backup session started (absent in snapshots written before it was recorded). */
  startTime?: string;
  /** Source name from the config ("main-db"), or the --name of a raw stream backup. */
  source: string;
  /** Engine that produced it ("postgres", … or "stream" for backup-stream). */
  engine: string;
  hostname: string;
  tags: string[];
  artifacts: ArtifactRecord[];
  /** Engine statistics, opaque to the repository. */
  stats: unknown;
  /** What the engine needs to restore the snapshot (versions, databases, WAL positions); opaque. */
  metadata?: Record<string, unknown>;
  lifeboatVersion: string;
  /** The recovery point this snapshot belongs to, when taken as part of one. */
  recoveryPoint?: string;
}

export interface Snapshot extends SnapshotManifest {
  id: string;
}

export async function saveSnapshot(
  storage: StorageBackend,
  ring: KeyRing,
  manifest: SnapshotManifest,
): Promise<string> {
  const bytes = await sealFile(ring, 'snapshot', manifest, false);
  const id = sha256Hex(bytes);
  await storage.write(`snapshots/${id}`, bytes);
  return id;
}

export async function loadSnapshot(storage: StorageBackend, ring: KeyRing, id: string): Promise<Snapshot> {
  const name = `snapshots/${id}`;
  const bytes = await storage.read(name);
  if (sha256Hex(bytes) !== id)
    throw new LifeboatError('LB_REPO_CORRUPT', `${name}: content does not match its name (damaged)`);
  const manifest = await openFile<SnapshotManifest>(ring, 'snapshot', bytes, name);
  checkVersion(manifest.version, SNAPSHOT_VERSION, name);
  return { ...manifest, id };
}

export async function listSnapshotIds(storage: StorageBackend): Promise<string[]> {
  const ids: string[] = [];
  for await (const info of storage.list('snapshots/')) ids.push(info.name.slice('snapshots/'.length));
  return ids.sort();
}

/** The full id of the one snapshot whose id starts with prefix. */
export async function resolveSnapshotId(storage: StorageBackend, prefix: string): Promise<string> {
  const matches = (await listSnapshotIds(storage)).filter((id) => id.startsWith(prefix.toLowerCase()));
  if (matches.length === 1) return matches[0]!;
  throw new LifeboatError(
    'LB_SNAPSHOT_NOT_FOUND',
    matches.length === 0
      ? `no snapshot with id ${prefix}`
      : `${matches.length} snapshots start with ${prefix}: give more of the id`,
  );
}
