// The file archive: small named files of a source kept outside snapshots, one record per file. It holds
// PostgreSQL's WAL (segments, .history and .backup files), pushed one by one as the server archives them.
//
// Terms:
//   archived file  wal/<source>/<file name>: a sealed envelope (kind "archive") of an ArchiveRecord — the
//                  file's size, BLAKE3 (and SHA-256 in a format-1 repository) and blob ids. The blobs are
//                  stored like any artifact's (packs, index), so they dedupe, compress and encrypt the
//                  same way.
//   hashes         a format-2 repository records BLAKE3 alone for files pushed from now on: SHA-256 was
//                  ~14% of a push's CPU, and nothing outside the repository compares a WAL file's
//                  SHA-256 (a snapshot's artifacts keep theirs, which a manifest shows). Records written
//                  before carry both; format 1 (HMAC-SHA256 blob ids) keeps writing both. Two records
//                  are compared by BLAKE3 when both have it, else by SHA-256 (sameContent).
//   push           stores files, then writes each record create-only. A record already there with the
//                  same content is success (PostgreSQL may push a file twice); different content is
//                  LB_WAL_CONFLICT and the file is not acknowledged. A record is written only after its
//                  blobs and their index are durable: a crash leaves at most garbage for prune.
//   names          file names are plain in object names (like pgBackRest's archive): they reveal the
//                  WAL position, never content.
//   locations      where the push stored each blob (pack, offset, length...), kept in the record so that
//                  a fetch needs no index: wal-fetch runs once per file during a recovery, and loading
//                  every index file (each push adds one until a prune merges them) made every fetch
//                  slower as the archive grew. A hint only: packs are immutable, so a location is right
//                  or its pack is gone (a prune repacked the blob). Blobs are verified (tag, id) either
//                  way, and a fetch whose hint fails loads the index and reads again.
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import { type FileHandle, open, readFile } from 'node:fs/promises';

import { LifeboatError, isLifeboatError } from '../errors.js';
import { checkName } from '../storage/index.js';
import { blake3Hex, copyBytes } from '../util/blake3.js';
import { type DirectSource, fdSource } from '../util/read-fd.js';
import { openFile, sealFile } from './envelope.js';
import { checkVersion } from './format.js';
import type { BackupSession } from './backup-session.js';
import { BlobIndex, type IndexEntry } from './blob-index.js';
import type { StoredArtifact } from './snapshots.js';
import type { Repository } from './repository.js';

export const ARCHIVE_VERSION = 1;

export interface ArchiveRecord {
  version: number;
  source: string;
  name: string;
  size: number;
  /** SHA-256 of the file: in records of format-1 repositories and in older ones (see "hashes"). */
  sha256?: string;
  /** BLAKE3 of the file, which a fetch checks (absent in older records: their SHA-256 is checked). */
  blake3?: string;
  blobs: string[];
  /** Where each blob was stored at push time, in the order of `blobs` (absent in older records). */
  locations?: ArchiveLocation[];
  /** When it was archived (ISO time): a segment holds only records written before this. */
  time: string;
  hostname: string;
}

/** A blob's place at push time: its pack and the pack's entry for it, less the id. */
export type ArchiveLocation = Omit<IndexEntry, 'id'>;

export interface ArchiveInput {
  name: string;
  /**
   * The file's bytes, or its path: a path is read when its turn comes, straight into the backup
   * session's memory (a batch is never all in memory, and no 16 MiB buffer per segment is made for
   * the garbage collector to sweep).
   */
  data: Buffer | { path: string };
  /**
   * Taken along, not asked for (push-ahead): a conflict or a read error skips the file (outcome
   * "skipped", with the reason) instead of failing the push. Its own push later reports the error.
   */
  optional?: boolean;
}

export interface PushResult {
  name: string;
  /** "stored", "present" when an identical file was archived before, "skipped" (optional inputs only). */
  outcome: 'stored' | 'present' | 'skipped';
  size?: number;
  /** The file's hashes as recorded (sha256 only where the repository records it, see "hashes"). */
  sha256?: string;
  blake3?: string;
  /** Why an optional file was skipped. */
  reason?: string;
}

