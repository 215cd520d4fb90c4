// The numeric fields of a tar header and its checksum, shared by the readers of tar streams: the files
// engine's archive reader, the base backup's TarInspector, and the repository's TarCutter.

export const TAR_BLOCK = 512;

/**
 * A numeric header field: octal digits (leading spaces, trailing spaces or NULs), or GNU base-256
 * (big-endian, the first byte's high bit a marker). 0 for an empty field; undefined when it is not a
 * number or not a safe integer.
 */
export function tarNumber(block: Uint8Array, start: number, length: number): number | undefined {
  if (block[start]! & 0x80) {
    let value = block[start]! & 0x7f;
    for (let at = start + 1; at < start + length; at++) value = value * 256 + block[at]!;
    return Number.isSafeInteger(value) ? value : undefined;
  }
  let at = start;
  const end = start + length;
  while (at < end && block[at] === 0x20) at++;
  let value = 0;
  let digits = 0;
  for (; at < end; at++) {
    const byte = block[at]!;
    if (byte === 0 || byte === 0x20) break;
    if (byte < 0x30 || byte > 0x37) return undefined;
    value = value * 8 + (byte - 0x30);
    digits++;
  }
  for (; at < end; at++) if (block[at] !== 0 && block[at] !== 0x20) return undefined; // junk after
  return digits === 0 ? 0 : value;
}

/** Whether the header's checksum field matches its bytes, summed unsigned or (old writers) signed. */
export function tarChecksumMatches(block: Uint8Array): boolean {
  const stored = tarNumber(block, 148, 8);
  if (stored === undefined) return false;
  let unsigned = 0;
  let signed = 0;
  for (let at = 0; at < TAR_BLOCK; at++) {
    const byte = at >= 148 && at < 156 ? 0x20 : block[at]!;
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  return stored === unsigned || stored === signed;
}
