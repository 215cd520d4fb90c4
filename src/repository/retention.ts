// Retention: which snapshots `forget` keeps, with the semantics of restic's forget.
//
// Terms:
//   group     snapshots of the same source; every rule applies within each group separately.
//   keepLast  the n most recent snapshots.
//   keepHourly/Daily/Weekly/Monthly/Yearly
//             walking from the newest, the newest snapshot of each of the last n hours (days, ISO weeks,
//             months, years) that have a snapshot. Buckets are in UTC.
//   keepWithin  every snapshot taken within this duration before the group's newest snapshot.
//   reasons   every rule that keeps a snapshot is listed ("last 1", "daily 3", "within 7d").
// A policy with no rule keeps everything: forget refuses to delete on an empty policy.

export interface RetentionPolicy {
  keepLast?: number;
  keepHourly?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  keepYearly?: number;
  /** Milliseconds. */
  keepWithinMs?: number;
}

export interface Dated {
  id: string;
  time: string;
  source: string;
}

export interface RetentionDecision<T extends Dated> {
  snapshot: T;
  keep: boolean;
  reasons: string[];
}

export function isEmptyPolicy(policy: RetentionPolicy): boolean {
  return Object.values(policy).every((value) => value === undefined || value === 0);
}

function isoWeek(date: Date): string {
  const day = new Date(Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate()));
  const weekday = day.getUTCDay() || 7;
  day.setUTCDate(day.getUTCDate() + 4 - weekday); // Thursday of this week decides the year
  const yearStart = Date.UTC(day.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((day.getTime() - yearStart) / 86_400_000 + 1) / 7);
  return `${day.getUTCFullYear()}-W${String(week).padStart(2, '0')}`;
}

const BUCKETS: Array<[keyof RetentionPolicy, string, (date: Date) => string]> = [
  ['keepHourly', 'hourly', (date) => date.toISOString().slice(0, 13)],
  ['keepDaily', 'daily', (date) => date.toISOString().slice(0, 10)],
  ['keepWeekly', 'weekly', isoWeek],
  ['keepMonthly', 'monthly', (date) => date.toISOString().slice(0, 7)],
  ['keepYearly', 'yearly', (date) => date.toISOString().slice(0, 4)],
];

/** Decides, for every snapshot, whether the policy keeps it and why. Newest first within each group. */
export function applyRetention<T extends Dated>(
  snapshots: readonly T[],
  policy: RetentionPolicy,
): Array<RetentionDecision<T>> {
  const groups = new Map<string, T[]>();
  for (const snapshot of snapshots)
    groups.set(snapshot.source, [...(groups.get(snapshot.source) ?? []), snapshot]);
  const decisions: Array<RetentionDecision<T>> = [];
  for (const group of groups.values()) {
    const sorted = [...group].sort((a, b) => b.time.localeCompare(a.time) || b.id.localeCompare(a.id));
    const reasons = new Map<T, string[]>(sorted.map((snapshot) => [snapshot, []]));
    sorted
      .slice(0, policy.keepLast ?? 0)
      .forEach((snapshot, index) => reasons.get(snapshot)!.push(`last ${index + 1}`));
    for (const [rule, label, bucketOf] of BUCKETS) {
      const wanted = policy[rule] ?? 0;
      const seen = new Set<string>();
      for (const snapshot of sorted) {
        if (seen.size >= wanted) break;
        const bucket = bucketOf(new Date(snapshot.time));
        if (seen.has(bucket)) continue;
        seen.add(bucket);
        reasons.get(snapshot)!.push(`${label} ${seen.size}`);
      }
    }
    if (policy.keepWithinMs !== undefined && sorted.length > 0) {
      const newest = Date.parse(sorted[0]!.time);
      for (const snapshot of sorted) {
        if (newest - Date.parse(snapshot.time) <= policy.keepWithinMs) reasons.get(snapshot)!.push('within');
      }
    }
    for (const snapshot of sorted) {
      const why = reasons.get(snapshot)!;
      decisions.push({ snapshot, keep: why.length > 0 || isEmptyPolicy(policy), reasons: why });
    }
  }
  return decisions;
}