/** Records looked up ahead of the file being stored (a lookup is a read: a round trip on S3). */
const LOOKAHEAD = 8;

export const archivePrefix = (source: string): string => `wal/${source}/`;
const objectName = (source: string, name: string): string => checkName(`${archivePrefix(source)}${name}`);

/** Reads and opens one record; LB_STORAGE_NOT_FOUND when absent. */
export async function loadArchiveRecord(
  repository: Repository,
  source: string,
  name: string,
): Promise<ArchiveRecord> {
  const object = objectName(source, name);
  const bytes = await repository.storage.read(object);
  const record = await openFile<ArchiveRecord>(repository.keyRing, 'archive', bytes, object);
  checkVersion(record.version, ARCHIVE_VERSION, object);
  if (record.name !== name || record.source !== source) {
    throw new LifeboatError(
      'LB_REPO_CORRUPT',
      `${object}: holds the record of ${record.source}/${record.name}`,
    );
  }
  return record;
}

/** Names of every archived file of a source, sorted. Listing only: no object is read. */
export async function listArchive(repository: Repository, source: string): Promise<string[]> {
  const names: string[] = [];
  const prefix = archivePrefix(source);
  for await (const info of repository.storage.list(prefix)) names.push(info.name.slice(prefix.length));
  return names.sort();
}

/**
 * Whether one file is archived: a single stat, no listing (an archive holds thousands of files, and a
 * backup asks this several times a second while it waits for its last segment).
 */
export async function archiveHas(repository: Repository, source: string, name: string): Promise<boolean> {
  try {
    await repository.storage.stat(objectName(source, name));
    return true;
  } catch (error) {
    if (isLifeboatError(error, 'LB_STORAGE_NOT_FOUND')) return false;
    throw error;
  }
}

/** Sources that have an archive. */
export async function listArchiveSources(repository: Repository): Promise<string[]> {
  const sources = new Set<string>();
  for await (const info of repository.storage.list('wal/')) sources.add(info.name.split('/')[1]!);
  return [...sources].sort();
}

/**
 * Archives files in one backup session (one pack and index per batch), in order, each read when its turn
 * comes. Files whose record exists with the same content are not stored again. Resolves only when every
 * record is durable; a failure before then acknowledges none of them.
 */
