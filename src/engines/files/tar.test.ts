import { Readable } from 'node:stream';

import { extract } from 'tar-stream';
import { describe, expect, it } from 'vitest';

import { END_OF_ARCHIVE, type TarEntry, entryHeader, padding } from './tar.js';

/** Parses an archive with tar-stream (what restore uses): each entry's header and data. */
async function parse(archive: Buffer) {
  const reader = extract();
  Readable.from([archive]).pipe(reader);
  const entries: Array<{ header: Record<string, unknown>; data: Buffer }> = [];
  for await (const entry of reader) {
    const chunks: Buffer[] = [];
    for await (const chunk of entry) chunks.push(chunk as Buffer);
    entries.push({ header: entry.header as unknown as Record<string, unknown>, data: Buffer.concat(chunks) });
  }
  return entries;
}

describe('tar entry headers', () => {
  it('are read back by tar-stream with every field, for long and non-ASCII paths too', async () => {
    const long = `${'deep/'.repeat(40)}ünïcödé-名前.txt`;
    const entries: Array<TarEntry & { data?: Buffer }> = [
      {
        path: 'srv',
        type: 'directory',
        mode: 0o40755,
        uid: 0,
        gid: 0,
        size: 0,
        mtime: '1600000000.123456789',
      },
      {
        path: 'srv/a.txt',
        type: 'file',
        mode: 0o100640,
        uid: 1000,
        gid: 1001,
        size: 5,
        mtime: '1700000000.000000001',
        data: Buffer.from('hello'),
      },
      { path: long, type: 'file', mode: 0o100600, uid: 3_000_000, gid: 7, size: 0, mtime: '1.5' },
      {
        path: 'srv/link',
        type: 'symlink',
        mode: 0o120777,
        uid: 0,
        gid: 0,
        size: 0,
        mtime: '1600000001.000000000',
        linkname: `../${'x'.repeat(150)}`,
      },
    ];
    const archive = Buffer.concat([
      ...entries.flatMap((entry) => [
        entryHeader(entry),
        ...(entry.data ? [entry.data, padding(entry.data.length)] : []),
      ]),
      END_OF_ARCHIVE,
    ]);
    expect(archive.length % 512).toBe(0);
    const parsed = await parse(archive);
    expect(parsed).toHaveLength(entries.length);
    parsed.forEach(({ header, data }, index) => {
      const entry = entries[index]!;
      expect(header.name).toBe(entry.type === 'directory' ? `${entry.path}/` : entry.path);
      expect(header.type).toBe(entry.type);
      expect(header.mode).toBe(entry.mode & 0o7777);
      // ustar's id fields stop at 2097151; the pax records carry any id (restore reads those).
      const pax = header.pax as Record<string, string>;
      expect(header.uid).toBe(Math.min(entry.uid, 0o7777777));
      expect(Number(pax.uid)).toBe(entry.uid);
      expect(Number(pax.gid)).toBe(entry.gid);
      expect(header.size).toBe(entry.size);
      expect(pax.mtime).toBe(entry.mtime);
      if (entry.linkname !== undefined) expect(header.linkname).toBe(entry.linkname);
      expect(data.equals(entry.data ?? Buffer.alloc(0))).toBe(true);
    });
  });
});
