// The redis engine (Redis 7, Valkey 8): backup by the replication protocol and/or from the server's
// files, restore online (RESTORE) or offline (data directory), stats from the RDB itself
// (docs/engines/redis.md).
//
// Terms:
//   snapshot artifact  "dump.rdb": the RDB the server sent over the replication protocol (method
//                      replication or both), else "disk/<dbfilename>" from BGSAVE (method disk). It is
//                      what restore loads, and what the stats are computed from as it streams by, so
//                      they describe exactly the stored bytes, consistent even while clients write.
//   disk artifacts     "disk/<dbfilename>", "disk/<appenddirname>/<file>" (method disk or both).
import { type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream';

import { LifeboatError } from '../../errors.js';
import type {
  ArtifactSource,
  ArtifactStream,
  BackupOptions,
  BackupResult,
  Engine,
  ProbeResult,
  RestoreOptions,
  RestoreResult,
  Stats,
} from '../engine.js';
import { methodOf, type RedisSource, type RedisTarget } from './config.js';
import {
  closeClient,
  connect,
  endpointOf,
  identityOf,
  info,
  keyspaceOf,
  type Endpoint,
} from './connection.js';
import { backgroundSave, checkDataDirectory, diskArtifacts } from './disk.js';
import { RdbFormatError } from './rdb/cursor.js';
import { RdbParser, type RdbRecord } from './rdb/parser.js';
import { openReplicationSnapshot, type ReplicationSnapshot } from './replication.js';
import { type RedisMetadata, restoreRedis, stopStartedServer } from './restore.js';
import { KeyspaceTally, liveStats, tallyRecord } from './stats.js';
import type { DirectSource } from '../../util/read-fd.js';

export { RdbParser } from './rdb/parser.js';
export { decodeValue } from './rdb/decode.js';
export { readValue } from './stats.js';

async function probe(source: RedisSource): Promise<ProbeResult> {
  const endpoint = endpointOf(source);
  const client = await connect(endpoint);
  try {
    const all = await info(client);
    const identity = identityOf(all);
    const keyspace = keyspaceOf(all);
    return {
      version: identity.title,
      sizeBytes: Number(all.get('used_memory') ?? 0),
      details: {
        role: all.get('role'),
        keys: Object.fromEntries([...keyspace].map(([db, value]) => [`db${db}`, value.keys])),
        aofEnabled: all.get('aof_enabled') === '1',
        rdbLastSave: Number(all.get('rdb_last_save_time') ?? 0),
      },
    };
  } finally {
    await closeClient(client);
  }
}

interface Found {
  rdbVersion?: number;
  databases: Set<number>;
  functions: number;
  keys: number;
}

/** Parses an RDB as it goes by, into the tally and `found`; errors come out as LifeboatErrors. */
function rdbWatcher(endpoint: Endpoint, tally: KeyspaceTally | undefined, found: Found) {
  const parser = new RdbParser();
  const wrap = (error: unknown) =>
    error instanceof RdbFormatError
      ? new LifeboatError(
          'LB_ENGINE_FAILED',
          `the RDB from ${endpoint.label} is not valid: ${error.message}`,
          {
            cause: error,
          },
        )
      : error;
  const handle = (records: RdbRecord[]) => {
    // Synchronous: the records may point into memory the caller reuses (tallyRecord copies).
    for (const record of records) {
      if (record.kind === 'key') {
        found.keys += 1;
        found.databases.add(record.db);
        if (tally) tallyRecord(tally, record);
      } else if (record.kind === 'function') {
        found.functions += 1;
      }
    }
    found.rdbVersion ??= parser.header?.version;
  };
  return { parser, wrap, handle };
}

/** Bytes gathered from the socket before they are handed on and parsed (see tapSource). */
const PARSE_BYTES = 1024 * 1024;

/** The replication transfer, parsed in place as the repository reads it into its memory. */
function tapSource(
  endpoint: Endpoint,
  tally: KeyspaceTally,
  found: Found,
  input: DirectSource,
): DirectSource {
  const { parser, wrap, handle } = rdbWatcher(endpoint, tally, found);
  return {
    async readInto(target) {
      // Reads until a good part of the target is filled: a socket read brings ~64-256 KiB, and a record
      // cut by the end of what is parsed is copied to be joined with the next bytes (large values are
      // the likeliest to be cut). Parsing ~1 MiB at a time cut those copies from ~0.9 bytes per byte
      // of RDB to a few percent.
      const want = Math.min(target.length, PARSE_BYTES);
      let bytes = 0;
      for (;;) {
        const count = await input.readInto(target.subarray(bytes));
        bytes += count;
        if (count === 0 || bytes >= want) break;
      }
      try {
        handle(bytes === 0 ? parser.finish() : parser.pushTransient(target.subarray(0, bytes)));
      } catch (error) {
        input.destroy?.();
        throw wrap(error);
      }
      return bytes;
    },
    destroy: (error) => input.destroy?.(error),
  };
}

/** Passes an RDB through unchanged while parsing it into the tally; a bad RDB fails the stream. */
function tap(
  endpoint: Endpoint,
  tally: KeyspaceTally | undefined,
  found: Found,
): (input: Readable) => Readable {
  return (input) => {
    const { parser, wrap, handle } = rdbWatcher(endpoint, tally, found);
    const transform = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        try {
          handle(parser.push(chunk));
          callback(null, chunk);
        } catch (error) {
          callback(wrap(error) as Error);
        }
      },
      flush(callback) {
        try {
          handle(parser.finish());
          callback();
        } catch (error) {
          callback(wrap(error) as Error);
        }
      },
    });
    pipeline(input, transform, () => undefined);
    return transform;
  };
}

