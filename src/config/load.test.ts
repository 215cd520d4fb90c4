// Unit tests of config loading: every problem names its path, secrets resolve from env and files and
// never show in printouts.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { isLifeboatError, type LifeboatError } from '../errors.js';
import { loadConfig, parseConfig } from './load.js';
import { redactConfig, redactText } from './redact.js';

const directory = mkdtempSync(join(tmpdir(), 'lifeboat-config-'));
const file = join(directory, 'lifeboat.yaml');

const GOOD = `
repository:
  url: s3://backups/prod
  password: \${LIFEBOAT_PASSWORD}
  s3: { endpoint: http://127.0.0.1:9000, region: us-east-1, accessKeyId: minio, secretAccessKeyFile: ./s3-secret, forcePathStyle: true }
sources:
  main-db: { engine: postgres, url: "postgres://app:db-secret-1@127.0.0.1:5432/app" }
  cache: { engine: redis, url: "redis://127.0.0.1:6379", password: "\${REDIS_PASSWORD:-fallback-pw}" }
  uploads: { engine: files, paths: [/srv/uploads], exclude: ["*.tmp"] }
schedules: [ { sources: [main-db], cron: "0 */6 * * *" } ]
retention: { keepLast: 3, keepDaily: 7, keepWeekly: 4, keepMonthly: 12 }
objectives: { main-db: { rpo: 1h, rto: 20m } }
drills: { targets: { main-db: { url: "postgres://app:db-secret-1@127.0.0.1:5432/scratch" } } }
`;
writeFileSync(join(directory, 's3-secret'), 's3-secret-value\n');
const env = { LIFEBOAT_PASSWORD: 'repo-password-1' };

function problemsOf(text: string, environment: NodeJS.ProcessEnv = env): LifeboatError {
  try {
    parseConfig(text, file, environment);
  } catch (error) {
    if (isLifeboatError(error)) return error;
    throw error;
  }
  throw new Error('expected the config to be rejected');
}

describe('loading a good config', () => {
  it('resolves ${VAR}, ${VAR:-default} and <key>File, and fills defaults', () => {
    const { config, secrets } = parseConfig(GOOD, file, env);
    expect(config.repository.password).toBe('repo-password-1');
    expect(config.repository.s3?.secretAccessKey).toBe('s3-secret-value');
    expect(config.sources.cache).toMatchObject({ engine: 'redis', password: 'fallback-pw' });
    expect(config.sources['main-db']).toMatchObject({ engine: 'postgres', mode: 'logical' });
    expect(config.schedules[0]?.action).toBe('backup');
    expect(config.repository.compression).toEqual({ level: 3 });
    expect(secrets).toEqual(
      expect.arrayContaining(['repo-password-1', 's3-secret-value', 'fallback-pw', 'db-secret-1']),
    );
  });

  it('finds the file through --config, then $LIFEBOAT_CONFIG', async () => {
    writeFileSync(file, GOOD);
    expect((await loadConfig({ path: file, env })).path).toBe(file);
    expect((await loadConfig({ env: { ...env, LIFEBOAT_CONFIG: file } })).path).toBe(file);
  });

  it('accepts public-key mode with recipients only (a write-only host)', () => {
    const text = `repository: { url: ./repo, recipients: [age1${'q'.repeat(58)}] }\n`;
    expect(parseConfig(text, file, {}).config.repository.recipients).toHaveLength(1);
  });

  it('treats "$$" as a literal dollar', () => {
    const text = 'repository: { url: ./repo, password: "pa$$word" }\n';
    expect(parseConfig(text, file, {}).config.repository.password).toBe('pa$word');
  });
});