export async function pushArchiveFiles(
  repository: Repository,
  source: string,
  files: readonly ArchiveInput[],
): Promise<PushResult[]> {
  const results = new Map<string, PushResult>();
  const optionalNames = new Set(files.filter((file) => file.optional).map((file) => file.name));
  // Existing records are looked up a few files ahead, so that their round trips overlap the storing.
  const lookups: Array<Promise<ArchiveRecord | undefined>> = [];
  const lookup = (index: number) => {
    while (lookups.length < Math.min(files.length, index + LOOKAHEAD)) {
      const pending = loadExisting(repository, source, files[lookups.length]!.name);
      pending.catch(() => undefined); // awaited in its turn
      lookups.push(pending);
    }
    return lookups[index]!;
  };
  // See "hashes": format 1 records SHA-256 too.
  const recordsSha256 = repository.config.version < 2;
  let session: BackupSession | undefined;
  try {
    for (const [index, file] of files.entries()) {
      const skip = (reason: string) =>
        results.set(file.name, { name: file.name, outcome: 'skipped', reason });
      /** A file that cannot be read: skipped when taken along, else the push fails. */
      const unreadable = (error: unknown) => {
        if (!file.optional) throw error;
        skip(`cannot read it: ${(error as Error).message}`);
      };
      const existing = await lookup(index);
      if (existing !== undefined) {
        // Already archived: the same bytes are acknowledged, other bytes are a conflict. Only here is the
        // file hashed on this thread (by the hash its record has); a new file's is the session's stream hash.
        let data: Buffer;
        try {
          data = Buffer.isBuffer(file.data) ? file.data : await readFile(file.data.path);
        } catch (error) {
          unreadable(error);
          continue;
        }
        const digests = digestsLike(existing, data);
        if (sameContent(existing, digests)) {
          results.set(file.name, { name: file.name, outcome: 'present', ...digests });
        } else if (file.optional) skip(conflict(source, file.name).message);
        else throw conflict(source, file.name);
        continue;
      }
      let input: DirectSource;
      let opened: FileHandle | undefined;
      if (Buffer.isBuffer(file.data)) input = bufferSource(file.data);
      else {
        try {
          opened = await open(file.data.path, 'r');
        } catch (error) {
          unreadable(error);
          continue;
        }
        input = readFailures(fdSource(opened.fd));
      }
      try {
        session ??= await repository.startBackup();
        await session.writeArtifactParts(file.name, [input], { chunking: 'fixed', sha256: recordsSha256 });
      } catch (error) {
        // A file taken along that fails mid-read is skipped like one that cannot be opened: the
        // session stays usable (the chunks it already stored belong to no record: garbage for prune).
        if (!(error instanceof ReadFailure)) throw error;
        unreadable(error.cause);
      } finally {
        await opened?.close();
      }
    }
    if (session === undefined) return files.map((file) => results.get(file.name)!);
    const records = await session.persistArtifacts();
    const time = new Date().toISOString();
    const store = async (artifact: StoredArtifact): Promise<void> => {
      // The session added its packs to the repository's index: every blob's place is known there.
      const entries = artifact.blobs.map((id) => repository.index.get(id));
      const record: ArchiveRecord = {
        version: ARCHIVE_VERSION,
        source,
        name: artifact.name,
        size: artifact.size,
        ...(artifact.sha256 === undefined ? {} : { sha256: artifact.sha256 }),
        blake3: artifact.blake3,
        blobs: artifact.blobs,
        ...(entries.every((entry) => entry !== undefined)
          ? { locations: entries.map(({ id: _id, ...location }) => location) }
          : {}),
        time,
        hostname: hostname(),
      };
      const optional = optionalNames.has(artifact.name);
      try {
        const outcome = await writeRecord(repository, record);
        const { size, sha256, blake3 } = record;
        results.set(record.name, { name: record.name, outcome, size, sha256, blake3 });
      } catch (error) {
        // A racing pusher stored other content under an optional file's name: not ours to report.
        if (!optional || !isLifeboatError(error, 'LB_WAL_CONFLICT')) throw error;
        results.set(record.name, { name: record.name, outcome: 'skipped', reason: (error as Error).message });
      }
    };
    // Records are independent objects, each a create-only write and a sync: all started at once, as many
    // in flight as the storage's own concurrency limit lets through (a push-ahead of 63 segments spent
    // ~0.2 s writing them one after the other).
    const settled = await Promise.allSettled(records.map(store));
    const failed = settled.find((outcome) => outcome.status === 'rejected');
    if (failed) throw failed.reason;
  } catch (error) {
    if (session !== undefined) await session.abort().catch(() => undefined);
    session = undefined;
    throw error;
  } finally {
    if (session !== undefined) await session.release();
  }
  return files.map((file) => results.get(file.name)!);
}

/** A read error of an input file, told apart from the session's own failures. */
class ReadFailure extends Error {}

function readFailures(source: DirectSource): DirectSource {
  return {
    readInto: (target) =>
      source.readInto(target).catch((error: unknown) => {
        throw new ReadFailure('read failed', { cause: error });
      }),
  };
}

/** A buffer as a DirectSource: copied into the session's memory as it asks. */
function bufferSource(data: Buffer): DirectSource {
  let offset = 0;
  return {
    readInto(target) {
      const count = copyBytes(target, 0, data.subarray(offset)); // a memmove into shared memory
      offset += count;
      return Promise.resolve(count);
    },
  };
}

async function loadExisting(
  repository: Repository,
  source: string,
  name: string,
): Promise<ArchiveRecord | undefined> {
  try {
    return await loadArchiveRecord(repository, source, name);
  } catch (error) {
    if (isLifeboatError(error, 'LB_STORAGE_NOT_FOUND')) return undefined;
    throw error;
  }
}

