// RestoreArena: a ring of regions reserved and released in order, never overlapping, full when the
// oldest live region is in the way.
import { describe, expect, it } from 'vitest';

import { RestoreArena } from './restore-arena.js';

describe('RestoreArena', () => {
  it('places regions one after the other, wraps to the start, and is full when the oldest is in the way', () => {
    const arena = new RestoreArena(100);
    expect(arena.tryReserve(60)).toBe(0);
    expect(arena.tryReserve(40)).toBe(60);
    expect(arena.tryReserve(1)).toBeUndefined();
    arena.releaseOldest(); // [60, 100) left
    expect(arena.tryReserve(61)).toBeUndefined();
    expect(arena.tryReserve(60)).toBe(0); // wrapped: [60, 100), [0, 60)
    // The newest ends where the oldest starts: no room, even though the end of the arena looks free.
    expect(arena.tryReserve(1)).toBeUndefined();
    arena.releaseOldest(); // [0, 60)
    expect(arena.tryReserve(40)).toBe(60);
    expect(arena.live).toBe(2);
    arena.releaseOldest();
    arena.releaseOldest();
    expect(arena.live).toBe(0);
    expect(arena.tryReserve(100)).toBe(0);
    expect(() => arena.tryReserve(101)).toThrow(RangeError);
    expect(() => arena.tryReserve(0)).toThrow(RangeError);
  });

  it('never hands out overlapping regions over a long random run', () => {
    const size = 1000;
    const arena = new RestoreArena(size);
    const live: Array<[number, number]> = [];
    let seed = 7;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    for (let step = 0; step < 20_000; step++) {
      if (live.length > 0 && random() < 0.45) {
        arena.releaseOldest();
        live.shift();
        continue;
      }
      const length = 1 + Math.floor(random() * 400);
      const start = arena.tryReserve(length);
      if (start === undefined) {
        expect(live.length).toBeGreaterThan(0); // an empty arena always has room
        continue;
      }
      expect(start + length).toBeLessThanOrEqual(size);
      for (const [from, to] of live) expect(start >= to || start + length <= from).toBe(true);
      live.push([start, start + length]);
    }
  });

  it('releases only what it holds', () => {
    expect(() => new RestoreArena(10).releaseOldest()).toThrow(/no region/);
    expect(() => new RestoreArena(0)).toThrow(RangeError);
  });
});
