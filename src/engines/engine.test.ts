import { describe, expect, it } from 'vitest';

import { type Stats, compareStats } from './engine.js';

const stats = (
  items: Stats['items'],
  fingerprints: Record<string, string> = {},
  openPrefixes?: string[],
): Stats => ({
  items,
  fingerprints,
  facts: {},
  ...(openPrefixes ? { openPrefixes } : {}),
});

describe('compareStats', () => {
  it('finds nothing when counts and fingerprints are equal', () => {
    const a = stats([{ key: 'db/t', count: 5, exact: true }], { schema: 'x' });
    expect(compareStats(a, a)).toEqual([]);
  });

  it('reports a different exact count, a missing item, an extra item and a fingerprint change', () => {
    const expected = stats(
      [
        { key: 'db/a', count: 5, exact: true },
        { key: 'db/b', count: 1, exact: true },
      ],
      { schema: 'x' },
    );
    const actual = stats(
      [
        { key: 'db/a', count: 4, exact: true },
        { key: 'db/c', count: 9, exact: true },
      ],
      { schema: 'y' },
    );
    expect(compareStats(expected, actual)).toEqual([
      { key: 'db/a', expected: '5', actual: '4' },
      { key: 'db/b', expected: '1', actual: 'missing' },
      { key: 'db/c', expected: 'absent', actual: '9' },
      { key: 'schema', expected: 'x', actual: 'y' },
    ]);
  });

  it('compares estimates with a tolerance (20%, or within 1000)', () => {
    const expected = stats([{ key: 'big', count: 1_000_000, exact: false }]);
    expect(compareStats(expected, stats([{ key: 'big', count: 1_150_000, exact: false }]))).toEqual([]);
    expect(compareStats(expected, stats([{ key: 'big', count: 1_300_000, exact: true }]))).toHaveLength(1);
    expect(
      compareStats(
        stats([{ key: 's', count: 10, exact: false }]),
        stats([{ key: 's', count: 900, exact: false }]),
      ),
    ).toEqual([]);
  });

  it('accepts extra items under open prefixes (roles of a shared server)', () => {
    const expected = stats([{ key: 'role/app', count: 1, exact: true }], {}, ['role/']);
    const actual = stats([
      { key: 'role/app', count: 1, exact: true },
      { key: 'role/other', count: 1, exact: true },
    ]);
    expect(compareStats(expected, actual)).toEqual([]);
    expect(compareStats(expected, stats([]))).toEqual([
      { key: 'role/app', expected: '1', actual: 'missing' },
    ]);
  });
});
