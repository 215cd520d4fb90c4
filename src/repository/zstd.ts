// zstd through zstd-napi (libzstd built from the sources the package bundles). One compression context
// per level is reused: creating a context per blob costs more than compressing a small blob.
import { Compressor, decompress as zstdDecompress } from 'zstd-napi';

const compressors = new Map<number, Compressor>();

export function compress(data: Uint8Array, level: number): Buffer {
  let compressor = compressors.get(level);
  if (!compressor) {
    compressor = new Compressor();
    compressor.setParameters({ compressionLevel: level });
    compressors.set(level, compressor);
  }
  return compressor.compress(data);
}

export function decompress(data: Uint8Array): Buffer {
  return zstdDecompress(data);
}
