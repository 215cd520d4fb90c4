// A position in a buffer of RDB bytes, with the RDB primitives: lengths, strings (integer-encoded and
// LZF-compressed), doubles, millisecond times. Reading past the end throws NeedMore, which the streaming
// parser (parser.ts) catches to wait for more bytes; in a complete buffer it means the data is truncated.
import { lzfDecompress } from './lzf.js';

/** Thrown when the buffer ends before a read; `need` is the buffer length that would have sufficed. */
export class NeedMore extends Error {
  constructor(readonly need: number) {
    super('RDB data ends early');
  }
}

/** The RDB data is not valid (unknown type, bad encoding, checksum mismatch). */
export class RdbFormatError extends Error {}

const ENC_INT8 = 0;
const ENC_INT16 = 1;
const ENC_INT32 = 2;
const ENC_LZF = 3;

export class Cursor {
  /** Set by lengthOrEncoding(): the last length read was a special string encoding, not a length. */
  encoded = false;

  constructor(
    public buf: Buffer,
    public pos = 0,
  ) {}

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  ensure(n: number): void {
    if (this.pos + n > this.buf.length) throw new NeedMore(this.pos + n);
  }

  u8(): number {
    if (this.pos >= this.buf.length) throw new NeedMore(this.pos + 1);
    return this.buf[this.pos++]!;
  }

  bytes(n: number): Buffer {
    this.ensure(n);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  skip(n: number): void {
    this.ensure(n);
    this.pos += n;
  }

  /** A length, or (with `encoded` set) the number of a special string encoding. */
  lengthOrEncoding(): number {
    const first = this.u8();
    const kind = first >> 6;
    this.encoded = false;
    if (kind === 0) return first & 0x3f;
    if (kind === 1) return ((first & 0x3f) << 8) | this.u8();
    if (kind === 3) {
      this.encoded = true;
      return first & 0x3f;
    }
    if (first === 0x80) {
      this.ensure(4);
      const value = this.buf.readUInt32BE(this.pos);
      this.pos += 4;
      return value;
    }
    if (first === 0x81) {
      this.ensure(8);
      const value = this.buf.readBigUInt64BE(this.pos);
      this.pos += 8;
      if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new RdbFormatError(`length ${value} is too large`);
      return Number(value);
    }
    throw new RdbFormatError(`invalid length byte 0x${first.toString(16)} at ${this.pos - 1}`);
  }

  /** A length that may use all 64 bits (stream ids, counters stored as UINT64_MAX for "unknown"). */
  bigLength(): bigint {
    const first = this.buf[this.pos];
    if (first === 0x81) {
      this.pos += 1;
      this.ensure(8);
      const value = this.buf.readBigUInt64BE(this.pos);
      this.pos += 8;
      return value;
    }
    return BigInt(this.length());
  }

  length(): number {
    const value = this.lengthOrEncoding();
    if (this.encoded)
      throw new RdbFormatError(`expected a length at ${this.pos - 1}, found a string encoding`);
    return value;
  }

  /** A length that must fit in a buffer we will allocate. */
  count(): number {
    const value = this.length();
    // No RDB collection can have more elements than there are bytes left in a well-formed file; a
    // corrupt length must not make us allocate or loop for billions of items.
    if (value > 0x7fffffff) throw new RdbFormatError(`implausible element count ${value}`);
    return value;
  }

  /** A string, decoded (integers as their decimal text, LZF data decompressed). */
  string(): Buffer {
    const length = this.lengthOrEncoding();
    if (!this.encoded) return this.bytes(length);
    switch (length) {
      case ENC_INT8: {
        this.ensure(1);
        return Buffer.from(String(this.buf.readInt8(this.pos++)));
      }
      case ENC_INT16: {
        this.ensure(2);
        const value = this.buf.readInt16LE(this.pos);
        this.pos += 2;
        return Buffer.from(String(value));
      }
      case ENC_INT32: {
        this.ensure(4);
        const value = this.buf.readInt32LE(this.pos);
        this.pos += 4;
        return Buffer.from(String(value));
      }
      case ENC_LZF: {
        const compressed = this.length();
        const plain = this.length();
        const data = this.bytes(compressed);
        try {
          return lzfDecompress(data, plain);
        } catch (error) {
          throw new RdbFormatError(`bad LZF string: ${(error as Error).message}`);
        }
      }
      default:
        throw new RdbFormatError(`unknown string encoding ${length}`);
    }
  }

  skipString(): void {
    const length = this.lengthOrEncoding();
    if (!this.encoded) return this.skip(length);
    switch (length) {
      case ENC_INT8:
        return this.skip(1);
      case ENC_INT16:
        return this.skip(2);
      case ENC_INT32:
        return this.skip(4);
      case ENC_LZF: {
        const compressed = this.length();
        this.length();
        return this.skip(compressed);
      }
      default:
        throw new RdbFormatError(`unknown string encoding ${length}`);
    }
  }

  /** A binary double (little-endian IEEE 754). */
  double(): number {
    this.ensure(8);
    const value = this.buf.readDoubleLE(this.pos);
    this.pos += 8;
    return value;
  }

  /** A millisecond time (8 bytes, little-endian). */
  millis(): number {
    this.ensure(8);
    const value = this.buf.readBigInt64LE(this.pos);
    this.pos += 8;
    return Number(value);
  }
}
