// Restore plans and their execution: which snapshot of which point goes into which target, how
// (logical, physical, point in time), in which order.
//
// Terms:
//   point       a recovery point id (or prefix), or "latest": the newest point holding every chosen
//               source.
//   at          a recovery target for PostgreSQL physical restores: latest, immediate, an ISO time,
//               lsn:X/Y, xid:N or name:LABEL. With a time, the base backup is the newest one that ended
//               before it (from any point), unless a point id was given. Stores without a log archive
//               (redis, files) take a time too: their newest snapshot taken at or before it.
//   target      the source itself (the disaster case), or drills.targets.<name> with --target.
//   step        one source's restore in the plan; steps run in restore order (sources.ts).
import { type LifeboatConfig, redactUrl } from '../config/index.js';
import {
  type ArtifactSource,
  type RecoveryTarget,
  type RestoreResult,
  engineFor,
  postgres,
} from '../engines/index.js';
import { LifeboatError } from '../errors.js';
import { counted } from '../util/counted.js';
import {
  type RecoveryPoint,
  type Repository,
  type Snapshot,
  listArchive,
  readArchiveFile,
} from '../repository/index.js';
import { type ChosenSource, chooseSources, drillTarget } from './sources.js';
import { physicalOf } from './wal.js';

export interface RestoreRequest {
  point: string;
  sources?: string[];
  at?: string;
  /** Drill target name (drills.targets.<name>); only with a single source. */
  target?: string;
  force: boolean;
  jobs?: number;
  only?: { schemas?: string[]; tables?: string[]; databases?: string[] };
  /** Physical restores: start the server and wait for recovery (default true). */
  start?: boolean;
}

export interface RestoreStep {
  source: string;
  engine: string;
  snapshot: Snapshot;
  point?: RecoveryPoint;
  /** "source" or "drills.targets.<name>". */
  targetLabel: string;
  target: Record<string, unknown>;
  method: 'logical' | 'physical';
  recoveryTarget?: RecoveryTarget;
  /** Parallel jobs the source's config asks for (pg_restore -j); --jobs overrides it. */
  jobs?: number;
  /** Human lines for the plan display. */
  description: string[];
}

export interface RestorePlan {
  steps: RestoreStep[];
  force: boolean;
}

export function parseRecoveryTarget(at: string): RecoveryTarget {
  if (at === 'latest' || at === 'immediate') return { kind: at };
  const prefixed = /^(lsn|xid|name):(.+)$/.exec(at);
  if (prefixed) {
    const [, kind, value] = prefixed as unknown as [string, 'lsn' | 'xid' | 'name', string];
    if (kind === 'lsn' && !/^[0-9A-Fa-f]+\/[0-9A-Fa-f]+$/.test(value))
      throw new LifeboatError('LB_USAGE', `--at lsn:${value}: expected an LSN such as 0/3000060`);
    if (kind === 'xid' && !/^\d+$/.test(value))
      throw new LifeboatError('LB_USAGE', `--at xid:${value}: expected a transaction id (a number)`);
    return { kind, value };
  }
  const time = new Date(at);
  if (Number.isNaN(time.getTime()) || !/\d{4}-\d{2}-\d{2}/.test(at)) {
    throw new LifeboatError(
      'LB_USAGE',
      `--at ${at}: expected latest, immediate, a time (2026-11-21T14:30:00Z), lsn:X/Y, xid:N or name:LABEL`,
    );
  }
  if (!/(Z|[+-]\d{2}:?\d{2})$/i.test(at)) {
    throw new LifeboatError(
      'LB_USAGE',
      `--at ${at}: give the time zone (Z or +01:00): a restore point must not depend on this host's zone`,
    );
  }
  return { kind: 'time', value: time.toISOString() };
}

async function pointsWithSnapshots(repository: Repository): Promise<RecoveryPoint[]> {
  return (await repository.listPoints()).reverse(); // newest first
}

export async function planRestore(
  config: LifeboatConfig,
  repository: Repository,
  request: RestoreRequest,
): Promise<RestorePlan> {
  const sources = chooseSources(config, request.sources);
  if (request.target !== undefined && sources.length > 1) {
    throw new LifeboatError(
      'LB_USAGE',
      `--target names one drill target: choose its source with --source (the point holds ${sources.map((source) => source.name).join(', ')}); lifeboat drill restores every source into its own target`,
    );
  }
  const recoveryTarget = request.at === undefined ? undefined : parseRecoveryTarget(request.at);
  const points = await pointsWithSnapshots(repository);
  const explicit = request.point === 'latest' ? undefined : await repository.loadPoint(request.point);
  const steps: RestoreStep[] = [];
  for (const source of sources) {
    const step = await planSource(config, repository, source, request, recoveryTarget, points, explicit);
    steps.push(step);
  }
  return { steps, force: request.force };
}

