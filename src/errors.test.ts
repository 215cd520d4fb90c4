// Checks that docs/errors.md and the catalogue agree in both directions: every code is documented with
// its exit code and HTTP status, and the page documents no code that does not exist.
import { readFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { ERROR_CATALOGUE, type ErrorCode, LifeboatError, causeChain, toLifeboatError } from './errors.js';

const page = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');
const codes = Object.keys(ERROR_CATALOGUE) as ErrorCode[];

describe('error catalogue and docs/errors.md', () => {
  const tableRows = new Map(
    [...page.matchAll(/^\| (LB_[A-Z0-9_]+) \| (\d) \| (\d{3}) \| (yes|no) \|$/gm)].map((match) => [
      match[1] as string,
      { exit: Number(match[2]), http: Number(match[3]), retryable: match[4] === 'yes' },
    ]),
  );
  const headings = new Set([...page.matchAll(/^### (LB_[A-Z0-9_]+)$/gm)].map((match) => match[1]));

  it('documents every catalogue code with its exit code, status and retryability', () => {
    for (const code of codes) {
      const spec = ERROR_CATALOGUE[code];
      expect(tableRows.get(code), code).toEqual({
        exit: spec.exitCode,
        http: spec.http,
        retryable: 'retryable' in spec && spec.retryable === true,
      });
      expect(headings.has(code), `a "### ${code}" section`).toBe(true);
    }
  });

  it('documents no code that the catalogue lacks', () => {
    const documented = new Set([...tableRows.keys(), ...headings]);
    expect([...documented].filter((code) => !codes.includes(code as ErrorCode))).toEqual([]);
  });

  it('uses 2 for configuration and usage mistakes, 3 for mismatches and 1 for failed operations', () => {
    const usage = new Set(['LB_USAGE', 'LB_SOURCE_UNKNOWN']);
    for (const code of codes) {
      const expected =
        usage.has(code) || code.startsWith('LB_CONFIG_') ? 2 : code === 'LB_VALIDATION_MISMATCH' ? 3 : 1;
      expect(ERROR_CATALOGUE[code].exitCode, code).toBe(expected);
    }
  });
});

describe('LifeboatError', () => {
  it('carries code, exit code, status and its cause', () => {
    const cause = new Error('ECONNREFUSED');
    const error = new LifeboatError('LB_STORAGE_UNAVAILABLE', 'cannot reach', {
      cause,
      details: { host: 'x' },
    });
    expect(error.exitCode).toBe(1);
    expect(error.httpStatus).toBe(503);
    expect(error.retryable).toBe(true);
    expect(error.cause).toBe(cause);
    expect(causeChain(error)).toEqual([error, cause]);
    expect(error.toJSON()).toEqual({
      code: 'LB_STORAGE_UNAVAILABLE',
      message: 'cannot reach',
      details: { host: 'x' },
    });
  });

  it('wraps unknown throwables as LB_INTERNAL', () => {
    const wrapped = toLifeboatError(new TypeError('boom'));
    expect(wrapped.code).toBe('LB_INTERNAL');
    expect(wrapped.cause).toBeInstanceOf(TypeError);
    expect(toLifeboatError(wrapped)).toBe(wrapped);
  });
});
