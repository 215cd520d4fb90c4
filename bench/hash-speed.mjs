// bench/hash-speed.mjs — the hashes a backup and a restore run over every byte, on this CPU: SHA-256 and
// HMAC-SHA256 (Node's OpenSSL) against BLAKE3 and keyed BLAKE3 (lifeboat's addon, native/blake3), in
// 1 MiB pieces as blobs are hashed. A script, not a test: it prints MB/s, best of three runs.
//
//   node bench/hash-speed.mjs            # after scripts/build-native.sh; BENCH_HASH_MIB=1024 by default
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';

const blake3 = createRequire(import.meta.url)('../native/blake3/lifeboat-blake3.node');
const pieces = Number(process.env.BENCH_HASH_MIB ?? 1024);
const piece = randomBytes(1024 * 1024);
const key = randomBytes(32);
const hashes = {
  'SHA-256': (data) => createHash('sha256').update(data).digest('hex'),
  'HMAC-SHA256': (data) => createHmac('sha256', key).update(data).digest('hex'),
  BLAKE3: (data) => blake3.hashHex(data),
  'keyed BLAKE3': (data) => blake3.keyedHashHex(key, data),
};
for (const [name, hash] of Object.entries(hashes)) {
  let best = Infinity;
  for (let run = 0; run < 3; run++) {
    const start = process.hrtime.bigint();
    for (let index = 0; index < pieces; index++) hash(piece);
    best = Math.min(best, Number(process.hrtime.bigint() - start) / 1e9);
  }
  console.log(`${name.padEnd(13)} ${((pieces * piece.length) / best / 1e6).toFixed(0).padStart(6)} MB/s`);
}
