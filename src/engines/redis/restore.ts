// Restoring an RDB snapshot, in one of two ways (config restoreMode):
//
//   online   into a running server: every key is replayed with RESTORE <key> <ttl> <payload> ABSTTL
//            (payload built from the stored bytes, dump.ts), in pipelined batches, keeping the LRU
//            idle time / LFU frequency when the RDB has them, and functions with FUNCTION RESTORE.
//            Keys whose expiry has passed are skipped. A target holding keys needs --force, which
//            flushes it first (FLUSHALL SYNC) so that it ends up holding exactly the snapshot.
//   offline  into a stopped server's data directory: the RDB becomes dump.rdb (the previous one and the
//            AOF directory are moved aside, never deleted), plus, for a server with appendonly yes, an
//            AOF directory whose base is that RDB. With `server` configured lifeboat starts it and
//            waits until the data is loaded.
//
// Both check before touching anything: the target can read this RDB version, has enough databases,
// and is empty unless --force.
import { spawn } from 'node:child_process';
import { createWriteStream, openSync } from 'node:fs';
import { chown, mkdir, rename, stat, writeFile, copyFile, open } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import { LifeboatError } from '../../errors.js';
import type { ArtifactSource, RestoreOptions, RestoreResult } from '../engine.js';
import {
  FLUSH_TIMEOUT_MS,
  classify,
  closeClient,
  command,
  connect,
  endpointOf,
  identityOf,
  info,
  keyspaceOf,
  openSocket,
  type Client,
  type Endpoint,
} from './connection.js';
import type { RedisTarget } from './config.js';
import { CommandPipeline } from './pipeline.js';
import { functionPayload } from './rdb/dump.js';
import { RdbParser, type RdbRecord } from './rdb/parser.js';
import { rdbVersionOf } from './rdb/types.js';

export interface RedisMetadata {
  product: 'redis' | 'valkey';
  version: string;
  rdbVersion: number;
  rdbArtifact: string;
  databases: number[];
  keys: number;
  functions: number;
  method: string;
  aofFiles?: string[];
  /** used_memory_dataset of the source at backup time. */
  datasetBytes?: number;
  replicationId?: string;
  replicationOffset?: number;
  transfer?: string;
}

const WINDOW_BYTES = 16 * 1024 * 1024;
const START_TIMEOUT_MS = 30 * 60 * 1000;

export async function restoreRedis(
  target: RedisTarget,
  artifacts: ArtifactSource,
  metadata: RedisMetadata,
  options: RestoreOptions,
): Promise<RestoreResult> {
  if (!artifacts.names.includes(metadata.rdbArtifact)) {
    throw new LifeboatError(
      'LB_RESTORE_PRECONDITION',
      `the snapshot has no ${metadata.rdbArtifact} artifact`,
    );
  }
  return target.restoreMode === 'offline'
    ? restoreOffline(target, artifacts, metadata, options)
    : restoreOnline(target, artifacts, metadata, options);
}

function checkVersion(metadata: RedisMetadata, title: string, targetRdb: number): void {
  if (metadata.rdbVersion > targetRdb) {
    throw new LifeboatError(
      'LB_RESTORE_PRECONDITION',
      `the snapshot is RDB version ${metadata.rdbVersion} (${metadata.product} ${metadata.version}); ${title} reads RDB versions up to ${targetRdb}: restore into a server at least as new as the source`,
    );
  }
}

