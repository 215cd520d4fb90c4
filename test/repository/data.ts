// Test data and helpers for repository tests: deterministic pseudo-random bytes, SQL-dump-like text,
// and small stream helpers.
import { createCipheriv, createHash } from 'node:crypto';
import type { Readable } from 'node:stream';

/** Deterministic pseudo-random bytes. */
export function randomData(size: number, seed: number): Buffer {
  return createCipheriv('aes-256-ctr', Buffer.alloc(32, seed), Buffer.alloc(16)).update(Buffer.alloc(size));
}

/** SQL-dump-like text: repetitive rows with varying numbers, and a binary stretch. */
export function dumpLike(size: number, seed: number): Buffer {
  const rows: string[] = ['COPY public.orders (id, customer, amount, created, note) FROM stdin;\n'];
  let length = rows[0]!.length;
  for (let row = 0; length < size; row++) {
    const line = `${row}\tcustomer-${(row * 7919 + seed) % 5003}@example.org\t${((row * 104_729) % 1_000_000) / 100}\t2024-${String((row % 12) + 1).padStart(2, '0')}-${String((row % 28) + 1).padStart(2, '0')} 10:${String(row % 60).padStart(2, '0')}:00+00\tnote ${row % 211} ${seed}\n`;
    rows.push(line);
    length += line.length;
  }
  const text = Buffer.from(rows.join('')).subarray(0, size);
  const binary = randomData(Math.floor(size / 10), seed + 1);
  binary.copy(text, Math.floor(size / 2), 0, Math.min(binary.length, size - Math.floor(size / 2)));
  return text;
}

/** Every chunk of a stream, joined. */
export async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');
