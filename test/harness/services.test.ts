// Integration test of the harness itself: every registered service starts through needs() and answers
// as its real client would see it; reuse through environment variables leaves the server running; and
// reuse variables naming a non-loopback host are refused.
//
// Terms:
//   answers   postgres: `psql <url> -tAc "select 1"` prints 1; redis/valkey: AUTH, PING and INFO server
//             over raw TCP; minio: GET /minio/health/ready is 200.
//   reused    a handle for a server named by LIFEBOAT_TEST_*; stop() must leave that server running.
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCommand } from './commands.js';
import { needs } from './needs.js';
import { findFreePort } from './ports.js';
import { httpGetStatus } from './probes.js';
import { answersPing, RespError, runRedisCommands, parseInfo, sendRedisCommands } from './resp.js';
import type { RedisTarget } from './resp.js';
import {
  acquireService,
  announcement,
  HarnessConfigError,
  isLoopbackHost,
  SERVICE_NAMES,
  startService,
} from './services.js';
import type { RedisHandle } from './services.js';

const PSQL = '/usr/bin/psql';

/** Sets environment variables for the enclosing describe (beforeAll) and restores them (afterAll). */
function withEnvironment(values: () => Promise<Record<string, string | undefined>>): void {
  const saved = new Map<string, string | undefined>();
  beforeAll(async () => {
    for (const [name, value] of Object.entries(await values())) {
      saved.set(name, process.env[name]);
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  });
  afterAll(() => {
    for (const [name, value] of saved) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  });
}

async function infoServer(target: RedisTarget): Promise<Map<string, string>> {
  const [pong, info] = await runRedisCommands(target, [['PING'], ['INFO', 'server']]);
  expect(pong).toBe('PONG');
  if (typeof info !== 'string') throw new Error(`INFO server answered ${JSON.stringify(info)}`);
  return parseInfo(info);
}

describe('the registry', () => {
  it('lists every service once', () => {
    expect([...SERVICE_NAMES].sort()).toEqual(['minio', 'postgres', 'redis', 'valkey']);
  });
});

describe('postgres', () => {
  const postgres = needs('postgres');

  it('answers select 1 through psql, in UTF8', async (ctx) => {
    const { url } = postgres.get(ctx);
    const one = await runCommand(PSQL, [url, '-tAc', 'select 1']);
    expect(one.stderr).toBe('');
    expect(one.stdout.trim()).toBe('1');
    const encoding = await runCommand(PSQL, [url, '-tAc', 'show server_encoding']);
    expect(encoding.stdout.trim()).toBe('UTF8');
  });

  it('requires the password over TCP', async (ctx) => {
    const handle = postgres.get(ctx);
    if (handle.reused) ctx.skip('reused server: its authentication is not the harness’s');
    const wrong = `postgres://${handle.user}:wrong-password@${handle.host}:${handle.port}/postgres`;
    const result = await runCommand(PSQL, [wrong, '-tAc', 'select 1'], {
      env: { ...process.env, PGPASSWORD: '' },
    });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/password authentication failed/);
    expect(existsSync(handle.dataDirectory ?? '')).toBe(true);
    expect(handle.description).toBe(`PostgreSQL 15 at 127.0.0.1:${handle.port} (started by harness)`);
  });
});

describe('redis', () => {
  const redis = needs('redis');

  it('answers AUTH, PING and INFO server, and is Redis 7', async (ctx) => {
    const handle = redis.get(ctx);
    const info = await infoServer(handle);
    expect(info.get('redis_version')).toMatch(/^7\./);
    expect(info.has('valkey_version')).toBe(false);
    expect(handle.version).toBe(info.get('redis_version'));
  });

  it('refuses commands without the password', async (ctx) => {
    const handle = redis.get(ctx);
    if (handle.reused && handle.password === undefined) ctx.skip('reused server has no password');
    const [reply] = await sendRedisCommands(handle, [['PING']]);
    expect(reply).toBeInstanceOf(RespError);
    expect(reply instanceof RespError ? reply.message : '').toMatch(/^NOAUTH/);
  });
});

describe('valkey', () => {
  const valkey = needs('valkey');

  it('answers AUTH, PING and INFO server, and is Valkey 8', async (ctx) => {
    const handle = valkey.get(ctx);
    const info = await infoServer(handle);
    // Valkey reports its own version and, for client compatibility, a Redis version of 7.2.4.
    expect(info.get('valkey_version')).toMatch(/^8\./);
    expect(info.get('redis_version')).toBe('7.2.4');
    expect(handle.version).toBe(info.get('valkey_version'));
  });
});

