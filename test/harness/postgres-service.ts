// The PostgreSQL 15 service: a throwaway cluster (initdb) started on a free port, or reuse of a running
// server through LIFEBOAT_TEST_POSTGRES_URL.
//
// Terms:
//   server root     the throwaway directory of one started server (data-directories.ts). Its `data/` is
//                   PGDATA, also the Unix socket directory given to -k; during initdb only, the root also
//                   holds the password file. The handle's dataDirectory is PGDATA.
//   system user     initdb and postgres refuse to run as root, so when we are root both run as the
//                   `postgres` user through setpriv and the cluster root is chowned to it.
//   ready           pg_isready reports the server accepting connections on 127.0.0.1:<port>, and a TCP
//                   connection to that port succeeds.
//   stop signal     SIGINT, PostgreSQL's "fast shutdown": it ends open sessions and exits. (SIGTERM is its
//                   "smart shutdown", which waits for every client to disconnect first.)
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describeFailure, requireExecutable, runCommand } from './commands.js';
import { findFreePort, LOOPBACK_HOST } from './ports.js';
import { createServerDirectories } from './data-directories.js';
import { connectTcp } from './probes.js';
import {
  connectableHost,
  decodedCredential,
  parseLoopbackUrl,
  portOf,
  readVariable,
  redactUrl,
} from './reuse.js';
import { leaveRunning, reusedDescription, startedDescription, TEST_PASSWORD } from './service-kit.js';
import type { PostgresHandle, ServiceDefinition, StartOptions } from './service-kit.js';
import { spawnServer, waitUntilReady } from './server-process.js';
import type { ServerProcess } from './server-process.js';

/** Where Debian's postgresql-15 package puts the server programs. */
export const POSTGRES_BIN_DIRECTORY = '/usr/lib/postgresql/15/bin';
const POSTGRES_USER = 'postgres';
const POSTGRES_DATABASE = 'postgres';
const POSTGRES_SYSTEM_USER = 'postgres';
const DEFAULT_POSTGRES_PORT = 5432;
const REUSE_VARIABLE = 'LIFEBOAT_TEST_POSTGRES_URL';
const INSTALL_HINT = 'scripts/provision.sh installs postgresql-15';

const binary = (program: string): string => join(POSTGRES_BIN_DIRECTORY, program);

/** True when pg_isready says host:port accepts connections (exit code 0). */
async function acceptsConnections(host: string, port: number): Promise<boolean> {
  const result = await runCommand(binary('pg_isready'), ['-h', host, '-p', String(port), '-t', '2'], {
    timeoutMs: 5_000,
  });
  if (result.code !== 0) return false;
  await connectTcp(host, port);
  return true;
}

/** `setpriv` arguments that run a program as the postgres system user, or none when we are not root. */
function asSystemUser(): string[] {
  return process.getuid?.() === 0
    ? [`--reuid=${POSTGRES_SYSTEM_USER}`, `--regid=${POSTGRES_SYSTEM_USER}`, '--init-groups']
    : [];
}

async function initCluster(root: string, dataDirectory: string, initdb: string): Promise<void> {
  const passwordFile = join(root, 'pwfile');
  await writeFile(passwordFile, `${TEST_PASSWORD}\n`, { mode: 0o600 });
  if (process.getuid?.() === 0) {
    const chown = await runCommand('chown', ['-R', `${POSTGRES_SYSTEM_USER}:${POSTGRES_SYSTEM_USER}`, root]);
    if (chown.code !== 0) throw new Error(describeFailure('chown', [root], chown));
  }
  const initdbArgs = [
    '-D',
    dataDirectory,
    '-U',
    POSTGRES_USER,
    '--auth-local=trust',
    '--auth-host=scram-sha-256',
    `--pwfile=${passwordFile}`,
    '--encoding=UTF8',
    '--locale=C',
    '--no-sync',
    '--no-instructions',
  ];
  const setprivArgs = [...asSystemUser(), initdb, ...initdbArgs];
  const result = await runCommand('setpriv', setprivArgs, { timeoutMs: 120_000 });
  await rm(passwordFile, { force: true });
  if (result.code !== 0) throw new Error(describeFailure('initdb', initdbArgs, result));
}

