// Configuration of a Redis or Valkey source (engine: redis) and of a drill target for one.
import { z } from 'zod';

import { flag, text, urlWith } from '../../util/fields.js';

const redisUrl = urlWith(['redis', 'rediss'], 'redis:// or rediss://');

const connection = {
  /** redis://[user:password@]host:port[/db]; rediss:// for TLS. */
  url: redisUrl,
  /** ACL user name (overrides the URL's). */
  username: text().optional(),
  /** Password (overrides the URL's). */
  password: text().optional(),
  tls: z
    .object({
      caFile: text().optional(),
      /** Client certificate and its key (PEM), for servers that authenticate clients (tls-auth-clients yes, Redis's default). */
      certFile: text().optional(),
      keyFile: text().optional(),
      insecureSkipVerify: flag().optional(),
      serverName: text().optional(),
    })
    .strict()
    .refine((tls) => (tls.certFile === undefined) === (tls.keyFile === undefined), {
      message: 'certFile and keyFile go together (a client certificate and its key)',
    })
    .optional(),
};

/** Where the server keeps its files (`dir`, `dbfilename`, `appenddirname` of its config). */
const files = {
  /** The server's data directory, when lifeboat runs on its host. */
  dataDirectory: text().optional(),
  rdbFileName: text().default('dump.rdb'),
  appendDirName: text().default('appendonlydir'),
};

/**
 * How a restore into this server works.
 *   online   (default) the server runs; keys are replayed with RESTORE (and their expiry).
 *   offline  the server is stopped; dump.rdb is placed in dataDirectory (AOF files moved aside) and,
 *            when `server` is given, lifeboat starts it and waits until it has loaded.
 */
const restoreSettings = {
  restoreMode: z.enum(['online', 'offline']).default('online'),
  /** The command that starts the server for an offline restore: the server in the foreground, or a
   * launcher that exits 0 once it runs (systemctl start …, --daemonize yes). */
  server: z
    .object({ command: text(), args: z.array(z.string()).default([]) })
    .strict()
    .optional(),
  /** The server runs with appendonly yes: an offline restore also writes an AOF whose base is the RDB
   * (a server with AOF on and no AOF would otherwise start empty). */
  appendOnly: flag().default(false),
  appendFileName: text().default('appendonly.aof'),
};

export const redisSourceSchema = z
  .object({
    engine: z.literal('redis'),
    ...connection,
    ...files,
    /**
     * replication: the snapshot over the replication protocol, no disk access needed.
     * disk: BGSAVE, then dump.rdb and the AOF directory from dataDirectory. both: the two.
     * Default: both when dataDirectory is given, else replication.
     */
    method: z.enum(['replication', 'disk', 'both']).optional(),
    ...restoreSettings,
  })
  .strict()
  .refine(
    (source) => (source.method ?? 'replication') === 'replication' || source.dataDirectory !== undefined,
    {
      message: 'method disk or both needs dataDirectory',
    },
  );

/** The backup method a source uses (its `method`, or the default for its settings). */
export function methodOf(source: {
  method?: 'replication' | 'disk' | 'both' | undefined;
  dataDirectory?: string | undefined;
}) {
  return source.method ?? (source.dataDirectory !== undefined ? 'both' : 'replication');
}

export const redisTargetSchema = z
  .object({ ...connection, ...files, ...restoreSettings })
  .strict()
  .refine((target) => target.restoreMode === 'online' || target.dataDirectory !== undefined, {
    message: 'restoreMode offline needs dataDirectory',
  });

export type RedisSource = z.infer<typeof redisSourceSchema>;
export type RedisTarget = z.infer<typeof redisTargetSchema>;
