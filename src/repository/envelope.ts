// The encrypted envelope of repository files (index files, snapshot manifests): a small binary header,
// a per-file content key wrapped by the key ring, and the zstd-compressed JSON sealed under that key.
//
//   "LBF1" | u8 kind length | kind (ASCII) | u8 wrap | u32le wrapped key length | wrapped key |
//   seal(fileKey, zstd(JSON), aad = kind)
//
// wrap is 1 (dataKey), 2 (age) or 3 (writerKey), see keys.ts: index files are wrapped for writers,
// snapshots for readers. The kind is authenticated: a file cannot be passed off as another kind.
import { LifeboatError } from '../errors.js';
import { newKey, open, seal } from './crypto.js';
import type { KeyRing } from './keys.js';
import { compress, decompress } from './zstd.js';

const MAGIC = Buffer.from('LBF1');

/** Kinds wrapped for writers (a write-only host reads them to dedupe and to push idempotently). */
const WRITER_KINDS = new Set(['index', 'archive']);

export async function sealFile(
  ring: KeyRing,
  kind: string,
  value: unknown,
  forWriters: boolean,
): Promise<Buffer> {
  const aad = Buffer.from(kind, 'ascii');
  const fileKey = newKey();
  const wrapped = forWriters ? ring.wrapForWriters(fileKey, aad) : await ring.wrapForReaders(fileKey, aad);
  const header = Buffer.alloc(MAGIC.length + 1 + aad.length + 1 + 4);
  MAGIC.copy(header, 0);
  header.writeUInt8(aad.length, 4);
  aad.copy(header, 5);
  header.writeUInt8(wrapped.kind, 5 + aad.length);
  header.writeUInt32LE(wrapped.bytes.length, 6 + aad.length);
  const body = seal(fileKey, compress(Buffer.from(JSON.stringify(value)), 3), aad);
  return Buffer.concat([header, wrapped.bytes, body]);
}

export async function openFile<T>(ring: KeyRing, kind: string, bytes: Buffer, what: string): Promise<T> {
  const corrupt = (reason: string, cause?: unknown) =>
    new LifeboatError('LB_REPO_CORRUPT', `${what}: ${reason}`, { cause, details: { object: what } });
  if (bytes.length < 10 || !bytes.subarray(0, 4).equals(MAGIC))
    throw corrupt('not a lifeboat file (bad magic)');
  const kindLength = bytes.readUInt8(4);
  const storedKind = bytes.subarray(5, 5 + kindLength).toString('ascii');
  if (storedKind !== kind) throw corrupt(`is a ${JSON.stringify(storedKind)} file, expected ${kind}`);
  const aad = Buffer.from(kind, 'ascii');
  const wrap = bytes.readUInt8(5 + kindLength);
  const wrappedLength = bytes.readUInt32LE(6 + kindLength);
  const wrappedStart = 10 + kindLength;
  if (wrappedStart + wrappedLength > bytes.length) throw corrupt('truncated header');
  const fileKey = await ring.unwrap(
    wrap,
    bytes.subarray(wrappedStart, wrappedStart + wrappedLength),
    aad,
    what,
    WRITER_KINDS.has(kind) ? [3] : [1, 2],
  );
  const plain = open(fileKey, bytes.subarray(wrappedStart + wrappedLength), what, aad);
  try {
    return JSON.parse(decompress(plain).toString('utf8')) as T;
  } catch (error) {
    throw corrupt('content is not valid compressed JSON', error);
  }
}
