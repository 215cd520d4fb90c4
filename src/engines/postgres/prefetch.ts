// WAL prefetch for restores lifeboat drives itself: while the restored server replays, lifeboat (which
// has the repository open already) fetches the segments it will ask for next into a spool directory,
// and restore_command first tries to take the file from there (a rename), falling back to one
// `lifeboat wal-fetch` process per file. pgBackRest's archive-get async does the same.
//
// Terms:
//   spool    <data directory>.lifeboat-prefetch, beside the data directory (same filesystem: the take is
//            a rename), owned by the server's user, removed when recovery ends.
//   order    segments from the base backup's start segment on, by segment number then timeline.
//   window   at most `window` files wait in the spool; the server takes them (mv), making room.
import { chown, mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import type { WalPrefetch } from '../engine.js';
import { shellQuote } from '../../util/process.js';
import { parseSegmentName } from './wal-names.js';

export const spoolOf = (dataDirectory: string): string =>
  `${dataDirectory.replace(/\/+$/, '')}.lifeboat-prefetch`;

/** restore_command taking a prefetched file when there is one, else running the given command. */
export function prefetchingCommand(spool: string, fallback: string): string {
  return `mv -f ${shellQuote(spool)}/%f "%p" 2>/dev/null || ${fallback}`;
}

export async function prepareSpool(spool: string, owner: { uid: number; gid: number }): Promise<void> {
  await rm(spool, { recursive: true, force: true });
  await mkdir(spool, { mode: 0o700 });
  if (process.getuid?.() === 0) await chown(spool, owner.uid, owner.gid);
}

/** Fetches ahead until `stopped()` says recovery ended; errors only stop the prefetch (the fallback fetches). */
export async function runPrefetch(
  spool: string,
  prefetch: WalPrefetch,
  startSegment: string,
  segmentSize: number,
  stopped: () => boolean,
  log: (line: string) => void,
): Promise<number> {
  const start = parseSegmentName(startSegment, segmentSize)!.number;
  let fetched = 0;
  try {
    const names = (await prefetch.list())
      .map((name) => ({ name, parsed: parseSegmentName(name, segmentSize) }))
      .filter((entry) => entry.parsed !== undefined && entry.parsed.number >= start)
      .sort((a, b) =>
        a.parsed!.number === b.parsed!.number
          ? a.parsed!.timeline - b.parsed!.timeline
          : a.parsed!.number < b.parsed!.number
            ? -1
            : 1,
      )
      .map((entry) => entry.name);
    const window = prefetch.window ?? 8;
    for (const name of names) {
      while (!stopped() && (await readdir(spool)).filter((file) => !file.startsWith('.')).length >= window) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      if (stopped()) break;
      const data = await prefetch.read(name);
      const temporary = join(spool, `.${name}.partial`);
      await writeFile(temporary, data, { mode: 0o600 });
      await rename(temporary, join(spool, name));
      fetched++;
    }
  } catch (error) {
    log(`WAL prefetch stopped (${(error as Error).message}); the server fetches the rest itself`);
  }
  return fetched;
}
