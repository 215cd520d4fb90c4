// `lifeboat backup`: one recovery point across the chosen sources.
//
// Terms:
//   run        every chosen source is backed up in turn, each into its own snapshot (one backup
//              session, one lock) carrying the point id; then the point file is written. A source that
//              fails is recorded in the point as failed and the run goes on with the others: what did
//              succeed stays restorable. A run killed midway writes no point.
//   WAL check  a physical snapshot is restorable only with the WAL from its start to its end: before
//              committing it, the run waits until the segment holding the backup's end LSN is in the
//              source's archive (pushed by wal-push), then records the time.
import { hostname } from 'node:os';

import type { LifeboatConfig } from '../config/index.js';
import type { postgres } from '../engines/index.js';
import { engineFor, type Stats } from '../engines/index.js';
import { LifeboatError, toLifeboatError } from '../errors.js';
import {
  type BackupProgress,
  type PointMember,
  type RecoveryPoint,
  type Repository,
  archiveHas,
  newPointId,
} from '../repository/index.js';
import { parseDuration } from '../util/duration.js';
import { VERSION } from '../util/version.js';
import { type ChosenSource, chooseSources } from './sources.js';

export interface BackupRunOptions {
  sources?: string[];
  tags?: string[];
  signal?: AbortSignal;
  /** Byte progress of the source being backed up. */
  onProgress?: (source: string, progress: BackupProgress) => void;
  log?: (line: string) => void;
}

export interface SourceOutcome {
  source: string;
  engine: string;
  snapshot?: string;
  bytesRead?: number;
  bytesNew?: number;
  seconds: number;
  error?: { code: string; message: string };
}

export interface BackupRunResult {
  point: RecoveryPoint;
  outcomes: SourceOutcome[];
}

export async function runBackup(
  config: LifeboatConfig,
  repository: Repository,
  options: BackupRunOptions = {},
): Promise<BackupRunResult> {
  const sources = chooseSources(config, options.sources);
  const pointId = newPointId();
  const time = new Date().toISOString();
  const outcomes: SourceOutcome[] = [];
  for (const source of sources) {
    const started = Date.now();
    try {
      const result = await backupSource(repository, source, pointId, options);
      outcomes.push({
        source: source.name,
        engine: source.config.engine,
        ...result,
        seconds: (Date.now() - started) / 1000,
      });
    } catch (error) {
      if (options.signal?.aborted) throw error;
      const failure = toLifeboatError(error);
      options.log?.(`${source.name}: failed: ${failure.code}: ${failure.message}`);
      outcomes.push({
        source: source.name,
        engine: source.config.engine,
        seconds: (Date.now() - started) / 1000,
        error: { code: failure.code, message: failure.message },
      });
      if (sources.length === 1) throw failure;
    }
  }
  const members: PointMember[] = outcomes
    .filter((outcome) => outcome.snapshot !== undefined)
    .map((outcome) => ({ source: outcome.source, engine: outcome.engine, snapshot: outcome.snapshot! }));
  const point: RecoveryPoint = {
    version: 1,
    id: pointId,
    time,
    finished: new Date().toISOString(),
    hostname: hostname(),
    lifeboatVersion: VERSION,
    members,
    tags: options.tags ?? [],
    ...(outcomes.some((outcome) => outcome.error)
      ? { failed: outcomes.filter((o) => o.error).map((o) => o.source) }
      : {}),
  };
  if (members.length === 0) {
    throw new LifeboatError('LB_ENGINE_FAILED', `every source failed; no recovery point written`);
  }
  await repository.savePoint(point);
  return { point, outcomes };
}

async function backupSource(
  repository: Repository,
  source: ChosenSource,
  pointId: string,
  options: BackupRunOptions,
): Promise<{ snapshot: string; bytesRead: number; bytesNew: number }> {
  const engine = engineFor(source.config.engine);
  const session = await repository.startBackup((progress) => options.onProgress?.(source.name, progress));
  const generator = engine.backup(source.config, {
    signal: options.signal,
    log: (line) => options.log?.(`${source.name}: ${line}`),
  });
  try {
    let step = await generator.next();
    while (!step.done) {
      const artifact = step.value;
      if ('parts' in artifact) {
        await session.writeArtifactParts(artifact.name, artifact.parts);
      } else {
        // The consumer gave up (repository error): stop the producer too.
        const input = 'source' in artifact ? artifact.source : artifact.stream;
        try {
          await session.writeArtifact(artifact.name, input, {
            precompressed: artifact.precompressed === true,
            chunking: 'chunking' in artifact ? artifact.chunking : undefined,
          });
        } catch (error) {
          input.destroy?.();
          throw error;
        }
      }
      step = await generator.next();
    }
    const { stats, metadata } = step.value;
    if (source.config.engine === 'postgres' && metadata.physical) {
      Object.assign(
        metadata.physical,
        await waitForBackupWal(repository, source, metadata.physical as postgres.PhysicalMetadata),
      );
    }
    const snapshot = await session.commit({
      source: source.name,
      engine: source.config.engine,
      tags: options.tags ?? [],
      stats: stats satisfies Stats,
      metadata,
      lifeboatVersion: VERSION,
      recoveryPoint: pointId,
    });
    const totals = session.totals;
    return { snapshot, bytesRead: totals.bytesRead, bytesNew: totals.bytesNew };
  } catch (error) {
    await generator.return(undefined as never).catch(() => undefined);
    await session.abort().catch(() => undefined);
    throw error;
  }
}

/**
 * Waits until the archive holds the base backup's last WAL segment (one stat per look: works on a
 * write-only host), as pgBackRest's archive-check does. The base backup carries the WAL it needs to be
 * consistent (pg_basebackup -X fetch), so it restores to its end point from the snapshot alone; this
 * wait makes sure the archive also reaches it, so the point can be rolled forward from there (and a
 * broken archive_command fails the backup instead of going unnoticed). The archiver pushes that segment
 * as soon as the backup switches WAL, usually while the last chunks are still being stored: the first
 * looks are 50 ms apart for 2 s, then further apart up to a second. Returns the time it was seen.
 */
async function waitForBackupWal(
  repository: Repository,
  source: ChosenSource,
  physical: postgres.PhysicalMetadata,
): Promise<{ stopTime: string }> {
  const archive = (source.config as { archive?: { checkTimeout: string } }).archive;
  const deadline = Date.now() + (parseDuration(archive?.checkTimeout ?? '60s') ?? 60_000);
  const started = Date.now();
  // Every 50 ms for the first 2 s (the push of one segment takes a few hundred ms, and every look saved
  // ends the backup sooner), then further apart, up to a second.
  for (let pause = 50; ; pause = Date.now() - started < 2000 ? 50 : Math.min(1000, pause * 1.5)) {
    if (await archiveHas(repository, source.name, physical.stopSegment)) {
      return { stopTime: new Date().toISOString() };
    }
    if (Date.now() > deadline) {
      throw new LifeboatError(
        'LB_WAL_TIMEOUT',
        `the base backup needs WAL up to ${physical.stopSegment}, which is not in the archive of source ${source.name} after ${archive?.checkTimeout ?? '60s'}: is the server's archive_command 'lifeboat wal-push --source ${source.name} %p' with this config? (the server log says why it fails)`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, pause));
  }
}
