// Packs: many encrypted blobs in one storage object, sized for S3 (about 16 MiB).
//
//   header   "LBPK" | u8 version | 3 zero bytes | u32le wrapped key length | seal(dataKey, packKey, aad "lifeboat pack key")
//   blobs    seal(packKey, payload, aad = the blob id's 32 bytes), one after another
//   trailer  seal(packKey, zstd(JSON directory), aad "lifeboat pack directory") | u32le its length | "LBPK"
//
// Terms:
//   payload    the blob's bytes, zstd-compressed when that makes them smaller (compression = 1), else
//              raw (compression = 0).
//   directory  the list of the pack's blobs with their offsets; it repeats what the index says, so an
//              index can be rebuilt from packs and check can compare the two.
//   pack id    SHA-256 of the whole pack object; it is stored as data/<first two hex digits>/<id>.
import { compress, decompress } from './zstd.js';

import { LifeboatError } from '../errors.js';
import { SEAL_OVERHEAD, blobId as keyedId, newKey, open, seal, sha256Hex } from './crypto.js';
import { PACK_VERSION, checkVersion } from './format.js';

const MAGIC = Buffer.from('LBPK');
const KEY_AAD = Buffer.from('lifeboat pack key');
const DIRECTORY_AAD = Buffer.from('lifeboat pack directory');
/** Bytes of the header: magic, version, padding, length, sealed 32-byte key. */
export const PACK_HEADER_BYTES = 4 + 1 + 3 + 4 + 32 + SEAL_OVERHEAD;

export interface PackedBlob {
  /** Blob id (hex HMAC of the plaintext). */
  id: string;
  /** Offset of the sealed blob in the pack. */
  offset: number;
  /** Length of the sealed blob (payload + 28 bytes). */
  length: number;
  /** Length of the plaintext. */
  rawLength: number;
  /** 0 = stored raw, 1 = zstd. */
  compression: 0 | 1;
}

export function packName(packId: string): string {
  return `data/${packId.slice(0, 2)}/${packId}`;
}

/** Accumulates blobs into one pack. */
export class PackWriter {
  private readonly packKey = newKey();
  private readonly parts: Buffer[] = [];
  private readonly blobs: PackedBlob[] = [];
  private offset: number;

  constructor(
    dataKey: Buffer,
    private readonly compressionLevel: number,
  ) {
    const header = Buffer.alloc(12);
    MAGIC.copy(header, 0);
    header.writeUInt8(PACK_VERSION, 4);
    const wrapped = seal(dataKey, this.packKey, KEY_AAD);
    header.writeUInt32LE(wrapped.length, 8);
    this.parts.push(header, wrapped);
    this.offset = header.length + wrapped.length;
  }

  /** Bytes written so far. */
  get size(): number {
    return this.offset;
  }

  get count(): number {
    return this.blobs.length;
  }

  /** Compresses (when it helps), seals and appends one blob. */
  add(id: string, plaintext: Buffer): PackedBlob {
    let payload = plaintext;
    let compression: 0 | 1 = 0;
    if (this.compressionLevel > 0 && plaintext.length > 64) {
      const compressed = compress(plaintext, this.compressionLevel);
      if (compressed.length < plaintext.length * 0.97) {
        payload = compressed;
        compression = 1;
      }
    }
    const sealed = seal(this.packKey, payload, Buffer.from(id, 'hex'));
    const blob: PackedBlob = {
      id,
      offset: this.offset,
      length: sealed.length,
      rawLength: plaintext.length,
      compression,
    };
    this.parts.push(sealed);
    this.blobs.push(blob);
    this.offset += sealed.length;
    return blob;
  }

  /** The finished pack: its id, bytes and directory. */
  finish(): { id: string; bytes: Buffer; blobs: PackedBlob[] } {
    const directory = seal(this.packKey, compress(Buffer.from(JSON.stringify(this.blobs)), 3), DIRECTORY_AAD);
    const tail = Buffer.alloc(8);
    tail.writeUInt32LE(directory.length, 0);
    MAGIC.copy(tail, 4);
    const bytes = Buffer.concat([...this.parts, directory, tail]);
    return { id: sha256Hex(bytes), bytes, blobs: this.blobs };
  }
}

/** Opens the pack key from a pack's first PACK_HEADER_BYTES bytes. */
export function openPackKey(dataKey: Buffer, header: Buffer, what: string): Buffer {
  if (header.length < 12 || !header.subarray(0, 4).equals(MAGIC)) {
    throw new LifeboatError('LB_REPO_CORRUPT', `${what}: not a pack (bad magic)`);
  }
  checkVersion(header.readUInt8(4), PACK_VERSION, what);
  const length = header.readUInt32LE(8);
  return open(dataKey, header.subarray(12, 12 + length), `${what} (pack key)`, KEY_AAD);
}

/** Decrypts, decompresses and verifies one blob read from a pack. */
export function openBlob(
  packKey: Buffer,
  idKey: Buffer,
  blob: PackedBlob,
  sealed: Buffer,
  what: string,
): Buffer {
  const payload = open(packKey, sealed, `${what} blob ${blob.id.slice(0, 16)}`, Buffer.from(blob.id, 'hex'));
  let plaintext: Buffer;
  try {
    plaintext = blob.compression === 1 ? decompress(payload) : payload;
  } catch (error) {
    throw new LifeboatError('LB_REPO_CORRUPT', `${what} blob ${blob.id.slice(0, 16)}: cannot decompress`, {
      cause: error,
    });
  }
  if (plaintext.length !== blob.rawLength || keyedId(idKey, plaintext) !== blob.id) {
    throw new LifeboatError(
      'LB_REPO_CORRUPT',
      `${what} blob ${blob.id.slice(0, 16)}: content does not match its id`,
    );
  }
  return plaintext;
}

/** Reads the directory from a whole pack (used by check and index rebuilds). */
export function readPackDirectory(dataKey: Buffer, bytes: Buffer, what: string): PackedBlob[] {
  const packKey = openPackKey(dataKey, bytes.subarray(0, PACK_HEADER_BYTES), what);
  if (bytes.length < PACK_HEADER_BYTES + 8 || !bytes.subarray(bytes.length - 4).equals(MAGIC)) {
    throw new LifeboatError('LB_REPO_CORRUPT', `${what}: truncated pack (no trailer)`);
  }
  const length = bytes.readUInt32LE(bytes.length - 8);
  const directory = open(
    packKey,
    bytes.subarray(bytes.length - 8 - length, bytes.length - 8),
    `${what} (directory)`,
    DIRECTORY_AAD,
  );
  return JSON.parse(decompress(directory).toString('utf8')) as PackedBlob[];
}