describe('minio', () => {
  const minio = needs('minio');

  it('answers the readiness health check', async (ctx) => {
    const handle = minio.get(ctx);
    expect(await httpGetStatus(`${handle.endpoint}/minio/health/ready`)).toBe(200);
    expect(handle.region).toBe('us-east-1');
    if (!handle.reused) {
      expect(handle.accessKeyId).toBe('lifeboat-test');
      expect(handle.secretAccessKey).toBe('lifeboat-test-secret');
      expect(announcement(handle)).toBe(
        `minio: MinIO at 127.0.0.1:${new URL(handle.endpoint).port} (started by harness, data ${handle.dataDirectory})`,
      );
    }
  });
});

describe('stopping a started server', () => {
  it('ends the process and removes the data directory', async () => {
    const redis = await startService('redis');
    expect(await answersPing(redis)).toBe(true);
    await redis.stop();
    await expect(answersPing(redis)).rejects.toThrow(/ECONNREFUSED/);
    expect(existsSync(redis.dataDirectory ?? '')).toBe(false);
    await redis.stop(); // a second stop is harmless
  });
});

describe('a server reused through LIFEBOAT_TEST_REDIS_URL', () => {
  let running: RedisHandle | undefined;
  withEnvironment(async () => {
    running = await startService('redis');
    return { LIFEBOAT_TEST_REDIS_URL: running.url };
  });
  afterAll(async () => {
    await running?.stop();
  });

  describe('in a suite that needs redis', () => {
    const redis = needs('redis');

    it('is that server, marked reused, without a data directory', (ctx) => {
      const handle = redis.get(ctx);
      expect(handle.reused).toBe(true);
      expect(handle.port).toBe(running?.port);
      expect(handle.dataDirectory).toBeUndefined();
      expect(handle.description).toBe(
        `Redis ${handle.version} at 127.0.0.1:${handle.port} (reused from LIFEBOAT_TEST_REDIS_URL)`,
      );
    });
  });

  it('still answers after that suite ended (its afterAll did not stop it)', async () => {
    if (running === undefined) throw new Error('the server did not start');
    expect(await answersPing(running)).toBe(true);
    expect(existsSync(running.dataDirectory ?? '')).toBe(true);
  });
});

describe('a reuse variable naming a server that does not answer, outside CI', () => {
  withEnvironment(async () => ({
    CI: undefined,
    LIFEBOAT_TEST_REDIS_URL: `redis://:x@127.0.0.1:${await findFreePort()}`,
  }));
  const redis = needs('redis');

  it('skips the test with a note naming the server and the reason', () => {
    const notes: string[] = [];
    class Skipped extends Error {}
    function skip(note?: string): never;
    function skip(condition: boolean, note?: string): void;
    function skip(first?: string | boolean, second?: string): void {
      notes.push(typeof first === 'string' ? first : (second ?? ''));
      throw new Skipped();
    }
    expect(() => redis.get({ skip })).toThrow(Skipped);
    expect(notes).toHaveLength(1);
    expect(notes[0]).toMatch(
      /^needs redis, which is unavailable: LIFEBOAT_TEST_REDIS_URL=redis:\/\/:\*\*\*@127\.0\.0\.1:\d+ does not answer/,
    );
    expect(() => redis.handle).toThrow(/unavailable/);
  });
});

describe('reuse variables naming a non-loopback host', () => {
  it.each([
    ['postgres', { LIFEBOAT_TEST_POSTGRES_URL: 'postgres://postgres:secret@10.0.0.5:5432/postgres' }],
    ['redis', { LIFEBOAT_TEST_REDIS_URL: 'redis://:secret@cache.example.com:6379' }],
    ['valkey', { LIFEBOAT_TEST_VALKEY_URL: 'redis://:secret@192.168.1.20:6379' }],
    [
      'minio',
      {
        LIFEBOAT_TEST_S3_ENDPOINT: 'https://s3.amazonaws.com',
        LIFEBOAT_TEST_S3_ACCESS_KEY_ID: 'AKIA',
        LIFEBOAT_TEST_S3_SECRET_ACCESS_KEY: 'secret',
      },
    ],
  ] as const)('%s is refused without contacting it', async (name, env) => {
    const attempt = acquireService(name, {}, env);
    await expect(attempt).rejects.toThrow(HarnessConfigError);
    await expect(attempt).rejects.toThrow(
      /only loopback hosts \(127\.0\.0\.0\/8, localhost, ::1\) are accepted/,
    );
    await expect(attempt).rejects.not.toThrow(/:secret@/);
  });

  it('accepts exactly 127.0.0.0/8, localhost and ::1', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', 'LOCALHOST', '::1', '[::1]']) {
      expect(isLoopbackHost(host), host).toBe(true);
    }
    for (const host of [
      '10.0.0.1',
      '128.0.0.1',
      '0.0.0.0',
      'example.com',
      'localhost.example.com',
      '::',
      '127.0.0',
    ]) {
      expect(isLoopbackHost(host), host).toBe(false);
    }
  });
});