async function planSource(
  config: LifeboatConfig,
  repository: Repository,
  source: ChosenSource,
  request: RestoreRequest,
  recoveryTarget: RecoveryTarget | undefined,
  points: RecoveryPoint[],
  explicit: RecoveryPoint | undefined,
): Promise<RestoreStep> {
  const holding = (point: RecoveryPoint) => point.members.find((member) => member.source === source.name);
  let point: RecoveryPoint | undefined;
  let snapshot: Snapshot | undefined;
  if (explicit) {
    const member = holding(explicit);
    if (!member) {
      throw new LifeboatError(
        'LB_SOURCE_UNKNOWN',
        `recovery point ${explicit.id.slice(0, 8)} has no snapshot of ${source.name} (it has ${explicit.members.map((m) => m.source).join(', ')})`,
      );
    }
    [point, snapshot] = [explicit, await repository.loadSnapshot(member.snapshot)];
  } else if (recoveryTarget && source.config.engine === 'postgres') {
    ({ point, snapshot } = await chooseBaseBackup(repository, source, points, recoveryTarget));
  } else if (recoveryTarget && recoveryTarget.kind !== 'latest') {
    // Stores without a log archive go back to their newest snapshot taken at or before the time, so
    // that `restore latest --at T` brings the whole stack to T as closely as each store allows.
    if (recoveryTarget.kind !== 'time') {
      throw new LifeboatError(
        'LB_USAGE',
        `--at ${recoveryTarget.kind === 'immediate' ? 'immediate' : `${recoveryTarget.kind}:${recoveryTarget.value}`} applies to PostgreSQL only; ${source.name} (${source.config.engine}) takes --at TIME (its newest snapshot before it) or --at latest`,
      );
    }
    point = points.find((candidate) => holding(candidate) && candidate.time <= recoveryTarget.value);
    if (!point)
      throw new LifeboatError(
        'LB_POINT_NOT_FOUND',
        `no recovery point of ${source.name} was taken before ${recoveryTarget.value} (lifeboat list)`,
      );
    snapshot = await repository.loadSnapshot(holding(point)!.snapshot);
  } else {
    point = points.find((candidate) => holding(candidate));
    if (!point)
      throw new LifeboatError(
        'LB_POINT_NOT_FOUND',
        `no recovery point holds ${source.name} yet (run lifeboat backup)`,
      );
    snapshot = await repository.loadSnapshot(holding(point)!.snapshot);
  }
  const targetLabel = request.target === undefined ? 'source' : `drills.targets.${request.target}`;
  const target =
    request.target === undefined
      ? (source.config as unknown as Record<string, unknown>)
      : drillTarget(config, source, request.target);
  const physical = physicalOf(snapshot);
  const hasLogical = (snapshot.metadata as { logical?: unknown } | undefined)?.logical !== undefined;
  let method: 'logical' | 'physical' = 'logical';
  let target_: RecoveryTarget | undefined;
  if (source.config.engine === 'postgres') {
    if (recoveryTarget) {
      if (!physical)
        throw new LifeboatError(
          'LB_USAGE',
          `--at needs a base backup; snapshot ${snapshot.id.slice(0, 8)} of ${source.name} is logical only (mode logical)`,
        );
      method = 'physical';
      target_ = recoveryTarget;
    } else if (!hasLogical) {
      method = 'physical';
      target_ = { kind: 'immediate' };
    }
  }
  const description = [
    `${source.name} (${source.config.engine}) from snapshot ${snapshot.id.slice(0, 8)} of ${snapshot.time}${point ? ` (point ${point.id.slice(0, 8)})` : ''}`,
    `  into ${targetLabel}: ${describeTarget(target)}`,
    method === 'physical'
      ? `  physical: base backup ${physical!.startSegment}..${physical!.stopSegment}, then WAL to ${postgres.describeTarget(target_!)}${recoveryTarget === undefined ? ' (the end of the base backup: add --at latest to replay the archive to its end, or --at TIME)' : ''}`
      : source.config.engine === 'redis'
        ? `  ${describeRedis(snapshot, target)}`
        : `  logical: ${describeLogical(snapshot)}`,
  ];
  const jobs = (source.config as { jobs?: number }).jobs;
  return {
    source: source.name,
    engine: source.config.engine,
    snapshot,
    point,
    targetLabel,
    target,
    method,
    recoveryTarget: target_,
    ...(jobs !== undefined ? { jobs } : {}),
    description,
  };
}

function describeTarget(target: Record<string, unknown>): string {
  const parts: string[] = [];
  if (typeof target.url === 'string') parts.push(redactUrl(target.url));
  if (typeof target.dataDirectory === 'string') parts.push(`data directory ${target.dataDirectory}`);
  return parts.join(', ');
}

function describeRedis(snapshot: Snapshot, target: Record<string, unknown>): string {
  const metadata = snapshot.metadata as
    { keys?: number; databases?: number[]; rdbArtifact?: string } | undefined;
  const what = `${metadata?.rdbArtifact ?? 'RDB'}: ${metadata?.keys ?? '?'} keys in ${(metadata?.databases ?? []).map((db) => `db${db}`).join(', ') || 'no db'}`;
  return target.restoreMode === 'offline'
    ? `offline: ${what}, placed in the stopped server's data directory${target.server ? ', then the server is started' : ''}`
    : `online: ${what}, replayed with RESTORE (a non-empty server needs --force, which flushes it first)`;
}

