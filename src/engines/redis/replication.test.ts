import { randomBytes } from 'node:crypto';

import { describe, expect, it } from 'vitest';

import { EndMarkScanner } from './replication.js';

/**
 * Feeds `stream` to one scanner: a first read of `first` bytes (which moves every later split point),
 * then reads of `size`. Returns the payload released and whether the mark was seen.
 */
function scan(mark: Buffer, stream: Buffer, size: number, first = 0): { payload: Buffer; done: boolean } {
  const scanner = new EndMarkScanner(mark);
  const out: Buffer[] = [];
  const reads = [stream.subarray(0, first)];
  for (let offset = first; offset < stream.length; offset += size)
    reads.push(stream.subarray(offset, offset + size));
  for (const read of reads) {
    const { data, done } = scanner.push(read);
    out.push(...data);
    if (done) return { payload: Buffer.concat(out), done: true };
  }
  return { payload: Buffer.concat(out), done: false };
}

describe('EndMarkScanner (diskless transfer end mark)', () => {
  const mark = Buffer.from(randomBytes(20).toString('hex'), 'latin1'); // 40 chars, as Redis sends

  it('releases exactly the payload before the mark, wherever the reads split it', () => {
    // The payload ends with most of the mark (a false start) to catch a scanner that gives up early.
    const payload = Buffer.concat([randomBytes(5000), mark.subarray(0, 39), randomBytes(3)]);
    const stream = Buffer.concat([payload, mark, Buffer.from('ignored after the mark')]);
    for (const size of [1, 2, 7, 39, 40, 41, 79, 80, 81, 1000, 4096, 65536]) {
      for (const shift of [0, 1, 13, 38]) {
        const { payload: got, done } = scan(mark, stream, size, shift);
        expect(done, `size ${size}, shift ${shift}`).toBe(true);
        expect(got.equals(payload), `size ${size}, shift ${shift}`).toBe(true);
      }
    }
  });

  it('holds back fewer bytes than the mark until it is complete, and passes the rest through as views', () => {
    const scanner = new EndMarkScanner(mark);
    const chunk = randomBytes(65536);
    const { data, done } = scanner.push(chunk);
    expect(done).toBe(false);
    const released = data.reduce((sum, piece) => sum + piece.length, 0);
    expect(released).toBe(chunk.length - 39);
    expect(data.at(-1)!.buffer).toBe(chunk.buffer); // not a copy
    expect(scan(mark, Buffer.concat([chunk, randomBytes(100)]), 4096).done).toBe(false);
  });
});
