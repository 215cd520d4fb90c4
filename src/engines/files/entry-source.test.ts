import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { SMALL_FILE, entrySource } from './entry-source.js';

const scratch = mkdtempSync(join(tmpdir(), 'lifeboat-entry-source-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** Reads a source to its end with targets of `step` bytes; every call must fill a prefix. */
async function drain(source: ReturnType<typeof entrySource>, step: number): Promise<Buffer> {
  const pieces: Buffer[] = [];
  for (;;) {
    const target = Buffer.alloc(step, 0xee);
    const count = await source.readInto(target);
    if (count === 0) return Buffer.concat(pieces);
    expect(count).toBeLessThanOrEqual(step);
    pieces.push(Buffer.from(target.subarray(0, count)));
  }
}

const padTo512 = (length: number) => Buffer.alloc((512 - (length % 512)) % 512);
const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

describe('a file entry read in place', () => {
  const header = Buffer.alloc(1024, 0x68);
  for (const size of [0, 1, 511, 512, 4000, SMALL_FILE, SMALL_FILE + 1, 3 * SMALL_FILE + 17]) {
    for (const step of [1, 100, 700, 64 * 1024, 4 * 1024 * 1024]) {
      if (step === 1 && size > 4000) continue; // byte by byte is slow for the large ones; 100 covers it
      it(`gives header, ${size} bytes and padding, ${step} bytes at a time`, async () => {
        const content = randomBytes(size);
        const path = join(scratch, `f-${size}-${step}`);
        writeFileSync(path, content);
        const source = entrySource(path, header, size);
        const out = await drain(source, step);
        expect(out.equals(Buffer.concat([header, content, padTo512(size)]))).toBe(true);
        expect(source.digest()).toBe(sha(content));
      });
    }
  }

  for (const [label, actual] of [
    ['small', 1000],
    ['large', 2 * SMALL_FILE],
  ] as const) {
    it(`cuts a ${label} file that grew since its header was made to the announced size`, async () => {
      const content = randomBytes(actual);
      const path = join(scratch, `grew-${label}`);
      writeFileSync(path, content);
      const announced = actual - 300;
      const source = entrySource(path, header, announced);
      const out = await drain(source, 64 * 1024);
      const kept = content.subarray(0, announced);
      expect(out.equals(Buffer.concat([header, kept, padTo512(announced)]))).toBe(true);
      expect(source.digest()).toBe(sha(kept));
    });

    it(`fills a ${label} file that shrank with zeros, and says so`, async () => {
      const content = randomBytes(actual);
      const path = join(scratch, `shrank-${label}`);
      writeFileSync(path, content);
      const announced = actual + 700 + 200 * 1024; // more than one read's worth of zeros
      const messages: string[] = [];
      const source = entrySource(path, header, announced, (message) => messages.push(message));
      const out = await drain(source, 64 * 1024);
      const expected = Buffer.concat([content, Buffer.alloc(announced - actual)]);
      expect(out.equals(Buffer.concat([header, expected, padTo512(announced)]))).toBe(true);
      expect(source.digest()).toBe(sha(expected));
      expect(messages).toEqual([
        `${path} shrank while being read; the missing ${announced - actual} bytes are zeros`,
      ]);
    });
  }

  it('fails when the file cannot be opened, and needs no file for an empty one', async () => {
    const missing = join(scratch, 'missing');
    await expect(drain(entrySource(missing, header, 10), 4096)).rejects.toThrow(/ENOENT/);
    const empty = entrySource(missing, header, 0);
    const out = await drain(empty, 4096);
    expect(out.equals(header)).toBe(true);
    expect(empty.digest()).toBe(sha(Buffer.alloc(0)));
  });
});
