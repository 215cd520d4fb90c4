// Physical backups: a tar of the data directory with the WAL that makes it consistent inside it, while
// a temporary replication slot keeps that WAL on the server; the continuous archive (archive_command =
// lifeboat wal-push) carries everything after it. lifeboat reads the data directory itself where it
// can (direct.ts, baseBackup auto or direct); otherwise pg_basebackup streams the tar to stdout
// (-X fetch), as described here.
//
// Terms:
//   base.tar       the artifact: pg_basebackup -D - -Ft -X fetch. Only the main tablespace can go to
//                  stdout; a cluster with extra tablespaces is refused with a clear error.
//   backup_label   the first tar entry: START WAL LOCATION, timeline, start time. Read from the bytes as
//                  they land in the backup session's memory (TarInspector), recorded in the snapshot
//                  metadata. pg_basebackup's stdout is a socket read straight into that memory
//                  (toolOutputSource in util/process.ts).
//   WAL hold       -X fetch reads the backup's WAL from pg_wal at its end: a checkpoint during a long
//                  backup could have removed it by then. A temporary physical replication slot, made
//                  just before pg_basebackup starts on a session held open for the backup, keeps it.
//                  The server drops the slot when that session ends, so a killed lifeboat leaves none.
//                  No slot to be had (max_replication_slots = 0, all in use, no permission): -X none,
//                  where the server itself waits until the archive has the backup's WAL.
//   archive wait   with -X fetch the server does not wait for archive_command: lifeboat does, after the
//                  tar (recovery/backup.ts, like pgBackRest's archive-check), for the last segment only
//                  and without the server's one-second polling, which took 1-2 s off every base backup.
//                  With -X none, "still waiting for all required WAL segments to be archived" from the
//                  server means archive_command is failing: archive.checkTimeout after the server's
//                  first notice (LB_WAL_TIMEOUT) instead of hanging.

import { redactCommandLine } from '../../util/redact.js';
import { LifeboatError } from '../../errors.js';
import { parseDuration } from '../../util/duration.js';
import { toolOutputSource } from '../../util/process.js';
import { tarNumber } from '../../util/tar-header.js';
import type { DirectSource } from '../../util/read-fd.js';
import type { ArtifactStream, BackupOptions, BackupResult } from '../engine.js';
import type { PostgresSource } from './config.js';
import {
  type Endpoint,
  connect,
  describeToolFailure,
  endpointOf,
  serverMajor,
  toolEnvironment,
  toolPath,
  withClient,
} from './connection.js';
import { type DirectBackup, holdWalOn, startDirectBackup } from './direct.js';
import { databaseStats } from './stats.js';
import { formatLsn, parseBackupLabel, parseLsn, segmentName, segmentOfLsn } from './wal-names.js';

export interface PhysicalMetadata {
  kind: 'physical';
  artifact: string;
  serverVersion: string;
  serverMajor: number;
  segmentSize: number;
  timeline: number;
  startLsn: string;
  startSegment: string;
  startTime?: string;
  /** End of the backup's WAL (from backup_manifest): recovery must replay at least this far. */
  stopLsn: string;
  stopSegment: string;
  /** When the backup ended (set by the run when it finds the stop segment archived). */
  stopTime?: string;
  /** The backup_label text (also in base.tar). */
  label: string;
  /**
   * Extensions installed in each database when the backup started: a restore checks that the target's
   * PostgreSQL has them before it touches anything (their files are not in the data directory).
   */
  extensions?: Array<{ database: string; name: string; version: string }>;
}

/**
 * Walks the tar headers of the bytes shown to it in order, keeping backup_label (the first entry) and
 * the tail of backup_manifest (the last; its "WAL-Ranges" give the backup's end LSN). It keeps copies:
 * the bytes it is shown may be memory the caller reuses.
 * Hand-written: a tar header is 512 bytes with the name at 0 and the octal size at 124, and the tar
 * libraries on npm parse into files, not alongside an unchanged byte stream.
 */
export class TarInspector {
  private header = Buffer.alloc(0);
  private remaining = 0; // data bytes (plus padding) of the current entry still to pass
  private capturing: 'label' | 'manifest' | undefined;
  private captured: Buffer[] = [];
  private capturedBytes = 0;
  private ended = false;
  label: string | undefined;
  manifestTail: string | undefined;

