import { describe, expect, it } from 'vitest';

import {
  formatLsn,
  isArchivableName,
  parseBackupLabel,
  parseHistory,
  parseLsn,
  parseSegmentName,
  segmentName,
  segmentOfLsn,
  timelineRuns,
} from './wal-names.js';

describe('WAL names', () => {
  it('parses and formats segment names (16 MiB segments: 256 per log)', () => {
    expect(parseSegmentName('0000000200000001000000FF')).toEqual({ timeline: 2, number: 511n });
    expect(segmentName(2, 512n)).toBe('000000020000000200000000');
    expect(segmentName(1, 3n, 64 * 1024 * 1024)).toBe('000000010000000000000003');
    expect(parseSegmentName('00000001000000010000003F', 64 * 1024 * 1024)).toEqual({
      timeline: 1,
      number: 127n,
    });
    expect(parseSegmentName('000000010000000000000001.partial')).toBeUndefined();
  });

  it('knows which names PostgreSQL archives', () => {
    for (const name of [
      '000000010000000000000001',
      '00000002.history',
      '000000010000000000000002.00000028.backup',
      '000000010000000000000003.partial',
    ])
      expect(isArchivableName(name), name).toBe(true);
    for (const name of ['../etc/passwd', 'xlog', '00000001000000000000000g', 'RECOVERYXLOG'])
      expect(isArchivableName(name), name).toBe(false);
  });

  it('converts LSNs', () => {
    expect(parseLsn('1/2A')).toBe(0x10000002an);
    expect(formatLsn(0x10000002an)).toBe('1/2A');
    expect(segmentOfLsn(parseLsn('0/3000060'))).toBe(3n);
  });

  it('reads history files and backup labels', () => {
    expect(
      parseHistory('1\t0/3000060\tno recovery target specified\n\n2\t0/5000000\tbefore 2026-11-21\n'),
    ).toEqual([
      { parent: 1, switchLsn: 0x3000060n },
      { parent: 2, switchLsn: 0x5000000n },
    ]);
    const label = parseBackupLabel(
      'START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nSTOP WAL LOCATION: 0/2000100 (file 000000010000000000000002)\nSTART TIME: 2026-11-21 07:00:00 UTC\nSTART TIMELINE: 1\n',
    );
    expect(label).toMatchObject({
      startSegment: '000000010000000000000002',
      stopLsn: 0x2000100n,
      startTimeline: 1,
    });
  });

  it('finds the runs and gaps of archived segments per timeline', () => {
    const runs = timelineRuns([
      '000000010000000000000001',
      '000000010000000000000002',
      '000000010000000000000005',
      '00000002.history',
      '000000020000000000000005',
      '000000020000000000000006',
    ]);
    expect(runs).toEqual([
      {
        timeline: 1,
        first: '000000010000000000000001',
        last: '000000010000000000000005',
        segments: 3,
        gaps: ['000000010000000000000003', '000000010000000000000004'],
        missingCount: 2,
      },
      {
        timeline: 2,
        first: '000000020000000000000005',
        last: '000000020000000000000006',
        segments: 2,
        gaps: [],
        missingCount: 0,
      },
    ]);
  });
});
