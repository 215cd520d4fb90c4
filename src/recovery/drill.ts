// Validation and restore drills.
//
// Terms:
//   validate   live stats of each source against the stats of its snapshot in the latest recovery point.
//   drill      for each chosen source with a drill target: restore the latest point (or, for a
//              PostgreSQL source with WAL archiving and no logical dump, replay the archive to its end)
//              into drills.targets.<source> (scratch: replaced without asking), compare the restored
//              stats with the recorded ones, then stop whatever the restore started.
//   RTO        measured: seconds from the start of the restore to the end of validation.
//   RPO        the data a restore of this point would lose had the source died when the drill started:
//              the age of the point then, or for a WAL-archived source that of the newest archived WAL
//              file (taken at the drill's start, so the restore's own duration is not counted in it).
//   objective  objectives.<source>.rto / .rpo from the config; a drill that misses one fails.
import type { LifeboatConfig } from '../config/index.js';
import { type StatMismatch, compareStats, engineFor, type Stats } from '../engines/index.js';
import { toLifeboatError } from '../errors.js';
import { type Repository, listArchive, loadArchiveRecord } from '../repository/index.js';
import { parseDuration } from '../util/duration.js';
import { type ExecuteOptions, planRestore, restoreStep } from './restore.js';
import { chooseSources } from './sources.js';
import { physicalOf } from './wal.js';

export interface ValidationResult {
  source: string;
  point: string;
  snapshot: string;
  snapshotTime: string;
  mismatches: StatMismatch[];
  ok: boolean;
}

export async function validateSources(
  config: LifeboatConfig,
  repository: Repository,
  sources?: string[],
): Promise<ValidationResult[]> {
  const results: ValidationResult[] = [];
  for (const source of chooseSources(config, sources)) {
    const plan = await planRestore(config, repository, {
      point: 'latest',
      sources: [source.name],
      force: false,
    });
    const step = plan.steps[0]!;
    const live = await engineFor(source.config.engine).stats(source.config, step.snapshot.metadata);
    const mismatches = compareStats(step.snapshot.stats as Stats, live);
    results.push({
      source: source.name,
      point: step.point?.id ?? '',
      snapshot: step.snapshot.id,
      snapshotTime: step.snapshot.time,
      mismatches,
      ok: mismatches.length === 0,
    });
  }
  return results;
}

export interface DrillResult {
  source: string;
  point: string;
  snapshot: string;
  method: 'logical' | 'physical';
  target: string;
  /** Seconds: restore plus validation. */
  rtoSeconds: number;
  /** Seconds of data a restore of this point would lose now. */
  rpoSeconds: number;
  rpoBasis: 'point age' | 'WAL archive end';
  objectives: { rto?: number; rpo?: number };
  mismatches: StatMismatch[];
  error?: { code: string; message: string };
  ok: boolean;
}

export async function runDrill(
  config: LifeboatConfig,
  repository: Repository,
  options: Omit<ExecuteOptions, 'start'> & { sources?: string[] },
): Promise<DrillResult[]> {
  const chosen = chooseSources(
    config,
    options.sources && options.sources.length > 0 ? options.sources : Object.keys(config.drills.targets),
  );
  const results: DrillResult[] = [];
  for (const source of chosen) {
    const objective = config.objectives[source.name];
    const objectives = {
      rto: objective?.rto === undefined ? undefined : parseDuration(objective.rto)! / 1000,
      rpo: objective?.rpo === undefined ? undefined : parseDuration(objective.rpo)! / 1000,
    };
    const started = Date.now();
    let result: DrillResult = {
      source: source.name,
      point: '',
      snapshot: '',
      method: 'logical',
      target: `drills.targets.${source.name}`,
      rtoSeconds: 0,
      rpoSeconds: 0,
      rpoBasis: 'point age',
      objectives,
      mismatches: [],
      ok: false,
    };
    try {
      const mode = source.config.engine === 'postgres' ? source.config.mode : undefined;
      const archived = mode === 'physical' || mode === 'both';
      const plan = await planRestore(config, repository, {
        point: 'latest',
        sources: [source.name],
        target: source.name,
        force: true,
        ...(mode === 'physical' ? { at: 'latest' } : {}),
      });
      const step = plan.steps[0]!;
      Object.assign(result, { point: step.point?.id ?? '', snapshot: step.snapshot.id, method: step.method });
      const engine = engineFor(source.config.engine);
      // Replaying the archive to its end restores the source as it is now, not as it was at the base
      // backup: the schema to expect is the live source's (taken before the restore starts).
      const replayToEnd = step.method === 'physical' && step.recoveryTarget?.kind === 'latest';
      const expected: Stats = replayToEnd
        ? { ...(await engine.stats(source.config, step.snapshot.metadata)), items: [], openPrefixes: [''] }
        : (step.snapshot.stats as Stats);
      // RPO as of the drill's start: the archive's end then (a file pushed during the drill does not
      // count), and only when the restore replays the archive (physical); a logical restore (mode both)
      // brings back the point itself.
      const newestWal =
        archived && step.method === 'physical' && physicalOf(step.snapshot)
          ? await newestArchiveTime(repository, source.name)
          : undefined;
      const restored = await repository.withSharedLock('drill', () =>
        restoreStep(repository, step, true, { ...options, start: true }),
      );
      try {
        const stats = await engine.stats(step.target, step.snapshot.metadata);
        result.mismatches = compareStats(expected, stats);
      } finally {
        await engine.cleanup?.(step.target, restored);
      }
      result.rtoSeconds = (Date.now() - started) / 1000;
      if (newestWal) {
        result.rpoSeconds = Math.max(0, (started - Date.parse(newestWal)) / 1000); // clock skew
        result.rpoBasis = 'WAL archive end';
      } else {
        result.rpoSeconds = (started - Date.parse(step.point?.time ?? step.snapshot.time)) / 1000;
      }
      const missed =
        (objectives.rto !== undefined && result.rtoSeconds > objectives.rto) ||
        (objectives.rpo !== undefined && result.rpoSeconds > objectives.rpo);
      result.ok = result.mismatches.length === 0 && !missed;
    } catch (error) {
      const failure = toLifeboatError(error);
      result = {
        ...result,
        rtoSeconds: (Date.now() - started) / 1000,
        error: { code: failure.code, message: failure.message },
        ok: false,
      };
    }
    results.push(result);
  }
  return results;
}

/** Time the newest archived WAL file was pushed. */
async function newestArchiveTime(repository: Repository, source: string): Promise<string | undefined> {
  const names = (await listArchive(repository, source)).filter((name) => /^[0-9A-F]{24}$/.test(name));
  const newest = names[names.length - 1];
  return newest === undefined ? undefined : (await loadArchiveRecord(repository, source, newest)).time;
}
