import { describe, expect, it } from 'vitest';

import { BlobIndex } from './blob-index.js';

const blob = (id: string, offset: number) => ({
  id,
  offset,
  length: 10,
  rawLength: 10,
  compression: 0 as const,
});

describe('BlobIndex', () => {
  it('keeps the union of blob lists when index files list a pack differently (after an interrupted prune)', () => {
    const index = new BlobIndex();
    index.addPack('p1', [blob('a', 0)]); // a prune's new index: only the live blob
    index.addPack('p1', [blob('a', 0), blob('b', 10)]); // the old index: every blob
    expect(index.blobsOf('p1').map((entry) => entry.id)).toEqual(['a', 'b']);
    expect(index.get('b')?.pack).toBe('p1');
  });

  it('maps a blob to the first pack that lists it', () => {
    const index = new BlobIndex();
    index.addPack('p1', [blob('a', 0)]);
    index.addPack('p2', [blob('a', 0)]);
    expect(index.get('a')?.pack).toBe('p1');
    expect([...index.packs()]).toEqual([]); // packs() lists packs named by loaded index files only
  });
});
