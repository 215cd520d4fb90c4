// Configuration of a PostgreSQL source (engine: postgres) and of a drill target for one.
import { z } from 'zod';

import { integer, text, urlWith } from '../../util/fields.js';

const postgresUrl = urlWith(['postgres', 'postgresql'], 'postgres://');

export const postgresSourceSchema = z
  .object({
    engine: z.literal('postgres'),
    /** Connection URL (libpq form); the database in it is the one backed up unless `databases` says. */
    url: postgresUrl,
    /** Password (overrides the URL's; or passwordFile). */
    password: text().optional(),
    /** Databases to back up logically; "all" for every non-template database. */
    databases: z.union([z.literal('all'), z.array(text()).min(1)]).optional(),
    /** logical (pg_dump), physical (pg_basebackup + WAL archive), or both. */
    mode: z.enum(['logical', 'physical', 'both']).default('logical'),
    /** Parallel jobs for pg_restore. */
    jobs: integer(1, 64).optional(),
    /** Data directory of the server, for physical restores onto this host. */
    dataDirectory: text().optional(),
  })
  .strict();

export const postgresTargetSchema = z.object({ url: postgresUrl, dataDirectory: text().optional() }).strict();
