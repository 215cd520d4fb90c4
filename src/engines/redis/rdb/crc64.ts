// CRC-64/Jones as Redis computes it (src/crc64.c: reflected polynomial 0xad93d23594c935a9, init 0, no
// final xor). It guards every RDB file (its last 8 bytes) and every DUMP/RESTORE payload. A backup checks
// the CRC of every byte it receives, on the main thread.
//
// The loop is the `crc-fast` crate's CRC-64/REDIS (carry-less multiplication, PCLMULQDQ, chosen at run
// time; a table where the CPU lacks it) in lifeboat's native addon (native/blake3): no maintained npm
// package computes this variant natively. It reads the caller's bytes in place at ~8 GB/s here; the
// WebAssembly slice-by-8 it replaces copied every byte into its own memory first and ran at ~1 GB/s
// (the two were ~4% of the machine's samples in a backup, the server's included).
import { createCrc64, crc64Into } from '../../../util/blake3.js';

export { crc64Into };

/** An incremental CRC-64/Jones. */
export class Crc64 {
  private readonly inner = createCrc64();

  update(data: Uint8Array): this {
    this.inner.update(data);
    return this;
  }

  /** The CRC as 8 little-endian bytes, the way Redis stores it. */
  bytes(): Buffer {
    return this.inner.bytes();
  }

  /** The CRC as a number in 16 hex digits. */
  hex(): string {
    return this.inner.bytes().reverse().toString('hex');
  }
}

export function crc64(data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(8);
  crc64Into(data, out);
  return out;
}
