// The WAL archive of PostgreSQL sources: wal-push and wal-fetch (PostgreSQL's archive_command and
// restore_command), continuity per timeline for `check`, and WAL retention after `forget`.
//
// Terms:
//   source      the postgres source whose archive a file belongs to (--source, or the only source in
//               physical/both mode).
//   needed WAL  a base backup needs every segment from its start segment to its stop segment, and a
//               restore to a later moment every segment after it up to that moment. Retention never
//               deletes a segment at or after the start of the oldest kept base backup.
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

import type { LifeboatConfig } from '../config/index.js';
import { postgres } from '../engines/index.js';
import { LifeboatError } from '../errors.js';
import {
  type PushResult,
  type Repository,
  type Snapshot,
  deleteArchiveFiles,
  listArchive,
  listArchiveSources,
  pushArchiveFiles,
  readArchiveFile,
} from '../repository/index.js';

const { walNames } = postgres;

/** The postgres source a WAL command is for: the named one, or the only physical one. */
export function walSource(config: LifeboatConfig, name?: string): string {
  const physical = Object.entries(config.sources).filter(
    ([, source]) => source.engine === 'postgres' && source.mode !== 'logical',
  );
  if (name !== undefined) {
    const source = config.sources[name];
    if (!source || source.engine !== 'postgres') {
      throw new LifeboatError(
        'LB_SOURCE_UNKNOWN',
        `no postgres source ${name} in the config (postgres sources: ${physical.map(([n]) => n).join(', ') || 'none'})`,
      );
    }
    return name;
  }
  if (physical.length !== 1) {
    throw new LifeboatError(
      'LB_USAGE',
      physical.length === 0
        ? 'no postgres source with mode physical or both in the config'
        : `several postgres sources archive WAL (${physical.map(([n]) => n).join(', ')}): name one with --source`,
    );
  }
  return physical[0]![0];
}

/** archive_command: stores the file at `path` (relative to the data directory) durably. */
export async function walPush(repository: Repository, source: string, path: string): Promise<PushResult> {
  const name = basename(path);
  if (!walNames.isArchivableName(name)) {
    throw new LifeboatError(
      'LB_USAGE',
      `${name} is not a WAL segment, .history, .backup or .partial file name`,
    );
  }
  const data = await readFile(path).catch((error: NodeJS.ErrnoException) => {
    throw new LifeboatError('LB_USAGE', `cannot read ${path}: ${error.code ?? error.message}`, {
      cause: error,
    });
  });
  const [result] = await pushArchiveFiles(repository, source, [{ name, data }]);
  return result!;
}

/** restore_command: writes the archived file `name` to `destination` (atomically). */
export async function walFetch(
  repository: Repository,
  source: string,
  name: string,
  destination: string,
): Promise<number> {
  const data = await readArchiveFile(repository, source, name);
  const temporary = join(dirname(destination), `.${basename(destination)}.lifeboat-${process.pid}`);
  try {
    await writeFile(temporary, data);
    await rename(temporary, destination);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
  return data.length;
}

export interface WalContinuity {
  source: string;
  files: number;
  timelines: postgres.walNames.TimelineRun[];
  /** Base backups (snapshot ids) whose WAL from start to stop is incomplete, with what is missing. */
  brokenBackups: Array<{ snapshot: string; missing: string[] }>;
  ok: boolean;
}

/** Continuity of a source's archive per timeline, and completeness of each base backup's WAL. */
export async function walContinuity(
  repository: Repository,
  source: string,
  baseBackups: readonly Snapshot[],
): Promise<WalContinuity> {
  const names = await listArchive(repository, source);
  const present = new Set(names);
  const segmentSize = physicalOf(baseBackups[0])?.segmentSize ?? walNames.DEFAULT_SEGMENT_SIZE;
  const timelines = walNames.timelineRuns(names, segmentSize);
  const brokenBackups: WalContinuity['brokenBackups'] = [];
  for (const snapshot of baseBackups) {
    const physical = physicalOf(snapshot);
    if (!physical) continue;
    const start = walNames.parseSegmentName(physical.startSegment, segmentSize)!;
    const stop = walNames.parseSegmentName(physical.stopSegment, segmentSize)!;
    const missing: string[] = [];
    for (let number = start.number; number <= stop.number; number++) {
      const name = walNames.segmentName(start.timeline, number, segmentSize);
      if (!present.has(name)) missing.push(name);
    }
    if (missing.length > 0) brokenBackups.push({ snapshot: snapshot.id, missing });
  }
  return {
    source,
    files: names.length,
    timelines,
    brokenBackups,
    ok: brokenBackups.length === 0 && timelines.every((run) => run.missingCount === 0),
  };
}

export function physicalOf(snapshot: Snapshot | undefined): postgres.PhysicalMetadata | undefined {
  return (snapshot?.metadata as { physical?: postgres.PhysicalMetadata } | undefined)?.physical;
}

/**
 * WAL retention: deletes archived segments (and .backup/.partial files) before the start of the oldest
 * kept base backup. History files are kept. Caller holds the exclusive lock. Without any kept base
 * backup nothing is deleted.
 */
export async function applyWalRetention(
  repository: Repository,
  source: string,
  keptBaseBackups: readonly Snapshot[],
  dryRun: boolean,
): Promise<string[]> {
  const starts = keptBaseBackups
    .map((snapshot) => physicalOf(snapshot))
    .filter((physical): physical is postgres.PhysicalMetadata => physical !== undefined)
    .map((physical) => walNames.parseSegmentName(physical.startSegment, physical.segmentSize)!.number);
  if (starts.length === 0) return [];
  const segmentSize = physicalOf(keptBaseBackups[0])?.segmentSize ?? walNames.DEFAULT_SEGMENT_SIZE;
  const oldest = starts.reduce((a, b) => (a < b ? a : b));
  const doomed = (await listArchive(repository, source)).filter((name) => {
    if (walNames.isHistoryName(name)) return false;
    const parsed = walNames.parseSegmentName(name.slice(0, 24), segmentSize);
    return parsed !== undefined && parsed.number < oldest;
  });
  if (!dryRun) await deleteArchiveFiles(repository, source, doomed);
  return doomed;
}

/** WAL continuity of every source that has an archive in the repository (for `check`). */
export async function walChecks(repository: Repository): Promise<WalContinuity[]> {
  const sources = await listArchiveSources(repository);
  if (sources.length === 0) return [];
  const snapshots = await repository.listSnapshots();
  const reports: WalContinuity[] = [];
  for (const source of sources) {
    const baseBackups = snapshots.filter((snapshot) => snapshot.source === source && physicalOf(snapshot));
    reports.push(await walContinuity(repository, source, baseBackups));
  }
  return reports;
}
