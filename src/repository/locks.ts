// Repository locks: backups (and reads) may run side by side; forget, prune and key changes need the
// repository alone.
//
// Terms:
//   lock        locks/<random id>: plaintext JSON { version, hostname, pid, operation, exclusive, created,
//               refreshed }. Written create-only; rewritten every REFRESH_MS while held.
//   shared      taken by backups, restores and check. Fails if a live exclusive lock exists.
//   exclusive   taken by forget, prune and key changes. Fails if any other live lock exists.
//   stale       its object was last modified more than STALE_MS ago by the storage's clock (not the
//               holder's), or it belongs to a process of this host that no longer runs. Stale locks are
//               ignored, and removed by `lifeboat unlock`. A holder that could not refresh for STALE_MS/2
//               considers its lock lost (assertHeld) and makes nothing visible; a lost
//               lock is never written again (a refresh would revive a lock judged stale or unlocked).
// Protocol (as restic's): write our lock first, then list the others. Two racing clients both see each
// other and both give up, which is safe; neither can miss the other.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';

import { LifeboatError, isLifeboatError } from '../errors.js';
import type { StorageBackend } from '../storage/index.js';

export const REFRESH_MS = 5 * 60_000;
export const STALE_MS = 30 * 60_000;

export interface LockInfo {
  version: 1;
  hostname: string;
  pid: number;
  operation: string;
  exclusive: boolean;
  created: string;
  refreshed: string;
}

export interface HeldLock {
  name: string;
  info: LockInfo;
  /**
   * Throws LB_REPO_LOCKED unless the lock still exists and was refreshed recently enough that no other
   * client can have taken it for stale. A backup calls it before it makes anything visible.
   */
  assertHeld(): Promise<void>;
  /** Stops refreshing and removes the lock. */
  release(): Promise<void>;
}

export interface ListedLock {
  name: string;
  info: LockInfo;
  /** When the storage last saw the lock written (its clock). */
  modified: Date;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function isStale(lock: ListedLock, now = Date.now()): boolean {
  if (now - lock.modified.getTime() > STALE_MS) return true;
  return lock.info.hostname === hostname() && !processAlive(lock.info.pid);
}

/** Every lock in the repository; an unreadable one counts as a live exclusive lock of unknown origin. */
export async function listLocks(storage: StorageBackend): Promise<ListedLock[]> {
  const locks: ListedLock[] = [];
  for await (const object of storage.list('locks/')) {
    try {
      const info = JSON.parse((await storage.read(object.name)).toString('utf8')) as LockInfo;
      locks.push({ name: object.name, info, modified: object.modified });
    } catch (error) {
      if (isLifeboatError(error, 'LB_STORAGE_NOT_FOUND')) continue; // released meanwhile
      if (!(error instanceof SyntaxError)) throw error;
      const when = object.modified.toISOString();
      const info: LockInfo = {
        version: 1,
        hostname: '(unreadable lock)',
        pid: 0,
        operation: object.name,
        exclusive: true,
        created: when,
        refreshed: when,
      };
      locks.push({ name: object.name, info, modified: object.modified });
    }
  }
  return locks;
}

function describeLock(info: LockInfo): string {
  return `${info.exclusive ? 'exclusive' : 'shared'} lock for ${info.operation} by pid ${info.pid} on ${info.hostname} since ${info.created}`;
}

/**
 * Takes a lock or fails with LB_REPO_LOCKED naming the conflicting holder. With `waitMs`, a conflict
 * is retried (every 0.2-0.7 s) until then: a prune meeting the second-long lock of a wal-push, or a
 * wal-push meeting a prune, waits instead of failing (restic's --retry-lock).
 */
export async function acquireLock(
  storage: StorageBackend,
  operation: string,
  exclusive: boolean,
  waitMs = 0,
): Promise<HeldLock> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      return await tryAcquireLock(storage, operation, exclusive);
    } catch (error) {
      if (!isLifeboatError(error, 'LB_REPO_LOCKED') || Date.now() >= deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 200 + Math.random() * 500));
    }
  }
}

