// Durations as users write them in config and flags: "90s", "20m", "1h", "1h30m", "7d", "2w", "1y".
// Units: ms, s, m (minutes), h, d, w, mo (30 days), y (365 days); several may follow each other, largest
// first, as in restic's --keep-within "1y2mo3d".
//
// Written by hand: `ms` parses one unit only ("1h"), not the compound forms above, and neither it nor
// parse-duration has "mo" for retention windows.

const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
  mo: 30 * 86_400_000,
  y: 365 * 86_400_000,
};

const PART = /(\d+(?:\.\d+)?)(ms|mo|s|m|h|d|w|y)/gy;

/** Milliseconds in a duration string, or undefined if it is not one. */
export function parseDuration(text: string): number | undefined {
  const source = text.trim();
  if (source === '') return undefined;
  PART.lastIndex = 0;
  let total = 0;
  let consumed = 0;
  for (let match = PART.exec(source); match; match = PART.exec(source)) {
    total += Number(match[1]) * (UNIT_MS[match[2] as string] ?? Number.NaN);
    consumed = PART.lastIndex;
  }
  return consumed === source.length && Number.isFinite(total) ? Math.round(total) : undefined;
}

/** A short human form: 0s, 850ms, 42s, 3m20s, 4h05m, 2d03h. */
export function formatDuration(milliseconds: number): string {
  const ms = Math.max(0, Math.round(milliseconds));
  if (ms < 1000) return ms === 0 ? '0s' : `${ms}ms`;
  const seconds = Math.floor(ms / 1000);
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m${String(seconds % 60).padStart(2, '0')}s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours}h${String(minutes % 60).padStart(2, '0')}m`;
  return `${Math.floor(hours / 24)}d${String(hours % 24).padStart(2, '0')}h`;
}
