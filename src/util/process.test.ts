import { execFileSync } from 'node:child_process';

import { describe, expect, it } from 'vitest';

import { shellQuote } from './process.js';

describe('shellQuote', () => {
  it('gives sh the exact value back, quotes and spaces included', () => {
    for (const value of ['plain', 'with space', "it's", "'", '$HOME `x` "y" \\z', '']) {
      expect(execFileSync('sh', ['-c', `printf %s ${shellQuote(value)}`]).toString()).toBe(value);
    }
  });
});