describe('rejecting a broken config', () => {
  it.each([
    [
      'wrong type',
      GOOD.replace('keepLast: 3', 'keepLast: three'),
      'LB_CONFIG_INVALID',
      'retention.keepLast: expected number, got text "three"',
    ],
    [
      'unknown engine',
      GOOD.replace('engine: redis', 'engine: mongodb'),
      'LB_CONFIG_INVALID',
      'sources.cache.engine: unknown engine "mongodb" (expected one of postgres, redis, neo4j, qdrant, opensearch, files)',
    ],
    [
      'bad URL scheme',
      GOOD.replace('postgres://app:db-secret-1@127.0.0.1:5432/app', 'mysql://x@h/db'),
      'LB_CONFIG_INVALID',
      'sources.main-db.url: expected a postgres:// URL',
    ],
    [
      'unknown key (typo)',
      GOOD.replace('keepDaily', 'keepDialy'),
      'LB_CONFIG_INVALID',
      'retention.keepDialy: unknown key',
    ],
    [
      'bad cron',
      GOOD.replace('0 */6 * * *', '61 * * * *'),
      'LB_CONFIG_INVALID',
      'schedules[0].cron: not a valid cron expression',
    ],
    [
      'bad duration',
      GOOD.replace('rpo: 1h', 'rpo: soon'),
      'LB_CONFIG_INVALID',
      'objectives.main-db.rpo: expected a duration',
    ],
    [
      'unknown source in a schedule',
      GOOD.replace('sources: [main-db]', 'sources: [main-dbb]'),
      'LB_CONFIG_INVALID',
      'schedules[0].sources[0]: no source named "main-dbb"',
    ],
    [
      'missing env var',
      GOOD,
      'LB_CONFIG_ENV_MISSING',
      'repository.password: environment variable LIFEBOAT_PASSWORD is not set',
    ],
    [
      'unreadable secret file',
      GOOD.replace('./s3-secret', './missing-secret'),
      'LB_CONFIG_SECRET_FILE',
      'repository.s3.secretAccessKeyFile: cannot read secret file',
    ],
    [
      'both key and keyFile',
      GOOD.replace(
        'secretAccessKeyFile: ./s3-secret',
        'secretAccessKey: x, secretAccessKeyFile: ./s3-secret',
      ),
      'LB_CONFIG_INVALID',
      'repository.s3.secretAccessKeyFile: set either secretAccessKey or secretAccessKeyFile, not both',
    ],
    [
      'no key mode',
      'repository: { url: ./repo }\n',
      'LB_CONFIG_INVALID',
      'repository: set password (password mode) or recipients (public-key mode)',
    ],
    ['missing repository', 'sources: {}\n', 'LB_CONFIG_INVALID', 'repository: is required'],
    [
      'drill target of the wrong engine shape',
      GOOD.replace(
        'main-db: { url: "postgres://app:db-secret-1@127.0.0.1:5432/scratch" }',
        'main-db: { url: "redis://x" }',
      ),
      'LB_CONFIG_INVALID',
      'drills.targets.main-db.url: expected a postgres:// URL',
    ],
    ['invalid YAML', 'repository: { url: ./repo\n', 'LB_CONFIG_PARSE', 'line 2'],
    ['duplicate key', 'repository: { url: ./a }\nrepository: { url: ./b }\n', 'LB_CONFIG_PARSE', 'line 2'],
  ])('%s', (_label, text, code, fragment) => {
    const environment = _label === 'missing env var' ? {} : env;
    const error = problemsOf(text, environment);
    expect(error.code).toBe(code);
    expect(error.exitCode).toBe(2);
    expect(error.message).toContain(fragment);
    expect(error.message).toContain(file);
  });

  it('lists every problem, one per line, not just the first', () => {
    const text = GOOD.replace('keepLast: 3', 'keepLast: -1').replace('rto: 20m', 'rto: 20 minutes');
    const error = problemsOf(text);
    expect(error.message).toMatch(
      /2 problems\n {2}retention.keepLast: .*\n {2}objectives.main-db.rto: expected a duration/,
    );
  });

  it('reports a missing file with LB_CONFIG_NOT_FOUND', async () => {
    await expect(loadConfig({ path: join(directory, 'nope.yaml'), env })).rejects.toMatchObject({
      code: 'LB_CONFIG_NOT_FOUND',
    });
  });
});

describe('redaction', () => {
  it('hides secret keys and URL passwords in printouts', () => {
    const { config, secrets } = parseConfig(GOOD, file, env);
    const printed = JSON.stringify(redactConfig(config));
    for (const secret of ['repo-password-1', 's3-secret-value', 'fallback-pw', 'db-secret-1']) {
      expect(printed).not.toContain(secret);
    }
    expect(printed).toContain('postgres://app:***@127.0.0.1:5432/app');
    expect(printed).toContain('"accessKeyId":"minio"');
    expect(redactText('auth failed for repo-password-1 at redis://u:pw9@h', secrets)).toBe(
      'auth failed for *** at redis://u:***@h',
    );
  });

  it('hides a generated repository key by its form, even one the config does not hold', () => {
    const key = `lbk1-${'Ab9_-'.repeat(8)}xyz`;
    expect(key).toHaveLength(48);
    expect(redactText(`opened with ${key}.`, [])).toBe('opened with lbk1-***.');
    for (const [before, after] of [
      ['pw_', '-old'],
      ['secret', '_bak'],
      ['/etc/keys/', '/x'],
      ['a%3D', ''],
    ]) {
      expect(redactText(`${before}${key}${after}`, [])).toBe(`${before}lbk1-***${after}`);
    }
    expect(redactText(`not a key: lbk1-short`, [])).toBe('not a key: lbk1-short');
  });
});
