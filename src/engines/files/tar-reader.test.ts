import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';

import { extract, pack } from 'tar-stream';
import { describe, expect, it } from 'vitest';

import { isLifeboatError } from '../../errors.js';
import { readTar } from './tar-reader.js';
import { END_OF_ARCHIVE, entryHeader, padding } from './tar.js';

/** An archive fed in pieces of `piece` bytes (entries then straddle reads). */
const pieces = (archive: Buffer, piece: number) =>
  Readable.from(
    Array.from({ length: Math.ceil(archive.length / piece) }, (_, at) =>
      archive.subarray(at * piece, (at + 1) * piece),
    ),
  );

async function readAll(archive: Buffer, piece: number, wholeUpTo: number) {
  const out = [];
  for await (const { header, data } of readTar(pieces(archive, piece), wholeUpTo)) {
    let bytes: Buffer;
    if (Buffer.isBuffer(data)) bytes = Buffer.from(data);
    else {
      const chunks: Buffer[] = [];
      for await (const chunk of data) chunks.push(Buffer.from(chunk));
      bytes = Buffer.concat(chunks);
    }
    out.push({ header, sha: createHash('sha256').update(bytes).digest('hex') });
  }
  return out;
}

/** What tar-stream reads from the same archive, in the same terms. */
async function readWithTarStream(archive: Buffer) {
  const reader = extract();
  Readable.from([archive]).pipe(reader);
  const out = [];
  for await (const entry of reader) {
    const chunks: Buffer[] = [];
    for await (const chunk of entry) chunks.push(chunk as Buffer);
    const h = entry.header;
    out.push({
      name: h.name,
      type: h.type === 'link' ? 'hardlink' : h.type,
      mode: (h.mode ?? 0) & 0o7777,
      size: h.size ?? 0,
      linkname: h.linkname ?? '',
      mtime: Math.floor((h.mtime?.getTime() ?? 0) / 1000),
      sha: createHash('sha256').update(Buffer.concat(chunks)).digest('hex'),
    });
  }
  return out;
}

function randomName(seed: number): string {
  const parts = ['a', 'dir', 'ünï', '名前', 'x'.repeat(60), 'file.txt', 'Ω'];
  const length = 1 + (seed % 6);
  return Array.from({ length }, (_, at) => parts[(seed * 7 + at * 3) % parts.length]! + String(at)).join('/');
}

