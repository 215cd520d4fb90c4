// Configuration of a PostgreSQL source (engine: postgres) and of a drill target for one.
import { z } from 'zod';

import { duration, integer, text, urlWith } from '../../util/fields.js';

const postgresUrl = urlWith(['postgres', 'postgresql'], 'postgres://');

const connection = {
  /** Connection URL (libpq form); the database in it is the one backed up unless `databases` says. */
  url: postgresUrl,
  /** Password (overrides the URL's; or passwordFile). */
  password: text().optional(),
  /** Directory of pg_dump, pg_restore, pg_basebackup, psql (default: the server's major version's). */
  binDirectory: text().optional(),
};

export const postgresSourceSchema = z
  .object({
    engine: z.literal('postgres'),
    ...connection,
    /** Databases to back up logically; "all" for every non-template database. */
    databases: z.union([z.literal('all'), z.array(text()).min(1)]).optional(),
    /** logical (pg_dump), physical (base backups + WAL archive), or both. */
    mode: z.enum(['logical', 'physical', 'both']).default('logical'),
    /**
     * How a physical backup reads the cluster: direct (lifeboat reads the data directory itself, on the
     * server's host, as pgBackRest does), pg_basebackup (streamed by the server, from anywhere), or auto
     * (direct where it can be done, else pg_basebackup).
     */
    baseBackup: z.enum(['auto', 'direct', 'pg_basebackup']).default('auto'),
    /** Parallel jobs for pg_restore. */
    jobs: integer(1, 64).optional(),
    /** Data directory of the server, for physical restores onto this host. */
    dataDirectory: text().optional(),
    /** Tables with more (estimated) rows than this are counted from statistics, flagged as estimates. */
    exactRowLimit: integer(0).default(2_000_000),
    archive: z
      .object({
        /** Physical backups: how long to wait for the backup's last WAL segment to reach the archive. */
        checkTimeout: duration().default('60s'),
        /**
         * wal-push takes up to this many other ready WAL files along in the same push (one process,
         * one repository session) and leaves a marker for each in the spool, so that their own
         * archive_command returns at once (pgBackRest's archive-async). 0: one file per push.
         */
        pushAhead: integer(0, 1024).default(0),
        /** Where push-ahead markers wait (default: <dataDirectory>.lifeboat-spool, beside the data directory). */
        spoolDirectory: text().optional(),
      })
      .strict()
      .default({ checkTimeout: '60s', pushAhead: 0 }),
  })
  .strict();

export const postgresTargetSchema = z
  .object({
    ...connection,
    /** For physical (PITR) restores: the empty data directory to restore into. */
    dataDirectory: text().optional(),
    /** For physical restores that lifeboat starts: the port the restored server listens on. */
    port: integer(1, 65535).optional(),
    /** Logical restores of several databases: source database → target database. */
    databaseMap: z.record(z.string(), text()).optional(),
  })
  .strict();

export type PostgresSource = z.infer<typeof postgresSourceSchema>;
export type PostgresTarget = z.infer<typeof postgresTargetSchema>;
