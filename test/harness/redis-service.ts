// The Redis 7 and Valkey 8 services: one definition shape for both, since Valkey speaks the same protocol
// and takes the same command-line options.
//
// Terms:
//   flavour   which server program a definition runs and which reuse variable it reads: Redis
//             (/usr/bin/redis-server, LIFEBOAT_TEST_REDIS_URL) or Valkey (/usr/bin/valkey-server,
//             LIFEBOAT_TEST_VALKEY_URL).
//   ready     the server answers PING with +PONG after AUTH, over raw TCP (see resp.ts).
//   version   for a started server, parsed from `<binary> --version` ("… v=7.0.15 …"); for a reused one,
//             from INFO server (`valkey_version` for Valkey, which also reports `redis_version:7.2.4`
//             for compatibility; `redis_version` for Redis).
import { describeFailure, requireExecutable, runCommand } from './commands.js';
import { createServerDirectories } from './data-directories.js';
import { findFreePort, LOOPBACK_HOST } from './ports.js';
import { answersPing, readRedisInfo } from './resp.js';
import type { RedisTarget } from './resp.js';
import {
  connectableHost,
  decodedCredential,
  HarnessConfigError,
  parseLoopbackUrl,
  portOf,
  readVariable,
  redactUrl,
} from './reuse.js';
import { leaveRunning, reusedDescription, startedDescription, TEST_PASSWORD } from './service-kit.js';
import type { RedisLikeHandle, ServiceDefinition, StartOptions } from './service-kit.js';
import { spawnServer, waitUntilReady } from './server-process.js';

const DEFAULT_REDIS_PORT = 6379;

interface Flavour<N extends 'redis' | 'valkey'> {
  readonly name: N;
  readonly title: 'Redis' | 'Valkey';
  readonly binary: string;
  readonly reuseVariable: string;
  readonly installHint: string;
  /** The INFO server field that holds this flavour's own version. */
  readonly versionField: 'redis_version' | 'valkey_version';
}

/** The options of a throwaway server: loopback, its own dir, a password, no persistence, foreground. */
export function redisServerArgs(port: number, directory: string, password: string): string[] {
  return [
    '--port',
    String(port),
    '--bind',
    LOOPBACK_HOST,
    '--dir',
    directory,
    '--requirepass',
    password,
    '--save',
    '',
    '--appendonly',
    'no',
    '--daemonize',
    'no',
  ];
}

async function versionOfBinary(binary: string): Promise<string> {
  const result = await runCommand(binary, ['--version'], { timeoutMs: 10_000 });
  const version = /\bv=(\S+)/.exec(result.stdout)?.[1];
  if (result.code !== 0 || version === undefined) {
    throw new Error(`cannot read the version: ${describeFailure(binary, ['--version'], result)}`);
  }
  return version;
}

async function startServer<N extends 'redis' | 'valkey'>(
  flavour: Flavour<N>,
  options: Required<StartOptions>,
  extraArgs: readonly string[] = [],
): Promise<RedisLikeHandle<N>> {
  await requireExecutable(flavour.binary, flavour.installHint);
  const version = await versionOfBinary(flavour.binary);
  const { root, data: dataDirectory } = await createServerDirectories(flavour.name);
  const port = await findFreePort();
  const server = spawnServer({
    label: flavour.name,
    command: flavour.binary,
    args: [...redisServerArgs(port, dataDirectory, TEST_PASSWORD), '--protected-mode', 'no', ...extraArgs],
    serverRoot: root,
  });
  const target: RedisTarget = { host: LOOPBACK_HOST, port, password: TEST_PASSWORD };
  await waitUntilReady(server, () => answersPing(target), options.startTimeoutMs);
  return {
    name: flavour.name,
    description: startedDescription(`${flavour.title} ${version}`, LOOPBACK_HOST, port),
    reused: false,
    dataDirectory,
    url: `redis://:${TEST_PASSWORD}@${LOOPBACK_HOST}:${port}`,
    host: LOOPBACK_HOST,
    port,
    username: undefined,
    password: TEST_PASSWORD,
    version,
    stop: () => server.stop(),
  };
}

