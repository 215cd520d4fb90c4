// The registry of real services integration suites can need, and the calls that start or reuse them.
// Suites normally go through needs.ts; this module is for the harness itself and for special cases.
//
// Terms:
//   registry      SERVICE_DEFINITIONS, the one explicit list of definitions (service-kit.ts defines the
//                 shape). A name listed twice, or a ServiceName without a definition, is an error when
//                 this module loads (and the latter also at compile time).
//   acquire       reuse the server an environment variable names if one is set (reuse.ts), otherwise
//                 start a fresh one.
//   start         spawn a server on 127.0.0.1 on a free port with a throwaway data directory and wait
//                 (bounded) until it answers; a start that lost its port to another process (port clash)
//                 is tried again, up to START_ATTEMPTS times in all.
//   announcement  the line needs.ts prints when a suite gets its server: the description plus, for a
//                 started server, its data directory.
import { minioService } from './minio-service.js';
import { postgresService } from './postgres-service.js';
import { redisService, valkeyService } from './redis-service.js';
import type { ServiceDefinition, ServiceHandles, ServiceName, StartOptions } from './service-kit.js';
import { ServerStartError } from './server-process.js';

export type {
  MinioHandle,
  PostgresHandle,
  RedisHandle,
  RedisLikeHandle,
  ServiceDefinition,
  ServiceHandleBase,
  ServiceHandles,
  ServiceName,
  StartOptions,
  ValkeyHandle,
} from './service-kit.js';
export { HarnessConfigError, isLoopbackHost } from './reuse.js';
export { ServerStartError } from './server-process.js';

/** How many times a start is tried when the chosen port was taken by another process. */
export const START_ATTEMPTS = 3;
/** Default bound on how long a started server may take to answer. */
export const DEFAULT_START_TIMEOUT_MS = 60_000;

/** A definition of any one service (the union over all names). */
export type AnyServiceDefinition = { [N in ServiceName]: ServiceDefinition<N> }[ServiceName];

/** Every service, in the order suites and reports list them. */
const SERVICE_DEFINITIONS = [
  postgresService,
  redisService,
  valkeyService,
  minioService,
  // Later: 'neo4j' and 'opensearch'. Both run from Maven Central jars that scripts/provision.sh will
  // fetch (an install_neo4j / install_opensearch step). To add one: put its handle type in
  // ServiceHandles (service-kit.ts), write <name>-service.ts exporting a ServiceDefinition, list it here.
] as const satisfies readonly AnyServiceDefinition[];

/** Fails to compile when a ServiceName has no definition in the list above. */
type MissingDefinitions = Exclude<ServiceName, (typeof SERVICE_DEFINITIONS)[number]['name']>;
const everyServiceDefined: [MissingDefinitions] extends [never] ? true : MissingDefinitions = true;
void everyServiceDefined;

function buildRegistry(
  list: readonly AnyServiceDefinition[],
): ReadonlyMap<ServiceName, AnyServiceDefinition> {
  const registry = new Map<ServiceName, AnyServiceDefinition>();
  for (const definition of list) {
    if (registry.has(definition.name)) {
      throw new Error(`test harness: service "${definition.name}" is defined twice in SERVICE_DEFINITIONS`);
    }
    registry.set(definition.name, definition);
  }
  return registry;
}

const REGISTRY = buildRegistry(SERVICE_DEFINITIONS);

/** Names of all registered services, in registry order. */
export const SERVICE_NAMES: readonly ServiceName[] = SERVICE_DEFINITIONS.map((definition) => definition.name);

/** True when `name` is a registered service. */
export function isServiceName(name: string): name is ServiceName {
  return REGISTRY.has(name as ServiceName);
}

/** The definition of service `name`; throws for a name that is not registered. */
export function getServiceDefinition<N extends ServiceName>(name: N): ServiceDefinition<N> {
  const definition = REGISTRY.get(name);
  if (definition === undefined) {
    throw new Error(`test harness: unknown service "${name}" (known: ${SERVICE_NAMES.join(', ')})`);
  }
  // The registry maps each name to the definition that carries that name (buildRegistry keys by it).
  return definition as ServiceDefinition<N>;
}

/**
 * Starts a fresh server of service `name`, ignoring reuse variables. Retries a port clash; otherwise
 * throws (ServerStartError with the server's log tail when the server itself failed).
 */
export async function startService<N extends ServiceName>(
  name: N,
  options: StartOptions = {},
): Promise<ServiceHandles[N]> {
  const definition = getServiceDefinition(name);
  const resolved: Required<StartOptions> = {
    startTimeoutMs: options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS,
  };
  for (let attempt = 1; ; attempt++) {
    try {
      return await definition.start(resolved);
    } catch (error) {
      if (!(error instanceof ServerStartError && error.portClash && attempt < START_ATTEMPTS)) throw error;
    }
  }
}

/**
 * The server of service `name` that `env` names through its reuse variables (never stopped by the
 * harness), or else a freshly started one. Throws HarnessConfigError for a bad reuse variable.
 */
export async function acquireService<N extends ServiceName>(
  name: N,
  options: StartOptions = {},
  env: NodeJS.ProcessEnv = process.env,
): Promise<ServiceHandles[N]> {
  const reused = await getServiceDefinition(name).reuse(env);
  return reused ?? startService(name, options);
}

/** The announcement line for `handle` (see the module comment), without the "[harness]" prefix. */
export function announcement(handle: ServiceHandles[ServiceName]): string {
  const { description, dataDirectory } = handle;
  if (dataDirectory === undefined || !description.endsWith(')')) return `${handle.name}: ${description}`;
  return `${handle.name}: ${description.slice(0, -1)}, data ${dataDirectory})`;
}
