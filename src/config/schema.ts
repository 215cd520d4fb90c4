// The schema of lifeboat.yaml (validated after ${VAR} and <key>File resolution, see interpolate.ts).
//
// Terms:
//   repository  where backups go, and how they are encrypted: password mode (password) or public-key
//               mode (recipients, plus identity on hosts that restore).
//   sources     named data stores; `engine` selects the engine's own schema (src/engines/schemas.ts).
//   schedules   cron expressions that run backups (or drills) of some or all sources.
//   retention   which recovery points `forget` keeps (restic's keep-* rules).
//   objectives  per source RPO and RTO, checked by drills and shown by the dashboard.
//   drills      where a drill restores each source (scratch targets), and how often.
// Every block is strict: an unknown key is an error, so a typo never silently disables a setting.
import { Cron } from 'croner';
import { z } from 'zod';

import { ENGINE_NAMES, SOURCE_SCHEMAS, TARGET_SCHEMAS, type EngineName } from '../engines/schemas.js';
import { duration, flag, integer, text } from '../util/fields.js';

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const sourceName = z
  .string()
  .regex(NAME, { message: 'names use letters, digits, "-", "_" and "." (max 63)' });

const REPOSITORY_URL = /^(s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?|file:\/\/\/.+|[^:]+)$/;

const s3Schema = z
  .object({
    /** Endpoint of an S3-compatible server, e.g. http://127.0.0.1:9000 (omit for AWS). */
    endpoint: z.url({ message: 'expected an http:// or https:// URL' }).optional(),
    region: text().default('us-east-1'),
    accessKeyId: text().optional(),
    secretAccessKey: text().optional(),
    sessionToken: text().optional(),
    /** Path-style addressing (MinIO and most S3-compatible servers need it). */
    forcePathStyle: flag().default(false),
    /** Multipart part size in MiB (5 or more). */
    partSizeMiB: integer(5, 5120).optional(),
    /** Object Lock: keep every object immutable for this long after it is written. */
    objectLock: z
      .object({ mode: z.enum(['GOVERNANCE', 'COMPLIANCE']).default('GOVERNANCE'), retain: duration() })
      .strict()
      .optional(),
  })
  .strict()
  .refine((s3) => (s3.accessKeyId === undefined) === (s3.secretAccessKey === undefined), {
    message: 'set both accessKeyId and secretAccessKey, or neither (to use the AWS default credential chain)',
  });

const repositorySchema = z
  .object({
    /** Local directory, file:///path, or s3://bucket/prefix. */
    url: z
      .string()
      .regex(REPOSITORY_URL, { message: 'expected a local path, file:///path or s3://bucket/prefix' }),
    /** Password mode: the repository password (or passwordFile). */
    password: text().optional(),
    /** Public-key mode: age X25519 recipients that new data keys are wrapped to. */
    recipients: z
      .array(z.string().regex(/^age1[0-9a-z]{58}$/, { message: 'expected an age1… X25519 recipient' }))
      .min(1)
      .optional(),
    /** Public-key mode: the age identity that can read backups (usually identityFile). */
    identity: text().optional(),
    s3: s3Schema.optional(),
    /** Storage requests in flight at once. */
    concurrency: integer(1, 256).optional(),
    /** zstd level for new data (0 stores raw; about 3 is the default trade-off). */
    compression: z
      .object({ level: integer(0, 19).default(3) })
      .strict()
      .default({ level: 3 }),
  })
  .strict()
  .superRefine((repository, context) => {
    const modes = [repository.password !== undefined, repository.recipients !== undefined].filter(
      Boolean,
    ).length;
    if (modes !== 1) {
      context.addIssue({
        code: 'custom',
        message:
          modes === 0
            ? 'set password (password mode) or recipients (public-key mode)'
            : 'set password or recipients, not both',
      });
    }
    if (repository.identity !== undefined && repository.recipients === undefined) {
      context.addIssue({
        code: 'custom',
        path: ['identity'],
        message: 'identity goes with recipients (public-key mode)',
      });
    }
  });

const cronExpression = z.string().superRefine((expression, context) => {
  try {
    new Cron(expression, { paused: true });
  } catch (error) {
    context.addIssue({ code: 'custom', message: `not a valid cron expression: ${(error as Error).message}` });
  }
});

const scheduleSchema = z
  .object({
    /** A name for logs, metrics and the dashboard (default: "schedule-<index>"). */
    name: z.string().regex(NAME).optional(),
    /** Sources this schedule covers (default: all). */
    sources: z.array(sourceName).min(1).optional(),
    /** Five fields (minute hour day month weekday) or six with seconds. */
    cron: cronExpression,
    /** What runs: a backup (default) or a restore drill. */
    action: z.enum(['backup', 'drill']).default('backup'),
    /** IANA time zone the cron expression is read in (default: UTC). */
    timezone: text().optional(),
  })
  .strict();

const retentionSchema = z
  .object({
    keepLast: integer().optional(),
    keepHourly: integer().optional(),
    keepDaily: integer().optional(),
    keepWeekly: integer().optional(),
    keepMonthly: integer().optional(),
    keepYearly: integer().optional(),
    /** Keep every recovery point younger than this (e.g. 7d). */
    keepWithin: duration().optional(),
  })
  .strict();

const objectiveSchema = z
  .object({
    /** Recovery point objective: the most data, in time, the source may lose. */
    rpo: duration().optional(),
    /** Recovery time objective: the longest a restore of the source may take. */
    rto: duration().optional(),
  })
  .strict()
  .refine((objective) => objective.rpo !== undefined || objective.rto !== undefined, {
    message: 'set rpo, rto or both',
  });

const drillsSchema = z
  .object({
    /** Scratch targets per source, validated against the source's engine (see superRefine below). */
    targets: z.record(sourceName, z.record(z.string(), z.unknown())).default({}),
  })
  .strict();

export const configSchema = z
  .object({
    repository: repositorySchema,
    sources: z.record(sourceName, z.discriminatedUnion('engine', SOURCE_SCHEMAS)).default({}),
    schedules: z.array(scheduleSchema).default([]),
    retention: retentionSchema.default({}),
    objectives: z.record(sourceName, objectiveSchema).default({}),
    drills: drillsSchema.default({ targets: {} }),
  })
  .strict()
  .superRefine((config, context) => {
    const known = (name: string) => Object.hasOwn(config.sources, name);
    const unknownSource = (path: Array<string | number>, name: string) =>
      context.addIssue({ code: 'custom', path, message: `no source named "${name}" (see sources)` });

    config.schedules.forEach((schedule, index) =>
      schedule.sources?.forEach((name, position) => {
        if (!known(name)) unknownSource(['schedules', index, 'sources', position], name);
      }),
    );
    for (const name of Object.keys(config.objectives)) {
      if (!known(name)) unknownSource(['objectives', name], name);
    }
    for (const [name, target] of Object.entries(config.drills.targets)) {
      const source = config.sources[name];
      if (!source) {
        unknownSource(['drills', 'targets', name], name);
        continue;
      }
      const result = TARGET_SCHEMAS[source.engine].safeParse(target);
      for (const issue of result.error?.issues ?? []) {
        context.addIssue({
          ...issue,
          code: 'custom',
          path: ['drills', 'targets', name, ...issue.path],
        } as never);
      }
    }
  });

/** The validated configuration. */
export type LifeboatConfig = z.infer<typeof configSchema>;
export type RepositoryConfig = LifeboatConfig['repository'];
export type { EngineName };
export { ENGINE_NAMES };
