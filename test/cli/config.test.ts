// The built CLI (bin/lifeboat.js) as a user runs it: `config check` and `config show`, exit codes,
// one-line errors with their code and path, no stack traces unless --debug, secrets never printed.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, describe, expect, it } from 'vitest';

const BIN = fileURLToPath(new URL('../../bin/lifeboat.js', import.meta.url));
const directory = mkdtempSync(join(tmpdir(), 'lifeboat-cli-'));
afterAll(() => rmSync(directory, { recursive: true, force: true }));

const SECRETS = { password: 'repo-pass-XYZ', s3: 's3-secret-QRS', db: 'db-pass-LMN' };
writeFileSync(join(directory, 's3-secret'), `${SECRETS.s3}\n`);

const GOOD = `
repository:
  url: s3://backups/prod
  password: \${LIFEBOAT_PASSWORD}
  s3: { endpoint: http://127.0.0.1:9000, region: us-east-1, accessKeyId: minio, secretAccessKeyFile: ./s3-secret, forcePathStyle: true }
sources:
  main-db: { engine: postgres, url: "postgres://app:${SECRETS.db}@127.0.0.1:5432/app" }
  cache: { engine: redis, url: "redis://127.0.0.1:6379" }
schedules: [ { sources: [main-db], cron: "0 */6 * * *" } ]
retention: { keepLast: 3, keepDaily: 7, keepWeekly: 4, keepMonthly: 12 }
objectives: { main-db: { rpo: 1h, rto: 20m } }
drills: { targets: { main-db: { url: "postgres://app:${SECRETS.db}@127.0.0.1:5432/scratch" } } }
`;

let files = 0;
function configFile(text: string): string {
  const path = join(directory, `lifeboat-${++files}.yaml`);
  writeFileSync(path, text);
  return path;
}

function lifeboat(args: string[], env: NodeJS.ProcessEnv = {}) {
  const result = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH, LIFEBOAT_PASSWORD: SECRETS.password, ...env },
    cwd: directory,
    timeout: 30_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

const noStackTrace = (text: string) => expect(text).not.toMatch(/^\s+at .+\(.*\)$/m);

