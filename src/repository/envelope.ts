// The encrypted envelope of repository files (index files, snapshot manifests): a small binary header,
// a per-file key sealed under the repository's dataKey, and the zstd-compressed JSON sealed under the
// per-file key.
//
//   "LBF1" | u8 kind length | kind (ASCII) | u8 wrap (1 = dataKey) | u32le wrapped key length |
//   wrapped key = seal(dataKey, fileKey, aad = kind) | seal(fileKey, zstd(JSON), aad = kind)
//
// The kind ("index", "snapshot") is authenticated: a file cannot be passed off as another kind.
import { compress, decompress } from './zstd.js';

import { LifeboatError } from '../errors.js';
import { newKey, open, seal } from './crypto.js';

const MAGIC = Buffer.from('LBF1');
const WRAP_DATA_KEY = 1;

export function sealFile(dataKey: Buffer, kind: string, value: unknown): Buffer {
  const aad = Buffer.from(kind, 'ascii');
  const fileKey = newKey();
  const wrapped = seal(dataKey, fileKey, aad);
  const header = Buffer.alloc(MAGIC.length + 1 + aad.length + 1 + 4);
  MAGIC.copy(header, 0);
  header.writeUInt8(aad.length, 4);
  aad.copy(header, 5);
  header.writeUInt8(WRAP_DATA_KEY, 5 + aad.length);
  header.writeUInt32LE(wrapped.length, 6 + aad.length);
  const body = seal(fileKey, compress(Buffer.from(JSON.stringify(value)), 3), aad);
  return Buffer.concat([header, wrapped, body]);
}

export function openFile<T>(dataKey: Buffer, kind: string, bytes: Buffer, what: string): T {
  const corrupt = (reason: string, cause?: unknown) =>
    new LifeboatError('LB_REPO_CORRUPT', `${what}: ${reason}`, { cause, details: { object: what } });
  if (bytes.length < 10 || !bytes.subarray(0, 4).equals(MAGIC))
    throw corrupt('not a lifeboat file (bad magic)');
  const kindLength = bytes.readUInt8(4);
  const storedKind = bytes.subarray(5, 5 + kindLength).toString('ascii');
  if (storedKind !== kind) throw corrupt(`is a ${JSON.stringify(storedKind)} file, expected ${kind}`);
  const aad = Buffer.from(kind, 'ascii');
  const wrap = bytes.readUInt8(5 + kindLength);
  if (wrap !== WRAP_DATA_KEY) {
    throw new LifeboatError('LB_REPO_VERSION', `${what}: key wrapping ${wrap} is not known to this lifeboat`);
  }
  const wrappedLength = bytes.readUInt32LE(6 + kindLength);
  const wrappedStart = 10 + kindLength;
  if (wrappedStart + wrappedLength > bytes.length) throw corrupt('truncated header');
  const fileKey = open(dataKey, bytes.subarray(wrappedStart, wrappedStart + wrappedLength), what, aad);
  const plain = open(fileKey, bytes.subarray(wrappedStart + wrappedLength), what, aad);
  try {
    return JSON.parse(decompress(plain).toString('utf8')) as T;
  } catch (error) {
    throw corrupt('content is not valid compressed JSON', error);
  }
}
