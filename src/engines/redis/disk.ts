// Backup from the server's own files, when lifeboat runs on its host (method disk or both): BGSAVE,
// wait until it has finished, then dump.rdb and the Redis 7 multi-part AOF directory (its manifest and
// the base and incremental files the manifest names) as one set.
//
// Consistency: each file is opened before it is read, and an open file stays readable on Linux even
// if the server replaces or deletes it (a later BGSAVE renames a new dump.rdb over it, an AOF rewrite
// deletes old parts). The AOF set is taken by reading the manifest, opening every file it names, and
// reading the manifest again: if it changed (a rewrite finished in between), the set is taken again.
// Incremental AOF files keep growing; each is read up to the size it had when the set was taken, and
// the server's aof-load-truncated (on by default) accepts a last command cut in the middle.
import { type FileHandle, open, readFile, readdir, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';

import { LifeboatError } from '../../errors.js';
import type { ArtifactStream } from '../engine.js';
import { command, info, type Client } from './connection.js';

const POLL_MS = 200;
const SAVE_TIMEOUT_MS = 6 * 60 * 60 * 1000;

/** Runs BGSAVE and waits for it; throws LB_ENGINE_FAILED if the save fails. */
export async function backgroundSave(client: Client, log?: (line: string) => void): Promise<void> {
  const before = await info(client, 'persistence');
  const savesBefore = Number(before.get('rdb_saves') ?? -1);
  const lastSaveBefore = Number(before.get('rdb_last_save_time') ?? 0);
  // LASTSAVE has a one-second resolution: make sure the save we start ends in a later second.
  if (savesBefore < 0 && Math.floor(Date.now() / 1000) <= lastSaveBefore) await sleep(1100);
  const reply = await command<Buffer | string>(client, ['BGSAVE', 'SCHEDULE']);
  log?.(`BGSAVE: ${String(reply)}`);
  const deadline = Date.now() + SAVE_TIMEOUT_MS;
  for (;;) {
    await sleep(POLL_MS);
    const now = await info(client, 'persistence');
    const inProgress = now.get('rdb_bgsave_in_progress') === '1';
    const saves = Number(now.get('rdb_saves') ?? -1);
    const lastSave = Number(now.get('rdb_last_save_time') ?? 0);
    const finished = savesBefore >= 0 ? saves > savesBefore : lastSave > lastSaveBefore;
    if (!inProgress && finished) {
      if (now.get('rdb_last_bgsave_status') !== 'ok') {
        throw new LifeboatError(
          'LB_ENGINE_FAILED',
          'BGSAVE failed on the server (rdb_last_bgsave_status is err; see the server log)',
        );
      }
      return;
    }
    if (Date.now() > deadline)
      throw new LifeboatError('LB_ENGINE_FAILED', 'BGSAVE did not finish within 6 hours');
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Checks that dataDirectory is where the server writes: its `dir` and `dbfilename` (when CONFIG GET is
 * allowed) and, in any case, that the RDB there was written by the save that just finished, so a wrong
 * directory never yields a stale dump.rdb as a fresh backup.
 */
export async function checkDataDirectory(
  client: Client,
  dataDirectory: string,
  rdbFileName: string,
  savedAfterMs: number,
): Promise<void> {
  try {
    const reply = await command<Buffer[]>(client, ['CONFIG', 'GET', 'dir']);
    const dir = reply[1]?.toString();
    if (
      dir &&
      (await realpath(dir).catch(() => dir)) !== (await realpath(dataDirectory).catch(() => dataDirectory))
    ) {
      throw new LifeboatError(
        'LB_USAGE',
        `dataDirectory is ${dataDirectory} but the server writes to ${dir}: fix dataDirectory (or use method: replication)`,
      );
    }
  } catch (error) {
    if (error instanceof LifeboatError) throw error; // CONFIG may be renamed or denied: check the file instead
  }
  const path = join(dataDirectory, rdbFileName);
  const written = await stat(path).then(
    (info) => info.mtimeMs,
    () => undefined,
  );
  if (written === undefined || written < savedAfterMs - 2000) {
    throw new LifeboatError(
      'LB_USAGE',
      `${path} ${written === undefined ? 'does not exist' : 'is older than the BGSAVE that just finished'}: is dataDirectory the server's dir and rdbFileName its dbfilename?`,
    );
  }
}

interface OpenedFile {
  name: string;
  handle: FileHandle;
  size: number;
}

function fileStream(file: OpenedFile): Readable {
  if (file.size === 0) {
    void file.handle.close();
    return Readable.from([]);
  }
  return file.handle.createReadStream({ start: 0, end: file.size - 1, autoClose: true });
}

async function openFile(path: string, name: string): Promise<OpenedFile> {
  try {
    const handle = await open(path, 'r');
    const { size } = await handle.stat();
    return { name, handle, size };
  } catch (error) {
    throw new LifeboatError('LB_ENGINE_UNAVAILABLE', `cannot read ${path}: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/** The files a multi-part AOF manifest names (history files excluded: the server is deleting them). */
export function manifestFiles(manifest: string): string[] {
  const names: string[] = [];
  for (const line of manifest.split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields[0] !== 'file') continue;
    const at = (key: string) => fields[fields.indexOf(key) + 1];
    if (at('type') === 'h') continue;
    const name = fields[1];
    if (name && !name.includes('/')) names.push(name);
  }
  return names;
}

async function openAofSet(directory: string): Promise<OpenedFile[] | undefined> {
  let entries: string[];
  try {
    entries = await readdir(directory);
  } catch {
    return undefined; // no AOF directory: AOF is off
  }
  const manifestName = entries.find((name) => name.endsWith('.manifest'));
  if (!manifestName) return undefined;
  const manifestPath = join(directory, manifestName);
  for (let attempt = 0; attempt < 10; attempt++) {
    const manifest = await readFile(manifestPath, 'utf8');
    const opened: OpenedFile[] = [];
    try {
      for (const name of manifestFiles(manifest)) opened.push(await openFile(join(directory, name), name));
    } catch {
      await Promise.all(opened.map((file) => file.handle.close()));
      continue; // a rewrite removed a file between the reads: take the set again
    }
    if ((await readFile(manifestPath, 'utf8')) === manifest) {
      const manifestFile = await openFile(manifestPath, manifestName);
      if (manifestFile.size === Buffer.byteLength(manifest)) return [manifestFile, ...opened];
      await manifestFile.handle.close();
    }
    await Promise.all(opened.map((file) => file.handle.close()));
  }
  throw new LifeboatError(
    'LB_ENGINE_FAILED',
    `the AOF manifest in ${directory} kept changing while lifeboat read it`,
  );
}

/** The artifacts of a disk backup: disk/<rdb> and disk/<appenddir>/<file>... */
export async function* diskArtifacts(
  dataDirectory: string,
  rdbFileName: string,
  appendDirName: string,
  rdbTap: (stream: Readable) => Readable,
): AsyncGenerator<ArtifactStream, { aofFiles: string[] }, void> {
  const rdb = await openFile(join(dataDirectory, rdbFileName), rdbFileName);
  const aof = await openAofSet(join(dataDirectory, appendDirName));
  try {
    yield { name: `disk/${rdbFileName}`, stream: rdbTap(fileStream(rdb)), precompressed: true };
    for (const file of aof ?? []) {
      yield { name: `disk/${appendDirName}/${file.name}`, stream: fileStream(file) };
    }
  } finally {
    // Files not streamed (the caller stopped early) are closed; streamed ones close themselves.
    await Promise.all((aof ?? []).map((file) => file.handle.close().catch(() => undefined)));
  }
  return { aofFiles: (aof ?? []).map((file) => file.name) };
}
