// Packs: many encrypted blobs in one storage object, sized for S3 (about 16 MiB).
//
//   header   "LBPK" | u8 version | u8 wrap | 2 zero bytes | u32le wrapped key length | the pack key wrapped
//            for readers (wrap 1: seal(dataKey, …), wrap 2: age; aad "lifeboat pack key", see keys.ts)
//   blobs    seal(packKey, payload, aad = the blob id's 32 bytes), one after another
//   trailer  seal(packKey, zstd(JSON directory), aad "lifeboat pack directory") | u32le its length | "LBPK"
//
// Terms:
//   payload    the blob's bytes, zstd-compressed when that makes them smaller (compression = 1), else
//              raw (compression = 0).
//   directory  the list of the pack's blobs with their offsets; it repeats what the index says, so an
//              index can be rebuilt from packs and check can compare the two.
//   pack id    SHA-256 of the whole pack object; it is stored as data/<first two hex digits>/<id>.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';

import { LifeboatError } from '../errors.js';
import type { StorageBackend } from '../storage/index.js';
import { type IdKey, blobId as keyedId, newKey, open, seal } from './crypto.js';
import { PACK_VERSION, checkVersion } from './format.js';
import type { KeyRing } from './keys.js';
import { compress, decompress } from './zstd.js';

const MAGIC = Buffer.from('LBPK');
const KEY_AAD = Buffer.from('lifeboat pack key');
const DIRECTORY_AAD = Buffer.from('lifeboat pack directory');
/** Bytes before the wrapped key: magic, version, wrap, padding, length. */
export const PACK_PREFIX_BYTES = 12;

export interface PackedBlob {
  /** Blob id (hex keyed hash of the plaintext, crypto.ts blobId()). */
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
  private readonly parts: Buffer[] = [];
  private readonly blobs: PackedBlob[] = [];
  private offset: number;

  private constructor(
    private readonly packKey: Buffer,
    wrapped: { kind: number; bytes: Buffer },
    private readonly compressionLevel: number,
  ) {
    const header = Buffer.alloc(PACK_PREFIX_BYTES);
    MAGIC.copy(header, 0);
    header.writeUInt8(PACK_VERSION, 4);
    header.writeUInt8(wrapped.kind, 5);
    header.writeUInt32LE(wrapped.bytes.length, 8);
    this.parts.push(header, wrapped.bytes);
    this.offset = header.length + wrapped.bytes.length;
  }

  /** A new, empty pack whose key is wrapped for the ring's readers. */
  static async create(ring: KeyRing, compressionLevel: number): Promise<PackWriter> {
    const packKey = newKey();
    return new PackWriter(packKey, await ring.wrapForReaders(packKey, KEY_AAD), compressionLevel);
  }

  /** Bytes written so far. */
  get size(): number {
    return this.offset;
  }

  get count(): number {
    return this.blobs.length;
  }

  /** The pack's content key (for sealing blobs elsewhere, see workers.ts). */
  get key(): Buffer {
    return this.packKey;
  }

  /** Appends a blob sealed elsewhere under this pack's key. */
  appendSealed(id: string, sealed: Buffer, rawLength: number, compression: 0 | 1): PackedBlob {
    const blob: PackedBlob = { id, offset: this.offset, length: sealed.length, rawLength, compression };
    this.parts.push(sealed);
    this.blobs.push(blob);
    this.offset += sealed.length;
    return blob;
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

  /**
   * The finished pack: its id, its bytes as the list of parts (not joined: a 16 MiB copy per pack saved),
   * a reopenable body for storage.write, and its directory.
   */
  finish(): { id: string; size: number; body: { open: () => Readable; size: number }; blobs: PackedBlob[] } {
    const directory = seal(this.packKey, compress(Buffer.from(JSON.stringify(this.blobs)), 3), DIRECTORY_AAD);
    const tail = Buffer.alloc(8);
    tail.writeUInt32LE(directory.length, 0);
    MAGIC.copy(tail, 4);
    const parts = [...this.parts, directory, tail];
    const hash = createHash('sha256');
    let size = 0;
    for (const part of parts) {
      hash.update(part);
      size += part.length;
    }
    return {
      id: hash.digest('hex'),
      size,
      body: { open: () => Readable.from(parts), size },
      blobs: this.blobs,
    };
  }
}

/** Opens the pack key from the start of a pack (at least its header). */
export async function openPackKey(ring: KeyRing, start: Buffer, what: string): Promise<Buffer> {
  if (start.length < PACK_PREFIX_BYTES || !start.subarray(0, 4).equals(MAGIC)) {
    throw new LifeboatError('LB_REPO_CORRUPT', `${what}: not a pack (bad magic)`);
  }
  checkVersion(start.readUInt8(4), PACK_VERSION, what);
  const length = start.readUInt32LE(8);
  if (start.length < PACK_PREFIX_BYTES + length)
    throw new LifeboatError('LB_REPO_CORRUPT', `${what}: truncated pack header`);
  return ring.unwrap(
    start.readUInt8(5),
    start.subarray(PACK_PREFIX_BYTES, PACK_PREFIX_BYTES + length),
    KEY_AAD,
    `${what} (pack key)`,
    [1, 2],
  );
}

/** Reads a pack's header from storage (two small ranged reads) and opens its key. */
export async function readPackKey(storage: StorageBackend, ring: KeyRing, name: string): Promise<Buffer> {
  const prefix = await storage.read(name, { offset: 0, length: PACK_PREFIX_BYTES });
  if (!prefix.subarray(0, 4).equals(MAGIC))
    throw new LifeboatError('LB_REPO_CORRUPT', `${name}: not a pack (bad magic)`);
  const wrapped = await storage.read(name, { offset: PACK_PREFIX_BYTES, length: prefix.readUInt32LE(8) });
  return openPackKey(ring, Buffer.concat([prefix, wrapped]), name);
}

/** Decrypts, decompresses and verifies one blob read from a pack. */
export function openBlob(
  packKey: Buffer,
  ids: IdKey,
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
  if (plaintext.length !== blob.rawLength || keyedId(ids, plaintext) !== blob.id) {
    throw new LifeboatError(
      'LB_REPO_CORRUPT',
      `${what} blob ${blob.id.slice(0, 16)}: content does not match its id`,
    );
  }
  return plaintext;
}

/** Reads the directory from a whole pack (used by check and index rebuilds). */
export function readPackDirectory(packKey: Buffer, bytes: Buffer, what: string): PackedBlob[] {
  if (bytes.length < PACK_PREFIX_BYTES + 8 || !bytes.subarray(bytes.length - 4).equals(MAGIC)) {
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