  /** Shows the next bytes of the tar. */
  inspect(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length && !this.ended) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, chunk.length - offset);
        if (this.capturing) this.capture(chunk.subarray(offset, offset + take));
        this.remaining -= take;
        offset += take;
        if (this.remaining === 0) this.finishEntry();
        continue;
      }
      const need = 512 - this.header.length;
      this.header = Buffer.concat([this.header, chunk.subarray(offset, offset + need)]);
      offset += Math.min(need, chunk.length - offset);
      if (this.header.length < 512) break;
      this.startEntry(this.header);
      this.header = Buffer.alloc(0);
    }
  }

  private startEntry(header: Buffer): void {
    const field = (start: number, length: number) =>
      header
        .subarray(start, start + length)
        .toString('utf8')
        .replace(/\0.*$/s, '');
    const name = field(0, 100);
    if (name === '') {
      this.ended = true; // end-of-archive blocks
      return;
    }
    const size = tarNumber(header, 124, 12) ?? 0;
    const base = name.replace(/^\.\//, '');
    this.capturing = base === 'backup_label' ? 'label' : base === 'backup_manifest' ? 'manifest' : undefined;
    this.captured = [];
    this.capturedBytes = 0;
    this.remaining = size + ((512 - (size % 512)) % 512);
    this.dataLeft = size;
    if (this.remaining === 0) this.finishEntry();
  }

  private dataLeft = 0;

  private capture(bytes: Buffer): void {
    const data = bytes.subarray(0, Math.max(0, Math.min(bytes.length, this.dataLeft)));
    this.dataLeft -= data.length;
    this.captured.push(Buffer.from(data));
    this.capturedBytes += data.length;
    // Only the manifest's tail matters (WAL-Ranges): keep the last 64 KiB.
    while (this.capturing === 'manifest' && this.capturedBytes - this.captured[0]!.length > 65536) {
      this.capturedBytes -= this.captured.shift()!.length;
    }
  }

  private finishEntry(): void {
    if (this.capturing === 'label') this.label = Buffer.concat(this.captured).toString('utf8');
    if (this.capturing === 'manifest') this.manifestTail = Buffer.concat(this.captured).toString('utf8');
    this.capturing = undefined;
    this.captured = [];
  }
}

/** The last WAL range of a backup manifest's tail: { timeline, start, end }. */
export function manifestWalRange(tail: string): { timeline: number; start: string; end: string } | undefined {
  const ranges = [
    ...tail.matchAll(/"Timeline":\s*(\d+),\s*"Start-LSN":\s*"([0-9A-F/]+)",\s*"End-LSN":\s*"([0-9A-F/]+)"/g),
  ];
  const last = ranges[ranges.length - 1];
  return last ? { timeline: Number(last[1]), start: last[2]!, end: last[3]! } : undefined;
}

/** A temporary replication slot holding the server's WAL for as long as its session lives. */
interface WalHold {
  slot: string;
  release(): Promise<void>;
}

/** How long releasing the WAL hold may take before its connection is simply closed. */
const RELEASE_MS = 5000;

/**
 * Makes the WAL hold (see "WAL hold" above), or says why there is none. The slot reserves WAL from the
 * last checkpoint's redo point, which is before the backup's own checkpoint, so everything -X fetch
 * reads stays. The session sits idle for the whole backup: idle_session_timeout is turned off for it
 * (PostgreSQL 14+) and TCP keepalives are on (connect()), so that neither ends it, and the slot with it.
 */
async function holdWal(endpoint: Endpoint, major: number): Promise<WalHold | string> {
  let client: Awaited<ReturnType<typeof connect>>;
  try {
    client = await connect(endpoint);
  } catch (error) {
    return (error as Error).message; // -X none needs no extra session (max_connections reached, say)
  }
  let slot: string;
  try {
    slot = await holdWalOn(client, major);
  } catch (error) {
    await client.end().catch(() => undefined);
    return (error as Error).message;
  }
  return {
    slot,
    async release() {
      const release = (async () => {
        await client.query('SELECT pg_drop_replication_slot($1)', [slot]).catch(() => undefined);
        await client.end().catch(() => undefined); // ending the session drops it anyway
      })();
      // A connection gone half-open must not hold the backup up: closing the socket ends the session
      // on the server's side, which drops a temporary slot.
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), RELEASE_MS)));
      if ((await Promise.race([release, late])) === 'late') {
        (
          client as unknown as { connection?: { stream?: { destroy(): void } } }
        ).connection?.stream?.destroy();
      }
      clearTimeout(timer);
    },
  };
}

