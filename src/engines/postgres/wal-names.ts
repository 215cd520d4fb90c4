// WAL file names and positions: the arithmetic behind archive continuity checks and WAL retention.
//
// Terms:
//   segment name   24 hex digits: timeline (8), then the segment number split in a "log" part (8) and a
//                  "seg" part (8); with segment size S there are 2^32 / S segments per log.
//   history file   TTTTTTTT.history: the timeline's ancestry, one line per switch:
//                  "<parent timeline>\t<switch LSN>\t<reason>".
//   backup file    <segment>.<offset>.backup: written by the server at the end of a base backup; its
//                  "STOP WAL LOCATION" line names the last segment the backup needs.
//   LSN            "X/Y" (hex): byte position in the WAL stream.

export const DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024;

const SEGMENT = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$/;

export interface SegmentName {
  timeline: number;
  /** Segment number on its timeline (log * segmentsPerLog + seg). */
  number: bigint;
}

export const isSegmentName = (name: string): boolean => SEGMENT.test(name);
export const isHistoryName = (name: string): boolean => /^[0-9A-F]{8}\.history$/.test(name);
export const isBackupLabelName = (name: string): boolean => /^[0-9A-F]{24}\.[0-9A-F]{8}\.backup$/.test(name);
/** Names PostgreSQL archives: segments, history files, backup files, and .partial segments. */
export const isArchivableName = (name: string): boolean =>
  isSegmentName(name) ||
  isHistoryName(name) ||
  isBackupLabelName(name) ||
  /^[0-9A-F]{24}\.partial$/.test(name);

const segmentsPerLog = (segmentSize: number): bigint => 0x100000000n / BigInt(segmentSize);

export function parseSegmentName(name: string, segmentSize = DEFAULT_SEGMENT_SIZE): SegmentName | undefined {
  const match = SEGMENT.exec(name);
  if (!match) return undefined;
  const log = BigInt(`0x${match[2]}`);
  const seg = BigInt(`0x${match[3]}`);
  return { timeline: parseInt(match[1]!, 16), number: log * segmentsPerLog(segmentSize) + seg };
}

export function segmentName(timeline: number, number: bigint, segmentSize = DEFAULT_SEGMENT_SIZE): string {
  const perLog = segmentsPerLog(segmentSize);
  const hex = (value: bigint | number) => value.toString(16).toUpperCase().padStart(8, '0');
  return `${hex(timeline)}${hex(number / perLog)}${hex(number % perLog)}`;
}

/** The history file of a timeline ("00000002.history"). */
export const historyName = (timeline: number): string =>
  `${timeline.toString(16).toUpperCase().padStart(8, '0')}.history`;

export function parseLsn(lsn: string): bigint {
  const [high, low] = lsn.split('/');
  return (BigInt(`0x${high}`) << 32n) + BigInt(`0x${low}`);
}

export const formatLsn = (lsn: bigint): string =>
  `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;

/** The segment number holding an LSN. */
export const segmentOfLsn = (lsn: bigint, segmentSize = DEFAULT_SEGMENT_SIZE): bigint =>
  lsn / BigInt(segmentSize);

export interface TimelineSwitch {
  parent: number;
  /** LSN where the child timeline branched off the parent. */
  switchLsn: bigint;
}

/** Parses a TTTTTTTT.history file's lines. */
export function parseHistory(text: string): TimelineSwitch[] {
  const switches: TimelineSwitch[] = [];
  for (const line of text.split('\n')) {
    const match = /^\s*(\d+)\s+([0-9A-Fa-f]+\/[0-9A-Fa-f]+)/.exec(line);
    if (match) switches.push({ parent: Number(match[1]), switchLsn: parseLsn(match[2]!) });
  }
  return switches;
}

/** Fields of a .backup file or backup_label: START/STOP WAL LOCATION, times, label. */
export interface BackupLabel {
  startLsn?: bigint;
  startSegment?: string;
  stopLsn?: bigint;
  stopSegment?: string;
  startTimeline?: number;
  startTime?: string;
  stopTime?: string;
}

export function parseBackupLabel(text: string): BackupLabel {
  const label: BackupLabel = {};
  const start = /START WAL LOCATION: ([0-9A-F]+\/[0-9A-F]+) \(file ([0-9A-F]{24})\)/.exec(text);
  if (start) [label.startLsn, label.startSegment] = [parseLsn(start[1]!), start[2]!];
  const stop = /STOP WAL LOCATION: ([0-9A-F]+\/[0-9A-F]+) \(file ([0-9A-F]{24})\)/.exec(text);
  if (stop) [label.stopLsn, label.stopSegment] = [parseLsn(stop[1]!), stop[2]!];
  const timeline = /START TIMELINE: (\d+)/.exec(text);
  if (timeline) label.startTimeline = Number(timeline[1]);
  label.startTime = /START TIME: (.+)/.exec(text)?.[1]?.trim();
  label.stopTime = /STOP TIME: (.+)/.exec(text)?.[1]?.trim();
  return label;
}

export interface TimelineRun {
  timeline: number;
  first: string;
  last: string;
  segments: number;
  /** Missing segment names between first and last (at most 20 listed). */
  gaps: string[];
  missingCount: number;
}

/**
 * Continuity of archived segments, per timeline: the run from the first to the last archived segment,
 * and every segment missing in between.
 */
export function timelineRuns(names: readonly string[], segmentSize = DEFAULT_SEGMENT_SIZE): TimelineRun[] {
  const byTimeline = new Map<number, bigint[]>();
  for (const name of names) {
    const parsed = parseSegmentName(name, segmentSize);
    if (!parsed) continue;
    byTimeline.set(parsed.timeline, [...(byTimeline.get(parsed.timeline) ?? []), parsed.number]);
  }
  const runs: TimelineRun[] = [];
  for (const [timeline, numbers] of [...byTimeline.entries()].sort((a, b) => a[0] - b[0])) {
    numbers.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const gaps: string[] = [];
    let missingCount = 0;
    for (let index = 1; index < numbers.length; index++) {
      for (let missing = numbers[index - 1]! + 1n; missing < numbers[index]!; missing++) {
        missingCount++;
        if (gaps.length < 20) gaps.push(segmentName(timeline, missing, segmentSize));
      }
    }
    runs.push({
      timeline,
      first: segmentName(timeline, numbers[0]!, segmentSize),
      last: segmentName(timeline, numbers[numbers.length - 1]!, segmentSize),
      segments: numbers.length,
      gaps,
      missingCount,
    });
  }
  return runs;
}
