// CRC-64/Jones as Redis computes it (src/crc64.c: reflected polynomial 0xad93d23594c935a9, init 0, no
// final xor). It guards every RDB file (its last 8 bytes) and every DUMP/RESTORE payload. Written here
// because no maintained npm package computes this variant; the 64-bit state is kept as two 32-bit
// halves with a slice-by-8 table so no BigInt is touched per byte.

const POLY_HI = 0x95ac9329 | 0; // 0xad93d23594c935a9 bit-reversed = 0x95ac9329ac4bc9b5
const POLY_LO = 0xac4bc9b5 | 0;

const TABLES = 8;
// Signed 32-bit words: XORs of int32 stay int32, which V8 keeps in machine registers; unsigned values
// (`>>> 0`) above 2^31 fall back to doubles and the loop runs at less than half the speed.
const LO = new Int32Array(256 * TABLES);
const HI = new Int32Array(256 * TABLES);

for (let n = 0; n < 256; n++) {
  let lo = n;
  let hi = 0;
  for (let k = 0; k < 8; k++) {
    const carry = lo & 1;
    lo = (lo >>> 1) | ((hi & 1) << 31);
    hi = hi >>> 1;
    if (carry) {
      lo ^= POLY_LO;
      hi ^= POLY_HI;
    }
  }
  LO[n] = lo;
  HI[n] = hi;
}
for (let t = 1; t < TABLES; t++) {
  for (let n = 0; n < 256; n++) {
    const plo = LO[(t - 1) * 256 + n]!;
    const phi = HI[(t - 1) * 256 + n]!;
    const index = plo & 0xff;
    LO[t * 256 + n] = LO[index]! ^ ((plo >>> 8) | (phi << 24));
    HI[t * 256 + n] = HI[index]! ^ (phi >>> 8);
  }
}

/** An incremental CRC-64/Jones. */
export class Crc64 {
  private lo = 0;
  private hi = 0;

  update(data: Uint8Array): this {
    let lo = this.lo;
    let hi = this.hi;
    let i = 0;
    const end8 = data.length - (data.length % 8);
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    while (i < end8) {
      const a = lo ^ view.getInt32(i, true);
      const b = hi ^ view.getInt32(i + 4, true);
      lo =
        LO[7 * 256 + (a & 0xff)]! ^
        LO[6 * 256 + ((a >>> 8) & 0xff)]! ^
        LO[5 * 256 + ((a >>> 16) & 0xff)]! ^
        LO[4 * 256 + (a >>> 24)]! ^
        LO[3 * 256 + (b & 0xff)]! ^
        LO[2 * 256 + ((b >>> 8) & 0xff)]! ^
        LO[256 + ((b >>> 16) & 0xff)]! ^
        LO[b >>> 24]!;
      hi =
        HI[7 * 256 + (a & 0xff)]! ^
        HI[6 * 256 + ((a >>> 8) & 0xff)]! ^
        HI[5 * 256 + ((a >>> 16) & 0xff)]! ^
        HI[4 * 256 + (a >>> 24)]! ^
        HI[3 * 256 + (b & 0xff)]! ^
        HI[2 * 256 + ((b >>> 8) & 0xff)]! ^
        HI[256 + ((b >>> 16) & 0xff)]! ^
        HI[b >>> 24]!;
      i += 8;
    }
    for (; i < data.length; i++) {
      const index = (lo ^ data[i]!) & 0xff;
      lo = LO[index]! ^ ((lo >>> 8) | (hi << 24));
      hi = HI[index]! ^ (hi >>> 8);
    }
    this.lo = lo;
    this.hi = hi;
    return this;
  }

  /** The CRC as 8 little-endian bytes, the way Redis stores it. */
  bytes(): Buffer {
    const out = Buffer.alloc(8);
    out.writeUInt32LE(this.lo >>> 0, 0);
    out.writeUInt32LE(this.hi >>> 0, 4);
    return out;
  }

  hex(): string {
    return (this.hi >>> 0).toString(16).padStart(8, '0') + (this.lo >>> 0).toString(16).padStart(8, '0');
  }
}

export function crc64(data: Uint8Array): Buffer {
  return new Crc64().update(data).bytes();
}
