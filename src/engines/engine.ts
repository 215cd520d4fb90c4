// The engine interface: the code that knows one kind of store. Engines produce and consume streams and
// know nothing of the repository, the config loader or the CLI (DESIGN.md layers); src/recovery composes.
//
// Terms:
//   source      the engine's own config block (`sources.<name>`), already validated by its zod schema.
//   target      where a restore writes: the source itself, or a drill target (`drills.targets.<name>`).
//   artifact    one named stream an engine produces in a backup ("db/main.dump", "globals.sql",
//               "base.tar"); stored as is and handed back, byte for byte, at restore.
//   stats       what the engine counts in a store (see Stats): recorded at backup time, recomputed after
//               a restore and compared by compareStats.
//   metadata    small JSON the engine records with a snapshot for its own restore (versions, the
//               databases dumped, WAL positions). Opaque to everyone else; never holds a secret.
import type { Readable } from 'node:stream';

import type { DirectSource } from '../util/read-fd.js';

/** One thing an engine counts: a table's rows, a db's keys, an index's documents, a label's nodes. */
export interface StatItem {
  /** Stable key within the engine ("main/public.orders", "db0", "files"). */
  key: string;
  count: number;
  /** False when the count is an estimate (huge tables): compared with a tolerance, not exactly. */
  exact: boolean;
}

/** What an engine counts in a store. JSON-serialisable; stored in the snapshot manifest. */
export interface Stats {
  items: StatItem[];
  /** Named digests that must match exactly (a schema fingerprint, a tree hash, a content sample). */
  fingerprints: Record<string, string>;
  /** Facts shown to the user but not compared (server version, extensions, sizes). */
  facts: Record<string, unknown>;
  /** Key prefixes under which a restored store may hold more items than the backup (roles of a shared
   * server): those extras are not mismatches. */
  openPrefixes?: string[];
}

/** A difference compareStats found. */
export interface StatMismatch {
  key: string;
  expected: string;
  actual: string;
}

/** probe(): can we reach the store, what is it, how big is it. */
export interface ProbeResult {
  /** Server product and version ("PostgreSQL 15.14"). */
  version: string;
  /** Bytes the store holds, when the engine can tell cheaply. */
  sizeBytes?: number;
  /** Anything else worth showing (databases, roles, mode). */
  details: Record<string, unknown>;
}

/**
 * One artifact of a backup: its name and its bytes, either as one stream or as consecutive parts.
 * With parts, the artifact is their concatenation and the repository starts a new chunk at every part
 * (a files backup gives one part per file, so an unchanged file is always stored as the same blobs).
 */
export type ArtifactStream =
  | {
      name: string;
      /**
       * The bytes. The consumer reads it to the end before asking for the next artifact. If the
       * producing tool fails, the stream must end with an error (never a clean end): a truncated dump
       * must not be stored as a complete one.
       */
      stream: Readable;
      /** The bytes are already compressed by the store (an RDB's LZF strings): the repository
       * compresses them with a fast setting instead of its configured level. */
      precompressed?: boolean;
    }
  | {
      name: string;
      /**
       * The bytes, read straight into the repository's memory (see util/read-fd.ts). readInto()
       * resolves to 0 only at the true end; a failed or cut transfer rejects.
       */
      source: DirectSource;
      precompressed?: boolean;
      /** A tar stream: chunks are cut by its members (a base backup), not by a rolling hash. */
      chunking?: 'tar';
    }
  | {
      name: string;
      /** Each part iterates buffers or reads itself into the repository's memory (DirectSource). */
      parts: AsyncIterable<AsyncIterable<unknown> | Iterable<unknown> | DirectSource>;
    };

/** What a backup reports when its artifacts are all produced. */
export interface BackupResult {
  stats: Stats;
  metadata: Record<string, unknown>;
}

/** Handed to restore(): the artifacts of one snapshot, opened on demand. */
export interface ArtifactSource {
  names: readonly string[];
  /** The verified plaintext of one artifact; errors (corruption, missing data) surface on the stream. */
  open(name: string): Readable;
  /**
   * The same plaintext as chunks of shared memory reused from one to the next (Repository.
   * readArtifactBorrowed): each chunk is valid only until the next is asked for, so the consumer must
   * write it out (or copy it) first. Cheaper for a consumer that finishes each chunk in turn (no new
   * memory for the garbage collector per segment). Optional: fall back to open().
   */
  openBorrowed?(name: string): AsyncIterable<Buffer>;
}

/** Where a point-in-time recovery stops (engines with a log archive: PostgreSQL). */
export type RecoveryTarget =
  | { kind: 'latest' }
  | { kind: 'immediate' }
  | { kind: 'time'; value: string }
  | { kind: 'lsn'; value: string }
  | { kind: 'xid'; value: string }
  | { kind: 'name'; value: string };

/** Reads a log archive ahead of the restored server (given by the caller, who holds the repository). */
export interface WalPrefetch {
  /** Names of every archived file. */
  list(): Promise<string[]>;
  /** One archived file, verified. */
  read(name: string): Promise<Buffer>;
  /** Files fetched ahead at most. Default 8. */
  window?: number;
}

