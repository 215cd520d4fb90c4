import { describe, expect, it } from 'vitest';

import { formatDuration, parseDuration } from './duration.js';

describe('parseDuration', () => {
  it.each([
    ['90s', 90_000],
    ['20m', 1_200_000],
    ['1h30m', 5_400_000],
    ['7d', 604_800_000],
    ['2w', 1_209_600_000],
    ['1y2mo3d', (365 + 60 + 3) * 86_400_000],
    ['500ms', 500],
    ['1.5h', 5_400_000],
  ])('%s', (text, expected) => expect(parseDuration(text)).toBe(expected));

  it.each(['', 'soon', '10', '1h 30m', '1x', 'h1'])('rejects %j', (text) =>
    expect(parseDuration(text)).toBeUndefined(),
  );
});

describe('formatDuration', () => {
  it.each([
    [0, '0s'],
    [850, '850ms'],
    [42_000, '42s'],
    [200_000, '3m20s'],
    [14_700_000, '4h05m'],
    [183_600_000, '2d03h'],
  ])('%d ms', (milliseconds, expected) => expect(formatDuration(milliseconds)).toBe(expected));
});