describe('lifeboat config check', () => {
  it('exits 0 on a good config and summarizes it', () => {
    const run = lifeboat(['config', 'check', '--config', configFile(GOOD)]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/is valid/);
    expect(run.stdout).toContain('main-db (postgres), cache (redis)');
  });

  it('finds the config through $LIFEBOAT_CONFIG and gives JSON with --json', () => {
    const run = lifeboat(['config', 'check', '--json'], { LIFEBOAT_CONFIG: configFile(GOOD) });
    expect(run.code).toBe(0);
    const parsed = JSON.parse(run.stdout) as { valid: boolean; sources: Record<string, string> };
    expect(parsed).toMatchObject({ valid: true, sources: { 'main-db': 'postgres', cache: 'redis' } });
  });

  it.each([
    [
      'a wrong type',
      GOOD.replace('keepLast: 3', 'keepLast: [3]'),
      {},
      'LB_CONFIG_INVALID',
      'retention.keepLast: expected number, got a list',
    ],
    [
      'an unknown engine',
      GOOD.replace('engine: redis', 'engine: memcached'),
      {},
      'LB_CONFIG_INVALID',
      'sources.cache.engine: unknown engine "memcached"',
    ],
    [
      'a missing env var',
      GOOD,
      { LIFEBOAT_PASSWORD: undefined },
      'LB_CONFIG_ENV_MISSING',
      'repository.password: environment variable LIFEBOAT_PASSWORD is not set',
    ],
    [
      'an unreadable secret file',
      GOOD.replace('./s3-secret', './no-such-secret'),
      {},
      'LB_CONFIG_SECRET_FILE',
      'repository.s3.secretAccessKeyFile: cannot read secret file',
    ],
    [
      'a bad postgres URL',
      GOOD.replace(`postgres://app:${SECRETS.db}@127.0.0.1:5432/app`, 'http://db'),
      {},
      'LB_CONFIG_INVALID',
      'sources.main-db.url: expected a postgres:// URL',
    ],
    ['broken YAML', 'repository: [unclosed\n', {}, 'LB_CONFIG_PARSE', 'line 2'],
  ])(
    'exits 2 on %s, naming the path and the problem, without a stack trace',
    (_label, text, env, code, fragment) => {
      const run = lifeboat(['config', 'check', '--config', configFile(text)], env);
      expect(run.code).toBe(2);
      expect(run.stdout).toBe('');
      const firstLine = run.stderr.split('\n')[0]!;
      expect(firstLine).toMatch(new RegExp(`^lifeboat: error ${code}: `));
      expect(run.stderr).toContain(fragment);
      noStackTrace(run.stderr);
    },
  );

  it('exits 2 for a missing config file', () => {
    const run = lifeboat(['config', 'check', '--config', join(directory, 'absent.yaml')]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(
      /^lifeboat: error LB_CONFIG_NOT_FOUND: cannot read configuration .*absent.yaml/,
    );
  });

  it('exits 2 when a secret file cannot be read (a directory) or is empty', () => {
    const unreadable = lifeboat([
      'config',
      'check',
      '--config',
      configFile(GOOD.replace('./s3-secret', directory)),
    ]);
    expect(unreadable.code).toBe(2);
    expect(unreadable.stderr).toMatch(
      /LB_CONFIG_SECRET_FILE: .*repository.s3.secretAccessKeyFile: cannot read secret file .*EISDIR/,
    );
    writeFileSync(join(directory, 'empty-secret'), '\n');
    const empty = lifeboat([
      'config',
      'check',
      '--config',
      configFile(GOOD.replace('./s3-secret', './empty-secret')),
    ]);
    expect(empty.code).toBe(2);
    expect(empty.stderr).toContain('secret file');
    expect(empty.stderr).toContain('is empty');
  });

  it('prints the JSON error on stdout with --json', () => {
    const run = lifeboat([
      'config',
      'check',
      '--json',
      '--config',
      configFile(GOOD.replace('engine: redis', 'engine: nope')),
    ]);
    expect(run.code).toBe(2);
    const parsed = JSON.parse(run.stdout) as {
      error: { code: string; details: { problems: Array<{ path: string }> } };
    };
    expect(parsed.error.code).toBe('LB_CONFIG_INVALID');
    expect(parsed.error.details.problems[0]?.path).toBe('sources.cache.engine');
  });

  it('adds the stack with --debug', () => {
    const run = lifeboat([
      'config',
      'check',
      '--debug',
      '--config',
      configFile(GOOD.replace('keepLast: 3', 'keepLast: x')),
    ]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/^\s+at /m);
  });
});

describe('lifeboat config show', () => {
  it('prints the effective config with defaults and every secret redacted', () => {
    const run = lifeboat(['config', 'show', '--config', configFile(GOOD)]);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('mode: logical');
    expect(run.stdout).toContain('postgres://app:***@127.0.0.1:5432/app');
    for (const secret of Object.values(SECRETS)) expect(run.stdout + run.stderr).not.toContain(secret);
  });

  it('prints JSON with --json', () => {
    const run = lifeboat(['config', 'show', '--json', '--config', configFile(GOOD)]);
    const parsed = JSON.parse(run.stdout) as { repository: { password: string } };
    expect(parsed.repository.password).toBe('***');
  });
});

describe('the CLI frame', () => {
  it('prints the version and help', () => {
    expect(lifeboat(['--version']).stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
    const help = lifeboat(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--json');
    expect(help.stdout).toContain('config');
  });

  it('answers a usage mistake with LB_USAGE and exit 2', () => {
    const unknown = lifeboat(['restor']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^lifeboat: error LB_USAGE: unknown command 'restor'/);
    const option = lifeboat(['config', 'check', '--frobnicate']);
    expect(option.code).toBe(2);
    expect(option.stderr).toMatch(/LB_USAGE: unknown option '--frobnicate'/);
  });

  it('accepts global flags after the command name', () => {
    const run = lifeboat(['config', 'check', '--config', configFile(GOOD), '--json']);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ valid: true });
  });
});
