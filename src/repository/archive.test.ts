// sameContent: how a push is compared with an archived file's record (by BLAKE3 when both have it, else
// by SHA-256, never acknowledged without a hash in common).
import { describe, expect, it } from 'vitest';

import { sameContent } from './archive.js';

describe('sameContent', () => {
  const a = { size: 10, blake3: 'b3-a', sha256: 'sha-a' };
  it('compares by BLAKE3 when both have it, whatever their SHA-256', () => {
    expect(sameContent(a, { size: 10, blake3: 'b3-a' })).toBe(true);
    expect(sameContent(a, { size: 10, blake3: 'b3-b', sha256: 'sha-a' })).toBe(false);
  });
  it('falls back to SHA-256 when one has no BLAKE3', () => {
    expect(sameContent({ size: 10, sha256: 'sha-a' }, a)).toBe(true);
    expect(sameContent({ size: 10, sha256: 'sha-b' }, a)).toBe(false);
  });
  it('differs by size, or without a hash in common', () => {
    expect(sameContent(a, { ...a, size: 11 })).toBe(false);
    expect(sameContent({ size: 10, sha256: 'sha-a' }, { size: 10, blake3: 'b3-a' })).toBe(false);
    expect(sameContent({ size: 10 }, { size: 10 })).toBe(false);
  });
});
