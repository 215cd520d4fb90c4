// WAL prefetch for restores lifeboat drives itself: while the restored server replays, lifeboat (which
// has the repository open already) fetches the segments it will ask for next into a spool directory,
// and restore_command first tries to take the file from there (a rename), falling back to one
// `lifeboat wal-fetch` process per file. pgBackRest's archive-get async does the same.
//
// The spool also answers what a recovery asks for besides the next segment, each of which otherwise
// cost a `wal-fetch` process (0.5-1 s on two busy cores; six of them were ~3.5 s of a 26 s recovery):
// the timeline history files (asked for at the start and again at the end), the segment after the last
// one archived (asked for twice before recovery ends), and the last segment once more (read again to
// start the new timeline).
//
// Terms:
//   spool    <data directory>.lifeboat-prefetch, beside the data directory (same filesystem: the take is
//            a rename), owned by the server's user, removed when recovery ends.
//   order    segments from the base backup's start segment on, by segment number then timeline.
//   path     the timelines the server follows (recovery_target_timeline 'latest': from the base backup's
//            timeline through each next history file the archive has, as the server probes them), each
//            read from its first segment (the one holding its switch point) to its last (the one holding
//            the next one's). For each segment number the server reads the newest timeline of the path
//            that has begun and is archived; only that file is spooled. Segments of abandoned timelines
//            (after a point-in-time restore, the old timeline's segments past the switch, or a sibling
//            timeline's) would never be taken and would fill the window.
//   window   at most `window` segments wait in the spool; the server takes them (mv), making room.
//   kept     <spool>/.keep: files the server may ask for more than once, served by a copy: every history
//            file of the archive, and the last segment of the archive.
//   none     <spool>/.none: an empty file per name the archive does not have, answered "not in the
//            archive" by the shell at once: the first timeline's history file (there is none) and the
//            one past the newest timeline's, and, in a recovery to latest, the segment after the last
//            one (written once a second listing of the archive, when the prefetch has reached its end,
//            shows nothing newer). The archive is listed again every second until recovery ends: a
//            history file or segment archived meanwhile takes its mark away (and is fetched), so a mark
//            is at most that old when the server believes it. If lifeboat dies during the recovery, its
//            marks stay until the spool is removed: the server then ends a recovery to latest at the
//            archive's end as lifeboat last saw it.
import { chown, mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import type { WalPrefetch } from '../engine.js';
import { shellQuote } from '../../util/process.js';
import {
  historyName,
  isHistoryName,
  parseHistory,
  parseSegmentName,
  segmentName,
  segmentOfLsn,
} from './wal-names.js';

export const spoolOf = (dataDirectory: string): string =>
  `${dataDirectory.replace(/\/+$/, '')}.lifeboat-prefetch`;

const KEPT = '.keep';
const NONE = '.none';

/**
 * restore_command taking a prefetched file when there is one (a rename), else a kept one (a copy), else
 * answering "not in the archive" for a name the spool knows is missing, else running the given command.
 */
export function prefetchingCommand(spool: string, fallback: string): string {
  const at = shellQuote(spool);
  return `mv -f ${at}/%f "%p" 2>/dev/null || cp ${at}/${KEPT}/%f "%p" 2>/dev/null || { [ ! -e ${at}/${NONE}/%f ] && ${fallback}; }`;
}

type Owner = { uid: number; gid: number };

export async function prepareSpool(spool: string, owner: Owner): Promise<void> {
  await rm(spool, { recursive: true, force: true });
  for (const directory of [spool, join(spool, KEPT), join(spool, NONE)]) {
    await mkdir(directory, { mode: 0o700 });
    if (process.getuid?.() === 0) await chown(directory, owner.uid, owner.gid);
  }
}

export interface PrefetchOptions {
  /** The server's user, given every file written when lifeboat runs as root (the server reads them). */
  owner?: Owner;
  /**
   * A recovery to the end of the archive (target latest): once the prefetch has reached the end, the
   * segment after it is marked missing, and the archive is listed again every second until recovery
   * ends (new WAL takes the mark away and is fetched). Otherwise the prefetch stops at the end.
   */
  toEnd?: boolean;
  /** Between listings of the archive at its end (tests). Default 1000 ms. */
  pollMs?: number;
}

/**
 * Fetches ahead until `stopped()` says recovery ended; errors only stop the prefetch (the fallback
 * fetches). Returns the files written.
 */
export async function runPrefetch(
  spool: string,
  prefetch: WalPrefetch,
  startSegment: string,
  segmentSize: number,
  stopped: () => boolean,
  log: (line: string) => void,
  options: PrefetchOptions = {},
): Promise<number> {
  const { owner, toEnd = false, pollMs = 1000 } = options;
  const start = parseSegmentName(startSegment, segmentSize)!.number;
  let fetched = 0;
  /** Writes `data` as `directory/name` whole (a rename), owned by the server's user. */
  const put = async (directory: string, name: string, data: Buffer | string) => {
    const temporary = join(directory, `.${name}.partial`);
    await writeFile(temporary, data, { mode: 0o600 });
    if (owner !== undefined && process.getuid?.() === 0) await chown(temporary, owner.uid, owner.gid);
    await rename(temporary, join(directory, name));
  };
  const startTimeline = parseSegmentName(startSegment, segmentSize)!.timeline;
  /** History files read (and kept) so far, by timeline. */
  const historyOf = new Map<number, string>();
  /**
   * The timelines the server follows, each with the segments read from it; undefined when the archive's
   * history files do not lead from the base backup's timeline (then nothing is left out).
   */
  const pathOf = (names: string[]): Map<number, { begin: bigint; end: bigint }> | undefined => {
    const listed = new Set(names);
    let newest = startTimeline;
    while (newest < 0xffffffff && listed.has(historyName(newest + 1)) && historyOf.has(newest + 1)) newest++;
    const forever = 1n << 64n;
    if (newest === 1) return new Map([[1, { begin: 0n, end: forever }]]);
    const history = historyOf.get(newest);
    if (history === undefined) return undefined;
    const path = new Map<number, { begin: bigint; end: bigint }>();
    let begin = 0n;
    for (const { parent, switchLsn } of parseHistory(history)) {
      // A timeline ends with the segment holding its switch point (the server never goes back to an
      // older timeline than the file it read last).
      const end = segmentOfLsn(switchLsn, segmentSize);
      path.set(parent, { begin, end });
      begin = end;
    }
    path.set(newest, { begin, end: forever });
    return path.has(startTimeline) ? path : undefined;
  };
  const within = (span: { begin: bigint; end: bigint } | undefined, number: bigint) =>
    span !== undefined && span.begin <= number && number <= span.end;
  /** Archived segments from the start on that the server will read, in order, after `after` when given. */
  const segmentsOf = (names: string[], after?: { number: bigint; timeline: number }) => {
    const path = pathOf(names);
    const candidates = names
      .map((name) => ({ name, parsed: parseSegmentName(name, segmentSize) }))
      .filter(
        (entry) =>
          entry.parsed !== undefined &&
          entry.parsed.number >= start &&
          (path === undefined || within(path.get(entry.parsed.timeline), entry.parsed.number)),
      );
    // Per segment number, the newest timeline the path allows.
    const chosen = new Map<bigint, number>();
    for (const { parsed } of candidates)
      chosen.set(parsed!.number, Math.max(chosen.get(parsed!.number) ?? 0, parsed!.timeline));
    return candidates
      .filter(
        (entry) =>
          (path === undefined || chosen.get(entry.parsed!.number) === entry.parsed!.timeline) &&
          (after === undefined ||
            entry.parsed!.number > after.number ||
            (entry.parsed!.number === after.number && entry.parsed!.timeline > after.timeline)),
      )
      .sort((a, b) =>
        a.parsed!.number === b.parsed!.number
          ? a.parsed!.timeline - b.parsed!.timeline
          : a.parsed!.number < b.parsed!.number
            ? -1
            : 1,
      );
  };
  const timelineOf = (history: string) => parseInt(history.slice(0, 8), 16);
  /** History files not seen before: kept (the server asks for them more than once), unmarked. */
  const keepHistories = async (listing: string[]) => {
    for (const name of listing.filter(isHistoryName)) {
      if (historyOf.has(timelineOf(name)) || stopped()) continue;
      const data = await prefetch.read(name);
      await put(join(spool, KEPT), name, data);
      await rm(join(spool, NONE, name), { force: true });
      historyOf.set(timelineOf(name), data.toString('utf8'));
      fetched++;
    }
  };
  try {
    let listing = await prefetch.list();
    // History files first (tiny; the server asks for them before any segment). Marked missing: the
    // first timeline's (it never has one) and the one past the newest (the server probes for a newer
    // timeline at the start and at the end of recovery).
    await keepHistories(listing);
    let newest = 1;
    for (const name of listing) {
      const timeline = isHistoryName(name) ? timelineOf(name) : parseSegmentName(name, segmentSize)?.timeline;
      if (timeline !== undefined && timeline > newest) newest = timeline;
    }
    for (const timeline of new Set([1, newest + 1])) {
      const name = historyName(timeline);
      if (!historyOf.has(timeline) && timeline <= 0xffffffff) await put(join(spool, NONE), name, '');
    }
    const window = prefetch.window ?? 8;
    let segments = segmentsOf(listing);
    let last: { name: string; number: bigint; timeline: number } | undefined;
    let kept: string | undefined;
    let marked: string | undefined;
    for (;;) {
      for (const [index, { name, parsed }] of segments.entries()) {
        while (
          !stopped() &&
          (await readdir(spool)).filter((file) => !file.startsWith('.')).length >= window
        ) {
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        if (stopped()) return fetched;
        const data = await prefetch.read(name);
        // The last one listed is kept as well: the server reads it again to start its new timeline.
        if (index === segments.length - 1) {
          await put(join(spool, KEPT), name, data);
          if (kept !== undefined) await rm(join(spool, KEPT, kept), { force: true });
          kept = name;
        }
        await put(spool, name, data);
        fetched++;
        last = { name, number: parsed!.number, timeline: parsed!.timeline };
      }
      if (stopped()) return fetched;
      // At the end of what was listed: anything archived since is fetched too.
      listing = await prefetch.list();
      await keepHistories(listing);
      segments = segmentsOf(listing, last);
      if (segments.length > 0) {
        if (marked !== undefined) await rm(join(spool, NONE, marked), { force: true });
        marked = undefined;
        continue;
      }
      if (!toEnd || last === undefined) return fetched;
      if (marked === undefined) {
        marked = segmentName(last.timeline, last.number + 1n, segmentSize);
        await put(join(spool, NONE), marked, '');
      }
      // In steps, so that the end of recovery is noticed at once (the restore waits for this loop).
      for (let waited = 0; waited < pollMs && !stopped(); waited += 50)
        await new Promise((resolve) => setTimeout(resolve, Math.min(50, pollMs)));
    }
  } catch (error) {
    log(`WAL prefetch stopped (${(error as Error).message}); the server fetches the rest itself`);
  }
  return fetched;
}
