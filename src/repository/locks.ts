// Repository locks: backups may run side by side; forget and prune need the repository alone.
//
// Terms:
//   lock        locks/<random id>: plaintext JSON { version, hostname, pid, operation, exclusive, created,
//               refreshed }. Written create-only; refreshed (rewritten) every REFRESH_MS while held.
//   shared      taken by backups. Fails if a live exclusive lock exists.
//   exclusive   taken by forget and prune. Fails if any other live lock exists.
//   stale       refreshed more than STALE_MS ago, or held by a process of this host that no longer runs.
//               Stale locks are ignored, and removed by `lifeboat unlock`.
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
  /** Stops refreshing and removes the lock. */
  release(): Promise<void>;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function isStale(info: LockInfo, now = Date.now()): boolean {
  if (now - Date.parse(info.refreshed) > STALE_MS) return true;
  return info.hostname === hostname() && !processAlive(info.pid);
}

/** Every lock in the repository (unreadable ones are reported as stale exclusive locks). */
export async function listLocks(storage: StorageBackend): Promise<Array<{ name: string; info: LockInfo }>> {
  const locks: Array<{ name: string; info: LockInfo }> = [];
  for await (const object of storage.list('locks/')) {
    try {
      locks.push({
        name: object.name,
        info: JSON.parse((await storage.read(object.name)).toString('utf8')) as LockInfo,
      });
    } catch (error) {
      if (isLifeboatError(error, 'LB_STORAGE_NOT_FOUND')) continue; // released meanwhile
      if (!(error instanceof SyntaxError)) throw error;
    }
  }
  return locks;
}

function describeLock(info: LockInfo): string {
  return `${info.exclusive ? 'exclusive' : 'shared'} lock for ${info.operation} by pid ${info.pid} on ${info.hostname} since ${info.created}`;
}

/** Takes a lock or fails with LB_REPO_LOCKED naming the conflicting holder. */
export async function acquireLock(
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
  const others = (await listLocks(storage)).filter((lock) => lock.name !== name && !isStale(lock.info));
  const conflict = others.find((lock) => exclusive || lock.info.exclusive);
  if (conflict) {
    await storage.delete(name);
    throw new LifeboatError(
      'LB_REPO_LOCKED',
      `cannot take a ${exclusive ? 'exclusive' : 'shared'} lock for ${operation}: the repository has a ${describeLock(conflict.info)}`,
      { details: { holder: conflict.info } },
    );
  }
  let refreshing = Promise.resolve();
  const timer = setInterval(() => {
    info.refreshed = new Date().toISOString();
    refreshing = storage.write(name, Buffer.from(JSON.stringify(info))).catch(() => undefined);
  }, REFRESH_MS);
  timer.unref();
  return {
    name,
    info,
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
    if (all || isStale(lock.info)) {
      await storage.delete(lock.name);
      removed.push(lock.name);
    }
  }
  return removed;
}
