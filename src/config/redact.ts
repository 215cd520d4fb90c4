// Secret redaction: a copy of the config with every secret replaced by "***", and a scrubber for free
// text (error messages, logs) that removes every secret value the config holds.
//
// Terms:
//   secret  the value of a key in SECRET_KEYS (password, secretAccessKey, …), or the password inside a
//           URL's userinfo (postgres://user:secret@host).
import { SECRET_KEYS } from './interpolate.js';

export const REDACTED = '***';

/** scheme://user:PASSWORD@ — group 1 is everything before the password, group 2 the password. */
const URL_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^:/?#@\s]*:)([^@/?#\s]+)@/gi;

/**
 * A generated repository key (lifeboat key generate), wherever it appears, whatever touches it (a path,
 * a URL parameter): it is a secret by its form, and redacting a little too much costs nothing.
 */
const GENERATED_KEY = /lbk1-[A-Za-z0-9_-]{43}/g;

/** A deep copy with secrets replaced by "***" (URL passwords too). */
export function redactConfig<T>(value: T): T {
  return redactNode(value, undefined) as T;
}

function redactNode(node: unknown, key: string | undefined): unknown {
  if (key !== undefined && SECRET_KEYS.has(key) && node !== undefined && node !== null) return REDACTED;
  if (typeof node === 'string') return redactUrl(node);
  if (Array.isArray(node)) return node.map((item) => redactNode(item, undefined));
  if (node === null || typeof node !== 'object' || node instanceof Date) return node;
  return Object.fromEntries(
    Object.entries(node).map(([childKey, child]) => [childKey, redactNode(child, childKey)]),
  );
}

/** Replaces the password of a URL with "***"; other text is returned unchanged. */
export function redactUrl(text: string): string {
  return text.replace(URL_PASSWORD, `$1${REDACTED}@`);
}

/** Every secret value in a config: secret keys and URL passwords. */
export function collectSecrets(config: unknown): string[] {
  const found = new Set<string>();
  const visit = (node: unknown, key: string | undefined): void => {
    if (typeof node === 'string') {
      if (key !== undefined && SECRET_KEYS.has(key)) found.add(node);
      for (const match of node.matchAll(URL_PASSWORD)) {
        if (match[2]) {
          found.add(match[2]);
          found.add(safeDecode(match[2]));
        }
      }
    } else if (Array.isArray(node)) node.forEach((item) => visit(item, undefined));
    else if (node !== null && typeof node === 'object') {
      for (const [childKey, child] of Object.entries(node)) visit(child, childKey);
    }
  };
  visit(config, undefined);
  // Very short values would scrub ordinary words; they are still redacted by key in redactConfig.
  return [...found].filter((secret) => secret.length >= 4).sort((a, b) => b.length - a.length);
}

/** Removes every known secret (and any URL password) from free text. */
export function redactText(text: string, secrets: readonly string[]): string {
  let out = redactUrl(text).replace(GENERATED_KEY, `lbk1-${REDACTED}`);
  for (const secret of secrets) out = out.split(secret).join(REDACTED);
  return out;
}

/**
 * A shell command (a server's archive_command) with its secrets removed: URL passwords, generated keys,
 * and the values of environment assignments and options whose names say secret (PASSWORD, SECRET,
 * TOKEN, KEY), as in `LIFEBOAT_PASSWORD=… lifeboat wal-push %p` or `--password=…`.
 */
export function redactCommandLine(text: string): string {
  return redactText(text, []).replace(
    /(\b[A-Za-z_-]*(?:PASSWORD|SECRET|TOKEN|KEY|PASS)[A-Za-z_-]*[=\s]+)(?:'[^']*'|"[^"]*"|[^\s;&|]+)/gi,
    `$1${REDACTED}`,
  );
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
