// Loading lifeboat.yaml: find it, parse the YAML, resolve ${VAR} and <key>File, validate with the
// schema, and report every problem at once with its path in the file.
//
// Terms:
//   config path  --config, else $LIFEBOAT_CONFIG, else ./lifeboat.yaml.
//   secrets      the secret values the config holds, collected so that any text lifeboat prints can be
//                scrubbed of them (see redact.ts).
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

import { parseDocument } from 'yaml';
import type { z } from 'zod';

import { LifeboatError } from '../errors.js';
import { ENGINE_NAMES } from '../engines/schemas.js';
import { resolveTree } from './interpolate.js';
import { type ConfigProblem, formatPath, problemsError } from './problems.js';
import { collectSecrets } from './redact.js';
import { type LifeboatConfig, configSchema } from './schema.js';

export interface LoadConfigOptions {
  /** Explicit path (the --config flag). */
  path?: string;
  /** Environment for ${VAR} and $LIFEBOAT_CONFIG (default: process.env). */
  env?: NodeJS.ProcessEnv;
}

export interface LoadedConfig {
  /** Absolute path of the file that was read. */
  path: string;
  config: LifeboatConfig;
  /** Secret values found in the config, for redaction of free text. */
  secrets: string[];
}

/** Which file the config comes from: --config, else $LIFEBOAT_CONFIG, else ./lifeboat.yaml. */
export function configPath(explicit?: string, env: NodeJS.ProcessEnv = process.env): string {
  return resolve(explicit ?? (env.LIFEBOAT_CONFIG || 'lifeboat.yaml'));
}

export async function loadConfig(options: LoadConfigOptions = {}): Promise<LoadedConfig> {
  const env = options.env ?? process.env;
  const path = configPath(options.path, env);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const reason =
      (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message;
    throw new LifeboatError(
      'LB_CONFIG_NOT_FOUND',
      `cannot read configuration ${path}: ${reason} (set --config or LIFEBOAT_CONFIG, or create ./lifeboat.yaml)`,
      { cause: error, details: { file: path } },
    );
  }
  return parseConfig(text, path, env);
}

/** Validates config text as if read from `path` (relative secret files resolve against its directory). */
export function parseConfig(text: string, path: string, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const document = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  const yamlError = document.errors[0];
  if (yamlError) {
    const where = yamlError.linePos?.[0];
    const position = where ? `line ${where.line}, column ${where.col}: ` : '';
    throw new LifeboatError('LB_CONFIG_PARSE', `${path}: ${position}${yamlError.message.split('\n')[0]}`, {
      cause: yamlError,
      details: { file: path, line: where?.line, column: where?.col },
    });
  }
  const tree: unknown = document.toJS() ?? {};
  if (typeof tree !== 'object' || Array.isArray(tree)) {
    throw new LifeboatError(
      'LB_CONFIG_INVALID',
      `${path}: expected a mapping of keys (repository, sources, …) at the top`,
    );
  }

  const resolved = resolveTree(tree, { env, baseDirectory: dirname(path) });
  const result = configSchema.safeParse(resolved.value);
  // A value that failed to resolve (missing ${VAR}, unreadable file) is not reported twice by the schema.
  const unresolved = new Set(resolved.problems.map((problem) => formatPath(problem.path)));
  const invalid = result.error ? schemaProblems(result.error, resolved.value) : [];
  const problems = [
    ...resolved.problems,
    ...invalid.filter((problem) => !unresolved.has(formatPath(problem.path))),
  ];
  if (problems.length > 0 || !result.success) throw problemsError(path, problems);
  return { path, config: result.data, secrets: collectSecrets(result.data) };
}

function schemaProblems(error: z.ZodError, tree: unknown): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  for (const issue of error.issues) {
    const path = issue.path.map((key) => (typeof key === 'number' ? key : String(key)));
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys)
        problems.push({ path: [...path, key], message: 'unknown key', code: 'LB_CONFIG_INVALID' });
      continue;
    }
    problems.push({ path, message: issueMessage(issue, valueAt(tree, path)), code: 'LB_CONFIG_INVALID' });
  }
  return problems;
}

function issueMessage(issue: z.core.$ZodIssue, value: unknown): string {
  if (issue.code === 'invalid_union' && 'discriminator' in issue && issue.discriminator === 'engine') {
    const expected = `expected one of ${ENGINE_NAMES.join(', ')}`;
    return value === undefined
      ? `engine is required (${expected})`
      : `unknown engine ${JSON.stringify(value)} (${expected})`;
  }
  if (issue.code === 'invalid_type') {
    if (value === undefined) return 'is required';
    return `expected ${issue.expected}, got ${describe(value)}`;
  }
  return issue.message.replace(/^Invalid input: /, '');
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string')
    return `text ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  return typeof value === 'number' || typeof value === 'boolean' ? `${typeof value} ${value}` : typeof value;
}

function valueAt(tree: unknown, path: ReadonlyArray<string | number>): unknown {
  let node = tree;
  for (const key of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string | number, unknown>)[key];
  }
  return node;
}
