// Configuration of a Redis or Valkey source (engine: redis) and of a drill target for one.
import { z } from 'zod';

import { flag, text, urlWith } from '../../util/fields.js';

const redisUrl = urlWith(['redis', 'rediss'], 'redis:// or rediss://');

const connection = {
  /** redis://[user:password@]host:port[/db]; rediss:// for TLS. */
  url: redisUrl,
  /** ACL user name (overrides the URL's). */
  username: text().optional(),
  /** Password (overrides the URL's); or passwordFile. */
  password: text().optional(),
  tls: z
    .object({
      caFile: text().optional(),
      insecureSkipVerify: flag().optional(),
      serverName: text().optional(),
    })
    .strict()
    .optional(),
};

export const redisSourceSchema = z
  .object({
    engine: z.literal('redis'),
    ...connection,
    /** The server's data directory, when lifeboat runs on its host (enables BGSAVE + AOF backups). */
    dataDirectory: text().optional(),
  })
  .strict();

export const redisTargetSchema = z.object({ ...connection, dataDirectory: text().optional() }).strict();
