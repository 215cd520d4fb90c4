// The files engine on a real filesystem: the shared engine conformance suite; 100k small files plus a
// few large ones where a second backup after touching 1% of the files stores about 1%; a bit-exact
// restore (content, modes, mtimes, symlinks) into another directory; and crafted archives with "../"
// paths, escaping symlinks and writes through symlinks, all refused without writing outside.
import { execSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';

import { pack } from 'tar-stream';
import { afterAll, describe, expect, it } from 'vitest';

import { filesEngine } from '../../src/engines/files/index.js';
import type { FilesSource, FilesTarget } from '../../src/engines/files/config.js';
import { restoreFiles } from '../../src/engines/files/restore.js';
import { isLifeboatError } from '../../src/errors.js';
import { engineConformance } from '../conformance/engine.js';
import { BIN, NODE, Workspace } from '../harness/lifeboat.js';

const scratch = mkdtempSync(join(tmpdir(), 'lifeboat-files-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('files engine', () => {
  engineConformance<FilesSource, FilesTarget>('files', () => {
    const tree = join(scratch, 'conformance');
    return {
      engine: filesEngine,
      version: /^files/,
      seed: async () => {
        mkdirSync(join(tree, 'sub', 'deeper'), { recursive: true });
        writeFileSync(join(tree, 'a.txt'), 'alpha\n');
        writeFileSync(join(tree, 'sub', 'b.bin'), randomBytes(3 * 1024 * 1024));
        writeFileSync(join(tree, 'sub', 'deeper', 'empty'), '');
        chmodSync(join(tree, 'a.txt'), 0o640);
        // An owner beyond ustar's 2097151 travels in the pax header (root only can set and restore it).
        if (process.getuid?.() === 0) chownSync(join(tree, 'a.txt'), 3_000_000, 3_000_001);
        symlinkSync('sub/b.bin', join(tree, 'link-to-b'));
        await Promise.resolve();
      },
      source: () => ({ engine: 'files', paths: [tree] }),
      target: () => ({ directory: '/' }), // the original place
      wreck: async () => {
        rmSync(join(tree, 'sub', 'deeper'), { recursive: true });
        writeFileSync(join(tree, 'a.txt'), 'changed\n');
        await Promise.resolve();
      },
      failingSource: () => ({ engine: 'files', paths: [join(scratch, 'does-not-exist')] }),
      failureMessage: /cannot read .*does-not-exist: ENOENT/,
    };
  });
});

describe('files: 100k small files and a few large ones through the CLI', () => {
  const workspace = new Workspace('files-cli');
  const data = join(workspace.directory, 'data');
  const restored = join(workspace.directory, 'restored');
  afterAll(() => workspace.remove());
  const FILES = 100_000;

  it('backs up, stores about the touched share the second time, and restores bit-exact with modes and mtimes', async () => {
    for (let directory = 0; directory < 100; directory++) {
      const path = join(data, `d${String(directory).padStart(3, '0')}`);
      mkdirSync(path, { recursive: true });
      for (let file = 0; file < FILES / 100; file++) {
        // ~2 KiB of varied text per file: file names, numbers, a little randomness.
        writeFileSync(
          join(path, `f${file}.txt`),
          `${randomBytes(600).toString('base64')}\n${`line ${directory}/${file}\n`.repeat(40)}`,
        );
      }
    }
    for (let large = 0; large < 3; large++)
      writeFileSync(join(data, `large-${large}.bin`), randomBytes(64 * 1024 * 1024));
    chmodSync(join(data, 'd000', 'f0.txt'), 0o600);
    symlinkSync('d001/f1.txt', join(data, 'shortcut'));
    utimesSync(join(data, 'd002', 'f2.txt'), 1_600_000_000.123456, 1_600_000_000.123456);
    workspace.writeConfig(`
repository: { url: ./repo, password: files-test }
sources:
  data: { engine: files, paths: [${data}], exclude: ["*.tmp"] }
drills:
  targets:
    data: { directory: ${restored} }
`);
    writeFileSync(join(data, 'ignored.tmp'), 'excluded');
    expect((await workspace.run(['init'])).code).toBe(0);
    const first = await workspace.run(['backup', '--json']);
    expect(first.code, first.stderr).toBe(0);
    const firstOutcome = first.json<{ sources: Array<{ bytesRead: number; bytesNew: number }> }>()
      .sources[0]!;
    const repoSize = () =>
      Number(
        execSync(`du -sb ${workspace.path('repo')}`)
          .toString()
          .split('\t')[0],
      );
    const afterFirst = repoSize();

    // Touch 1% of the files, scattered: new content and mtime.
    for (let index = 0; index < FILES / 100; index++) {
      const directory = (index * 37) % 100;
      const file = (index * 7919) % (FILES / 100);
      writeFileSync(
        join(data, `d${String(directory).padStart(3, '0')}`, `f${file}.txt`),
        `touched ${index} ${randomBytes(400).toString('hex')}\n`,
      );
    }
    const second = await workspace.run(['backup', '--json']);
    expect(second.code, second.stderr).toBe(0);
    const secondOutcome = second.json<{ sources: Array<{ bytesRead: number; bytesNew: number }> }>()
      .sources[0]!;
    const growth = repoSize() - afterFirst;
    console.log(
      `[measure] files: ${FILES} small files + 3 × 64 MiB; first backup read ${(firstOutcome.bytesRead / 2 ** 20).toFixed(1)} MiB, repository ${(afterFirst / 2 ** 20).toFixed(1)} MiB; ` +
        `after touching 1% of the files the second backup read ${(secondOutcome.bytesRead / 2 ** 20).toFixed(1)} MiB, new plaintext ${(secondOutcome.bytesNew / 2 ** 20).toFixed(2)} MiB ` +
        `(${((100 * secondOutcome.bytesNew) / secondOutcome.bytesRead).toFixed(2)}%), repository grew ${(growth / 2 ** 20).toFixed(2)} MiB (${((100 * growth) / afterFirst).toFixed(2)}% of the first)`,
    );
    expect(secondOutcome.bytesNew / secondOutcome.bytesRead).toBeLessThan(0.02);
    expect(growth / afterFirst).toBeLessThan(0.03);

    const drill = await workspace.run(['drill', '--json']);
    expect(drill.code, drill.stdout + drill.stderr).toBe(0);
    const copy = (path: string) => join(restored, data, path);
    expect(statSync(copy('d000/f0.txt')).mode & 0o777).toBe(0o600);
    expect(readlinkSync(copy('shortcut'))).toBe('d001/f1.txt');
    expect(lstatSync(copy('d002/f2.txt'), { bigint: true }).mtimeNs).toBe(
      lstatSync(join(data, 'd002/f2.txt'), { bigint: true }).mtimeNs,
    );
    const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
    expect(sha(copy('large-1.bin'))).toBe(sha(join(data, 'large-1.bin')));
    expect(existsSync(copy('ignored.tmp'))).toBe(false);

    // Restoring over the existing copy needs --force.
    const refused = await workspace.run(['restore', 'latest', '--target', 'data', '--yes']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('LB_TARGET_NOT_EMPTY');
  }, 600_000);
});

describe('files: crafted archives', () => {
  async function archive(
    entries: Array<{
      name: string;
      type?: 'file' | 'symlink' | 'directory';
      linkname?: string;
      content?: string;
      mode?: number;
    }>,
  ): Promise<Readable> {
    const tar = pack();
    for (const entry of entries) {
      if (entry.type === 'symlink')
        tar.entry({ name: entry.name, type: 'symlink', linkname: entry.linkname });
      else if (entry.type === 'directory')
        tar.entry({ name: entry.name, type: 'directory', ...(entry.mode ? { mode: entry.mode } : {}) });
      else tar.entry({ name: entry.name, ...(entry.mode ? { mode: entry.mode } : {}) }, entry.content ?? 'x');
    }
    tar.finalize();
    const chunks: Buffer[] = [];
    for await (const chunk of tar) chunks.push(chunk as Buffer);
    return Readable.from([Buffer.concat(chunks)]);
  }
  const restoreInto = async (root: string, entries: Parameters<typeof archive>[0], force = false) =>
    restoreFiles(
      root,
      await archive(entries),
      { kind: 'files', roots: ['inside'], artifact: 'files.tar' },
      { force },
    ).then(
      () => undefined,
      (error: unknown) => error,
    );

  it('refuses "../" paths and absolute paths, writing nothing outside', async () => {
    const root = join(scratch, 'crafted-1', 'root');
    mkdirSync(root, { recursive: true });
    const traversal = await restoreInto(root, [{ name: 'inside/ok.txt' }, { name: 'inside/../../evil.txt' }]);
    expect(isLifeboatError(traversal, 'LB_RESTORE_UNSAFE'), String(traversal)).toBe(true);
    expect(String((traversal as Error).message)).toContain('path traversal');
    expect(existsSync(join(scratch, 'crafted-1', 'evil.txt'))).toBe(false);
    const absolute = await restoreInto(join(scratch, 'crafted-1', 'root2'), [{ name: '/etc/lifeboat-evil' }]);
    expect(isLifeboatError(absolute, 'LB_RESTORE_UNSAFE'), String(absolute)).toBe(true);
    expect(existsSync('/etc/lifeboat-evil')).toBe(false);
  });

  it('refuses symlinks that escape, and writing through a symlink', async () => {
    const root = join(scratch, 'crafted-2', 'root');
    mkdirSync(root, { recursive: true });
    const outside = join(scratch, 'crafted-2', 'outside');
    mkdirSync(outside);
    const escaping = await restoreInto(root, [
      { name: 'inside/up', type: 'symlink', linkname: '../../outside' },
    ]);
    expect(isLifeboatError(escaping, 'LB_RESTORE_UNSAFE'), String(escaping)).toBe(true);
    const absolute = await restoreInto(join(scratch, 'crafted-2', 'root2'), [
      { name: 'inside/etc', type: 'symlink', linkname: outside },
    ]);
    expect(isLifeboatError(absolute, 'LB_RESTORE_UNSAFE'), String(absolute)).toBe(true);
    // A symlink already in the target directory (planted, not from the archive) is never written through.
    const planted = join(scratch, 'crafted-2', 'root3');
    mkdirSync(join(planted, 'inside'), { recursive: true });
    symlinkSync(outside, join(planted, 'inside', 'door'));
    const through = restoreFiles(
      planted,
      await archive([{ name: 'inside/door/evil.txt' }]),
      { kind: 'files', roots: ['inside'], artifact: 'files.tar' },
      { force: true },
    ).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(isLifeboatError(await through, 'LB_RESTORE_UNSAFE')).toBe(true);
    expect(existsSync(join(outside, 'evil.txt'))).toBe(false);
  });

  it('refuses entries outside the snapshot roots', async () => {
    const root = join(scratch, 'crafted-3', 'root');
    const error = await restoreInto(root, [{ name: 'inside/ok' }, { name: 'elsewhere/evil' }]);
    expect(isLifeboatError(error, 'LB_RESTORE_UNSAFE'), String(error)).toBe(true);
    expect(String((error as Error).message)).toContain("outside the snapshot's roots");
    expect(existsSync(join(root, 'elsewhere'))).toBe(false);
  });

  it('never writes through a directory that a later entry replaced by a symlink (a chain of links)', async () => {
    // "d" is checked as a real directory, then replaced by "d -> s1/../..": by its text that is the
    // restore directory, on disk (s1 -> .) its parent. The file under it must not land there.
    const base = join(scratch, 'crafted-4');
    const root = join(base, 'root');
    const entries = [
      { name: 'inside', type: 'directory' as const },
      { name: 'inside/s1', type: 'symlink' as const, linkname: '.' },
      { name: 'inside/d', type: 'directory' as const },
      { name: 'inside/d', type: 'symlink' as const, linkname: 's1/../..' },
      { name: 'inside/d/evil' },
    ];
    const plain = await restoreInto(root, entries);
    expect(isLifeboatError(plain, 'LB_TARGET_NOT_EMPTY'), String(plain)).toBe(true); // d exists: needs --force
    const forced = await restoreInto(join(base, 'root2'), entries, true);
    expect(isLifeboatError(forced, 'LB_RESTORE_UNSAFE'), String(forced)).toBe(true);
    expect(String((forced as Error).message)).toMatch(/inside\/d is a symlink/);
    expect(existsSync(join(base, 'evil'))).toBe(false);
    expect(existsSync(join(scratch, 'evil'))).toBe(false);
  });

  it('removes a symlink that leads outside only through another symlink replaced later', async () => {
    const base = join(scratch, 'crafted-5');
    const root = join(base, 'root');
    const error = await restoreInto(
      root,
      [
        { name: 'inside', type: 'directory' },
        { name: 'inside/s1', type: 'symlink', linkname: '.' },
        { name: 'inside/d', type: 'symlink', linkname: 's1/..' }, // the root, as s1 is now
        { name: 'inside/s1', type: 'symlink', linkname: '..' }, // the root too: d now leads above it
      ],
      true,
    );
    expect(isLifeboatError(error, 'LB_RESTORE_UNSAFE'), String(error)).toBe(true);
    expect(String((error as Error).message)).toContain('through other symlinks');
    expect(existsSync(join(root, 'inside', 'd'))).toBe(false);
    // A chain that stays inside is kept.
    const fine = join(base, 'fine');
    expect(
      await restoreInto(fine, [
        { name: 'inside', type: 'directory' },
        { name: 'inside/sub', type: 'directory' },
        { name: 'inside/s1', type: 'symlink', linkname: 'sub' },
        { name: 'inside/d', type: 'symlink', linkname: 's1/..' },
      ]),
    ).toBeUndefined();
    expect(readlinkSync(join(fine, 'inside', 'd'))).toBe('s1/..');
  });

  it('checks every link: an absolute one normalised at once; all escaping ones removed, also when a later entry fails', async () => {
    const base = join(scratch, 'crafted-8');
    const root = join(base, 'root');
    const absolute = await restoreInto(root, [
      { name: 'inside/abs', type: 'symlink', linkname: `${root}/../outside` },
    ]);
    expect(isLifeboatError(absolute, 'LB_RESTORE_UNSAFE'), String(absolute)).toBe(true);
    expect(existsSync(join(root, 'inside', 'abs'))).toBe(false);
    const chains = [
      { name: 'inside', type: 'directory' as const },
      { name: 'inside/s1', type: 'symlink' as const, linkname: '.' },
      { name: 'inside/a', type: 'symlink' as const, linkname: 's1/..' },
      { name: 'inside/b', type: 'symlink' as const, linkname: 's1/../inside' },
      { name: 'inside/s1', type: 'symlink' as const, linkname: '..' }, // now a and b lead above the root
    ];
    const two = join(base, 'two');
    const both = await restoreInto(two, chains, true);
    expect(isLifeboatError(both, 'LB_RESTORE_UNSAFE'), String(both)).toBe(true);
    expect(String((both as Error).message)).toMatch(/inside\/a.*inside\/b/);
    for (const name of ['a', 'b']) expect(existsSync(join(two, 'inside', name))).toBe(false);
    const failing = join(base, 'failing');
    const later = await restoreInto(failing, [...chains, { name: 'inside/../../evil' }], true);
    expect(isLifeboatError(later, 'LB_RESTORE_UNSAFE'), String(later)).toBe(true);
    expect(String((later as Error).message)).toContain('path traversal');
    for (const name of ['a', 'b']) expect(existsSync(join(failing, 'inside', name))).toBe(false);
    // A restore directory that is itself a symlink (the user's choice) is checked the same way.
    mkdirSync(join(base, 'real'));
    symlinkSync(join(base, 'real'), join(base, 'via-link'));
    const linked = await restoreInto(join(base, 'via-link'), chains, true);
    expect(isLifeboatError(linked, 'LB_RESTORE_UNSAFE'), String(linked)).toBe(true);
    for (const name of ['a', 'b']) expect(existsSync(join(base, 'real', 'inside', name))).toBe(false);
  });

  it.runIf(process.getuid?.() === 0)('keeps setuid and setgid bits when restoring as root', async () => {
    const root = join(scratch, 'crafted-6', 'root');
    expect(
      await restoreInto(root, [
        { name: 'inside', type: 'directory', mode: 0o2775 },
        { name: 'inside/tool', mode: 0o4755 },
      ]),
    ).toBeUndefined();
    expect(statSync(join(root, 'inside', 'tool')).mode & 0o7777).toBe(0o4755);
    expect(statSync(join(root, 'inside')).mode & 0o7777).toBe(0o2775);
  });

  it('restoring to the original place follows a symlinked directory above the roots (merged /usr), not one below', async () => {
    const base = join(scratch, 'crafted-7');
    mkdirSync(join(base, 'usr', 'lib'), { recursive: true });
    symlinkSync('usr/lib', join(base, 'lib')); // as /lib -> usr/lib
    const archivePath = `${base.slice(1)}/lib/app`;
    const restored = await restoreFiles(
      '/',
      await archive([
        { name: archivePath, type: 'directory' },
        { name: `${archivePath}/settings.conf`, content: 'kept' },
      ]),
      { kind: 'files', roots: [archivePath], artifact: 'files.tar' },
      { force: false },
    );
    expect(restored.details).toMatchObject({ files: 1 });
    expect(readFileSync(join(base, 'usr', 'lib', 'app', 'settings.conf'), 'utf8')).toBe('kept');
    // Below a root, a symlink is still never written through.
    symlinkSync(join(scratch, 'crafted-7-outside'), join(base, 'usr', 'lib', 'app', 'door'));
    mkdirSync(join(scratch, 'crafted-7-outside'));
    const through = await restoreFiles(
      '/',
      await archive([{ name: `${archivePath}/door/evil` }]),
      { kind: 'files', roots: [archivePath], artifact: 'files.tar' },
      { force: true },
    ).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(isLifeboatError(through, 'LB_RESTORE_UNSAFE'), String(through)).toBe(true);
    expect(existsSync(join(scratch, 'crafted-7-outside', 'evil'))).toBe(false);
  });
});

describe('files: a tree the backup cannot read', () => {
  it('fails with LB_ENGINE_FAILED naming the unreadable directory (run as an unprivileged user)', () => {
    // root reads everything: as root, the CLI runs as nobody (uid 65534) to meet EACCES.
    const asUser = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
    const base = mkdtempSync(join(tmpdir(), 'lifeboat-files-eacces-'));
    try {
      chmodSync(base, 0o755);
      if (process.getuid?.() === 0) chownSync(base, 65534, 65534);
      const tree = join(base, 'tree');
      mkdirSync(join(tree, 'secret'), { recursive: true });
      writeFileSync(join(tree, 'ok.txt'), 'readable\n');
      chmodSync(join(tree, 'secret'), 0o000);
      const config = join(base, 'lifeboat.yaml');
      writeFileSync(
        config,
        `repository: { url: ${join(base, 'repo')}, password: eacces-test }\nsources:\n  site: { engine: files, paths: [${tree}] }\n`,
      );
      const lifeboat = (args: string[]) =>
        spawnSync(NODE, [BIN, '--config', config, ...args], {
          ...asUser,
          cwd: base,
          env: { PATH: process.env.PATH, HOME: base },
          encoding: 'utf8',
          timeout: 60_000,
        });
      const init = lifeboat(['init']);
      expect(init.status, init.stderr).toBe(0);
      const backup = lifeboat(['backup', '--json']);
      expect(backup.status, backup.stderr).toBe(1);
      const { error } = JSON.parse(backup.stdout) as { error: { code: string; message: string } };
      expect(error.code).toBe('LB_ENGINE_FAILED');
      expect(error.message).toMatch(/cannot read .*\/secret \(EACCES\).*exclude/);
      expect(JSON.parse(lifeboat(['list', '--json']).stdout)).toEqual([]);
    } finally {
      chmodSync(join(base, 'tree', 'secret'), 0o700);
      rmSync(base, { recursive: true, force: true });
    }
  });
});
