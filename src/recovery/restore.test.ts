import { describe, expect, it } from 'vitest';

import { isLifeboatError } from '../errors.js';
import { parseRecoveryTarget } from './restore.js';

describe('parseRecoveryTarget (--at)', () => {
  it('reads latest, immediate, times with a zone, LSNs, xids and names', () => {
    expect(parseRecoveryTarget('latest')).toEqual({ kind: 'latest' });
    expect(parseRecoveryTarget('immediate')).toEqual({ kind: 'immediate' });
    expect(parseRecoveryTarget('2026-11-21T14:30:00+01:00')).toEqual({
      kind: 'time',
      value: '2026-11-21T13:30:00.000Z',
    });
    expect(parseRecoveryTarget('2026-11-21 14:30:00.5Z')).toEqual({
      kind: 'time',
      value: '2026-11-21T14:30:00.500Z',
    });
    expect(parseRecoveryTarget('lsn:0/3000060')).toEqual({ kind: 'lsn', value: '0/3000060' });
    expect(parseRecoveryTarget('xid:1234')).toEqual({ kind: 'xid', value: '1234' });
    expect(parseRecoveryTarget('name:before migration')).toEqual({ kind: 'name', value: 'before migration' });
  });

  it('refuses a time without a zone, garbage, and malformed LSNs and xids', () => {
    for (const value of ['2026-11-21T14:30:00', 'yesterday', 'lsn:zz', 'xid:-1', '']) {
      let error: unknown;
      try {
        parseRecoveryTarget(value);
      } catch (caught) {
        error = caught;
      }
      expect(isLifeboatError(error, 'LB_USAGE'), value).toBe(true);
    }
  });
});