async function restoreOnline(
  target: RedisTarget,
  artifacts: ArtifactSource,
  metadata: RedisMetadata,
  options: RestoreOptions,
): Promise<RestoreResult> {
  const endpoint = endpointOf(target);
  const client = await connect(endpoint);
  const actions: string[] = [];
  try {
    const identity = identityOf(await info(client, 'server'));
    checkVersion(metadata, identity.title, rdbVersionOf(identity.product, identity.version));
    const highest = Math.max(0, ...metadata.databases);
    try {
      await client.select(highest);
      await client.select(0);
    } catch (error) {
      throw new LifeboatError(
        'LB_RESTORE_PRECONDITION',
        `the snapshot has keys in db ${highest}, which ${identity.title} at ${endpoint.label} does not have (raise its "databases" setting): ${(error as Error).message}`,
      );
    }
    await checkMemory(client, identity.title, endpoint, metadata, options);
    const keyspace = keyspaceOf(await info(client, 'keyspace'));
    const present = [...keyspace.entries()].filter(([, value]) => value.keys > 0);
    // Servers before Redis 7 have no functions (FUNCTION is an unknown command there).
    const targetLibraries = await command<unknown[]>(client, ['FUNCTION', 'LIST']).catch((error: unknown) => {
      if (/unknown command/i.test((error as Error).message)) return [];
      throw error;
    });
    const libraries = metadata.functions > 0 ? targetLibraries : [];
    if ((present.length > 0 || libraries.length > 0) && !options.force) {
      const what =
        present.map(([db, value]) => `db${db}: ${value.keys} keys`).join(', ') ||
        `${libraries.length} function libraries`;
      throw new LifeboatError(
        'LB_TARGET_NOT_EMPTY',
        `${identity.title} at ${endpoint.label} is not empty (${what}); --force flushes it and restores the snapshot`,
      );
    }
    if (present.length > 0) {
      options.log?.(`flushing ${endpoint.label} (FLUSHALL SYNC)`);
      await command(client, ['FLUSHALL', 'SYNC'], { timeoutMs: FLUSH_TIMEOUT_MS });
      actions.push(`flushed ${present.map(([db, value]) => `db${db} (${value.keys} keys)`).join(', ')}`);
    }
    if (options.force && targetLibraries.length > 0) {
      // FLUSHALL leaves functions: the target is to hold the snapshot's libraries and no others.
      await command(client, ['FUNCTION', 'FLUSH', 'SYNC'], { timeoutMs: FLUSH_TIMEOUT_MS });
      actions.push(`flushed ${targetLibraries.length} function libraries`);
    }
    const counts = await replay(endpoint, artifacts.open(metadata.rdbArtifact), metadata, options);
    actions.push(
      `restored ${counts.keys} keys into ${identity.title} at ${endpoint.label}${counts.expired ? ` (${counts.expired} already expired, skipped)` : ''}${counts.functions ? `, ${counts.functions} function libraries` : ''}`,
    );
    return { actions, details: { mode: 'online', ...counts, server: identity.title } };
  } catch (error) {
    throw error instanceof LifeboatError ? error : classify(error, endpoint, 'restore into');
  } finally {
    await closeClient(client);
  }
}

/**
 * A target whose maxmemory is below the snapshot's dataset would fail midway (noeviction: OOM errors)
 * or silently evict restored keys: the first is refused before anything is touched, the second noted.
 */
async function checkMemory(
  client: Client,
  title: string,
  endpoint: Endpoint,
  metadata: RedisMetadata,
  options: RestoreOptions,
): Promise<void> {
  if (!metadata.datasetBytes) return;
  let settings: Map<string, string>;
  try {
    const reply = await command<Buffer[]>(client, ['CONFIG', 'GET', 'maxmemory*']);
    settings = new Map();
    for (let k = 0; k + 1 < reply.length; k += 2) settings.set(String(reply[k]), String(reply[k + 1]));
  } catch {
    return; // CONFIG may be renamed or denied: nothing to check against
  }
  const limit = Number(settings.get('maxmemory') ?? 0);
  if (!(limit > 0) || limit >= metadata.datasetBytes) return;
  const mib = (bytes: number) => `${(bytes / 1048576).toFixed(0)} MiB`;
  const policy = settings.get('maxmemory-policy') ?? 'noeviction';
  if (policy === 'noeviction') {
    throw new LifeboatError(
      'LB_RESTORE_PRECONDITION',
      `${title} at ${endpoint.label} has maxmemory ${mib(limit)} with noeviction; the snapshot's dataset was ${mib(metadata.datasetBytes)}: the restore would fail midway (raise maxmemory first)`,
    );
  }
  options.log?.(
    `note: maxmemory ${mib(limit)} (${policy}) is below the snapshot's dataset of ${mib(metadata.datasetBytes)}: the server will evict keys during the restore`,
  );
}

/**
 * Streams the RDB through the parser into RESTORE commands on a pipeline (pipeline.ts), keeping at most
 * WINDOW_BYTES of commands awaiting their replies.
 */
