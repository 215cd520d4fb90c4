// The filesystem backend: the shared conformance suite (raw, and composed by openStorage with its retry
// and concurrency wrappers), plus what only a local directory has: temp files, crash safety of writes,
// and directory creation.
import { spawn, spawnSync } from 'node:child_process';
import { truncateSync } from 'node:fs';
import { mkdtempSync, readdirSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';

import { FsBackend, openStorage } from '../../src/storage/index.js';
import { codeOf, listNames, storageConformance } from '../conformance/storage.js';

const scratch = mkdtempSync(join(tmpdir(), 'lifeboat-fs-'));
let counter = 0;
const freshDirectory = () => join(scratch, `repo-${++counter}`);
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

storageConformance('fs (raw FsBackend)', async () => {
  const backend = new FsBackend({ root: freshDirectory() });
  await backend.probe({ create: true });
  return backend;
});

storageConformance('fs (openStorage: retry + concurrency wrappers)', async () => {
  const backend = openStorage({ url: freshDirectory(), concurrency: 3 });
  await backend.probe({ create: true });
  return backend;
});

describe('fs backend specifics', () => {
  it('reports a missing repository directory, and creates it on request', async () => {
    const root = freshDirectory();
    const backend = new FsBackend({ root });
    expect(await codeOf(backend.probe())).toBe('LB_STORAGE_NOT_FOUND');
    await backend.probe({ create: true });
    await backend.write('config', Buffer.from('x'));
    expect(readdirSync(root)).toEqual(['config']);
  });

  it('accepts file:// URLs through openStorage', async () => {
    const root = freshDirectory();
    const backend = openStorage({ url: `file://${root}` });
    await backend.probe({ create: true });
    await backend.write('a/b', Buffer.from('y'));
    expect(await listNames(new FsBackend({ root }))).toEqual(['a/b']);
  });

  it('never lists or serves a leftover temp file', async () => {
    const root = freshDirectory();
    const backend = new FsBackend({ root });
    await backend.probe({ create: true });
    mkdirSync(join(root, 'data'), { recursive: true });
    writeFileSync(join(root, 'data', '.lifeboat-tmp-deadbeef'), 'half a pack');
    await backend.write('data/real', Buffer.from('whole'));
    expect(await listNames(backend)).toEqual(['data/real']);
  });

  it('refuses Object Lock retention', async () => {
    const backend = new FsBackend({ root: freshDirectory() });
    await backend.probe({ create: true });
    expect(backend.capabilities.objectLock).toBe(false);
    expect(
      await codeOf(backend.write('x', Buffer.from('x'), { retainUntil: new Date(Date.now() + 60_000) })),
    ).toBe('LB_STORAGE_UNSUPPORTED');
  });

  it('classifies a file standing where a directory must be as a permanent failure', async () => {
    const root = freshDirectory();
    const backend = new FsBackend({ root });
    await backend.probe({ create: true });
    await backend.write('data', Buffer.from('a file, not a directory'));
    expect(await codeOf(backend.write('data/ab/blob', Buffer.from('x')))).toMatch(
      /LB_STORAGE_(FAILED|NOT_FOUND)/,
    );
  });

  it('leaves no visible object when the writing process is killed mid-write (SIGKILL)', async () => {
    const root = freshDirectory();
    // A child process streams a 512 MiB object slowly; we kill it once the temp file is growing.
    const script = `
      import { FsBackend } from ${JSON.stringify(new URL('../../dist/storage/index.js', import.meta.url).href)};
      import { Readable } from 'node:stream';
      const backend = new FsBackend({ root: ${JSON.stringify(root)} });
      await backend.probe({ create: true });
      await backend.write('data/committed', Buffer.from('done before the crash'));
      process.stdout.write('ready\\n');
      const chunk = Buffer.alloc(1024 * 1024, 7);
      await backend.write('packs/in-flight', { open: () => Readable.from((async function* () {
        for (let i = 0; i < 512; i++) { yield chunk; await new Promise((r) => setTimeout(r, 5)); }
      })()) });
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (data: Buffer) => {
        if (data.toString().includes('ready')) setTimeout(resolve, 300);
      });
      child.once('exit', (code) => reject(new Error(`writer exited early with ${code}`)));
    });
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));

    const backend = new FsBackend({ root });
    expect(readdirSync(join(root, 'packs')).some((name) => name.startsWith('.lifeboat-tmp'))).toBe(true);
    expect(await listNames(backend)).toEqual(['data/committed']);
    expect(await codeOf(backend.stat('packs/in-flight'))).toBe('LB_STORAGE_NOT_FOUND');
    // The next writer of the same name succeeds.
    await backend.write('packs/in-flight', Buffer.from('retried'));
    expect((await backend.read('packs/in-flight')).toString()).toBe('retried');
  });

  it('fails a stream whose file is truncated while it is read, with a storage error', async () => {
    const root = freshDirectory();
    const backend = new FsBackend({ root });
    await backend.probe({ create: true });
    await backend.write('packs/shrinking', Buffer.alloc(8 * 1024 * 1024, 1));
    const stream = await backend.readStream('packs/shrinking');
    let received = 0;
    const error = await (async () => {
      for await (const chunk of stream) {
        if (received === 0) truncateSync(join(root, 'packs', 'shrinking'), 1024 * 1024);
        received += (chunk as Buffer).length;
      }
    })().catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: 'LB_STORAGE_RANGE' });
    expect(received).toBeLessThan(8 * 1024 * 1024);
  });

  it('never commits a short object when the disk is full (tmpfs of 2 MiB)', async (ctx) => {
    if (process.getuid?.() !== 0) ctx.skip('mounting a tmpfs needs root');
    const mountPoint = freshDirectory();
    mkdirSync(mountPoint, { recursive: true });
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mountPoint], {
      encoding: 'utf8',
    });
    expect(mounted.status, `mount tmpfs: ${mounted.stderr}`).toBe(0);
    try {
      const backend = openStorage({ url: mountPoint });
      await backend.probe({ create: true });
      await backend.write('packs/fits', Buffer.alloc(512 * 1024, 2));
      const error = await backend
        .write('packs/too-big', Buffer.alloc(3 * 1024 * 1024, 3))
        .catch((caught: unknown) => caught);
      expect(error).toMatchObject({ code: 'LB_STORAGE_FAILED' });
      expect((error as Error).message).toMatch(/ENOSPC|no space/i);
      expect(await codeOf(backend.stat('packs/too-big'))).toBe('LB_STORAGE_NOT_FOUND');
      expect(await listNames(backend)).toEqual(['packs/fits']);
      // The temp file was removed: the space is free again.
      await backend.write('packs/after', Buffer.alloc(512 * 1024, 4));
    } finally {
      spawnSync('umount', [mountPoint]);
    }
  });
});
