// Secret redaction: a copy of the config with every secret replaced by "***", and a scrubber for free
// text (error messages, logs) that removes every secret value the config holds.
//
// Terms:
//   secret  the value of a key in SECRET_KEYS (password, secretAccessKey, …), or the password inside a
//           URL's userinfo (postgres://user:secret@host).
import { GENERATED_KEY, REDACTED, URL_PASSWORD, redactUrl } from '../util/redact.js';
import { SECRET_KEYS } from './interpolate.js';

export { REDACTED, redactCommandLine, redactUrl } from '../util/redact.js';

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

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