async function tryAcquireLock(
  storage: StorageBackend,
  operation: string,
  exclusive: boolean,
): Promise<HeldLock> {
  const now = new Date().toISOString();
  const info: LockInfo = {
    version: 1,
    hostname: hostname(),
    pid: process.pid,
    operation,
    exclusive,
    created: now,
    refreshed: now,
  };
  const name = `locks/${randomBytes(16).toString('hex')}`;
  await storage.write(name, Buffer.from(JSON.stringify(info)), { createOnly: true });
  let conflict: ListedLock | undefined;
  try {
    const others = (await listLocks(storage)).filter((lock) => lock.name !== name && !isStale(lock));
    conflict = others.find((lock) => exclusive || lock.info.exclusive);
  } catch (error) {
    await storage.delete(name).catch(() => undefined);
    throw error;
  }
  if (conflict) {
    await storage.delete(name);
    throw new LifeboatError(
      'LB_REPO_LOCKED',
      `cannot take a ${exclusive ? 'exclusive' : 'shared'} lock for ${operation}: the repository has a ${describeLock(conflict.info)}`,
      { details: { holder: conflict.info } },
    );
  }
  let refreshing = Promise.resolve();
  let lastRefresh = Date.now();
  // Once lost, a lock stays lost: after a gap of STALE_MS/2 without a good refresh (the process was
  // suspended, the storage unreachable), another client may have judged it stale and a prune may have
  // deleted this operation's packs. Writing the lock again would hide that, and would bring back a
  // lock that `lifeboat unlock` removed.
  let lostReason: string | undefined;
  const refresh = async () => {
    if (lostReason !== undefined) return;
    // Measured when the refresh runs, not when its tick fired: one queued behind a slow refresh must
    // not rewrite a lock that has aged past the limit meanwhile.
    const attempt = Date.now();
    const gap = attempt - lastRefresh;
    if (gap > STALE_MS / 2) {
      lostReason = `not refreshed for ${Math.round(gap / 60_000)} minutes`;
      return;
    }
    try {
      await storage.stat(name);
    } catch (error) {
      if (isLifeboatError(error, 'LB_STORAGE_NOT_FOUND')) lostReason = 'its lock file was removed';
      return; // any other failure shows in assertHeld(), as the lock then ages
    }
    info.refreshed = new Date(attempt).toISOString();
    try {
      await storage.write(name, Buffer.from(JSON.stringify(info)));
      lastRefresh = attempt;
    } catch {
      // a failed refresh shows in assertHeld()
    }
  };
  const timer = setInterval(() => {
    refreshing = refreshing.then(refresh);
  }, REFRESH_MS);
  timer.unref();
  return {
    name,
    info,
    assertHeld: async () => {
      const lost = (reason: string) =>
        new LifeboatError(
          'LB_REPO_LOCKED',
          `the ${operation} lost its lock (${reason}); nothing was made visible: run it again`,
        );
      await refreshing;
      if (lostReason !== undefined) throw lost(lostReason);
      const since = Date.now() - lastRefresh;
      if (since > STALE_MS / 2) {
        lostReason = `not refreshed for ${Math.round(since / 60_000)} minutes`;
        throw lost(lostReason);
      }
      try {
        await storage.stat(name);
      } catch (error) {
        if (isLifeboatError(error, 'LB_STORAGE_NOT_FOUND')) throw lost('its lock file was removed');
        throw error;
      }
    },
    release: async () => {
      clearInterval(timer);
      await refreshing;
      await storage.delete(name);
    },
  };
}

/** Removes stale locks (all locks with `all`); returns the names removed. */
export async function removeLocks(storage: StorageBackend, all = false): Promise<string[]> {
  const removed: string[] = [];
  for (const lock of await listLocks(storage)) {
    if (all || isStale(lock)) {
      await storage.delete(lock.name);
      removed.push(lock.name);
    }
  }
  return removed;
}