describe('readTar', () => {
  it('reads what tar-stream writes (ustar, pax for long names, links, large and empty files) as tar-stream does', async () => {
    const writer = pack();
    const entries: Array<{ name: string; type: 'file' | 'directory' | 'symlink' | 'link'; size?: number }> =
      [];
    for (let index = 0; index < 60; index++) {
      const name = `${randomName(index)}-${index}`;
      const kind = index % 5;
      const mtime = new Date(1_600_000_000_000 + index * 1000);
      if (kind === 0) {
        writer.entry({ name, type: 'directory', mode: 0o750, mtime });
        entries.push({ name, type: 'directory' });
      } else if (kind === 1) {
        writer.entry({ name, type: 'symlink', linkname: `../${randomName(index + 1)}`, mtime });
        entries.push({ name, type: 'symlink' });
      } else if (kind === 2 && index > 2) {
        writer.entry({ name, type: 'link', linkname: entries[0]!.name, mtime });
        entries.push({ name, type: 'link' });
      } else {
        const size = [0, 1, 511, 512, 513, 70_000, 300_000][index % 7]!;
        writer.entry({ name, mode: 0o640, uid: 1000 + index, gid: 7, mtime }, randomBytes(size));
        entries.push({ name, type: 'file', size });
      }
    }
    writer.finalize();
    const chunks: Buffer[] = [];
    for await (const chunk of writer) chunks.push(chunk as Buffer);
    const archive = Buffer.concat(chunks);
    const expected = await readWithTarStream(archive);
    expect(expected).toHaveLength(entries.length);
    for (const [piece, wholeUpTo] of [
      [archive.length, 1 << 20],
      [4096, 64 * 1024],
      [777, 0],
      [1, 512],
    ] as const) {
      const got = await readAll(archive, piece, wholeUpTo);
      expect(
        got.map(({ header, sha }) => ({
          name: header.name,
          type: header.type,
          mode: header.mode,
          size: header.size,
          linkname: header.linkname,
          mtime: Math.floor(header.mtime),
          sha,
        })),
      ).toEqual(expected);
    }
  }, 60_000); // ~2 s alone; several times that beside an integration run

  it("reads lifeboat's own headers: pax path, ids above 2097151, nanosecond mtimes, large sizes", async () => {
    const long = `${'deep/'.repeat(40)}ünïcödé-名前.txt`;
    const content = randomBytes(1000);
    const archive = Buffer.concat([
      entryHeader({
        path: long,
        type: 'file',
        mode: 0o100600,
        uid: 3_000_000,
        gid: 3_000_001,
        size: 1000,
        mtime: '1700000000.123456789',
      }),
      content,
      padding(1000),
      entryHeader({ path: 'd', type: 'directory', mode: 0o40755, uid: 0, gid: 0, size: 0, mtime: '1.5' }),
      entryHeader({
        path: 'd/l',
        type: 'symlink',
        mode: 0o120777,
        uid: 0,
        gid: 0,
        size: 0,
        mtime: '2.0',
        linkname: 'x'.repeat(300),
      }),
      END_OF_ARCHIVE,
    ]);
    const [file, directory, link] = await readAll(archive, 100, 512);
    expect(file!.header).toMatchObject({
      name: long,
      type: 'file',
      mode: 0o600,
      uid: 3_000_000,
      gid: 3_000_001,
      size: 1000,
    });
    expect(file!.header.mtime).toBeCloseTo(1_700_000_000.123457, 5);
    expect(file!.sha).toBe(createHash('sha256').update(content).digest('hex'));
    expect(directory!.header).toMatchObject({ name: 'd/', type: 'directory', mode: 0o755, mtime: 1.5 });
    expect(link!.header).toMatchObject({ name: 'd/l', type: 'symlink', linkname: 'x'.repeat(300) });
  });

  it('refuses damage instead of guessing: a flipped header byte, a truncated archive, a bad pax record', async () => {
    const content = randomBytes(2000);
    const good = Buffer.concat([
      entryHeader({ path: 'a', type: 'file', mode: 0o644, uid: 0, gid: 0, size: 2000, mtime: '1.0' }),
      content,
      padding(2000),
      END_OF_ARCHIVE,
    ]);
    const flipped = Buffer.from(good);
    flipped[1024 + 3]! ^= 0x01; // inside the ustar header after the pax header
    const truncated = good.subarray(0, 1536 + 1000);
    const badPax = Buffer.from(good);
    badPax.write('99', 512, 'ascii'); // the first pax record's length
    // (the pax header's checksum covers only its header block, not its records)
    for (const [label, archive] of [
      ['flipped', flipped],
      ['truncated', truncated],
      ['bad pax', badPax],
    ] as const) {
      const error = await readAll(archive, 512, 1 << 20).then(
        () => undefined,
        (caught: unknown) => caught,
      );
      expect(isLifeboatError(error, 'LB_REPO_CORRUPT'), `${label}: ${String(error)}`).toBe(true);
    }
  });

  it('skips the data of an entry the reader does not consume', async () => {
    const big = randomBytes(200_000);
    const archive = Buffer.concat([
      entryHeader({ path: 'big', type: 'file', mode: 0o644, uid: 0, gid: 0, size: big.length, mtime: '1.0' }),
      big,
      padding(big.length),
      entryHeader({ path: 'after', type: 'file', mode: 0o644, uid: 0, gid: 0, size: 3, mtime: '1.0' }),
      Buffer.from('abc'),
      padding(3),
      END_OF_ARCHIVE,
    ]);
    const names: string[] = [];
    let after: Buffer | undefined;
    for await (const { header, data } of readTar(pieces(archive, 4096), 1024)) {
      names.push(header.name);
      if (header.name === 'after') after = data as Buffer;
    }
    expect(names).toEqual(['big', 'after']);
    expect(after?.toString()).toBe('abc');
  });
});