async function writeRecord(repository: Repository, record: ArchiveRecord): Promise<'stored' | 'present'> {
  // Wrapped for writers, like index files: a write-only host must tell a repeated push from a conflict.
  const bytes = await sealFile(repository.keyRing, 'archive', record, true);
  try {
    await repository.storage.write(objectName(record.source, record.name), bytes, { createOnly: true });
    return 'stored';
  } catch (error) {
    if (!isLifeboatError(error, 'LB_STORAGE_EXISTS')) throw error;
    // Another pusher got there first: fine if it stored the same content.
    const existing = await loadArchiveRecord(repository, record.source, record.name);
    if (sameContent(existing, record)) return 'present';
    throw conflict(record.source, record.name);
  }
}

export type FileDigests = Pick<ArchiveRecord, 'size' | 'sha256' | 'blake3'>;

/** The size and hash of `data` to compare with `reference` (sameContent): its BLAKE3 if it has one, else SHA-256. */
export function digestsLike(reference: FileDigests, data: Buffer): FileDigests {
  return typeof reference.blake3 === 'string'
    ? { size: data.length, blake3: blake3Hex(data) }
    : { size: data.length, sha256: createHash('sha256').update(data).digest('hex') };
}

/**
 * Whether two records (or a record and a file's digests) are of the same bytes: by BLAKE3 when both have
 * it, else by SHA-256. Without a hash in common they are not taken for the same (a conflict, never an
 * acknowledgement of bytes that were not compared); every pair lifeboat writes has one in common.
 */
export function sameContent(a: FileDigests, b: FileDigests): boolean {
  if (a.size !== b.size) return false;
  if (a.blake3 !== undefined && b.blake3 !== undefined) return a.blake3 === b.blake3;
  if (a.sha256 !== undefined && b.sha256 !== undefined) return a.sha256 === b.sha256;
  return false;
}

function conflict(source: string, name: string): LifeboatError {
  return new LifeboatError(
    'LB_WAL_CONFLICT',
    `${name} is already archived for ${source} with different content: is another server archiving into this source? (not acknowledged)`,
  );
}

/**
 * The archived file's plaintext, verified (blob tags and ids, then size and BLAKE3, or SHA-256 in
 * records written before BLAKE3 was recorded). A repository
 * opened without its index reads the blobs where the record says they were stored; if one is not there
 * any more, it loads the index and reads again.
 */
export async function readArchiveFile(repository: Repository, source: string, name: string): Promise<Buffer> {
  let record: ArchiveRecord;
  try {
    record = await loadArchiveRecord(repository, source, name);
  } catch (error) {
    if (isLifeboatError(error, 'LB_STORAGE_NOT_FOUND'))
      throw new LifeboatError('LB_WAL_NOT_FOUND', `${name} is not in the archive of ${source}`, {
        cause: error,
      });
    throw error;
  }
  if (!repository.indexLoaded) {
    const hinted = locationIndex(record);
    if (hinted !== undefined) {
      try {
        return await readWhole(repository.readArtifact(record, { index: hinted }));
      } catch (error) {
        if (!isLifeboatError(error, 'LB_REPO_MISSING_DATA') && !isLifeboatError(error, 'LB_REPO_CORRUPT'))
          throw error;
      }
    }
    await repository.loadIndex();
  }
  return readWhole(repository.readArtifact(record));
}

async function readWhole(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** An index of the record's blobs at the places it names, or undefined when it names none. */
function locationIndex(record: ArchiveRecord): BlobIndex | undefined {
  const locations = record.locations;
  if (!Array.isArray(locations) || locations.length !== record.blobs.length) return undefined;
  const index = new BlobIndex();
  record.blobs.forEach((id, at) => {
    const { pack, offset, length, rawLength, compression } = locations[at]!;
    index.addPack(pack, [{ id, offset, length, rawLength, compression }]);
  });
  return index;
}

/** Deletes archived files' records (their data goes with prune). Caller holds an exclusive lock. */
export async function deleteArchiveFiles(
  repository: Repository,
  source: string,
  names: readonly string[],
): Promise<void> {
  for (const name of names) await repository.storage.delete(objectName(source, name));
}
