// The WAL archive of PostgreSQL sources: wal-push and wal-fetch (PostgreSQL's archive_command and
// restore_command), continuity per timeline for `check`, and WAL retention after `forget`.
//
// Terms:
//   source      the postgres source whose archive a file belongs to (--source, or the only source in
//               physical/both mode).
//   needed WAL  a base backup needs every segment from its start segment to its stop segment, and a
//               restore to a later moment every segment after it up to that moment. Retention never
//               deletes a segment at or after the start of the oldest kept base backup.
import { mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

import type { LifeboatConfig } from '../config/index.js';
import type { postgres } from '../engines/index.js';
// The name arithmetic alone: the engines' index loads every engine's code (wal-push runs once per WAL
// file, and needs none of it).
import * as walNames from '../engines/postgres/wal-names.js';
import { LifeboatError } from '../errors.js';
import { shellQuote } from '../util/process.js';
import {
  type PushResult,
  type Repository,
  type Snapshot,
  deleteArchiveFiles,
  digestsLike,
  listArchive,
  listArchiveSources,
  pushArchiveFiles,
  readArchiveFile,
  sameContent,
} from '../repository/index.js';

/** The postgres source a WAL command is for: the named one, or the only physical one. */
export function walSource(config: LifeboatConfig, name?: string): string {
  const physical = Object.entries(config.sources).filter(
    ([, source]) => source.engine === 'postgres' && source.mode !== 'logical',
  );
  if (name !== undefined) {
    const source = config.sources[name];
    if (!source || source.engine !== 'postgres') {
      throw new LifeboatError(
        'LB_SOURCE_UNKNOWN',
        `no postgres source ${name} in the config (postgres sources: ${physical.map(([n]) => n).join(', ') || 'none'})`,
      );
    }
    return name;
  }
  if (physical.length !== 1) {
    throw new LifeboatError(
      'LB_USAGE',
      physical.length === 0
        ? 'no postgres source with mode physical or both in the config'
        : `several postgres sources archive WAL (${physical.map(([n]) => n).join(', ')}): name one with --source`,
    );
  }
  return physical[0]![0];
}

/** Push-ahead (pgBackRest's archive-async, without a resident process): see pushAheadOf. */
export interface PushAhead {
  /** How many other ready files one push takes along. */
  count: number;
  /** Where their markers wait for their own archive_command. */
  spool: string;
}

/** What a wal-push did: the file asked for, and the ready files it took along. */
export interface WalPushReport extends PushResult {
  /** The file was pushed ahead by an earlier wal-push: its marker was taken, the repository not opened. */
  fromSpool?: boolean;
  ahead: { stored: number; present: number; skipped: Array<{ name: string; reason: string }> };
}

/**
 * A postgres source's push-ahead settings, or undefined when it is off. The spool defaults to
 * <dataDirectory>.lifeboat-spool: the config's dataDirectory, else the one the pushed file's pg_wal
 * directory is in, else the working directory (PostgreSQL runs archive_command in the data directory).
 */
export function pushAheadOf(config: LifeboatConfig, source: string, path: string): PushAhead | undefined {
  const settings = config.sources[source];
  if (settings?.engine !== 'postgres' || settings.archive.pushAhead === 0) return undefined;
  const walDirectory = dirname(resolve(path));
  const dataDirectory = resolve(
    settings.dataDirectory ?? (basename(walDirectory) === 'pg_wal' ? dirname(walDirectory) : process.cwd()),
  ).replace(/\/+$/, '');
  return {
    count: settings.archive.pushAhead,
    spool: resolve(settings.archive.spoolDirectory ?? `${dataDirectory}.lifeboat-spool`),
  };
}

/**
 * The archive_command that skips starting lifeboat for a file pushed ahead: a marker newer than the
 * file means it is archived (the shell test); anything else runs wal-push, which checks the marker's
 * SHA-256 against the file before trusting it.
 */
export function pushAheadArchiveCommand(spool: string, walPushCommand: string): string {
  const marker = `${shellQuote(spool)}/%f.ok`;
  return `[ ${marker} -nt %p ] && rm -f ${marker} || ${walPushCommand}`;
}

/** A file pushed ahead: its source, size and hashes as its archive record has them (see sameContent). */
interface Marker {
  source: string;
  size: number;
  sha256?: string;
  blake3?: string;
}

const markerPath = (spool: string, name: string): string => join(spool, `${name}.ok`);

/**
 * archive_command: stores the file at `path` (relative to the data directory) durably. With push-ahead,
 * a valid marker acknowledges the file without the repository (`openRepository` is not called), and
 * otherwise up to `ahead.count` other ready files go along in the same push.
 */
export async function walPush(
  openRepository: <T>(work: (repository: Repository) => Promise<T>) => Promise<T>,
  source: string,
  path: string,
  ahead?: PushAhead,
): Promise<WalPushReport> {
  const name = basename(path);
  if (!walNames.isArchivableName(name)) {
    throw new LifeboatError(
      'LB_USAGE',
      `${name} is not a WAL segment, .history, .backup or .partial file name`,
    );
  }
  const data = await readFile(path).catch((error: NodeJS.ErrnoException) => {
    throw new LifeboatError('LB_USAGE', `cannot read ${path}: ${error.code ?? error.message}`, {
      cause: error,
    });
  });
  const none = { stored: 0, present: 0, skipped: [] };
  if (ahead === undefined) {
    const [result] = await openRepository((repository) =>
      pushArchiveFiles(repository, source, [{ name, data }]),
    );
    return { ...result!, ahead: none };
  }
  const taken = await takeMarker(ahead.spool, source, name, data);
  if (taken) return { name, outcome: 'present', ...taken, fromSpool: true, ahead: none };

  // Push-ahead only ever adds to a push: a spool or archive_status that cannot be read or written
  // leaves the file asked for archived as without it, with the reason in the report.
  const directory = dirname(path);
  const report: WalPushReport = { name, outcome: 'stored', ahead: { stored: 0, present: 0, skipped: [] } };
  const others: string[] = [];
  try {
    const ready = await readyFiles(directory);
    const marked = await sweepMarkers(ahead.spool, ready);
    for (const other of ready) {
      if (others.length >= ahead.count) break;
      if (other === name || !walNames.isArchivableName(other)) continue;
      if (marked.has(other)) continue; // pushed ahead already, its marker waiting
      others.push(other);
    }
  } catch (error) {
    report.ahead.skipped.push({ name: '*', reason: `no push-ahead: ${(error as Error).message}` });
  }
  const results = await openRepository((repository) =>
    pushArchiveFiles(repository, source, [
      { name, data },
      ...others.map((other) => ({
        name: other,
        data: { path: join(directory, other) },
        optional: true,
      })),
    ]),
  );
  const [own, ...along] = results as [PushResult, ...PushResult[]];
  Object.assign(report, own);
  let spoolError: string | undefined;
  if (along.length > 0) {
    await mkdir(ahead.spool, { recursive: true, mode: 0o700 }).catch((error: Error) => {
      spoolError = error.message;
    });
  }
  for (const result of along) {
    if (result.outcome === 'skipped') {
      report.ahead.skipped.push({ name: result.name, reason: result.reason ?? 'skipped' });
      continue;
    }
    try {
      if (spoolError !== undefined) throw new Error(spoolError);
      const { size, sha256, blake3 } = result;
      await writeMarker(ahead.spool, result.name, { source, size: size!, sha256, blake3 });
      report.ahead[result.outcome]++;
    } catch (error) {
      // Archived all the same: its own archive_command will find it present.
      report.ahead.skipped.push({
        name: result.name,
        reason: `archived, but no marker: ${(error as Error).message}`,
      });
    }
  }
  return report;
}

/** Ready files in PostgreSQL's archive order: timeline history files first, then by name. */
async function readyFiles(walDirectory: string): Promise<string[]> {
  let entries: string[];
  try {
    entries = await readdir(join(walDirectory, 'archive_status'));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return []; // not in a pg_wal directory
    throw error;
  }
  const rank = (file: string) => (walNames.isHistoryName(file) ? 0 : 1);
  return entries
    .filter((entry) => entry.endsWith('.ready'))
    .map((entry) => entry.slice(0, -'.ready'.length))
    .sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * Takes the marker of a file pushed ahead: valid when it is this source's and its size and hash (BLAKE3
 * when it has one, else SHA-256) are the file's; then it is removed and the file's digests returned. A
 * marker that does not match is removed.
 */
async function takeMarker(
  spool: string,
  source: string,
  name: string,
  data: Buffer,
): Promise<Omit<Marker, 'source'> | undefined> {
  const path = markerPath(spool, name);
  let marker: Marker;
  try {
    marker = JSON.parse(await readFile(path, 'utf8')) as Marker;
  } catch {
    return undefined; // absent, or torn: the push decides
  }
  const digests = digestsLike(marker, data);
  await rm(path, { force: true }).catch(() => undefined); // one left behind goes as stale later
  return marker.source === source && sameContent(marker, digests) ? digests : undefined;
}

async function writeMarker(spool: string, name: string, marker: Marker): Promise<void> {
  const temporary = join(spool, `.${name}.ok.${process.pid}`);
  await writeFile(temporary, JSON.stringify(marker), { mode: 0o600 });
  await rename(temporary, markerPath(spool, name));
}

/**
 * Removes markers whose file is no longer ready (archived another way, or from an earlier cluster),
 * and temporary marker files a killed push left (an hour old: a running push renames its own at once).
 * Returns the ready files that have a marker.
 */
async function sweepMarkers(spool: string, ready: readonly string[]): Promise<Set<string>> {
  const readySet = new Set(ready);
  const kept = new Set<string>();
  let entries: string[];
  try {
    entries = await readdir(spool);
  } catch {
    return kept;
  }
  for (const entry of entries) {
    const path = join(spool, entry);
    if (entry.endsWith('.ok')) {
      const file = entry.slice(0, -'.ok'.length);
      if (readySet.has(file)) kept.add(file);
      else await rm(path, { force: true });
    } else if (/^\..+\.ok\.\d+$/.test(entry)) {
      const age = Date.now() - (await stat(path).catch(() => ({ mtimeMs: Date.now() }))).mtimeMs;
      if (age > 3_600_000) await rm(path, { force: true });
    }
  }
  return kept;
}

/** restore_command: writes the archived file `name` to `destination` (atomically). */
export async function walFetch(
  repository: Repository,
  source: string,
  name: string,
  destination: string,
): Promise<number> {
  const data = await readArchiveFile(repository, source, name);
  const temporary = join(dirname(destination), `.${basename(destination)}.lifeboat-${process.pid}`);
  try {
    await writeFile(temporary, data);
    await rename(temporary, destination);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
  return data.length;
}

export interface WalContinuity {
  source: string;
  files: number;
  timelines: walNames.TimelineRun[];
  /** Base backups (snapshot ids) whose WAL from start to stop is incomplete, with what is missing. */
  brokenBackups: Array<{ snapshot: string; missing: string[] }>;
  ok: boolean;
}

/** Continuity of a source's archive per timeline, and completeness of each base backup's WAL. */
export async function walContinuity(
  repository: Repository,
  source: string,
  baseBackups: readonly Snapshot[],
): Promise<WalContinuity> {
  const names = await listArchive(repository, source);
  const present = new Set(names);
  const segmentSize = physicalOf(baseBackups[0])?.segmentSize ?? walNames.DEFAULT_SEGMENT_SIZE;
  const timelines = walNames.timelineRuns(names, segmentSize);
  const brokenBackups: WalContinuity['brokenBackups'] = [];
  for (const snapshot of baseBackups) {
    const physical = physicalOf(snapshot);
    if (!physical) continue;
    const start = walNames.parseSegmentName(physical.startSegment, segmentSize)!;
    const stop = walNames.parseSegmentName(physical.stopSegment, segmentSize)!;
    const missing: string[] = [];
    for (let number = start.number; number <= stop.number; number++) {
      const name = walNames.segmentName(start.timeline, number, segmentSize);
      if (!present.has(name)) missing.push(name);
    }
    if (missing.length > 0) brokenBackups.push({ snapshot: snapshot.id, missing });
  }
  return {
    source,
    files: names.length,
    timelines,
    brokenBackups,
    ok: brokenBackups.length === 0 && timelines.every((run) => run.missingCount === 0),
  };
}

export function physicalOf(snapshot: Snapshot | undefined): postgres.PhysicalMetadata | undefined {
  return (snapshot?.metadata as { physical?: postgres.PhysicalMetadata } | undefined)?.physical;
}

/**
 * WAL retention: deletes archived segments (and .backup/.partial files) before the start of the oldest
 * kept base backup. History files are kept. Caller holds the exclusive lock. Without any kept base
 * backup nothing is deleted.
 */
export async function applyWalRetention(
  repository: Repository,
  source: string,
  keptBaseBackups: readonly Snapshot[],
  dryRun: boolean,
): Promise<string[]> {
  const starts = keptBaseBackups
    .map((snapshot) => physicalOf(snapshot))
    .filter((physical): physical is postgres.PhysicalMetadata => physical !== undefined)
    .map((physical) => walNames.parseSegmentName(physical.startSegment, physical.segmentSize)!.number);
  if (starts.length === 0) return [];
  const segmentSize = physicalOf(keptBaseBackups[0])?.segmentSize ?? walNames.DEFAULT_SEGMENT_SIZE;
  const oldest = starts.reduce((a, b) => (a < b ? a : b));
  const doomed = (await listArchive(repository, source)).filter((name) => {
    if (walNames.isHistoryName(name)) return false;
    const parsed = walNames.parseSegmentName(name.slice(0, 24), segmentSize);
    return parsed !== undefined && parsed.number < oldest;
  });
  if (!dryRun) await deleteArchiveFiles(repository, source, doomed);
  return doomed;
}

/** WAL continuity of every source that has an archive in the repository (for `check`). */
export async function walChecks(repository: Repository): Promise<WalContinuity[]> {
  const sources = await listArchiveSources(repository);
  if (sources.length === 0) return [];
  const snapshots = await repository.listSnapshots();
  const reports: WalContinuity[] = [];
  for (const source of sources) {
    const baseBackups = snapshots.filter((snapshot) => snapshot.source === source && physicalOf(snapshot));
    reports.push(await walContinuity(repository, source, baseBackups));
  }
  return reports;
}