async function* backup(
  source: RedisSource,
  options: BackupOptions,
): AsyncGenerator<ArtifactStream, BackupResult, void> {
  const endpoint = endpointOf(source);
  const method = methodOf(source);
  let all: Map<string, string>;
  // Method replication: INFO on the replication connection itself (openReplicationSnapshot).
  let snapshot: ReplicationSnapshot | undefined;
  if (method === 'replication') {
    snapshot = await openReplicationSnapshot(endpoint, options.signal, { serverInfo: true });
    all = snapshot.serverInfo!;
  } else {
    const client = await connect(endpoint);
    try {
      all = await info(client); // server and memory sections in one round trip
      options.log?.(`BGSAVE on ${endpoint.label}`);
      const started = Date.now();
      await backgroundSave(client, options.log);
      await checkDataDirectory(client, source.dataDirectory!, source.rdbFileName, started);
    } finally {
      await closeClient(client);
    }
  }
  const identity = identityOf(all);
  const datasetBytes = Number(all.get('used_memory_dataset') ?? all.get('used_memory') ?? NaN) || undefined;
  const tally = new KeyspaceTally();
  const found: Found = { databases: new Set<number>(), functions: 0, keys: 0 };
  const metadata: Partial<RedisMetadata> = {
    product: identity.product,
    version: identity.version,
    method,
  };
  if (datasetBytes !== undefined) metadata.datasetBytes = datasetBytes;
  if (method !== 'disk') {
    snapshot ??= await openReplicationSnapshot(endpoint, options.signal);
    options.log?.(`receiving the snapshot from ${endpoint.label} (${snapshot.info.transfer} transfer)`);
    metadata.rdbArtifact = 'dump.rdb';
    metadata.transfer = snapshot.info.transfer;
    if (snapshot.info.replicationId) metadata.replicationId = snapshot.info.replicationId;
    if (snapshot.info.offset !== undefined) metadata.replicationOffset = snapshot.info.offset;
    yield {
      name: 'dump.rdb',
      source: tapSource(endpoint, tally, found, snapshot.source),
      precompressed: true,
    };
  }
  if (method !== 'replication') {
    const primary = method === 'disk';
    const other = { databases: new Set<number>(), functions: 0, keys: 0 };
    const files = yield* diskArtifacts(
      source.dataDirectory!,
      source.rdbFileName,
      source.appendDirName,
      primary ? tap(endpoint, tally, found) : tap(endpoint, undefined, other),
    );
    if (primary) metadata.rdbArtifact = `disk/${source.rdbFileName}`;
    metadata.aofFiles = files.aofFiles;
  }
  metadata.rdbVersion = found.rdbVersion!;
  metadata.databases = [...found.databases].sort((a, b) => a - b);
  metadata.functions = found.functions;
  metadata.keys = found.keys;
  return {
    stats: tally.stats({ server: identity.title, rdbVersion: found.rdbVersion }),
    metadata: metadata as unknown as Record<string, unknown>,
  };
}

async function stats(target: RedisSource | RedisTarget): Promise<Stats> {
  const endpoint = endpointOf(target);
  const client = await connect(endpoint);
  try {
    const identity = identityOf(await info(client, 'server'));
    return await liveStats(client, { server: identity.title });
  } finally {
    await closeClient(client);
  }
}

function restore(
  target: RedisTarget,
  artifacts: ArtifactSource,
  metadata: Record<string, unknown>,
  options: RestoreOptions,
): Promise<RestoreResult> {
  if (options.pointInTime) {
    throw new LifeboatError(
      'LB_USAGE',
      'Redis snapshots are restored as taken: --at does not apply to the redis engine',
    );
  }
  return restoreRedis(target, artifacts, metadata as unknown as RedisMetadata, options);
}

async function cleanup(target: RedisTarget, result: RestoreResult): Promise<void> {
  if (result.details.started === true) await stopStartedServer(target);
}

async function verifyArtifact(name: string, stream: Readable): Promise<string> {
  if (!name.endsWith('.rdb')) {
    for await (const chunk of stream) void chunk;
    return 'not an RDB (AOF part): stored as is';
  }
  const parser = new RdbParser();
  let keys = 0;
  const count = (records: RdbRecord[]) => (keys += records.filter((record) => record.kind === 'key').length);
  for await (const chunk of stream) count(parser.push(chunk as Buffer));
  count(parser.finish());
  return `RDB version ${parser.header!.version}, ${keys} keys, checksum ok`;
}

export const redisEngine: Engine<RedisSource, RedisTarget> = {
  name: 'redis',
  probe,
  backup,
  stats,
  restore,
  verifyArtifact,
  cleanup,
};
