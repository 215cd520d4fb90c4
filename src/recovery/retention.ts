// `lifeboat forget`: retention over recovery points, loose snapshots and the WAL archive.
//
// Terms:
//   points           recovery points are kept or forgotten as a whole, grouped by their set of sources
//                    (Repository.forgetPoints); a forgotten point takes its snapshots along.
//   loose snapshots  snapshots of no point (backup-stream): the same policy, per source.
//   WAL retention    for each source with a WAL archive, segments older than the start of the oldest
//                    base backup among the kept points are deleted, in the same exclusive lock. Without
//                    a kept base backup no WAL is deleted.
import { isLifeboatError } from '../errors.js';
import {
  type GroupedPoint,
  type Repository,
  type RetentionDecision,
  type RetentionPolicy,
  type Snapshot,
  listArchiveSources,
} from '../repository/index.js';
import { applyWalRetention, physicalOf } from './wal.js';

export interface ForgetResult {
  points: Array<RetentionDecision<GroupedPoint>>;
  snapshots: Array<RetentionDecision<Snapshot>>;
  /** Per source: the WAL files deleted (or that would be, with dryRun). */
  wal: Record<string, string[]>;
}

export async function forget(
  repository: Repository,
  policy: RetentionPolicy,
  options: { dryRun?: boolean; sources?: string[] } = {},
): Promise<ForgetResult> {
  const wal: Record<string, string[]> = {};
  const points = await repository.forgetPoints(policy, {
    ...options,
    after: async (decisions) => {
      const kept = decisions.filter((decision) => decision.keep).map((decision) => decision.snapshot);
      for (const source of await listArchiveSources(repository)) {
        if (options.sources && !options.sources.includes(source)) continue;
        const baseBackups: Snapshot[] = [];
        for (const point of kept) {
          const member = point.members.find((candidate) => candidate.source === source);
          if (!member) continue;
          const snapshot = await repository.loadSnapshot(member.snapshot);
          if (physicalOf(snapshot)) baseBackups.push(snapshot);
        }
        wal[source] = await applyWalRetention(repository, source, baseBackups, options.dryRun === true);
      }
    },
  });
  let snapshots: Array<RetentionDecision<Snapshot>> = [];
  try {
    snapshots = await repository.forget(policy, {
      ...options,
      filter: (snapshot) => snapshot.recoveryPoint === undefined,
    });
  } catch (error) {
    if (!isLifeboatError(error, 'LB_USAGE')) throw error;
  }
  return { points, snapshots, wal };
}
