// Connecting to PostgreSQL: from a source or target config to a `pg` client, to the environment of libpq
// tools (pg_dump, pg_restore, psql, pg_basebackup), and from their failures to catalogue errors.
//
// Terms:
//   endpoint      host, port, user, password and database taken from the URL, the password setting
//                 overriding the URL's. Secrets travel in PGPASSWORD, never in argv (visible in ps).
//   maintenance   the database used to create or drop others ("postgres").
//   tool          a PostgreSQL client program; looked up in binDirectory, else in the Debian directory
//                 of the server's major version (pg_dump must not be older than the server), else PATH.
import { access, constants } from 'node:fs/promises';
import { join } from 'node:path';

import type pg from 'pg';

import { LifeboatError, type ErrorCode } from '../../errors.js';
import type { ToolExit } from '../../util/process.js';

/** The connection settings shared by sources and targets. */
export interface ConnectionConfig {
  url: string;
  password?: string;
  binDirectory?: string;
}

export interface Endpoint {
  host: string;
  port: number;
  user: string;
  password?: string;
  database: string;
  sslmode?: string;
}

const CONNECT_TIMEOUT_SECONDS = 10;

export function endpointOf(config: ConnectionConfig, database?: string): Endpoint {
  const url = new URL(config.url);
  const path = decodeURIComponent(url.pathname.replace(/^\//, ''));
  const password = config.password ?? (url.password ? decodeURIComponent(url.password) : undefined);
  return {
    host: url.searchParams.get('host') ?? (url.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1'),
    port: Number(url.port || 5432),
    user: decodeURIComponent(url.username) || 'postgres',
    password,
    database: database ?? (path || 'postgres'),
    sslmode: url.searchParams.get('sslmode') ?? undefined,
  };
}

/** Environment for libpq tools: the connection in PG* variables, nothing on the command line. */
export function toolEnvironment(endpoint: Endpoint): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PGHOST: endpoint.host,
    PGPORT: String(endpoint.port),
    PGUSER: endpoint.user,
    PGDATABASE: endpoint.database,
    PGCONNECT_TIMEOUT: String(CONNECT_TIMEOUT_SECONDS),
    PGAPPNAME: 'lifeboat',
  };
  delete env.PGPASSWORD;
  delete env.PGSERVICE;
  if (endpoint.password !== undefined) env.PGPASSWORD = endpoint.password;
  if (endpoint.sslmode !== undefined) env.PGSSLMODE = endpoint.sslmode;
  return env;
}

/** Opens a client; connection failures become LB_ENGINE_UNAVAILABLE / LB_ENGINE_AUTH within seconds. */
export async function connect(endpoint: Endpoint): Promise<pg.Client> {
  // Loaded on first use: wal-push and wal-fetch (one process per WAL file) never connect.
  const { default: driver } = await import('pg');
  const client = new driver.Client({
    host: endpoint.host,
    port: endpoint.port,
    user: endpoint.user,
    password: endpoint.password,
    database: endpoint.database,
    ssl: endpoint.sslmode && endpoint.sslmode !== 'disable' ? { rejectUnauthorized: false } : undefined,
    connectionTimeoutMillis: CONNECT_TIMEOUT_SECONDS * 1000,
    keepAlive: true, // a session idle for a whole base backup (the WAL hold) must not be cut off
    application_name: 'lifeboat',
  });
  client.on('error', () => undefined); // a server going away mid-session surfaces on the next query
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => undefined);
    throw classifyClientError(error, endpoint);
  }
  return client;
}

/** Runs `work` with a client and always closes it. */
export async function withClient<T>(endpoint: Endpoint, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = await connect(endpoint);
  try {
    return await work(client);
  } catch (error) {
    throw classifyClientError(error, endpoint);
  } finally {
    await client.end().catch(() => undefined);
  }
}

function where(endpoint: Endpoint): string {
  return `PostgreSQL at ${endpoint.host}:${endpoint.port} (user ${endpoint.user}, database ${endpoint.database})`;
}

const AUTH_SQLSTATES = new Set(['28P01', '28000']);
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ECONNRESET',
]);

/** A pg client error as a catalogue error (LifeboatErrors pass through). */
export function classifyClientError(error: unknown, endpoint: Endpoint): LifeboatError {
  if (error instanceof LifeboatError) return error;
  const { code, message } = error as { code?: string; message?: string };
  const text = message ?? String(error);
  let kind: ErrorCode = 'LB_ENGINE_FAILED';
  if (code !== undefined && AUTH_SQLSTATES.has(code)) kind = 'LB_ENGINE_AUTH';
  else if ((code !== undefined && NETWORK_CODES.has(code)) || /timeout|terminated unexpectedly/i.test(text))
    kind = 'LB_ENGINE_UNAVAILABLE';
  return new LifeboatError(kind, `${where(endpoint)}: ${scrub(text, endpoint)}`, { cause: error });
}

/** A failed libpq tool as a catalogue error, classified from its stderr. */
export function describeToolFailure(tool: string, endpoint: Endpoint) {
  return (exit: ToolExit): LifeboatError => {
    const stderr = scrub(exit.stderr, endpoint);
    const tail = stderr.split('\n').slice(-12).join('\n');
    const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
    let kind: ErrorCode = 'LB_ENGINE_FAILED';
    if (/ENOENT|spawn .* ENOENT|No such file or directory/.test(stderr) && exit.code === null)
      kind = 'LB_ENGINE_TOOL_MISSING';
    else if (/password authentication failed|no pg_hba\.conf entry|role ".*" does not exist/.test(stderr))
      kind = 'LB_ENGINE_AUTH';
    else if (
      /Connection refused|could not connect|timeout expired|could not translate host name/.test(stderr)
    )
      kind = 'LB_ENGINE_UNAVAILABLE';
    return new LifeboatError(kind, `${tool} (${where(endpoint)}) ${how}${tail ? `:\n${tail}` : ''}`);
  };
}

/** Removes the password from a text (tools and servers may echo connection strings). */
function scrub(text: string, endpoint: Endpoint): string {
  return endpoint.password ? text.split(endpoint.password).join('***') : text;
}

/** Quotes an identifier for SQL. */
export function quoteIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/**
 * Path of a PostgreSQL client program: binDirectory if configured, else Debian's directory for the
 * server's major version, else the bare name (PATH).
 */
export async function toolPath(
  program: string,
  config: ConnectionConfig,
  serverMajor?: number,
): Promise<string> {
  const candidates = [
    config.binDirectory,
    serverMajor !== undefined ? `/usr/lib/postgresql/${serverMajor}/bin` : undefined,
  ].filter((value): value is string => value !== undefined);
  for (const directory of candidates) {
    const path = join(directory, program);
    try {
      await access(path, constants.X_OK);
      return path;
    } catch {
      if (directory === config.binDirectory) {
        throw new LifeboatError(
          'LB_ENGINE_TOOL_MISSING',
          `${program} not found in binDirectory ${directory}`,
        );
      }
    }
  }
  return program;
}

/** The server's major version (15 for 15.14). */
export async function serverMajor(client: pg.Client): Promise<number> {
  const result = await client.query<{ server_version_num: string }>('SHOW server_version_num');
  return Math.floor(Number(result.rows[0]!.server_version_num) / 10000);
}
