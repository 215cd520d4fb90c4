// Writing tar headers (POSIX ustar plus a pax extended header), one entry at a time.
//
// Written by hand because a backup needs each entry's bytes as a separate part (so that the repository
// starts a new chunk at every file and an unchanged small file is always the same blob), while tar
// libraries pack a whole archive into one stream. Reading: tar-reader.ts.
//
// Terms:
//   entry   one file, directory or symlink: a pax header (path, linkpath, size, mtime with nanoseconds,
//           uid, gid), a ustar header, then the data padded to 512 bytes. Any tar reader understands it.

export type EntryType = 'file' | 'directory' | 'symlink';

export interface TarEntry {
  /** Archive path, relative, "/"-separated, no leading "/" ("srv/uploads/a.txt"). */
  path: string;
  type: EntryType;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Modification time as "seconds.nanoseconds" (from stat's mtimeNs). */
  mtime: string;
  linkname?: string;
}

const TYPE_FLAG: Record<EntryType, string> = { file: '0', directory: '5', symlink: '2' };

function octal(value: number, length: number): string {
  return (
    value
      .toString(8)
      .padStart(length - 1, '0')
      .slice(-(length - 1)) + '\0'
  );
}

/** Writes a ustar header into the 512 zero bytes at `header` (a view). */
function ustar(
  header: Buffer,
  name: string,
  type: string,
  entry: Pick<TarEntry, 'mode' | 'uid' | 'gid'> & { size: number; mtime: number; linkname: string },
): void {
  header.write(name.slice(0, 99), 0, 'utf8');
  header.write(octal(entry.mode & 0o7777, 8), 100, 'ascii');
  header.write(octal(Math.min(entry.uid, 0o7777777), 8), 108, 'ascii');
  header.write(octal(Math.min(entry.gid, 0o7777777), 8), 116, 'ascii');
  header.write(octal(Math.min(entry.size, 0o77777777777), 12), 124, 'ascii');
  header.write(octal(Math.max(0, Math.min(entry.mtime, 0o77777777777)), 12), 136, 'ascii');
  header.write('        ', 148, 'ascii');
  header.write(type, 156, 'ascii');
  header.write(entry.linkname.slice(0, 99), 157, 'utf8');
  header.write('ustar\u000000', 257, 'binary');
  let sum = 0;
  for (let at = 0; at < 512; at++) sum += header[at]!;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
}

/** One pax record: "<length> key=value\n", where length counts the whole record. */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let length = Buffer.byteLength(body) + 1;
  while (String(length).length + Buffer.byteLength(body) !== length)
    length = String(length).length + Buffer.byteLength(body);
  return `${length}${body}`;
}

const pad = (size: number): number => (512 - (size % 512)) % 512;

/** The header bytes of an entry (pax + ustar); its data and padding() follow. */
export function entryHeader(entry: TarEntry): Buffer {
  const pax =
    paxRecord('path', entry.type === 'directory' ? `${entry.path}/` : entry.path) +
    paxRecord('mtime', entry.mtime) +
    paxRecord('uid', String(entry.uid)) +
    paxRecord('gid', String(entry.gid)) +
    paxRecord('size', String(entry.size)) +
    (entry.linkname !== undefined ? paxRecord('linkpath', entry.linkname) : '');
  // One buffer for all of it: pax header, pax records padded to a block, ustar header.
  const paxLength = Buffer.byteLength(pax);
  const paxBlocks = paxLength + pad(paxLength);
  const bytes = Buffer.alloc(512 + paxBlocks + 512);
  ustar(bytes.subarray(0, 512), `PaxHeaders/${entry.path}`.slice(0, 99), 'x', {
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: paxLength,
    mtime: 0,
    linkname: '',
  });
  bytes.write(pax, 512, 'utf8');
  ustar(
    bytes.subarray(512 + paxBlocks),
    entry.type === 'directory' ? `${entry.path}/` : entry.path,
    TYPE_FLAG[entry.type],
    {
      ...entry,
      size: entry.type === 'file' ? entry.size : 0,
      mtime: Math.floor(Number(entry.mtime.split('.')[0])),
      linkname: entry.linkname ?? '',
    },
  );
  return bytes;
}

/** A TarEntry's mtime ("seconds.nanoseconds") from stat's mtimeNs. */
export const mtimeOfNs = (ns: bigint): string =>
  `${ns / 1_000_000_000n}.${(ns % 1_000_000_000n).toString().padStart(9, '0')}`;

/** Zero bytes that pad `size` bytes of data to a whole block. */
export const padding = (size: number): Buffer => Buffer.alloc(pad(size));

/** The end of an archive: two zero blocks. */
export const END_OF_ARCHIVE = Buffer.alloc(1024);
