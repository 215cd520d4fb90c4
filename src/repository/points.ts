// Recovery points: the snapshots of several sources taken together in one run. What a user restores.
//
// Terms:
//   point id        32 hex digits chosen at the start of the run; each snapshot of the run carries it
//                   (SnapshotManifest.recoveryPoint) and the point file is points/<id>.
//   point file      a sealed envelope (kind "point") written after every snapshot of the run is
//                   visible: a point is listed only when all its snapshots are durable. A run that dies
//                   earlier leaves snapshots without a point; `list` does not show them, `snapshots` does.
//   time            the run's start: the consistency time of the point (each snapshot also has its own).
import { randomBytes } from 'node:crypto';

import { LifeboatError } from '../errors.js';
import type { StorageBackend } from '../storage/index.js';
import { openFile, sealFile } from './envelope.js';
import { checkVersion } from './format.js';
import type { KeyRing } from './keys.js';

export const POINT_VERSION = 1;

export interface PointMember {
  source: string;
  engine: string;
  snapshot: string;
}

export interface RecoveryPointManifest {
  version: number;
  id: string;
  /** Start of the run (ISO). */
  time: string;
  /** End of the run (ISO). */
  finished: string;
  hostname: string;
  lifeboatVersion: string;
  members: PointMember[];
  tags: string[];
  /** Sources whose backup failed in this run (the point holds the others). */
  failed?: string[];
}

export type RecoveryPoint = RecoveryPointManifest;

export const newPointId = (): string => randomBytes(16).toString('hex');

export async function savePoint(
  storage: StorageBackend,
  ring: KeyRing,
  point: RecoveryPointManifest,
): Promise<void> {
  const bytes = await sealFile(ring, 'point', point, false);
  await storage.write(`points/${point.id}`, bytes, { createOnly: true });
}

export async function loadPoint(storage: StorageBackend, ring: KeyRing, id: string): Promise<RecoveryPoint> {
  const name = `points/${id}`;
  const point = await openFile<RecoveryPointManifest>(ring, 'point', await storage.read(name), name);
  checkVersion(point.version, POINT_VERSION, name);
  if (point.id !== id) throw new LifeboatError('LB_REPO_CORRUPT', `${name}: holds point ${point.id}`);
  return point;
}

export async function listPointIds(storage: StorageBackend): Promise<string[]> {
  const ids: string[] = [];
  for await (const info of storage.list('points/')) ids.push(info.name.slice('points/'.length));
  return ids.sort();
}

/** The full id of the one point whose id starts with prefix. */
export async function resolvePointId(storage: StorageBackend, prefix: string): Promise<string> {
  const matches = (await listPointIds(storage)).filter((id) => id.startsWith(prefix.toLowerCase()));
  if (matches.length === 1) return matches[0]!;
  throw new LifeboatError(
    'LB_POINT_NOT_FOUND',
    matches.length === 0
      ? `no recovery point with id ${prefix} (lifeboat list shows them)`
      : `${matches.length} recovery points start with ${prefix}: give more of the id`,
  );
}
