// LZF decompression (liblzf's lzf_d.c format), which Redis uses for strings in RDB files when
// rdbcompression is on. Written here because the npm LZF packages are unmaintained native modules; the
// format is a handful of lines.
export function lzfDecompress(input: Uint8Array, expectedLength: number): Buffer {
  const out = Buffer.allocUnsafe(expectedLength);
  let ip = 0;
  let op = 0;
  while (ip < input.length) {
    const ctrl = input[ip++]!;
    if (ctrl < 32) {
      const run = ctrl + 1;
      if (op + run > expectedLength || ip + run > input.length) throw new Error('LZF data overruns');
      for (let k = 0; k < run; k++) out[op++] = input[ip++]!;
    } else {
      let length = ctrl >> 5;
      if (length === 7) {
        if (ip >= input.length) throw new Error('LZF data truncated');
        length += input[ip++]!;
      }
      if (ip >= input.length) throw new Error('LZF data truncated');
      let ref = op - ((ctrl & 0x1f) << 8) - 1 - input[ip++]!;
      length += 2;
      if (ref < 0) throw new Error('LZF back reference before the start');
      if (op + length > expectedLength) throw new Error('LZF data overruns');
      for (let k = 0; k < length; k++) out[op++] = out[ref++]!;
    }
  }
  if (op !== expectedLength) throw new Error(`LZF data gives ${op} bytes, expected ${expectedLength}`);
  return out;
}
