// Pointing the harness at servers that already run (for local speed) through environment variables.
//
// Terms:
//   reuse variable  an environment variable such as LIFEBOAT_TEST_REDIS_URL that names a running server;
//                   an empty value counts as unset. The harness never stops a reused server.
//   loopback host   127.0.0.0/8, "localhost" or ::1. Tests write and delete data freely, so a reuse
//                   variable naming any other host is refused (HarnessConfigError) rather than risk a
//                   shared or production server.
//   redacted URL    the URL with its password replaced by "***", safe to print.
import { isIPv4 } from 'node:net';

/** A mistake in the harness's environment variables. Suites fail on it even outside CI. */
export class HarnessConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HarnessConfigError';
  }
}

/** The value of environment variable `name`, or undefined when it is unset or empty. */
export function readVariable(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const value = env[name]?.trim();
  return value === undefined || value === '' ? undefined : value;
}

/** True for 127.0.0.0/8, "localhost" and ::1 (with or without the brackets URLs put around IPv6). */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (bare === 'localhost' || bare === '::1' || bare === '0:0:0:0:0:0:0:1') return true;
  return isIPv4(bare) && bare.startsWith('127.');
}

/** `url` as text with its password (if any) replaced by "***". */
export function redactUrl(url: URL): string {
  if (url.password === '') return url.href;
  const copy = new URL(url.href);
  copy.password = '***';
  return copy.href;
}

/**
 * Parses reuse variable `variable` (value `value`) as a URL with one of `protocols` (e.g. ['redis:'])
 * and a loopback host. Throws HarnessConfigError otherwise.
 */
export function parseLoopbackUrl(variable: string, value: string, protocols: readonly string[]): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new HarnessConfigError(`${variable} is not a valid URL`);
  }
  if (!protocols.includes(url.protocol)) {
    throw new HarnessConfigError(
      `${variable}=${redactUrl(url)} must use ${protocols.map((p) => `${p}//`).join(' or ')}`,
    );
  }
  if (!isLoopbackHost(url.hostname)) {
    throw new HarnessConfigError(
      `${variable}=${redactUrl(url)} names host "${url.hostname}": only loopback hosts ` +
        '(127.0.0.0/8, localhost, ::1) are accepted, because tests write and delete data there',
    );
  }
  return url;
}

/** The URL's host without IPv6 brackets, ready for net.connect. */
export function connectableHost(url: URL): string {
  return url.hostname.replace(/^\[(.*)\]$/, '$1');
}

/** The URL's port, or `defaultPort` when it has none. */
export function portOf(url: URL, defaultPort: number): number {
  return url.port === '' ? defaultPort : Number(url.port);
}

/** A percent-decoded URL user-info part, or undefined when empty. */
export function decodedCredential(part: string): string | undefined {
  return part === '' ? undefined : decodeURIComponent(part);
}