async function replay(
  endpoint: Endpoint,
  stream: Readable,
  metadata: RedisMetadata,
  options: RestoreOptions,
): Promise<{ keys: number; expired: number; functions: number }> {
  const parser = new RdbParser({ checksum: false }); // verified by the repository as it reads
  const pipeline = await CommandPipeline.open(endpoint);
  let db = 0;
  let keys = 0;
  let expired = 0;
  let functions = 0;
  const replace = options.force ? ['REPLACE'] : [];
  const handle = async (records: RdbRecord[]) => {
    for (const record of records) {
      if (record.kind === 'key') {
        if (record.expireAt !== undefined && record.expireAt <= Date.now()) {
          expired += 1;
          continue;
        }
        if (record.db !== db || keys === 0) {
          db = record.db;
          pipeline.send(['SELECT', String(db)], `SELECT ${db}`);
        }
        const extra = [...replace];
        if (record.expireAt !== undefined) extra.push('ABSTTL');
        if (record.idle !== undefined) extra.push('IDLETIME', String(record.idle));
        if (record.freq !== undefined) extra.push('FREQ', String(record.freq));
        pipeline.sendRestore(
          record.key,
          String(record.expireAt ?? 0),
          record.type,
          record.value,
          parser.header!.version,
          extra,
        );
        keys += 1;
      } else if (record.kind === 'function') {
        pipeline.send(
          ['FUNCTION', 'RESTORE', functionPayload(record.raw, parser.header!.version), ...replace],
          'FUNCTION RESTORE',
        );
        functions += 1;
      }
      await pipeline.drain(WINDOW_BYTES);
    }
  };
  try {
    for await (const chunk of stream) {
      options.signal?.throwIfAborted();
      await handle(parser.push(chunk as Buffer));
    }
    await handle(parser.finish());
    await pipeline.flush();
  } finally {
    pipeline.close();
  }
  if (metadata.keys !== undefined && keys + expired !== metadata.keys) {
    options.log?.(`note: the snapshot recorded ${metadata.keys} keys, the RDB held ${keys + expired}`);
  }
  return { keys, expired, functions };
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

async function isRunning(endpoint: Endpoint): Promise<boolean> {
  try {
    const socket = await openSocket(endpoint);
    socket.destroy();
    return true;
  } catch (error) {
    if (error instanceof LifeboatError && error.code === 'LB_ENGINE_UNAVAILABLE') return false;
    throw error;
  }
}

async function restoreOffline(
  target: RedisTarget,
  artifacts: ArtifactSource,
  metadata: RedisMetadata,
  options: RestoreOptions,
): Promise<RestoreResult> {
  const directory = target.dataDirectory!;
  const endpoint = endpointOf(target);
  const actions: string[] = [];
  let directoryStat;
  try {
    directoryStat = await stat(directory);
  } catch (error) {
    throw new LifeboatError(
      'LB_RESTORE_PRECONDITION',
      `the data directory ${directory} does not exist: ${(error as Error).message}`,
    );
  }
  if (await isRunning(endpoint)) {
    throw new LifeboatError(
      'LB_RESTORE_PRECONDITION',
      `a server answers at ${endpoint.label}: an offline restore needs it stopped (or set restoreMode: online to restore into the running server)`,
    );
  }
  if (target.server) await checkServerVersion(target.server.command, metadata);
  const rdbPath = join(directory, target.rdbFileName);
  const aofPath = join(directory, target.appendDirName);
  const present: string[] = [];
  for (const path of [rdbPath, aofPath]) if (await exists(path)) present.push(path);
  if (present.length > 0 && !options.force) {
    throw new LifeboatError(
      'LB_TARGET_NOT_EMPTY',
      `${present.join(' and ')} exist; --force moves them aside and restores the snapshot`,
    );
  }
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  for (const path of present) {
    const aside = `${path}.lifeboat-moved-${stamp}`;
    await rename(path, aside);
    actions.push(`moved ${path} aside to ${aside}`);
  }
  // The RDB is checked (structure and CRC) as it is written, and renamed into place only when whole.
  const temporary = `${rdbPath}.lifeboat-tmp`;
  const parser = new RdbParser();
  let keys = 0;
  let volatile = 0;
  const source = artifacts.open(metadata.rdbArtifact);
  await pipeline(
    source,
    async function* (chunks: AsyncIterable<Buffer>) {
      const count = (records: RdbRecord[]) => {
        for (const record of records) {
          if (record.kind !== 'key') continue;
          keys += 1;
          if (record.expireAt !== undefined) volatile += 1;
        }
      };
      for await (const chunk of chunks) {
        count(parser.push(chunk));
        yield chunk;
      }
      count(parser.finish());
    },
    createWriteStream(temporary),
  );
  await fsync(temporary);
  await rename(temporary, rdbPath);
  const owned = [rdbPath];
  actions.push(`wrote ${rdbPath} (${keys} keys)`);
  if (target.appendOnly) {
    await mkdir(aofPath);
    const base = `${target.appendFileName}.1.base.rdb`;
    await copyFile(rdbPath, join(aofPath, base));
    await writeFile(join(aofPath, `${target.appendFileName}.manifest`), `file ${base} seq 1 type b\n`);
    owned.push(aofPath, join(aofPath, base), join(aofPath, `${target.appendFileName}.manifest`));
    actions.push(`wrote ${aofPath} with the RDB as its base`);
  }
  // Files lifeboat writes as root belong to the server's user (the data directory's owner).
  if (process.getuid?.() === 0) {
    for (const path of owned) await chown(path, directoryStat.uid, directoryStat.gid);
  }
  const details: Record<string, unknown> = { mode: 'offline', keys, dataDirectory: directory };
  if (target.server) {
    const started = await startServer(target, directory, directoryStat.uid, directoryStat.gid, options);
    details.started = true;
    details.keysLoaded = started.keys;
    // Only keys with an expiry may be missing (expired since the backup): fewer means the server
    // loaded another file (its dir or dbfilename is not this target's).
    if (started.keys < keys - volatile || started.keys > keys) {
      await stopStartedServer(target).catch(() => undefined); // back to stopped: it serves the wrong data
      throw new LifeboatError(
        'LB_ENGINE_FAILED',
        `the started server holds ${started.keys} keys, the restored ${rdbPath} has ${keys}: does its configuration (dir, dbfilename) point at ${directory}? (it was stopped again)`,
      );
    }
    actions.push(
      `started ${target.server.command}; it loaded ${started.keys} keys${started.keys < keys ? ` (${keys - started.keys} expired since the backup)` : ''}`,
    );
  } else {
    actions.push('start the server to load it');
  }
  return { actions, details };
}

async function fsync(path: string): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function checkServerVersion(binary: string, metadata: RedisMetadata): Promise<void> {
  const output = await new Promise<string>((resolve) => {
    const child = spawn(binary, ['--version'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let text = '';
    child.stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
    child.on('error', () => resolve(''));
    child.on('close', () => resolve(text));
  });
  const version = /\bv=(\d+\.\d+\.\d+)/.exec(output)?.[1];
  if (!version) {
    throw new LifeboatError(
      'LB_ENGINE_TOOL_MISSING',
      `cannot run ${binary} --version (server.command of the restore target)`,
    );
  }
  const product = /valkey/i.test(output) ? 'valkey' : 'redis';
  checkVersion(
    metadata,
    `${product === 'valkey' ? 'Valkey' : 'Redis'} ${version}`,
    rdbVersionOf(product, version),
  );
}

/** Starts the server (detached, logging to <dataDirectory>/lifeboat-server.log) and waits until it has loaded. */
async function startServer(
  target: RedisTarget,
  directory: string,
  uid: number,
  gid: number,
  options: RestoreOptions,
): Promise<{ pid: number; keys: number }> {
  const server = target.server!;
  const logPath = join(directory, 'lifeboat-server.log');
  const log = openSync(logPath, 'a');
  const asOwner = process.getuid?.() === 0 && uid !== 0 ? { uid, gid } : {};
  const child = spawn(server.command, server.args, {
    detached: true,
    stdio: ['ignore', log, log],
    ...asOwner,
  });
  // A launcher (systemctl start, --daemonize yes) exits 0 once the service runs: only a failed exit
  // ends the wait early; a timeout ends it otherwise.
  let exited: string | undefined;
  child.on('exit', (code, signal) => {
    if (signal || code !== 0) exited = signal ?? `exit code ${code}`;
  });
  child.on('error', (error) => (exited = error.message));
  child.unref();
  options.log?.(`started ${server.command} (pid ${child.pid}), waiting for it to load`);
  const endpoint = endpointOf(target);
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    if (exited) {
      throw new LifeboatError(
        'LB_ENGINE_FAILED',
        `the server stopped while starting (${exited}); see ${logPath}`,
      );
    }
    let client: Client | undefined;
    try {
      client = await connect(endpoint);
      const persistence = await info(client, 'persistence');
      if (persistence.get('loading') === '0') {
        const keyspace = keyspaceOf(await info(client, 'keyspace'));
        const keys = [...keyspace.values()].reduce((sum, db) => sum + db.keys, 0);
        return { pid: child.pid!, keys };
      }
    } catch (error) {
      if (error instanceof LifeboatError && error.code === 'LB_ENGINE_AUTH') throw error;
      if (!/LOADING/.test((error as Error).message) && !(error instanceof LifeboatError)) throw error;
    } finally {
      if (client) await closeClient(client);
    }
    if (Date.now() > deadline)
      throw new LifeboatError(
        'LB_ENGINE_FAILED',
        `the server did not answer and finish loading within 30 minutes; see ${logPath}`,
      );
  }
}

/** Stops a server an offline restore started (after a drill). */
export async function stopStartedServer(target: RedisTarget): Promise<void> {
  const client = await connect(endpointOf(target));
  try {
    await command(client, ['SHUTDOWN', 'NOSAVE']);
  } catch {
    // SHUTDOWN closes the connection instead of answering
  } finally {
    client.destroy();
  }
}
