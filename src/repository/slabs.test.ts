import { describe, expect, it } from 'vitest';

import { SlabPool } from './slabs.js';

describe('SlabPool', () => {
  it('creates at most `count` slabs of shared memory and hands a released one to the next waiter', async () => {
    const pool = new SlabPool(1024, 2);
    const first = await pool.acquire();
    const second = await pool.acquire();
    expect(first.bytes.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(first.bytes.length).toBe(1024);
    let third: unknown;
    const waiting = pool.acquire().then((slab) => (third = slab));
    first.retain(); // a job holding a chunk of it
    first.release(); // the filler moves on
    await Promise.resolve();
    expect(third).toBeUndefined(); // still held by the job
    first.release(); // the job is done
    expect(await waiting).toBe(first);
    second.release();
    expect(await pool.acquire()).toBe(second);
  });

  it('refuses a release without a reference', async () => {
    const pool = new SlabPool(16, 1);
    const slab = await pool.acquire();
    slab.release();
    expect(() => slab.release()).toThrow(/released more often/);
  });
});
