// What every service definition shares: the handle types suites receive, the definition shape, and
// small helpers for descriptions. services.ts holds the registry of definitions.
//
// Terms:
//   service      a kind of real server suites can need, named by a ServiceName ('postgres', 'redis', …).
//   definition   how to reuse (from environment variables) or start one server of a service.
//   handle       what a suite gets: where the server listens, credentials, and stop(). `reused` is true
//                when an environment variable named an already-running server, which stop() leaves alone.
//   description  one line naming the server and its origin, e.g.
//                "MinIO at 127.0.0.1:41234 (started by harness)" or
//                "Redis 7.0.15 at 127.0.0.1:6379 (reused from LIFEBOAT_TEST_REDIS_URL)".
/** Password of every server the harness starts (MinIO has its own secret, see MinioHandle). */
export const TEST_PASSWORD = 'lifeboat-test';

/** Fields every handle has. */
export interface ServiceHandleBase<N extends string> {
  readonly name: N;
  /** One line naming the server and its origin (see the module comment). */
  readonly description: string;
  /** True when the server was already running (named by an environment variable). */
  readonly reused: boolean;
  /** Where a started server keeps its data (inside its throwaway server root); undefined when reused. */
  readonly dataDirectory: string | undefined;
  /** Stops a started server and removes its data directory; does nothing for a reused one. */
  stop(): Promise<void>;
}

export interface PostgresHandle extends ServiceHandleBase<'postgres'> {
  /** postgres://postgres:lifeboat-test@127.0.0.1:<port>/postgres for a started server. */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string | undefined;
  /** Directory of the PostgreSQL 15 programs (pg_dump, pg_restore, psql…) on this machine. */
  readonly binDirectory: string;
}

export interface RedisLikeHandle<N extends 'redis' | 'valkey'> extends ServiceHandleBase<N> {
  /** redis://:lifeboat-test@127.0.0.1:<port> for a started server. */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** ACL user from a reuse URL; undefined means the default user. */
  readonly username: string | undefined;
  readonly password: string | undefined;
  /** Server version, e.g. "7.0.15" (Redis) or "8.0.1" (Valkey). */
  readonly version: string;
}

export type RedisHandle = RedisLikeHandle<'redis'>;
export type ValkeyHandle = RedisLikeHandle<'valkey'>;

export interface MinioHandle extends ServiceHandleBase<'minio'> {
  /** http://127.0.0.1:<port> for a started server. */
  readonly endpoint: string;
  readonly region: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
}

/**
 * Service name → handle type. `needs(name)` and `acquireService(name)` return `ServiceHandles[name]`.
 * A new service (neo4j, opensearch) adds its entry here and its definition in services.ts.
 */
export interface ServiceHandles {
  postgres: PostgresHandle;
  redis: RedisHandle;
  valkey: ValkeyHandle;
  minio: MinioHandle;
}

export type ServiceName = keyof ServiceHandles;

export interface StartOptions {
  /** How long a started server may take to answer before the start fails (default 60 s). */
  startTimeoutMs?: number;
}

/** How to reuse or start one service. */
export interface ServiceDefinition<N extends ServiceName> {
  readonly name: N;
  /** Environment variables that make the harness reuse a running server instead of starting one. */
  readonly reuseVariables: readonly string[];
  /**
   * The running server the environment names, checked to answer; undefined when no reuse variable is
   * set. Throws HarnessConfigError for a malformed or non-loopback value.
   */
  reuse(env: NodeJS.ProcessEnv): Promise<ServiceHandles[N] | undefined>;
  /** Starts one fresh server on a free port; throws ServerStartError (see portClash) on failure. */
  start(options: Required<StartOptions>): Promise<ServiceHandles[N]>;
}

/** Description of a server the harness started. */
export function startedDescription(title: string, host: string, port: number): string {
  return `${title} at ${host}:${port} (started by harness)`;
}

/** Description of a server named by reuse variable `variable`. */
export function reusedDescription(title: string, host: string, port: number, variable: string): string {
  const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  return `${title} at ${address} (reused from ${variable})`;
}

/** stop() of a reused server: never touches it. */
export function leaveRunning(): Promise<void> {
  return Promise.resolve();
}
