import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { FsBackend } from '../storage/index.js';
import { acquireLock, isStale, listLocks, REFRESH_MS, STALE_MS, type HeldLock } from './locks.js';

const MINUTE = 60_000;

describe('repository locks', () => {
  let root: string;
  let storage: FsBackend;
  let held: HeldLock | undefined;

  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] });
    root = mkdtempSync(join(tmpdir(), 'lifeboat-locks-'));
    storage = new FsBackend({ root });
  });

  afterEach(async () => {
    await held?.release().catch(() => undefined);
    held = undefined;
    vi.useRealTimers();
    rmSync(root, { recursive: true, force: true });
  });

  const stored = async (name: string) =>
    JSON.parse((await storage.read(name)).toString('utf8')) as { refreshed: string };

  it('refreshes a held lock every REFRESH_MS and stays held', async () => {
    held = await acquireLock(storage, 'backup', false);
    const first = (await stored(held.name)).refreshed;
    await vi.advanceTimersByTimeAsync(REFRESH_MS);
    await held.assertHeld();
    const second = (await stored(held.name)).refreshed;
    expect(Date.parse(second) - Date.parse(first)).toBe(REFRESH_MS);
    // Held for longer than STALE_MS, refreshed all along (each refresh done before the clock moves on,
    // as the storage is far faster than five minutes): still held.
    for (let tick = 0; tick * REFRESH_MS <= STALE_MS; tick++) {
      await vi.advanceTimersByTimeAsync(REFRESH_MS);
      await expect(held.assertHeld()).resolves.toBeUndefined();
    }
  });

  it('a lock not refreshed for STALE_MS/2 (the process was suspended) stays lost and is not written again', async () => {
    held = await acquireLock(storage, 'backup', false);
    const before = (await stored(held.name)).refreshed;
    // The clock jumps as after a suspension: the refresh timer fires late, past half the stale time.
    vi.setSystemTime(Date.now() + STALE_MS / 2 + MINUTE);
    await vi.advanceTimersByTimeAsync(REFRESH_MS);
    await expect(held.assertHeld()).rejects.toMatchObject({
      code: 'LB_REPO_LOCKED',
      message: expect.stringMatching(/lost its lock \(not refreshed for 2\d minutes\)/) as unknown,
    });
    expect((await stored(held.name)).refreshed).toBe(before); // the stale lock was not revived
    // Later refreshes do not revive it either.
    await vi.advanceTimersByTimeAsync(3 * REFRESH_MS);
    expect((await stored(held.name)).refreshed).toBe(before);
    await expect(held.assertHeld()).rejects.toMatchObject({ code: 'LB_REPO_LOCKED' });
  });

  it('a lock removed by another client (taken for stale) is not recreated by the refresh', async () => {
    held = await acquireLock(storage, 'backup', false);
    await storage.delete(held.name);
    await vi.advanceTimersByTimeAsync(REFRESH_MS);
    // assertHeld waits for the refresh in flight: only then is the listing meaningful.
    await expect(held.assertHeld()).rejects.toMatchObject({
      message: expect.stringMatching(/its lock file was removed/) as unknown,
    });
    expect(await listLocks(storage)).toEqual([]);
  });

  it('an exclusive lock conflicts with a live shared one, not with one older than STALE_MS', async () => {
    held = await acquireLock(storage, 'backup', false);
    await expect(acquireLock(storage, 'prune', true)).rejects.toMatchObject({
      code: 'LB_REPO_LOCKED',
      message: expect.stringMatching(/shared lock for backup by pid/) as unknown,
    });
    // Judged by the storage's clock: a lock whose object was last written more than STALE_MS ago.
    const [listed] = await listLocks(storage);
    expect(isStale(listed!, listed!.modified.getTime() + STALE_MS - 1)).toBe(false);
    expect(isStale(listed!, listed!.modified.getTime() + STALE_MS + 1)).toBe(true);
  });

  it('two clients racing for exclusive locks both back off; neither holds the repository', async () => {
    const results = await Promise.allSettled([
      acquireLock(storage, 'prune', true),
      acquireLock(storage, 'prune', true),
    ]);
    const won = results.filter((result) => result.status === 'fulfilled');
    // At most one wins, and every loser names LB_REPO_LOCKED.
    expect(won.length).toBeLessThanOrEqual(1);
    for (const result of results) {
      if (result.status === 'rejected') expect(result.reason).toMatchObject({ code: 'LB_REPO_LOCKED' });
    }
    for (const result of won) await result.value.release();
    expect(await listLocks(storage)).toEqual([]);
  });
});
