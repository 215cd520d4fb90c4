import { describe, expect, it } from 'vitest';

import { applyRetention } from './retention.js';

const at = (iso: string, source = 'db') => ({ id: iso, time: iso, source });
const kept = (decisions: ReturnType<typeof applyRetention>) =>
  decisions
    .filter((decision) => decision.keep)
    .map((decision) => `${decision.snapshot.time} ${decision.reasons.join(',')}`);

describe('applyRetention (restic forget semantics)', () => {
  // Two snapshots a day for ten days, at 01:00 and 13:00 UTC, 2026-03-01 to 2026-03-10.
  const snapshots = Array.from({ length: 10 }, (_, day) => [
    at(`2026-03-${String(day + 1).padStart(2, '0')}T01:00:00.000Z`),
    at(`2026-03-${String(day + 1).padStart(2, '0')}T13:00:00.000Z`),
  ]).flat();

  it('keepLast keeps the n newest', () => {
    expect(kept(applyRetention(snapshots, { keepLast: 3 }))).toEqual([
      '2026-03-10T13:00:00.000Z last 1',
      '2026-03-10T01:00:00.000Z last 2',
      '2026-03-09T13:00:00.000Z last 3',
    ]);
  });

  it('keepDaily keeps the newest of each of the last n days, and reasons accumulate', () => {
    expect(kept(applyRetention(snapshots, { keepLast: 1, keepDaily: 3 }))).toEqual([
      '2026-03-10T13:00:00.000Z last 1,daily 1',
      '2026-03-09T13:00:00.000Z daily 2',
      '2026-03-08T13:00:00.000Z daily 3',
    ]);
  });

  it('keepWeekly uses ISO weeks (Monday to Sunday)', () => {
    // 2026-03-01 is a Sunday (week 09); 2026-03-02..08 is week 10; 2026-03-09..10 week 11.
    expect(kept(applyRetention(snapshots, { keepWeekly: 5 }))).toEqual([
      '2026-03-10T13:00:00.000Z weekly 1',
      '2026-03-08T13:00:00.000Z weekly 2',
      '2026-03-01T13:00:00.000Z weekly 3',
    ]);
  });

  it('keepWithin keeps everything within the duration of the newest snapshot', () => {
    expect(kept(applyRetention(snapshots, { keepWithinMs: 24 * 3_600_000 }))).toEqual([
      '2026-03-10T13:00:00.000Z within',
      '2026-03-10T01:00:00.000Z within',
      '2026-03-09T13:00:00.000Z within',
    ]);
  });

  it('applies the policy to each source separately', () => {
    const mixed = [
      at('2026-01-01T00:00:00.000Z', 'a'),
      at('2026-01-02T00:00:00.000Z', 'a'),
      at('2026-01-01T00:00:00.000Z', 'b'),
    ];
    const decisions = applyRetention(mixed, { keepLast: 1 });
    expect(
      decisions
        .filter((decision) => decision.keep)
        .map((decision) => `${decision.snapshot.source} ${decision.snapshot.time}`),
    ).toEqual(['a 2026-01-02T00:00:00.000Z', 'b 2026-01-01T00:00:00.000Z']);
  });

  it('keeps everything under an empty policy', () => {
    expect(applyRetention(snapshots, {}).every((decision) => decision.keep)).toBe(true);
  });

  it('keepMonthly and keepYearly bucket by month and year', () => {
    const spread = ['2024-05-03', '2025-01-10', '2025-01-20', '2025-06-01', '2026-02-02'].map((day) =>
      at(`${day}T00:00:00.000Z`),
    );
    expect(kept(applyRetention(spread, { keepMonthly: 2, keepYearly: 3 }))).toEqual([
      '2026-02-02T00:00:00.000Z monthly 1,yearly 1',
      '2025-06-01T00:00:00.000Z monthly 2,yearly 2',
      '2024-05-03T00:00:00.000Z yearly 3',
    ]);
  });
});