/** Extra settings of a cluster a suite starts for itself (startPostgresCluster). */
export interface ClusterOptions {
  /** postgresql.conf settings given as -c name=value (archive_mode, archive_command…). */
  settings?: Record<string, string>;
  /** Server programs from another directory (a copy of the installation without an extension). */
  binDirectory?: string;
}

async function startPostgres(
  options: Required<StartOptions>,
  cluster: ClusterOptions = {},
): Promise<PostgresHandle> {
  const binDirectory = cluster.binDirectory ?? POSTGRES_BIN_DIRECTORY;
  const binary = (program: string): string => join(binDirectory, program);
  await requireExecutable(binary('postgres'), INSTALL_HINT);
  await requireExecutable(binary('initdb'), INSTALL_HINT);
  const { root, data: dataDirectory } = await createServerDirectories('postgres');
  let server: ServerProcess;
  let port: number;
  try {
    await initCluster(root, dataDirectory, binary('initdb'));
    port = await findFreePort();
    server = spawnServer({
      label: 'postgres',
      command: binary('postgres'),
      args: [
        '-D',
        dataDirectory,
        '-p',
        String(port),
        '-k',
        dataDirectory,
        '-c',
        `listen_addresses=${LOOPBACK_HOST}`,
        '-c',
        'fsync=off',
        '-c',
        'synchronous_commit=off',
        '-c',
        'full_page_writes=off',
        ...Object.entries(cluster.settings ?? {}).flatMap(([name, value]) => ['-c', `${name}=${value}`]),
      ],
      runAs: asSystemUser().length > 0 ? POSTGRES_SYSTEM_USER : undefined,
      serverRoot: root,
      stopSignal: 'SIGINT',
    });
  } catch (error) {
    await rm(root, { recursive: true, force: true });
    throw error;
  }
  await waitUntilReady(server, () => acceptsConnections(LOOPBACK_HOST, port), options.startTimeoutMs);
  return {
    name: 'postgres',
    description: startedDescription('PostgreSQL 15', LOOPBACK_HOST, port),
    reused: false,
    dataDirectory,
    url: `postgres://${POSTGRES_USER}:${TEST_PASSWORD}@${LOOPBACK_HOST}:${port}/${POSTGRES_DATABASE}`,
    host: LOOPBACK_HOST,
    port,
    user: POSTGRES_USER,
    password: TEST_PASSWORD,
    binDirectory,
    stop: () => server.stop(),
  };
}

async function reusePostgres(env: NodeJS.ProcessEnv): Promise<PostgresHandle | undefined> {
  const value = readVariable(REUSE_VARIABLE, env);
  if (value === undefined) return undefined;
  const url = parseLoopbackUrl(REUSE_VARIABLE, value, ['postgres:', 'postgresql:']);
  const host = connectableHost(url);
  const port = portOf(url, DEFAULT_POSTGRES_PORT);
  if (!(await acceptsConnections(host, port))) {
    throw new Error(
      `${REUSE_VARIABLE}=${redactUrl(url)}: pg_isready says the server does not accept connections`,
    );
  }
  return {
    name: 'postgres',
    description: reusedDescription('PostgreSQL', host, port, REUSE_VARIABLE),
    reused: true,
    dataDirectory: undefined,
    url: url.href,
    host,
    port,
    user: decodedCredential(url.username) ?? POSTGRES_USER,
    password: decodedCredential(url.password),
    binDirectory: POSTGRES_BIN_DIRECTORY,
    stop: leaveRunning,
  };
}

/** Starts a throwaway cluster of the suite's own (never a reused server); the caller stops it. */
export function startPostgresCluster(cluster: ClusterOptions): Promise<PostgresHandle> {
  return startPostgres({ startTimeoutMs: 60_000 }, cluster);
}

export const postgresService: ServiceDefinition<'postgres'> = {
  name: 'postgres',
  reuseVariables: [REUSE_VARIABLE],
  reuse: reusePostgres,
  start: startPostgres,
};
