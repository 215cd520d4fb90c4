// The MinIO service (S3-compatible object storage): a single-drive server started on a free port, or
// reuse of any running S3 endpoint through the LIFEBOAT_TEST_S3_* variables.
//
// Terms:
//   tools directory  ${LIFEBOAT_TOOLS_DIR:-$HOME/.cache/lifeboat-tools}; scripts/provision.sh builds
//                    MinIO into its bin/ directory.
//   API port         where S3 requests go (the handle's endpoint); the console port serves MinIO's web UI
//                    and is only chosen so it cannot clash with anything.
//   ready            GET <endpoint>/minio/health/ready answers 200. A reused endpoint need not be MinIO,
//                   so for it "answers" means a TCP connection succeeds.
import { homedir } from 'node:os';
import { join } from 'node:path';
import { requireExecutable } from './commands.js';
import { createServerDirectories } from './data-directories.js';
import { findFreePorts, LOOPBACK_HOST } from './ports.js';
import { connectTcp, httpGetStatus } from './probes.js';
import { connectableHost, HarnessConfigError, parseLoopbackUrl, portOf, readVariable } from './reuse.js';
import { leaveRunning, reusedDescription, startedDescription } from './service-kit.js';
import type { MinioHandle, ServiceDefinition, StartOptions } from './service-kit.js';
import { spawnServer, waitUntilReady } from './server-process.js';

const MINIO_ROOT_USER = 'lifeboat-test';
const MINIO_ROOT_PASSWORD = 'lifeboat-test-secret';
const DEFAULT_REGION = 'us-east-1';

const ENDPOINT_VARIABLE = 'LIFEBOAT_TEST_S3_ENDPOINT';
const ACCESS_KEY_VARIABLE = 'LIFEBOAT_TEST_S3_ACCESS_KEY_ID';
const SECRET_KEY_VARIABLE = 'LIFEBOAT_TEST_S3_SECRET_ACCESS_KEY';
const REGION_VARIABLE = 'LIFEBOAT_TEST_S3_REGION';

/** Path of the MinIO binary that scripts/provision.sh installs. */
export function minioBinaryPath(env: NodeJS.ProcessEnv = process.env): string {
  const toolsDirectory =
    readVariable('LIFEBOAT_TOOLS_DIR', env) ?? join(homedir(), '.cache', 'lifeboat-tools');
  return join(toolsDirectory, 'bin', 'minio');
}

async function startMinio(options: Required<StartOptions>): Promise<MinioHandle> {
  const binary = minioBinaryPath();
  await requireExecutable(binary, 'scripts/provision.sh builds it with go install');
  const { root, data: dataDirectory } = await createServerDirectories('minio');
  const [apiPort, consolePort] = await findFreePorts(2);
  if (apiPort === undefined || consolePort === undefined) throw new Error('no free ports for MinIO');
  const endpoint = `http://${LOOPBACK_HOST}:${apiPort}`;
  const server = spawnServer({
    label: 'minio',
    command: binary,
    args: [
      'server',
      dataDirectory,
      '--address',
      `${LOOPBACK_HOST}:${apiPort}`,
      '--console-address',
      `${LOOPBACK_HOST}:${consolePort}`,
    ],
    env: {
      ...process.env,
      MINIO_ROOT_USER,
      MINIO_ROOT_PASSWORD,
      MINIO_UPDATE: 'off',
    },
    serverRoot: root,
  });
  const healthUrl = `${endpoint}/minio/health/ready`;
  await waitUntilReady(server, async () => (await httpGetStatus(healthUrl)) === 200, options.startTimeoutMs);
  return {
    name: 'minio',
    description: startedDescription('MinIO', LOOPBACK_HOST, apiPort),
    reused: false,
    dataDirectory,
    endpoint,
    region: DEFAULT_REGION,
    accessKeyId: MINIO_ROOT_USER,
    secretAccessKey: MINIO_ROOT_PASSWORD,
    stop: () => server.stop(),
  };
}

async function reuseS3Endpoint(env: NodeJS.ProcessEnv): Promise<MinioHandle | undefined> {
  const value = readVariable(ENDPOINT_VARIABLE, env);
  if (value === undefined) return undefined;
  const url = parseLoopbackUrl(ENDPOINT_VARIABLE, value, ['http:', 'https:']);
  const accessKeyId = readVariable(ACCESS_KEY_VARIABLE, env);
  const secretAccessKey = readVariable(SECRET_KEY_VARIABLE, env);
  if (accessKeyId === undefined || secretAccessKey === undefined) {
    throw new HarnessConfigError(
      `${ENDPOINT_VARIABLE} is set, so ${ACCESS_KEY_VARIABLE} and ${SECRET_KEY_VARIABLE} must be set too`,
    );
  }
  const host = connectableHost(url);
  const port = portOf(url, url.protocol === 'https:' ? 443 : 80);
  try {
    await connectTcp(host, port, 5_000);
  } catch (error) {
    throw new Error(
      `${ENDPOINT_VARIABLE}=${url.href} does not answer: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  return {
    name: 'minio',
    description: reusedDescription('S3 endpoint', host, port, ENDPOINT_VARIABLE),
    reused: true,
    dataDirectory: undefined,
    endpoint: url.href.replace(/\/$/, ''),
    region: readVariable(REGION_VARIABLE, env) ?? DEFAULT_REGION,
    accessKeyId,
    secretAccessKey,
    stop: leaveRunning,
  };
}

export const minioService: ServiceDefinition<'minio'> = {
  name: 'minio',
  reuseVariables: [ENDPOINT_VARIABLE, ACCESS_KEY_VARIABLE, SECRET_KEY_VARIABLE, REGION_VARIABLE],
  reuse: reuseS3Endpoint,
  start: startMinio,
};
