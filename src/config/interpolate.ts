// Resolution of a parsed YAML tree before validation: ${VAR} interpolation from the environment, and
// <key>File settings that read a secret from a file.
//
// Terms:
//   ${NAME}           replaced by the environment variable NAME; unset is a problem (LB_CONFIG_ENV_MISSING).
//   ${NAME:-default}  NAME if set and non-empty, else the default text.
//   $$                a literal "$" (so "$${NAME}" is the text "${NAME}").
//   <key>File         for the secret keys below, `passwordFile: ./pw.txt` reads the file (relative to the
//                     config file's directory) into `password`, without its trailing newline. Setting both
//                     forms is a problem; so is an unreadable or empty file (LB_CONFIG_SECRET_FILE).
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';

import type { ConfigProblem } from './problems.js';

/** Keys that hold secrets: they accept a <key>File form and are redacted in every printout. */
export const SECRET_KEYS: ReadonlySet<string> = new Set([
  'password',
  'secretAccessKey',
  'sessionToken',
  'apiKey',
  'token',
  'identity',
]);

/** Keys that accept a <key>File form: the secrets, plus values that often embed one. */
const FILE_KEYS: ReadonlySet<string> = new Set([...SECRET_KEYS, 'url', 'username', 'accessKeyId']);

/** Stands in for a secret whose file could not be read (a problem is already recorded). */
const UNRESOLVED = '(unresolved secret file)';

const REFERENCE = /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

export interface ResolveContext {
  env: NodeJS.ProcessEnv;
  /** Directory that relative secret-file paths resolve against (the config file's). */
  baseDirectory: string;
}

/** Returns the resolved tree and every problem met; the input is not modified. */
export function resolveTree(
  tree: unknown,
  context: ResolveContext,
): { value: unknown; problems: ConfigProblem[] } {
  const problems: ConfigProblem[] = [];
  const value = resolveNode(tree, [], context, problems);
  return { value, problems };
}

function resolveNode(
  node: unknown,
  path: Array<string | number>,
  context: ResolveContext,
  problems: ConfigProblem[],
): unknown {
  if (typeof node === 'string') return interpolate(node, path, context.env, problems);
  if (Array.isArray(node))
    return node.map((item, index) => resolveNode(item, [...path, index], context, problems));
  if (node === null || typeof node !== 'object') return node;

  const out: Record<string, unknown> = {};
  const entries = Object.entries(node as Record<string, unknown>);
  for (const [key, raw] of entries) {
    const base = key.endsWith('File') ? key.slice(0, -'File'.length) : undefined;
    if (base === undefined || !FILE_KEYS.has(base)) {
      out[key] = resolveNode(raw, [...path, key], context, problems);
      continue;
    }
    if (Object.hasOwn(node, base)) {
      problems.push({
        path: [...path, key],
        message: `set either ${base} or ${key}, not both`,
        code: 'LB_CONFIG_INVALID',
      });
      continue;
    }
    const file = resolveNode(raw, [...path, key], context, problems);
    if (typeof file !== 'string' || file === '') {
      problems.push({ path: [...path, key], message: 'expected a file path', code: 'LB_CONFIG_INVALID' });
      continue;
    }
    // On failure a placeholder keeps the schema from reporting the same key again as missing.
    out[base] = readSecretFile(file, [...path, key], context, problems) ?? UNRESOLVED;
  }
  return out;
}

function interpolate(
  text: string,
  path: Array<string | number>,
  env: NodeJS.ProcessEnv,
  problems: ConfigProblem[],
): string {
  return text.replace(REFERENCE, (match, name: string | undefined, fallback: string | undefined) => {
    if (match === '$$') return '$';
    const value = env[name as string];
    if (fallback !== undefined) return value === undefined || value === '' ? fallback : value;
    if (value === undefined) {
      problems.push({
        path,
        message: `environment variable ${name} is not set`,
        code: 'LB_CONFIG_ENV_MISSING',
      });
      return '';
    }
    return value;
  });
}

function readSecretFile(
  file: string,
  path: Array<string | number>,
  context: ResolveContext,
  problems: ConfigProblem[],
): string | undefined {
  const absolute = isAbsolute(file) ? file : resolve(context.baseDirectory, file);
  let content: string;
  try {
    content = readFileSync(absolute, 'utf8');
  } catch (error) {
    const reason =
      (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : (error as Error).message;
    problems.push({
      path,
      message: `cannot read secret file ${absolute}: ${reason}`,
      code: 'LB_CONFIG_SECRET_FILE',
    });
    return undefined;
  }
  const secret = content.replace(/\r?\n+$/, '');
  if (secret === '') {
    problems.push({ path, message: `secret file ${absolute} is empty`, code: 'LB_CONFIG_SECRET_FILE' });
    return undefined;
  }
  return secret;
}
