// Connecting to Redis or Valkey: from a source or target config to an endpoint (host, port, ACL user,
// password, db, TLS), to a node-redis client for commands, or to a raw socket for the replication
// handshake (replication.ts), and from failures to catalogue errors.
//
// Terms:
//   endpoint   what the URL and the overriding settings say; the password never appears in messages.
//   client     @redis/client speaking RESP2 with binary-safe replies (Buffers), no reconnects: a
//              dropped connection fails the operation instead of silently retrying a restore.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';

import type { RedisClientType } from '@redis/client';

import { LifeboatError } from '../../errors.js';

export interface RedisConnectionConfig {
  url: string;
  username?: string | undefined;
  password?: string | undefined;
  tls?:
    | {
        caFile?: string | undefined;
        certFile?: string | undefined;
        keyFile?: string | undefined;
        insecureSkipVerify?: boolean | undefined;
        serverName?: string | undefined;
      }
    | undefined;
}

export interface Endpoint {
  host: string;
  port: number;
  username?: string;
  password?: string;
  db: number;
  tls?: tls.ConnectionOptions;
  /** host:port for messages. */
  label: string;
}

export const CONNECT_TIMEOUT_MS = 10_000;

export function endpointOf(config: RedisConnectionConfig): Endpoint {
  const url = new URL(config.url);
  const host = url.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1';
  const port = Number(url.port || 6379);
  const username = config.username ?? (url.username ? decodeURIComponent(url.username) : undefined);
  const password = config.password ?? (url.password ? decodeURIComponent(url.password) : undefined);
  const db = Number(url.pathname.replace(/^\//, '') || 0);
  const endpoint: Endpoint = { host, port, db, label: `${host}:${port}` };
  if (username) endpoint.username = username;
  if (password !== undefined) endpoint.password = password;
  if (url.protocol === 'rediss:' || config.tls) {
    const options: tls.ConnectionOptions = {
      servername: config.tls?.serverName ?? (net.isIP(host) ? undefined : host),
    };
    if (config.tls?.caFile) options.ca = readFileSync(config.tls.caFile);
    if ((config.tls?.certFile === undefined) !== (config.tls?.keyFile === undefined))
      throw new LifeboatError(
        'LB_CONFIG_INVALID',
        'tls.certFile and tls.keyFile go together (a client certificate and its key)',
      );
    if (config.tls?.certFile) options.cert = readFileSync(config.tls.certFile);
    if (config.tls?.keyFile) options.key = readFileSync(config.tls.keyFile);
    if (config.tls?.insecureSkipVerify) options.rejectUnauthorized = false;
    endpoint.tls = options;
  }
  return endpoint;
}

export type Client = RedisClientType;

/** A connected client. Connection failures become LB_ENGINE_UNAVAILABLE / LB_ENGINE_AUTH within seconds. */
export async function connect(endpoint: Endpoint): Promise<Client> {
  const { createClient, RESP_TYPES } = await import('./client.js');
  const socket = endpoint.tls
    ? { host: endpoint.host, port: endpoint.port, tls: true as const, ...endpoint.tls }
    : { host: endpoint.host, port: endpoint.port };
  const client = createClient({
    socket: { ...socket, connectTimeout: CONNECT_TIMEOUT_MS, reconnectStrategy: false },
    RESP: 2,
    ...(endpoint.username ? { username: endpoint.username } : {}),
    ...(endpoint.password !== undefined ? { password: endpoint.password } : {}),
    commandOptions: { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer }, timeout: COMMAND_TIMEOUT_MS },
  }) as unknown as Client;
  let lastError: unknown;
  client.on('error', (error: unknown) => {
    lastError = error;
  });
  // node-redis bounds the TCP connect only: a server that accepts and never answers the handshake
  // (AUTH, SELECT) would keep connect() waiting for ever.
  let timer: NodeJS.Timeout | undefined;
  const silence = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no answer to the handshake within ${CONNECT_TIMEOUT_MS / 1000} s (timeout)`)),
      CONNECT_TIMEOUT_MS,
    );
  });
  try {
    const connecting = client.connect();
    connecting.catch(() => undefined); // after a timeout, destroy() rejects it: nobody waits any more
    await Promise.race([connecting, silence]);
  } catch (error) {
    client.destroy();
    throw classify(lastError ?? error, endpoint);
  } finally {
    clearTimeout(timer);
  }
  return client;
}

/**
 * How long one command may go unanswered before lifeboat gives up on the server. node-redis bounds only
 * the time a command waits to be sent (5 s by default, failing with an empty TimeoutError, which a busy
 * server's slow handshake hit), never the wait for its reply: a server that stops answering mid-session
 * would hang the command for ever.
 */
export const COMMAND_TIMEOUT_MS = 120_000;

/**
 * FLUSHALL SYNC and FUNCTION FLUSH SYNC block the server while it frees the whole dataset, which takes
 * minutes for tens of GB; failing one midway would leave the target flushed and the restore stopped.
 */
export const FLUSH_TIMEOUT_MS = 30 * 60_000;

/**
 * Sends one command; replies come back with Buffers for bulk strings (RESP2, no transformation). A
 * command unanswered within `timeoutMs` fails with LB_ENGINE_FAILED naming it, and the connection is
 * dropped (a late reply would be taken for the next command's).
 */
export async function command<T = unknown>(
  client: Client,
  args: ReadonlyArray<string | Buffer>,
  options: { timeoutMs?: number } = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? COMMAND_TIMEOUT_MS;
  const reply = client.sendCommand<T>(args, { timeout: timeoutMs });
  reply.catch(() => undefined); // after a timeout nobody waits for it
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new UnansweredCommand()), timeoutMs);
  });
  try {
    return await Promise.race([reply, late]);
  } catch (error) {
    if (
      error instanceof UnansweredCommand ||
      (error instanceof Error && error.constructor.name === 'TimeoutError')
    ) {
      client.destroy();
      const name = args.slice(0, /^(FUNCTION|CONFIG|DEBUG|XINFO|CLIENT)$/i.test(String(args[0])) ? 2 : 1);
      throw new LifeboatError(
        'LB_ENGINE_FAILED',
        `the server did not answer ${name.map(String).join(' ')} within ${timeoutMs / 1000} s`,
        { cause: error },
      );
    }
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

class UnansweredCommand extends Error {}

export async function closeClient(client: Client): Promise<void> {
  try {
    if (client.isOpen) await client.close();
  } catch {
    client.destroy();
  }
}

const AUTH_REPLY =
  /WRONGPASS|NOAUTH|invalid password|invalid username-password|AUTH <password> called without/i;

/** A failure to connect or to run a command, as a catalogue error. */
export function classify(error: unknown, endpoint: Endpoint, doing = 'connect to'): LifeboatError {
  if (error instanceof LifeboatError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: string } | undefined)?.code;
  if (AUTH_REPLY.test(message)) {
    return new LifeboatError(
      'LB_ENGINE_AUTH',
      `Redis at ${endpoint.label} refused the credentials${endpoint.username ? ` of user ${endpoint.username}` : ''}: ${message}`,
      { cause: error },
    );
  }
  if (/^NOPERM/.test(message)) {
    return new LifeboatError(
      'LB_ENGINE_AUTH',
      `the ACL user${endpoint.username ? ` ${endpoint.username}` : ''} at ${endpoint.label} lacks a permission lifeboat needs: ${message}`,
      { cause: error },
    );
  }
  if (/CERT|SSL|TLS/.test(code ?? '') || /certificate/i.test(message)) {
    return new LifeboatError(
      'LB_ENGINE_UNAVAILABLE',
      `cannot ${doing} Redis at ${endpoint.label}: TLS failed (${message}); check tls.caFile and tls.serverName, and tls.certFile and tls.keyFile where the server authenticates clients`,
      { cause: error },
    );
  }
  if (
    code === 'ECONNREFUSED' ||
    code === 'ETIMEDOUT' ||
    code === 'EHOSTUNREACH' ||
    code === 'ENOTFOUND' ||
    code === 'ECONNRESET' ||
    code === 'EPIPE' ||
    /timeout|closed|socket|ECONN/i.test(message)
  ) {
    return new LifeboatError(
      'LB_ENGINE_UNAVAILABLE',
      `cannot ${doing} Redis at ${endpoint.label}: ${message}`,
      {
        cause: error,
      },
    );
  }
  return new LifeboatError('LB_ENGINE_FAILED', `Redis at ${endpoint.label}: ${message}`, { cause: error });
}

/** A raw socket (plain or TLS) to the endpoint, connected; used for the replication handshake. */
/** A connected socket; `onread` (plain TCP only) makes its reads land in the caller's buffers. */
export function openSocket(endpoint: Endpoint, onread?: net.OnReadOpts): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = endpoint.tls
      ? tls.connect({ host: endpoint.host, port: endpoint.port, ...endpoint.tls })
      : net.connect({ host: endpoint.host, port: endpoint.port, ...(onread ? { onread } : {}) });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new LifeboatError(
          'LB_ENGINE_UNAVAILABLE',
          `cannot connect to Redis at ${endpoint.label}: no answer within ${CONNECT_TIMEOUT_MS / 1000} s`,
        ),
      );
    }, CONNECT_TIMEOUT_MS);
    socket.once(endpoint.tls ? 'secureConnect' : 'connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(classify(error, endpoint));
    });
  });
}

/** INFO as a map ("redis_version" → "7.0.15"). */
export function parseInfo(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const at = line.indexOf(':');
    if (at > 0 && !line.startsWith('#')) out.set(line.slice(0, at), line.slice(at + 1).trim());
  }
  return out;
}

export async function info(client: Client, section?: string): Promise<Map<string, string>> {
  const reply = await command<Buffer>(client, section ? ['INFO', section] : ['INFO']);
  return parseInfo(reply.toString());
}

export interface ServerIdentity {
  product: 'redis' | 'valkey';
  version: string;
  /** "Redis 7.0.15", "Valkey 8.0.1". */
  title: string;
}

export function identityOf(server: Map<string, string>): ServerIdentity {
  const valkey = server.get('valkey_version');
  if (valkey) return { product: 'valkey', version: valkey, title: `Valkey ${valkey}` };
  const version = server.get('redis_version') ?? 'unknown';
  return { product: 'redis', version, title: `Redis ${version}` };
}

/** Databases holding keys, from INFO keyspace: db number → key count and keys with an expiry. */
export function keyspaceOf(keyspace: Map<string, string>): Map<number, { keys: number; expires: number }> {
  const out = new Map<number, { keys: number; expires: number }>();
  for (const [name, value] of keyspace) {
    const db = /^db(\d+)$/.exec(name);
    if (!db) continue;
    const fields = new Map(value.split(',').map((pair) => pair.split('=') as [string, string]));
    out.set(Number(db[1]), {
      keys: Number(fields.get('keys') ?? 0),
      expires: Number(fields.get('expires') ?? 0),
    });
  }
  return out;
}
