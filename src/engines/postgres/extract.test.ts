import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';

import { afterAll, describe, expect, it } from 'vitest';

import { END_OF_ARCHIVE, entryHeader, padding, type TarEntry } from '../files/tar.js';
import { SMALL_FILE } from '../files/entry-source.js';
import { WRITE_PIECE, extractBaseTar, writeInPieces } from './extract.js';

const scratch = mkdtempSync(join(tmpdir(), 'lifeboat-extract-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

let made = 0;
const emptyDirectory = () => {
  const directory = join(scratch, `data-${made++}`);
  mkdirSync(directory, { mode: 0o700 });
  return directory;
};

type Item = Omit<TarEntry, 'uid' | 'gid' | 'size'> & { data?: Buffer };

/** A tar of `items` as lifeboat's own writer makes it, cut into reads of `piece` bytes. */
function archiveOf(items: Item[], piece = 64 * 1024): Readable {
  const parts: Buffer[] = [];
  for (const item of items) {
    const data = item.data ?? Buffer.alloc(0);
    parts.push(entryHeader({ ...item, uid: 0, gid: 0, size: data.length }));
    if (item.type === 'file') parts.push(data, padding(data.length));
  }
  parts.push(END_OF_ARCHIVE);
  const whole = Buffer.concat(parts);
  const pieces: Buffer[] = [];
  for (let at = 0; at < whole.length; at += piece) pieces.push(whole.subarray(at, at + piece));
  return Readable.from(pieces);
}

/**
 * The same archive as borrowed chunks: every read is a view of ONE buffer, overwritten by the next read
 * (as Repository.readArtifactBorrowed reuses its shared memory), so anything kept across reads without a
 * copy comes out wrong.
 */
async function* borrowed(archive: Readable, piece: number): AsyncGenerator<Buffer> {
  const whole = Buffer.concat(await archive.toArray());
  const reused = Buffer.alloc(piece);
  for (let at = 0; at < whole.length; at += piece) {
    const length = whole.copy(reused, 0, at, at + piece);
    yield reused.subarray(0, length);
    reused.fill(0xee); // what the next segment would overwrite it with
  }
}

describe('extractBaseTar', () => {
  it('writes directories, files of every size and symlinks with their modes and mtimes', async () => {
    const directory = emptyDirectory();
    const large = randomBytes(SMALL_FILE * 3 + 12345);
    const result = await extractBaseTar(
      archiveOf(
        [
          {
            path: 'PG_VERSION',
            type: 'file',
            mode: 0o600,
            mtime: '1700000000.250000000',
            data: Buffer.from('15\n'),
          },
          { path: 'base', type: 'directory', mode: 0o700, mtime: '1700000100.000000000' },
          { path: 'base/1', type: 'directory', mode: 0o750, mtime: '1700000200.000000000' },
          { path: 'base/1/1259', type: 'file', mode: 0o600, mtime: '1700000300.000000000', data: large },
          { path: 'base/1/empty', type: 'file', mode: 0o640, mtime: '1700000400.000000000' },
          // A file before its directory's entry (a parent is made when missing).
          {
            path: 'pg_wal/archive_status/x.done',
            type: 'file',
            mode: 0o600,
            mtime: '1700000500.0',
            data: Buffer.alloc(0),
          },
          { path: 'pg_wal', type: 'directory', mode: 0o700, mtime: '1700000600.000000000' },
          { path: 'pg_tblspc', type: 'directory', mode: 0o700, mtime: '1700000700.000000000' },
          {
            path: 'pg_tblspc/16384',
            type: 'symlink',
            mode: 0o777,
            mtime: '1700000800.000000000',
            linkname: '/srv/ts',
          },
        ],
        // Reads that cut headers and data at odd places.
        7777,
      ),
      directory,
    );
    expect(result).toEqual({ files: 4, bytes: large.length + 3 });
    expect(readFileSync(join(directory, 'PG_VERSION'), 'utf8')).toBe('15\n');
    expect(readFileSync(join(directory, 'base/1/1259')).equals(large)).toBe(true);
    expect(statSync(join(directory, 'base/1/1259')).mode & 0o7777).toBe(0o600);
    expect(statSync(join(directory, 'base/1/empty')).mode & 0o7777).toBe(0o640);
    expect(statSync(join(directory, 'base/1')).mode & 0o7777).toBe(0o750);
    expect(statSync(join(directory, 'base/1/1259')).mtimeMs).toBe(1700000300000);
    expect(statSync(join(directory, 'PG_VERSION')).mtimeMs).toBe(1700000000250);
    // Directories get their mtime after everything was written into them.
    expect(statSync(join(directory, 'base/1')).mtimeMs).toBe(1700000200000);
    expect(statSync(join(directory, 'pg_wal')).mtimeMs).toBe(1700000600000);
    expect(readdirSync(join(directory, 'pg_wal/archive_status'))).toEqual(['x.done']);
    expect(lstatSync(join(directory, 'pg_tblspc/16384')).isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(directory, 'pg_tblspc/16384'))).toBe('/srv/ts');
  });

  it('reads borrowed chunks (one buffer reused for every read) bit-exactly, headers and data cut anywhere', async () => {
    const files = Array.from({ length: 40 }, (_, index) => ({
      path: `base/5/${16384 + index}`,
      type: 'file' as const,
      mode: 0o600,
      mtime: '1700000000.0',
      data: randomBytes(index % 3 === 0 ? SMALL_FILE + 1000 * index : 100 + 3000 * index),
    }));
    for (const piece of [1000, 4096, 65536 + 7]) {
      const directory = emptyDirectory();
      const archive = archiveOf([{ path: 'base', type: 'directory', mode: 0o700, mtime: '1.0' }, ...files]);
      await extractBaseTar(borrowed(archive, piece), directory);
      for (const file of files) expect(readFileSync(join(directory, file.path)).equals(file.data)).toBe(true);
    }
  });

  it('reads what GNU tar writes: long names, and the "./" of a directory archived whole', async () => {
    const source = join(scratch, 'gnu-source');
    const deep = join(source, 'base', 'x'.repeat(90), 'y'.repeat(90));
    mkdirSync(deep, { recursive: true });
    writeFileSync(join(deep, 'z'.repeat(60)), 'deep');
    writeFileSync(join(source, 'postgresql.auto.conf'), '# auto\n');
    const tar = execFileSync('tar', ['-c', '-f', '-', '-C', source, '.'], { maxBuffer: 1 << 24 });
    const directory = emptyDirectory();
    await extractBaseTar(Readable.from([tar]), directory);
    expect(
      readFileSync(join(directory, 'base', 'x'.repeat(90), 'y'.repeat(90), 'z'.repeat(60)), 'utf8'),
    ).toBe('deep');
    expect(readFileSync(join(directory, 'postgresql.auto.conf'), 'utf8')).toBe('# auto\n');
  });

  it.each([
    ['../outside', 'a ".." path'],
    ['base/../../outside', 'a ".." inside a path'],
    ['/etc/evil', 'an absolute path'],
  ])('refuses %s (%s) and writes nothing of it', async (path) => {
    const directory = emptyDirectory();
    await expect(
      extractBaseTar(
        archiveOf([
          { path: 'PG_VERSION', type: 'file', mode: 0o600, mtime: '1.0', data: Buffer.from('15\n') },
          { path, type: 'file', mode: 0o600, mtime: '1.0', data: Buffer.from('evil') },
        ]),
        directory,
      ),
    ).rejects.toMatchObject({ code: 'LB_RESTORE_UNSAFE', message: expect.stringContaining(path) as unknown });
    expect(existsSync(join(scratch, 'outside'))).toBe(false);
    expect(readdirSync(directory)).toEqual(['PG_VERSION']);
  });

  it('refuses an entry below a symlink the archive made, and never writes through it', async () => {
    const directory = emptyDirectory();
    const elsewhere = emptyDirectory();
    await expect(
      extractBaseTar(
        archiveOf([
          { path: 'pg_tblspc', type: 'directory', mode: 0o700, mtime: '1.0' },
          { path: 'pg_tblspc/16384', type: 'symlink', mode: 0o777, mtime: '1.0', linkname: elsewhere },
          {
            path: 'pg_tblspc/16384/PG_15/file',
            type: 'file',
            mode: 0o600,
            mtime: '1.0',
            data: Buffer.from('x'),
          },
        ]),
        directory,
      ),
    ).rejects.toMatchObject({
      code: 'LB_RESTORE_UNSAFE',
      message: expect.stringMatching(/pg_tblspc\/16384 is a symlink/) as unknown,
    });
    expect(readdirSync(elsewhere)).toEqual([]);
  });

  it.each([
    [
      { path: 'base/1/link', type: 'symlink', mode: 0o777, mtime: '1.0', linkname: '/etc' },
      /a symlink \(-> \/etc\) outside pg_tblspc/,
    ],
    [
      { path: '.', type: 'file', mode: 0o600, mtime: '1.0', data: Buffer.from('x') },
      /a file in place of the data directory/,
    ],
  ] as Array<[Item, RegExp]>)('refuses %o', async (item, why) => {
    const directory = emptyDirectory();
    await expect(
      extractBaseTar(
        archiveOf([{ path: 'base', type: 'directory', mode: 0o700, mtime: '1.0' }, item]),
        directory,
      ),
    ).rejects.toMatchObject({ code: 'LB_RESTORE_UNSAFE', message: expect.stringMatching(why) as unknown });
  });

  it('reads its input to the end (a repository artifact checks its size and hash there)', async () => {
    let ended = false;
    const archive = archiveOf([
      { path: 'PG_VERSION', type: 'file', mode: 0o600, mtime: '1.0', data: Buffer.from('15\n') },
    ]);
    async function* withPadding() {
      for await (const chunk of archive) yield chunk as Buffer;
      yield Buffer.alloc(8192); // what tar writers pad a record with
      ended = true;
    }
    await extractBaseTar(withPadding(), emptyDirectory());
    expect(ended).toBe(true);
  });

  it('refuses a hard link and whatever else is not a directory, file or symlink', async () => {
    const source = join(scratch, 'links');
    mkdirSync(source);
    writeFileSync(join(source, 'a'), 'same');
    linkSync(join(source, 'a'), join(source, 'b'));
    const tar = execFileSync('tar', ['-c', '-f', '-', '-C', source, 'a', 'b']);
    await expect(extractBaseTar(Readable.from([tar]), emptyDirectory())).rejects.toMatchObject({
      code: 'LB_ENGINE_FAILED',
      message: expect.stringMatching(/"b", of tar type "1" \(hardlink\)/) as unknown,
    });
  });

  it('names the file it could not write (a file already there is never overwritten)', async () => {
    const directory = emptyDirectory();
    writeFileSync(join(directory, 'PG_VERSION'), 'mine');
    await expect(
      extractBaseTar(
        archiveOf([
          { path: 'PG_VERSION', type: 'file', mode: 0o600, mtime: '1.0', data: Buffer.from('15\n') },
        ]),
        directory,
      ),
    ).rejects.toMatchObject({
      code: 'LB_ENGINE_FAILED',
      message: expect.stringMatching(
        /could not extract base\.tar into .* \(at PG_VERSION\): EEXIST/,
      ) as unknown,
    });
    expect(readFileSync(join(directory, 'PG_VERSION'), 'utf8')).toBe('mine');
  });

  it('fsyncs every large file before it returns, in the background, two at a time', async () => {
    const directory = emptyDirectory();
    const synced: string[] = [];
    let running = 0;
    let most = 0;
    const sync = async (path: string) => {
      running++;
      most = Math.max(most, running);
      await new Promise((resolve) => setTimeout(resolve, 5));
      expect(existsSync(path)).toBe(true);
      synced.push(path);
      running--;
    };
    const large = Array.from({ length: 6 }, (_, index) => ({
      path: `base/1/${1000 + index}`,
      type: 'file' as const,
      mode: 0o600,
      mtime: '1.0',
      data: randomBytes(SMALL_FILE + 1 + index),
    }));
    const result = await extractBaseTar(
      archiveOf([
        { path: 'base', type: 'directory', mode: 0o700, mtime: '1.0' },
        ...large,
        // Small files: left to the server's own sync at startup.
        ...Array.from({ length: 20 }, (_, index) => ({
          path: `base/1/${2000 + index}`,
          type: 'file' as const,
          mode: 0o600,
          mtime: '1.0',
          data: randomBytes(100),
        })),
      ]),
      directory,
      undefined,
      sync,
    );
    expect(result.files).toBe(26);
    expect([...synced].sort()).toEqual(large.map((file) => join(directory, file.path)).sort());
    expect(running).toBe(0); // all done when it returned
    expect(most).toBe(2);
  });

  it('fails naming the file whose fsync failed, and leaves nothing running', async () => {
    const directory = emptyDirectory();
    let running = 0;
    const sync = async (path: string) => {
      running++;
      await new Promise((resolve) => setTimeout(resolve, 1));
      running--;
      if (path.endsWith('/base/1/2003'))
        throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
    };
    await expect(
      extractBaseTar(
        archiveOf(
          Array.from({ length: 40 }, (_, index) => ({
            path: `base/1/${2000 + index}`,
            type: 'file' as const,
            mode: 0o600,
            mtime: '1.0',
            data: Buffer.alloc(SMALL_FILE + 10),
          })),
        ),
        directory,
        undefined,
        sync,
      ),
    ).rejects.toMatchObject({
      code: 'LB_ENGINE_FAILED',
      message: expect.stringMatching(/could not fsync .*\/base\/1\/2003: EIO/) as unknown,
    });
    expect(running).toBe(0);
  });

  it('fsyncs for real by default', async () => {
    const directory = emptyDirectory();
    const data = randomBytes(SMALL_FILE + 1);
    await extractBaseTar(
      archiveOf([{ path: 'base', type: 'file', mode: 0o600, mtime: '1.0', data }]),
      directory,
    );
    expect(readFileSync(join(directory, 'base')).equals(data)).toBe(true);
  });

  it('reports a damaged archive as the reader does, and stops the input', async () => {
    const good = Buffer.concat([
      entryHeader({ path: 'PG_VERSION', type: 'file', mode: 0o600, uid: 0, gid: 0, size: 3, mtime: '1.0' }),
    ]);
    good.writeUInt8(good.readUInt8(good.length - 512 + 10) ^ 0xff, good.length - 512 + 10); // the checksum no longer matches
    const input = Readable.from([good]);
    await expect(extractBaseTar(input, emptyDirectory())).rejects.toMatchObject({ code: 'LB_REPO_CORRUPT' });
    expect(input.destroyed).toBe(true);
  });
});

describe('writeInPieces', () => {
  it('writes every byte at its position, never more than WRITE_PIECE per call, and resumes short writes', () => {
    const data = randomBytes(3 * WRITE_PIECE + 123);
    const file = Buffer.alloc(10 + data.length);
    const calls: number[] = [];
    writeInPieces(7, data, 10, (fd, bytes, offset, length, position) => {
      expect(fd).toBe(7);
      calls.push(length);
      const written = calls.length === 2 ? 1000 : length; // one short write
      Buffer.from(bytes.buffer, bytes.byteOffset + offset, written).copy(file, position);
      return written;
    });
    expect(file.subarray(10).equals(data)).toBe(true);
    expect(Math.max(...calls)).toBe(WRITE_PIECE);
    expect(calls).toEqual([
      WRITE_PIECE,
      WRITE_PIECE,
      WRITE_PIECE,
      2 * WRITE_PIECE + 123 - 1000 - WRITE_PIECE,
    ]);
  });
});