async function reuseServer<N extends 'redis' | 'valkey'>(
  flavour: Flavour<N>,
  env: NodeJS.ProcessEnv,
): Promise<RedisLikeHandle<N> | undefined> {
  const value = readVariable(flavour.reuseVariable, env);
  if (value === undefined) return undefined;
  const url = parseLoopbackUrl(flavour.reuseVariable, value, ['redis:']);
  const target: RedisTarget = {
    host: connectableHost(url),
    port: portOf(url, DEFAULT_REDIS_PORT),
    username: decodedCredential(url.username),
    password: decodedCredential(url.password),
  };
  const where = `${flavour.reuseVariable}=${redactUrl(url)}`;
  try {
    if (!(await answersPing(target, 5_000))) throw new Error('PING was not answered with PONG');
  } catch (error) {
    throw new Error(`${where} does not answer: ${error instanceof Error ? error.message : String(error)}`);
  }
  const version = (await readRedisInfo(target)).get(flavour.versionField);
  if (version === undefined) {
    throw new HarnessConfigError(
      `${where} is not a ${flavour.title} server (INFO has no ${flavour.versionField})`,
    );
  }
  return {
    name: flavour.name,
    description: reusedDescription(
      `${flavour.title} ${version}`,
      target.host,
      target.port,
      flavour.reuseVariable,
    ),
    reused: true,
    dataDirectory: undefined,
    url: url.href,
    host: target.host,
    port: target.port,
    username: target.username,
    password: target.password,
    version,
    stop: leaveRunning,
  };
}

const REDIS: Flavour<'redis'> = {
  name: 'redis',
  title: 'Redis',
  binary: '/usr/bin/redis-server',
  reuseVariable: 'LIFEBOAT_TEST_REDIS_URL',
  installHint: 'scripts/provision.sh installs redis-server',
  versionField: 'redis_version',
};

const VALKEY: Flavour<'valkey'> = {
  name: 'valkey',
  title: 'Valkey',
  binary: '/usr/bin/valkey-server',
  reuseVariable: 'LIFEBOAT_TEST_VALKEY_URL',
  installHint: 'scripts/provision.sh installs valkey-server from bookworm-backports',
  versionField: 'valkey_version',
};

/** Extra settings of a server a suite starts for itself (startRedisServer). */
export interface RedisServerOptions<N extends 'redis' | 'valkey'> {
  flavour: N;
  /** More command-line options ("--repl-diskless-sync", "no", "--appendonly", "yes"…); they override. */
  args?: readonly string[];
}

/** Starts a private Redis or Valkey server with a throwaway data directory (password TEST_PASSWORD). */
export function startRedisServer<N extends 'redis' | 'valkey'>(
  options: RedisServerOptions<N>,
): Promise<RedisLikeHandle<N>> {
  const flavour = (options.flavour === 'redis' ? REDIS : VALKEY) as unknown as Flavour<N>;
  return startServer(flavour, { startTimeoutMs: 30_000 }, options.args ?? []);
}

/** The server program of a flavour. */
export const redisBinary = (flavour: 'redis' | 'valkey'): string =>
  flavour === 'redis' ? REDIS.binary : VALKEY.binary;

export const redisService: ServiceDefinition<'redis'> = {
  name: 'redis',
  reuseVariables: [REDIS.reuseVariable],
  reuse: (env) => reuseServer(REDIS, env),
  start: (options) => startServer(REDIS, options),
};

export const valkeyService: ServiceDefinition<'valkey'> = {
  name: 'valkey',
  reuseVariables: [VALKEY.reuseVariable],
  reuse: (env) => reuseServer(VALKEY, env),
  start: (options) => startServer(VALKEY, options),
};