/** A physical restore replayed from a log archive to a recovery target. */
export interface PointInTimeOptions {
  recoveryTarget: RecoveryTarget;
  /** The command the store runs to fetch one archived log file (%f into %p). */
  restoreCommand: string;
  /** Start the restored server and wait until recovery ends. */
  start: boolean;
  /** Keep archiving on in the restored server (restoring the source itself); off for copies. */
  keepArchiving: boolean;
  /** Stop the server again when recovery fails (a drill's or another scratch target's server). */
  stopOnFailure?: boolean;
  /** Longest wait for recovery to end. Default 1 h. */
  timeoutMs?: number;
  /** Environment of the started server (its restore_command runs lifeboat). */
  env?: NodeJS.ProcessEnv;
  /** When lifeboat starts the server: fetch archived files ahead of it. */
  prefetch?: WalPrefetch;
}

/** Options every engine's restore understands. */
export interface RestoreOptions {
  /** Overwrite a non-empty target (drop, terminate, replace). Without it a non-empty target is refused. */
  force: boolean;
  /** Parallelism the engine may use (pg_restore -j). */
  jobs?: number;
  /** Only these parts (engine-defined: schemas, tables, databases, key patterns). */
  only?: { schemas?: string[]; tables?: string[]; databases?: string[] };
  /** Called with short human lines about what is happening ("creating database main"). */
  log?: (line: string) => void;
  /** Aborts the restore when signalled. */
  signal?: AbortSignal;
  /** A physical restore with log replay instead of a logical one. */
  pointInTime?: PointInTimeOptions;
}

/** What a restore reports. */
export interface RestoreResult {
  /** Human lines summarising what was done. */
  actions: string[];
  /** Engine-specific facts (the point recovered to, databases created). */
  details: Record<string, unknown>;
}

/** Options of a backup. */
export interface BackupOptions {
  /** Aborts the backup: running tools are killed, the artifact stream errors. */
  signal?: AbortSignal;
  log?: (line: string) => void;
}

/**
 * An engine. Every method may be called concurrently for different sources; none keeps state between
 * calls. Errors are LifeboatErrors with catalogue codes: LB_ENGINE_UNAVAILABLE (cannot connect: wrong
 * host, port, refused, timed out — within seconds, never a hang), LB_ENGINE_AUTH (credentials refused),
 * LB_ENGINE_TOOL_MISSING, LB_ENGINE_FAILED (the store's tool failed; its stderr tail in the message, with
 * secrets removed), LB_TARGET_NOT_EMPTY, LB_RESTORE_PRECONDITION (the target cannot take this backup,
 * e.g. a missing extension: detected before anything is touched).
 */
export interface Engine<Source = unknown, Target = unknown> {
  readonly name: string;
  /** Connects, reports version and size. Read-only. */
  probe(source: Source): Promise<ProbeResult>;
  /**
   * Backs the store up: yields its artifacts one at a time (each read to its end by the caller before
   * the next is asked for) and returns stats and metadata consistent with the artifacts (taken in the
   * same snapshot where the store allows). Never modifies the store's data. If the caller stops
   * iterating (return/throw), every tool the engine started is stopped.
   */
  backup(source: Source, options: BackupOptions): AsyncGenerator<ArtifactStream, BackupResult, void>;
  /**
   * Live stats of the store, or of a restore target: with a snapshot's metadata, the stats cover what
   * that snapshot holds (its databases, under the names they were restored to) and use the same keys as
   * the stats recorded at backup time. Read-only.
   */
  stats(target: Source | Target, metadata?: Record<string, unknown>): Promise<Stats>;
  /**
   * Restores one snapshot's artifacts into the target. Checks preconditions (target reachable, empty
   * unless force, required extensions/versions present) before modifying anything.
   */
  restore(
    target: Target,
    artifacts: ArtifactSource,
    metadata: Record<string, unknown>,
    options: RestoreOptions,
  ): Promise<RestoreResult>;
  /**
   * Optional: checks an artifact with the store's own tool (pg_restore --list), without a server.
   * Resolves to a short description, rejects when the tool refuses the artifact.
   */
  verifyArtifact?(name: string, stream: Readable): Promise<string>;
  /** Optional: stops what a restore started (a recovered server), after a drill has validated it. */
  cleanup?(target: Target, result: RestoreResult): Promise<void>;
}

/** Compares stats taken at backup time with stats of a restored store. Exact counts must be equal;
 * estimates must be within `tolerance` (share, default 0.2) of each other or both under 1000. */
export function compareStats(expected: Stats, actual: Stats, tolerance = 0.2): StatMismatch[] {
  const mismatches: StatMismatch[] = [];
  const actualItems = new Map(actual.items.map((item) => [item.key, item]));
  for (const item of expected.items) {
    const found = actualItems.get(item.key);
    actualItems.delete(item.key);
    if (!found) {
      mismatches.push({ key: item.key, expected: String(item.count), actual: 'missing' });
      continue;
    }
    const exact = item.exact && found.exact;
    const equal = exact
      ? item.count === found.count
      : Math.abs(item.count - found.count) <= Math.max(1000, tolerance * Math.max(item.count, found.count));
    if (!equal) {
      mismatches.push({
        key: item.key,
        expected: `${item.count}${item.exact ? '' : ' (estimate)'}`,
        actual: `${found.count}${found.exact ? '' : ' (estimate)'}`,
      });
    }
  }
  const open = expected.openPrefixes ?? [];
  for (const item of actualItems.values()) {
    if (open.some((prefix) => item.key.startsWith(prefix))) continue;
    mismatches.push({ key: item.key, expected: 'absent', actual: String(item.count) });
  }
  for (const [name, digest] of Object.entries(expected.fingerprints)) {
    const other = actual.fingerprints[name];
    if (other !== digest) mismatches.push({ key: name, expected: digest, actual: other ?? 'missing' });
  }
  return mismatches;
}
