// The error catalogue: every failure lifeboat reports to a user carries one of these stable codes.
//
// Terms:
//   code      a stable identifier such as LB_CONFIG_INVALID; scripts and dashboards may match on it,
//             so a code is never renamed or reused once released. docs/errors.md documents each one
//             (a test checks both directions).
//   exitCode  what the CLI exits with: 2 for a usage or configuration mistake, 1 for an operation that
//             failed, 3 when validation found a mismatch (drills, validate).
//   http      the status the HTTP API answers with.
//   retryable whether trying the same operation again may succeed (used by the storage retry wrapper).

/** One catalogue entry. */
export interface ErrorSpec {
  /** One sentence for docs and for `--json` consumers: what went wrong, in general terms. */
  readonly summary: string;
  /** CLI exit code. */
  readonly exitCode: 1 | 2 | 3;
  /** HTTP status for the API. */
  readonly http: number;
  /** Whether the same operation may succeed when tried again. */
  readonly retryable?: boolean;
}

export const ERROR_CATALOGUE = {
  LB_USAGE: {
    summary: 'The command line is not valid: unknown command or option, or a missing argument.',
    exitCode: 2,
    http: 400,
  },
  LB_INTERNAL: {
    summary: 'An unexpected internal error; this is a bug in lifeboat, please report it with --debug output.',
    exitCode: 1,
    http: 500,
  },

  LB_OUTPUT_FAILED: {
    summary:
      'Writing to standard output failed: the command reading it ended first (a closed pipe), or its disk is full.',
    exitCode: 1,
    http: 500,
  },
  LB_INSTALL_INCOMPLETE: {
    summary:
      'A part of lifeboat that is built at install time is missing (the native BLAKE3 addon): run scripts/build-native.sh.',
    exitCode: 1,
    http: 500,
  },

  LB_CONFIG_NOT_FOUND: {
    summary: 'The configuration file does not exist or cannot be read.',
    exitCode: 2,
    http: 500,
  },
  LB_CONFIG_PARSE: { summary: 'The configuration file is not valid YAML.', exitCode: 2, http: 500 },
  LB_CONFIG_INVALID: {
    summary:
      'The configuration does not match the schema: a key has the wrong type, is unknown, missing, or refers to something that does not exist.',
    exitCode: 2,
    http: 500,
  },
  LB_CONFIG_ENV_MISSING: {
    summary: 'The configuration refers to an environment variable (${VAR}) that is not set.',
    exitCode: 2,
    http: 500,
  },
  LB_CONFIG_SECRET_FILE: {
    summary: 'A secret file named by a <key>File setting cannot be read or is empty.',
    exitCode: 2,
    http: 500,
  },

  LB_STORAGE_NOT_FOUND: {
    summary: 'The object, directory or bucket does not exist in the storage backend.',
    exitCode: 1,
    http: 404,
  },
  LB_STORAGE_EXISTS: {
    summary: 'A create-only write found the object already present.',
    exitCode: 1,
    http: 409,
  },
  LB_STORAGE_UNAVAILABLE: {
    summary:
      'The storage backend could not be reached or kept failing with transient errors after all retries.',
    exitCode: 1,
    http: 503,
    retryable: true,
  },
  LB_STORAGE_TIMEOUT: {
    summary: 'A storage request took longer than its timeout.',
    exitCode: 1,
    http: 504,
    retryable: true,
  },
  LB_STORAGE_AUTH: {
    summary: 'The storage backend refused the credentials or denied access.',
    exitCode: 1,
    http: 502,
  },
  LB_STORAGE_RANGE: {
    summary:
      'A ranged read asked for bytes outside the object, or the backend returned fewer bytes than asked.',
    exitCode: 1,
    http: 500,
  },
  LB_STORAGE_UNSUPPORTED: {
    summary:
      'The storage backend does not support the requested feature (for example Object Lock on a local directory).',
    exitCode: 1,
    http: 501,
  },
  LB_STORAGE_INVALID_NAME: {
    summary: 'An object name is not valid (absolute, contains "..", or characters outside the allowed set).',
    exitCode: 1,
    http: 500,
  },
  LB_STORAGE_FAILED: {
    summary: 'The storage backend failed permanently (disk full, read-only filesystem, rejected request).',
    exitCode: 1,
    http: 502,
  },
  LB_REPO_NOT_FOUND: {
    summary: 'There is no lifeboat repository at the configured location (run lifeboat init).',
    exitCode: 1,
    http: 404,
  },
  LB_REPO_EXISTS: {
    summary: 'lifeboat init found a repository (or other data) already at the location.',
    exitCode: 1,
    http: 409,
  },
  LB_REPO_WRONG_KEY: {
    summary: 'No key of the repository opens with the given password or identity.',
    exitCode: 1,
    http: 401,
  },
  LB_REPO_VERSION: {
    summary: 'The repository (or one of its files) has a format version this lifeboat does not know.',
    exitCode: 1,
    http: 500,
  },
  LB_REPO_CORRUPT: {
    summary:
      'Stored data failed verification (authentication tag, hash, size or structure): it is damaged or was tampered with.',
    exitCode: 1,
    http: 500,
  },
  LB_REPO_MISSING_DATA: {
    summary: 'Data a snapshot refers to is missing from the repository (a pack, an index entry or a blob).',
    exitCode: 1,
    http: 500,
  },
  LB_REPO_WRITE_ONLY: {
    summary:
      'This host holds only the public recipients (write-only): it can back up but cannot read stored data.',
    exitCode: 1,
    http: 403,
  },
  LB_REPO_LOCKED: {
    summary:
      'Another lifeboat process holds a lock that conflicts with this operation (prune needs the repository alone).',
    exitCode: 1,
    http: 423,
  },
  LB_SNAPSHOT_NOT_FOUND: {
    summary: 'No snapshot (or artifact) matches the given id.',
    exitCode: 1,
    http: 404,
  },
  LB_POINT_NOT_FOUND: {
    summary: 'No recovery point matches the id (or unique prefix) given, or the repository has none yet.',
    exitCode: 1,
    http: 404,
  },
  LB_SOURCE_UNKNOWN: {
    summary: 'A --source or --target names nothing in the configuration.',
    exitCode: 2,
    http: 400,
  },
  LB_ENGINE_UNAVAILABLE: {
    summary: 'The data store could not be reached (refused, unresolvable, timed out).',
    exitCode: 1,
    http: 503,
    retryable: true,
  },
  LB_ENGINE_AUTH: {
    summary: 'The data store refused the credentials.',
    exitCode: 1,
    http: 401,
  },
  LB_ENGINE_TOOL_MISSING: {
    summary: 'A program the engine needs (pg_dump, pg_restore, ...) is not installed.',
    exitCode: 1,
    http: 500,
  },
  LB_ENGINE_FAILED: {
    summary: 'The store or one of its tools reported an error during a backup, restore or stats query.',
    exitCode: 1,
    http: 502,
  },
  LB_TARGET_NOT_EMPTY: {
    summary: 'The restore target already holds data and --force was not given.',
    exitCode: 1,
    http: 409,
  },
  LB_RESTORE_PRECONDITION: {
    summary:
      'The target cannot take this backup (missing extension, wrong server version); nothing was touched.',
    exitCode: 1,
    http: 412,
  },
  LB_RESTORE_DECLINED: {
    summary: 'The restore was not confirmed.',
    exitCode: 1,
    http: 409,
  },
  LB_WAL_CONFLICT: {
    summary: 'A WAL file with different content is already archived under the same name.',
    exitCode: 1,
    http: 409,
  },
  LB_WAL_NOT_FOUND: {
    summary: 'The WAL file asked for is not in the archive.',
    exitCode: 1,
    http: 404,
  },
  LB_WAL_TIMEOUT: {
    summary: 'WAL did not reach the archive in time.',
    exitCode: 1,
    http: 504,
  },
  LB_VALIDATION_MISMATCH: {
    summary: 'A restored store does not match the stats recorded at backup time.',
    exitCode: 3,
    http: 409,
  },
  LB_RESTORE_UNSAFE: {
    summary:
      'An archive entry would be written outside the restore directory (path traversal, a symlink escape); refused.',
    exitCode: 1,
    http: 422,
  },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

/** Extra, machine-readable facts about an error (never secrets). */
export type ErrorDetails = Record<string, unknown>;

export interface LifeboatErrorOptions {
  /** The error this one wraps; kept as `cause` so --debug prints the whole chain. */
  cause?: unknown;
  details?: ErrorDetails;
}

/** The one error type lifeboat throws for anything a user may see. */
export class LifeboatError extends Error {
  readonly code: ErrorCode;
  readonly details: ErrorDetails;

  constructor(code: ErrorCode, message: string, options: LifeboatErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'LifeboatError';
    this.code = code;
    this.details = options.details ?? {};
  }

  get spec(): ErrorSpec {
    return ERROR_CATALOGUE[this.code];
  }
  get exitCode(): number {
    return this.spec.exitCode;
  }
  get httpStatus(): number {
    return this.spec.http;
  }
  get retryable(): boolean {
    return this.spec.retryable === true;
  }

  /** The JSON shape the CLI (--json) and the HTTP API use. */
  toJSON(): { code: ErrorCode; message: string; details?: ErrorDetails } {
    return Object.keys(this.details).length > 0
      ? { code: this.code, message: this.message, details: this.details }
      : { code: this.code, message: this.message };
  }
}

export function isLifeboatError(error: unknown, code?: ErrorCode): error is LifeboatError {
  return error instanceof LifeboatError && (code === undefined || error.code === code);
}

/** Wraps anything thrown into a LifeboatError; an unknown throwable becomes LB_INTERNAL. */
export function toLifeboatError(error: unknown): LifeboatError {
  if (error instanceof LifeboatError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new LifeboatError('LB_INTERNAL', message, { cause: error });
}

/** The chain of causes, outermost first, as "message" lines (used by --debug). */
export function causeChain(error: unknown): unknown[] {
  const chain: unknown[] = [];
  let current: unknown = error;
  while (current !== undefined && current !== null && chain.length < 16) {
    chain.push(current);
    current = current instanceof Error ? current.cause : undefined;
  }
  return chain;
}