function describeLogical(snapshot: Snapshot): string {
  const logical = (snapshot.metadata as { logical?: postgres.LogicalMetadata } | undefined)?.logical;
  if (!logical) return snapshot.artifacts.map((artifact) => artifact.name).join(', ');
  return `databases ${logical.databases.map((database) => database.name).join(', ')} (+ missing roles)`;
}

/** The base backup a point-in-time restore starts from. */
async function chooseBaseBackup(
  repository: Repository,
  source: ChosenSource,
  points: RecoveryPoint[],
  recoveryTarget: RecoveryTarget,
): Promise<{ point: RecoveryPoint; snapshot: Snapshot }> {
  for (const point of points) {
    const member = point.members.find((candidate) => candidate.source === source.name);
    if (!member) continue;
    const snapshot = await repository.loadSnapshot(member.snapshot);
    const physical = physicalOf(snapshot);
    if (!physical) continue;
    if (recoveryTarget.kind === 'time' && (physical.stopTime ?? snapshot.time) > recoveryTarget.value)
      continue;
    if (
      recoveryTarget.kind === 'lsn' &&
      postgres.walNames.parseLsn(physical.stopLsn) > postgres.walNames.parseLsn(recoveryTarget.value)
    )
      continue;
    return { point, snapshot };
  }
  throw new LifeboatError(
    'LB_POINT_NOT_FOUND',
    recoveryTarget.kind === 'time' || recoveryTarget.kind === 'lsn'
      ? `no base backup of ${source.name} ended before ${recoveryTarget.value}: a point-in-time restore needs one (lifeboat list)`
      : `no base backup of ${source.name} yet (mode physical or both, then lifeboat backup)`,
  );
}

export interface StepOutcome {
  source: string;
  target: string;
  method: 'logical' | 'physical';
  seconds: number;
  result: RestoreResult;
}

export interface ExecuteOptions {
  /** restore_command for physical restores of a source (lifeboat wal-fetch with this config). */
  restoreCommand: (source: string) => string;
  /** Environment for a server lifeboat starts (restore_command runs in it). */
  serverEnv?: NodeJS.ProcessEnv;
  start?: boolean;
  jobs?: number;
  only?: RestoreRequest['only'];
  log?: (line: string) => void;
  signal?: AbortSignal;
  onStepStart?: (step: RestoreStep) => void;
  /** Plaintext bytes read from the repository (for a progress display). */
  onBytes?: (bytes: number) => void;
}

/** Runs a plan's steps in order under a shared lock (no prune meanwhile); stops at the first failure. */
export async function executeRestore(
  repository: Repository,
  plan: RestorePlan,
  options: ExecuteOptions,
): Promise<StepOutcome[]> {
  return repository.withSharedLock('restore', async () => {
    const outcomes: StepOutcome[] = [];
    for (const step of plan.steps) {
      options.onStepStart?.(step);
      const started = Date.now();
      const result = await restoreStep(repository, step, plan.force, options);
      outcomes.push({
        source: step.source,
        target: step.targetLabel,
        method: step.method,
        seconds: (Date.now() - started) / 1000,
        result,
      });
    }
    return outcomes;
  });
}

export async function restoreStep(
  repository: Repository,
  step: RestoreStep,
  force: boolean,
  options: ExecuteOptions,
): Promise<RestoreResult> {
  const engine = engineFor(step.engine);
  const recordOf = (name: string) => {
    const record = step.snapshot.artifacts.find((artifact) => artifact.name === name);
    if (!record)
      throw new LifeboatError(
        'LB_SNAPSHOT_NOT_FOUND',
        `snapshot ${step.snapshot.id.slice(0, 8)} has no artifact ${name}`,
      );
    return record;
  };
  const artifacts: ArtifactSource = {
    names: step.snapshot.artifacts.map((artifact) => artifact.name),
    open: (name) => {
      const stream = repository.readArtifact(recordOf(name));
      return options.onBytes ? counted(stream, options.onBytes) : stream;
    },
    openBorrowed: (name) => {
      const chunks = repository.readArtifactBorrowed(recordOf(name));
      const onBytes = options.onBytes;
      if (!onBytes) return chunks;
      return (async function* () {
        for await (const chunk of chunks) {
          onBytes(chunk.length);
          yield chunk;
        }
      })();
    },
  };
  const pointInTime =
    step.method === 'physical'
      ? {
          recoveryTarget: step.recoveryTarget!,
          restoreCommand: options.restoreCommand(step.source),
          start: options.start ?? true,
          keepArchiving: step.targetLabel === 'source',
          stopOnFailure: step.targetLabel !== 'source',
          env: options.serverEnv,
          prefetch: {
            list: () => listArchive(repository, step.source),
            read: (name: string) => readArchiveFile(repository, step.source, name),
          },
        }
      : undefined;
  return engine.restore(step.target, artifacts, step.snapshot.metadata ?? {}, {
    force,
    jobs: options.jobs ?? step.jobs,
    only: options.only,
    log: (line) => options.log?.(`${step.source}: ${line}`),
    signal: options.signal,
    ...(pointInTime ? { pointInTime } : {}),
  });
}