export async function* physicalBackup(
  source: PostgresSource,
  options: BackupOptions,
): AsyncGenerator<ArtifactStream, BackupResult, void> {
  const endpoint = endpointOf(source);
  const facts: Record<string, unknown> = {};
  const fingerprints: Record<string, string> = {};
  const extensions: NonNullable<PhysicalMetadata['extensions']> = [];
  const { major, version, segmentSize } = await withClient(endpoint, async (client) => {
    const settings = new Map(
      (
        await client.query<{ name: string; setting: string }>(
          `SELECT name, setting FROM pg_settings WHERE name IN ('archive_mode', 'archive_command', 'wal_level', 'wal_segment_size')`,
        )
      ).rows.map((row) => [row.name, row.setting]),
    );
    if (settings.get('archive_mode') === 'off' || settings.get('wal_level') === 'minimal') {
      throw new LifeboatError(
        'LB_ENGINE_FAILED',
        `physical backups need WAL archiving: set wal_level = replica, archive_mode = on and archive_command = 'lifeboat wal-push %p' on the server (now wal_level = ${settings.get('wal_level')}, archive_mode = ${settings.get('archive_mode')})`,
      );
    }
    // Kept in the snapshot (and quoted in errors) without what it may carry in the clear.
    const archiveCommand = settings.get('archive_command');
    facts.archiveCommand = archiveCommand === undefined ? undefined : redactCommandLine(archiveCommand);
    const names = (
      await client.query<{ name: string }>(
        `SELECT datname AS name FROM pg_database WHERE NOT datistemplate AND datallowconn ORDER BY 1`,
      )
    ).rows.map((row) => row.name);
    const databases: Record<string, unknown> = {};
    for (const name of names) {
      await withClient({ ...endpoint, database: name }, async (session) => {
        for (const row of (
          await session.query<{ name: string; version: string }>(
            'SELECT extname AS name, extversion AS version FROM pg_extension ORDER BY 1',
          )
        ).rows)
          extensions.push({ database: name, ...row });
        const stats = await databaseStats(session, name, 0);
        fingerprints[`${name}/schema`] = stats.fingerprint;
        databases[name] = {
          sizeBytes: stats.sizeBytes,
          tables: stats.items.filter((item) => !item.key.includes('/sequence:')).length,
        };
      });
    }
    facts.databases = databases;
    const version = (await client.query<{ v: string }>('SELECT version() AS v')).rows[0]!.v.split(' on ')[0]!;
    return {
      major: await serverMajor(client),
      version,
      segmentSize: Number(settings.get('wal_segment_size') ?? 16777216),
    };
  });
  /** Runs pg_basebackup, yields its tar, returns the backup's metadata. */
  const streamBaseBackup = async function* (
    walMethod: 'fetch' | 'none',
  ): AsyncGenerator<ArtifactStream, BackupResult, void> {
    const sniffer = new TarInspector();
    const abort = new AbortController();
    options.signal?.addEventListener('abort', () => abort.abort(), { once: true });
    const checkTimeoutMs = parseDuration(source.archive.checkTimeout) ?? 60_000;
    let archiveTimedOut = false;
    let archiveTimer: NodeJS.Timeout | undefined;
    const output = await toolOutputSource(
      await toolPath('pg_basebackup', source, major),
      ['-D', '-', '-Ft', '-X', walMethod, '-c', 'fast', '-v'],
      {
        env: toolEnvironment(endpoint),
        signal: abort.signal,
        onStderrLine: (line) => {
          // The server says so ~5 s into waiting for archive_command to take the backup's last segment.
          if (
            archiveTimer === undefined &&
            /waiting for (all )?required WAL segments to be archived/.test(line)
          ) {
            archiveTimer = setTimeout(() => {
              archiveTimedOut = true;
              abort.abort();
            }, checkTimeoutMs);
            archiveTimer.unref();
          }
        },
        describe: (exit) =>
          archiveTimedOut
            ? new LifeboatError(
                'LB_WAL_TIMEOUT',
                `the server could not archive the WAL this base backup needs within ${source.archive.checkTimeout}: check archive_command (${String(facts.archiveCommand)}) and the server log`,
              )
            : exit.stderr.includes('can only write single tablespace to stdout')
              ? new LifeboatError(
                  'LB_ENGINE_FAILED',
                  'physical backups of clusters with extra tablespaces are not supported yet (pg_basebackup cannot stream them to one tar)',
                )
              : walMethod === 'fetch' && /has already been removed/.test(exit.stderr)
                ? new LifeboatError(
                    'LB_ENGINE_FAILED',
                    `the server removed WAL this base backup needs before its end: the temporary replication slot that held it was lost (its session ended, or max_slot_wal_keep_size invalidated it). ${describeToolFailure('pg_basebackup', endpoint)(exit).message}`,
                  )
                : describeToolFailure('pg_basebackup', endpoint)(exit),
      },
    );
    options.log?.(`streaming base backup (pg_basebackup -X ${walMethod})`);
    // Read straight into the backup session's memory, inspected there in place.
    const tar: DirectSource = {
      async readInto(target) {
        try {
          const bytes = await output.readInto(target);
          if (bytes > 0) sniffer.inspect(target.subarray(0, bytes));
          else clearTimeout(archiveTimer);
          return bytes;
        } catch (error) {
          clearTimeout(archiveTimer);
          throw error;
        }
      },
      destroy(error) {
        clearTimeout(archiveTimer);
        output.destroy?.(error);
      },
    };
    yield { name: 'base.tar', source: tar, chunking: 'tar' };
    if (sniffer.label === undefined) {
      throw new LifeboatError('LB_ENGINE_FAILED', 'pg_basebackup produced a tar without backup_label');
    }
    const range = sniffer.manifestTail === undefined ? undefined : manifestWalRange(sniffer.manifestTail);
    if (range === undefined) {
      throw new LifeboatError(
        'LB_ENGINE_FAILED',
        'pg_basebackup produced a tar without a backup_manifest WAL range',
      );
    }
    return resultOf(sniffer.label, parseLsn(range.end), range.timeline);
  };
  /** The snapshot's stats and metadata of a base backup with this backup_label and end of WAL. */
  const resultOf = (labelText: string, stopLsn: bigint, stopTimeline?: number): BackupResult => {
    const label = parseBackupLabel(labelText);
    if (label.startLsn === undefined || label.startSegment === undefined) {
      throw new LifeboatError('LB_ENGINE_FAILED', `backup_label has no START WAL LOCATION:\n${labelText}`);
    }
    const metadata: PhysicalMetadata = {
      kind: 'physical',
      artifact: 'base.tar',
      serverVersion: version,
      serverMajor: major,
      segmentSize,
      timeline: label.startTimeline ?? 1,
      startLsn: formatLsn(label.startLsn),
      startSegment: label.startSegment,
      startTime: label.startTime,
      stopLsn: formatLsn(stopLsn),
      // The segment holding the last byte of the backup's WAL: the archive must reach it.
      stopSegment: segmentName(
        stopTimeline ?? label.startTimeline ?? 1,
        segmentOfLsn(stopLsn - 1n, segmentSize),
        segmentSize,
      ),
      label: labelText,
      extensions,
    };
    // Rows move on between the base backup and any recovery target: only schemas are compared.
    return {
      stats: { items: [], fingerprints, facts, openPrefixes: [''] },
      metadata: metadata as unknown as Record<string, unknown>,
    };
  };
  /** Reads the data directory itself (direct.ts). */
  const readDirect = function* (direct: DirectBackup): Generator<ArtifactStream, BackupResult, void> {
    options.log?.(`reading the data directory ${direct.dataDirectory} (base backup from ${direct.startLsn})`);
    yield { name: 'base.tar', source: direct.tar, chunking: 'tar' };
    const { stopLsn, label } = direct.stopped();
    return resultOf(label, stopLsn); // a primary's backup ends on the timeline it started on
  };
  if (source.baseBackup !== 'pg_basebackup') {
    const direct = await startDirectBackup(endpoint, major, segmentSize, options.signal, options.log);
    if (typeof direct !== 'string') {
      try {
        return yield* readDirect(direct);
      } finally {
        await direct.close();
      }
    }
    if (source.baseBackup === 'direct') {
      throw new LifeboatError(
        'LB_ENGINE_FAILED',
        `baseBackup is direct, but lifeboat cannot read this server's data directory itself: ${direct}`,
      );
    }
    options.log?.(`base backup through pg_basebackup (no direct read of the data directory: ${direct})`);
  }
  const hold = await holdWal(endpoint, major);
  try {
    if (typeof hold === 'string') {
      options.log?.(`no temporary replication slot (${hold}): the server waits for the archive instead`);
    }
    return yield* streamBaseBackup(typeof hold === 'string' ? 'none' : 'fetch');
  } finally {
    if (typeof hold !== 'string') await hold.release();
  }
}
