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

interface Blake3Addon {
  keyedHashHex(key: Uint8Array, data: Uint8Array): string;
  hashHex(data: Uint8Array): string;
  Hasher: new () => Blake3Hasher;
  subtreeChainingValues(data: Uint8Array, offset: number): Buffer;
  chainingValue(data: Uint8Array, offset: number): Buffer;
  mergeChainingValues(left: Uint8Array, right: Uint8Array, root: boolean): Buffer;
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

function load(): Blake3Addon {
  if (addon) return addon;
  const path = blake3AddonPath();
  try {
    addon = createRequire(import.meta.url)(path) as Blake3Addon;
  } catch (error) {
    // Built for another platform or Node, or damaged: rebuilding it is the fix.
    throw new LifeboatError(
      'LB_INSTALL_INCOMPLETE',
      `lifeboat's BLAKE3 addon ${path} cannot be loaded (${(error as Error).message}): run scripts/build-native.sh`,
      { cause: error },
    );
  }
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

/**
 * The chaining values of the whole subtrees that tile data, which starts at byte `offset` of a longer
 * input (a chunk boundary) and ends before its last chunk: 40-byte records (length, little-endian
 * 64-bit; chaining value). What worker threads compute for Blake3Tree.updateHashed (they call the
 * addon directly).
 */
export function blake3SubtreeChainingValues(data: Uint8Array, offset: number): Buffer {
  return load().subtreeChainingValues(data, offset);
}

/** BLAKE3's chunk: the leaves of its tree. */
export const BLAKE3_CHUNK = 1024;

/** Where the last chunk of an input of `total` bytes starts (it may be short; never hashed in parts). */
function lastChunkStart(total: number): number {
  return total > 0 ? Math.floor((total - 1) / BLAKE3_CHUNK) * BLAKE3_CHUNK : 0;
}

/**
 * The part of bytes [start, start + length) of an input of `total` bytes that another thread may hash
 * into subtree chaining values (native subtreeChainingValues): its whole chunks before the last chunk.
 * Undefined when there is none.
 */
export function blake3TreeSpan(
  start: number,
  length: number,
  total: number,
): { from: number; to: number } | undefined {
  const from = Math.ceil(start / BLAKE3_CHUNK) * BLAKE3_CHUNK;
  const to = Math.min(Math.floor((start + length) / BLAKE3_CHUNK) * BLAKE3_CHUNK, lastChunkStart(total));
  return from < to ? { from, to } : undefined;
}

/**
 * The BLAKE3 of an input of known length fed in order, whose long parts may have been hashed already
 * (in worker threads, as chaining values of whole subtrees: blake3TreeSpan). The same digest as
 * createBlake3() over the same bytes; it lets a restore verify its stream hash without hashing every
 * byte on the main thread.
 *
 * Why by hand: the addon gives the tree's pieces (the `blake3` crate's hazmat module); joining them is
 * BLAKE3's own chaining-value stack. Every subtree pushed is aligned and whole, and the last chunk is
 * never pushed, so each merge below it is a non-root merge and only the final one is the root. A
 * wrong length gives a digest that does not match, never an exception.
 */
export class Blake3Tree {
  private readonly last: number;
  private position = 0;
  /** Whole subtrees left to right, sizes strictly decreasing. */
  private readonly stack: Array<{ cv: Uint8Array; size: number }> = [];
  /** The bytes of the chunk in progress (the last chunk, once there). */
  private tail: Buffer[] = [];
  private tailLength = 0;

  constructor(private readonly total: number) {
    this.last = lastChunkStart(total);
  }

  /** The next bytes of the input. */
  update(data: Uint8Array): void {
    const addon = load();
    let at = 0;
    while (at < data.length) {
      const inChunk = this.position % BLAKE3_CHUNK;
      if (inChunk !== 0 || this.position >= this.last) {
        // The chunk in progress, or the last chunk (kept whole until the digest).
        const take =
          this.position >= this.last
            ? Math.min(data.length - at, Math.max(0, this.total - this.position))
            : Math.min(data.length - at, BLAKE3_CHUNK - inChunk);
        if (take === 0) {
          this.position += data.length - at; // more than `total`: the digest will not match
          return;
        }
        this.tail.push(Buffer.from(data.buffer, data.byteOffset + at, take));
        this.tailLength += take;
        this.position += take;
        at += take;
        if (this.position % BLAKE3_CHUNK === 0 && this.position <= this.last) {
          const chunk = Buffer.concat(this.tail, this.tailLength);
          this.tail = [];
          this.tailLength = 0;
          this.push(addon.chainingValue(chunk, this.position - BLAKE3_CHUNK), BLAKE3_CHUNK);
        }
        continue;
      }
      // At a chunk boundary before the last chunk: the whole chunks up to it, as subtrees.
      const whole = Math.min(
        Math.floor((data.length - at) / BLAKE3_CHUNK) * BLAKE3_CHUNK,
        this.last - this.position,
      );
      if (whole > 0) {
        this.pushRecords(addon.subtreeChainingValues(data.subarray(at, at + whole), this.position));
        this.position += whole;
        at += whole;
        continue;
      }
      const take = data.length - at; // less than a chunk: it starts the next one
      this.tail.push(Buffer.from(data.buffer, data.byteOffset + at, take));
      this.tailLength += take;
      this.position += take;
      at += take;
    }
  }

  /**
   * The next bytes of the input, `data`, of which bytes [span.from, span.to) of the input (a
   * blake3TreeSpan of them) were hashed already into `records` (subtreeChainingValues).
   */
  updateHashed(data: Uint8Array, span: { from: number; to: number }, records: Uint8Array): void {
    const start = this.position;
    const from = span.from - start;
    const to = span.to - start;
    let covered = 0;
    for (let at = 0; at + 40 <= records.length; at += 40) {
      covered += Number(Buffer.from(records.buffer, records.byteOffset + at, 8).readBigUInt64LE(0));
    }
    if (from < 0 || to > data.length || covered !== to - from || records.length % 40 !== 0) {
      this.update(data); // not the part it claims to be: hash it here
      return;
    }
    this.update(data.subarray(0, from));
    if (this.position !== span.from || this.tailLength !== 0) {
      this.update(data.subarray(from)); // cannot happen for a span of blake3TreeSpan; hashed here if it does
      return;
    }
    this.pushRecords(records);
    this.position = span.to;
    this.update(data.subarray(to));
  }

  digestHex(): string {
    const addon = load();
    const tail = Buffer.concat(this.tail, this.tailLength);
    // Not the length it was made for: a value no BLAKE3 digest (64 hex digits) equals.
    if (this.position !== this.total) return `length ${this.position} instead of ${this.total}`;
    if (this.total <= BLAKE3_CHUNK) return addon.hashHex(tail);
    let cv: Uint8Array = addon.chainingValue(tail, this.last);
    for (let at = this.stack.length - 1; at >= 1; at--) {
      cv = addon.mergeChainingValues(this.stack[at]!.cv, cv, false);
    }
    return addon.mergeChainingValues(this.stack[0]!.cv, cv, true).toString('hex');
  }

  private pushRecords(records: Uint8Array): void {
    const view = Buffer.from(records.buffer, records.byteOffset, records.byteLength);
    for (let at = 0; at + 40 <= view.length; at += 40) {
      this.push(view.subarray(at + 8, at + 40), Number(view.readBigUInt64LE(at)));
    }
  }

  /** A whole subtree, merged with the ones before it of the same size (more input always follows). */
  private push(cv: Uint8Array, size: number): void {
    let top = this.stack.at(-1);
    while (top && top.size === size) {
      this.stack.pop();
      cv = load().mergeChainingValues(top.cv, cv, false);
      size *= 2;
      top = this.stack.at(-1);
    }
    this.stack.push({ cv, size });
  }
}
