// BLAKE3 through lifeboat's native addon (native/blake3: the official `blake3` crate behind node-api,
// built from source by scripts/build-native.sh). Loaded on first use, so commands that hash nothing run
// without it.
//
// Terms:
//   keyed hash  BLAKE3 in keyed mode (a 32-byte key): a MAC, used for blob ids.
//   addon path  native/blake3/lifeboat-blake3.node, two directories above this module, which holds for
//               src/util/ (tests), dist/util/ (tsc) and dist/lifeboat/ (the bundle) alike.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

import { LifeboatError } from '../errors.js';

export interface Blake3Hasher {
  update(data: Uint8Array): void;
  /** The digest of everything updated so far. */
  digestHex(): string;
}

/** An incremental CRC-64/Jones (Redis's CRC-64; src/engines/redis/rdb/crc64.ts). */
export interface Crc64Hasher {
  update(data: Uint8Array): void;
  /** The CRC of everything updated so far: 8 bytes, little-endian. */
  bytes(): Buffer;
}

interface Blake3Addon {
  keyedHashHex(key: Uint8Array, data: Uint8Array): string;
  hashHex(data: Uint8Array): string;
  Hasher: new () => Blake3Hasher;
  Crc64: new () => Crc64Hasher;
  crc64Into(data: Uint8Array, out: Uint8Array): void;
  copyBytes(target: Uint8Array, offset: number, source: Uint8Array): number;
  gearScan(
    gear: Int32Array,
    data: Uint8Array,
    position: number,
    end: number,
    mask: number,
    state: Int32Array,
  ): number;
}

/** Where the addon is (worker threads require it by this path). */
export function blake3AddonPath(): string {
  const path = fileURLToPath(new URL('../../native/blake3/lifeboat-blake3.node', import.meta.url));
  if (!existsSync(path)) {
    throw new LifeboatError(
      'LB_INSTALL_INCOMPLETE',
      `lifeboat's BLAKE3 addon is not built (${path} is missing): run scripts/build-native.sh (needs Rust's cargo)`,
    );
  }
  return path;
}

let addon: Blake3Addon | undefined;
const EXPORTS: Array<keyof Blake3Addon> = [
  'keyedHashHex',
  'hashHex',
  'Hasher',
  'Crc64',
  'crc64Into',
  'copyBytes',
  'gearScan',
];

function load(): Blake3Addon {
  if (addon) return addon;
  const path = blake3AddonPath();
  let loaded: Blake3Addon;
  try {
    loaded = createRequire(import.meta.url)(path) as Blake3Addon;
  } catch (error) {
    // Built for another platform or Node, or damaged: rebuilding it is the fix.
    throw new LifeboatError(
      'LB_INSTALL_INCOMPLETE',
      `lifeboat's BLAKE3 addon ${path} cannot be loaded (${(error as Error).message}): run scripts/build-native.sh`,
      { cause: error },
    );
  }
  // Built from older sources (the code was updated, the addon not rebuilt): say so, not "not a function".
  const missing = EXPORTS.filter((name) => typeof loaded[name] !== 'function');
  if (missing.length > 0) {
    throw new LifeboatError(
      'LB_INSTALL_INCOMPLETE',
      `lifeboat's BLAKE3 addon ${path} was built from older sources (it has no ${missing.join(', ')}): run scripts/build-native.sh`,
    );
  }
  addon = loaded;
  return addon;
}

/** Keyed BLAKE3 of data (key: 32 bytes), hex. */
export function keyedBlake3Hex(key: Uint8Array, data: Uint8Array): string {
  return load().keyedHashHex(key, data);
}

/** BLAKE3 of data, hex. */
export function blake3Hex(data: Uint8Array): string {
  return load().hashHex(data);
}

/** An incremental BLAKE3. */
export function createBlake3(): Blake3Hasher {
  return new (load().Hasher)();
}

/** An incremental CRC-64/Jones (not BLAKE3: the addon carries it because it is a Redis backup's other
 * per-byte loop). */
export function createCrc64(): Crc64Hasher {
  return new (load().Crc64)();
}

/** CRC-64/Jones of data at once, written into out[0..8] (little-endian): no object per call. */
export function crc64Into(data: Uint8Array, out: Uint8Array): void {
  load().crc64Into(data, out);
}

/**
 * Copies source into target at offset (as many bytes as fit) and returns the count: a memmove, where
 * Buffer.copy and TypedArray.set copy to or from a SharedArrayBuffer with V8's relaxed-atomic loop
 * (2 GiB in 1 MiB copies: 0.49-0.52 CPU-s here, this 0.34-0.43; the backup session's slabs and the
 * restore arena are shared memory). Not BLAKE3: the addon is lifeboat's one native module.
 */
export function copyBytes(target: Uint8Array, offset: number, source: Uint8Array): number {
  return load().copyBytes(target, offset, source);
}

/**
 * The chunker's gear hash rolled over data[position, end) from the hash in state[0] (not BLAKE3: the
 * addon carries it because it is a backup's other per-byte loop; src/repository/chunker.ts): the
 * position after the first byte where (hash & mask) == 0, else -1 - end; state[0] is left at the hash
 * there. `mask` must be a mask of the word's top bits.
 */
export function gearScan(...args: Parameters<Blake3Addon['gearScan']>): number {
  return load().gearScan(...args);
}
