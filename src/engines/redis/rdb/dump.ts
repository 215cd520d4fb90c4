// DUMP/RESTORE payloads (Redis src/cluster.c createDumpPayload): the value exactly as an RDB file stores
// it, preceded by its type byte and followed by the RDB version (2 bytes, little-endian) and a CRC-64 of
// everything before it. An RDB record therefore becomes a RESTORE argument without being decoded.
import { crc64Into } from './crc64.js';

/** Bytes of the DUMP payload of a value. */
export const dumpPayloadLength = (value: Buffer): number => 1 + value.length + 2 + 8;

/** Writes the DUMP payload of a value into `out` at `at` (dumpPayloadLength(value) bytes). */
export function writeDumpPayload(
  out: Buffer,
  at: number,
  type: number,
  value: Buffer,
  rdbVersion: number,
): void {
  out[at] = type;
  value.copy(out, at + 1);
  writeTrailer(out, at, at + 1 + value.length, rdbVersion);
}

export function dumpPayload(type: number, value: Buffer, rdbVersion: number): Buffer {
  const payload = Buffer.allocUnsafe(dumpPayloadLength(value));
  writeDumpPayload(payload, 0, type, value, rdbVersion);
  return payload;
}

/** The payload of FUNCTION RESTORE for one library (the RDB's FUNCTION2 record: opcode + code). */
export function functionPayload(record: Buffer, rdbVersion: number): Buffer {
  const payload = Buffer.allocUnsafe(record.length + 10);
  record.copy(payload, 0);
  writeTrailer(payload, 0, record.length, rdbVersion);
  return payload;
}

/** The trailer after a payload's body [start, end): RDB version (2 bytes LE), then CRC-64 of all before. */
function writeTrailer(out: Buffer, start: number, end: number, rdbVersion: number): void {
  out.writeUInt16LE(rdbVersion, end);
  crc64Into(out.subarray(start, end + 2), out.subarray(end + 2, end + 10));
}
