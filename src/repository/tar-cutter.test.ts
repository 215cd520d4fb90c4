import { createCipheriv } from 'node:crypto';

import { describe, expect, it } from 'vitest';

import { Chunker } from './chunker.js';
import { TarCutter } from './tar-cutter.js';

const PARAMETERS = { minSize: 2048, averageSize: 8192, maxSize: 65536 };
const key = Buffer.alloc(32, 7); // fixed: group boundaries are the same in every run

function pseudoRandom(size: number, seed: number): Buffer {
  return createCipheriv('aes-256-ctr', Buffer.alloc(32, seed), Buffer.alloc(16)).update(Buffer.alloc(size));
}

/** A ustar header for a regular file (checksum included). */
function header(name: string, size: number): Buffer {
  const block = Buffer.alloc(512);
  block.write(name, 0, 100, 'utf8');
  block.write('0000644\0', 100);
  block.write('0000000\0', 108);
  block.write('0000000\0', 116);
  block.write(size.toString(8).padStart(11, '0') + '\0', 124);
  block.write('00000000000\0', 136);
  block.write('        ', 148);
  block.write('0', 156);
  block.write('ustar\0' + '00', 257);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  return block;
}

interface Member {
  name: string;
  data: Buffer;
}

/** A tar stream of the members, with the two end-of-archive blocks. */
function tar(members: Member[]): { bytes: Buffer; dataStarts: number[] } {
  const parts: Buffer[] = [];
  const dataStarts: number[] = [];
  let offset = 0;
  for (const member of members) {
    parts.push(header(member.name, member.data.length));
    offset += 512;
    dataStarts.push(offset);
    const padded = Buffer.alloc(Math.ceil(member.data.length / 512) * 512);
    member.data.copy(padded);
    parts.push(padded);
    offset += padded.length;
  }
  parts.push(Buffer.alloc(1024));
  return { bytes: Buffer.concat(parts), dataStarts };
}

/** Chunks (as buffers) of `bytes` fed in pieces of `piece`. */
function chunks(bytes: Buffer, piece: number, parameters = PARAMETERS): Buffer[] {
  const cutter = new TarCutter(key, parameters);
  const out: Buffer[] = [];
  let last = 0;
  for (let offset = 0; offset < bytes.length; offset += piece) {
    const data = bytes.subarray(offset, offset + piece);
    for (const cut of cutter.cuts(data)) {
      out.push(bytes.subarray(last, offset + cut));
      last = offset + cut;
    }
  }
  if (cutter.end()) out.push(bytes.subarray(last));
  return out;
}

const ends = (pieces: Buffer[]): number[] => {
  let at = 0;
  return pieces.map((piece) => (at += piece.length));
};

function members(count: number, seed: number): Member[] {
  return Array.from({ length: count }, (_, index) => ({
    name: `base/16384/${seed}${index}`,
    data: pseudoRandom(index % 20 === 0 ? 3 * 8192 + 700 : 100 + index * 37, seed * 1000 + index),
  }));
}

describe('TarCutter', () => {
  const list = members(120, 1);
  const { bytes, dataStarts } = tar(list);

  it('reassembles exactly, keeps every chunk within max size, and cuts the same however the input is split', () => {
    const reference = ends(chunks(bytes, bytes.length));
    for (const piece of [1, 7, 511, 512, 513, 4096, 65536]) {
      const pieces = chunks(bytes, piece);
      expect(Buffer.concat(pieces).equals(bytes)).toBe(true);
      expect(ends(pieces), `pieces of ${piece}`).toEqual(reference);
      for (const chunk of pieces) {
        expect(chunk.length).toBeGreaterThan(0);
        expect(chunk.length).toBeLessThanOrEqual(PARAMETERS.maxSize);
      }
    }
  });

  it("starts a large member's data on a chunk and cuts it every averageSize bytes", () => {
    const cuts = new Set(ends(chunks(bytes, 1000)));
    list.forEach((member, index) => {
      if (member.data.length < PARAMETERS.averageSize) return;
      const start = dataStarts[index]!;
      expect(cuts.has(start), member.name).toBe(true);
      for (
        let at = start + PARAMETERS.averageSize;
        at < start + member.data.length;
        at += PARAMETERS.averageSize
      )
        expect(cuts.has(at), `${member.name} at ${at - start}`).toBe(true);
      expect(cuts.has(start + Math.ceil(member.data.length / 512) * 512), `${member.name} end`).toBe(true);
    });
  });

  it('groups small members, and a member added early changes only the chunks around it', () => {
    const pieces = chunks(bytes, 4096);
    expect(pieces.length).toBeLessThan(list.length); // small members share chunks
    const inserted = tar([
      ...list.slice(0, 3),
      { name: 'base/16384/new', data: pseudoRandom(3000, 9) },
      ...list.slice(3),
    ]);
    const before = new Set(pieces.map((piece) => piece.toString('base64')));
    const after = chunks(inserted.bytes, 4096).map((piece) => piece.toString('base64'));
    const changed = after.filter((piece) => !before.has(piece)).length;
    expect(changed).toBeGreaterThan(0);
    expect(changed).toBeLessThanOrEqual(3);
  });

  it('changes one chunk when one page of a large member changes in place', () => {
    const big = pseudoRandom(10 * PARAMETERS.averageSize, 5);
    const first = tar([...members(10, 2), { name: 'base/16384/big', data: big }, ...members(10, 3)]);
    const changed = Buffer.from(big);
    changed.fill(7, 4 * PARAMETERS.averageSize + 100, 4 * PARAMETERS.averageSize + 200);
    const second = tar([...members(10, 2), { name: 'base/16384/big', data: changed }, ...members(10, 3)]);
    const before = new Set(chunks(first.bytes, 9999).map((piece) => piece.toString('base64')));
    const fresh = chunks(second.bytes, 9999).filter((piece) => !before.has(piece.toString('base64')));
    expect(fresh.map((piece) => piece.length)).toEqual([PARAMETERS.averageSize]);
  });

  it('falls back to content-defined chunking after the end blocks or a header that does not check out', () => {
    const junk = pseudoRandom(300_000, 4);
    // Not a tar at all: the first "header" fails its checksum; FastCDC cuts the rest.
    const pieces = chunks(junk, 8192);
    expect(Buffer.concat(pieces).equals(junk)).toBe(true);
    const cdc = new Chunker(key, PARAMETERS);
    const reference = [...cdc.cuts(junk.subarray(512))].map((cut) => 512 + cut);
    if (cdc.end()) reference.push(junk.length);
    expect(ends(pieces)).toEqual([512, ...reference]);
    // Data after the end-of-archive blocks still comes out whole, within max size.
    const trailing = Buffer.concat([bytes, junk]);
    const all = chunks(trailing, 65536);
    expect(Buffer.concat(all).equals(trailing)).toBe(true);
    for (const chunk of all) expect(chunk.length).toBeLessThanOrEqual(PARAMETERS.maxSize);
  });

  it('keeps every chunk within max size when max is close to the average (full groups)', () => {
    const tight = { minSize: 2048, averageSize: 8192, maxSize: 12_288 };
    // Sizes spread over everything below the large size, so groups end at every fill level.
    const sizes = pseudoRandom(2 * 1000, 8);
    const many = Array.from({ length: 1000 }, (_, index) => ({
      name: `base/1/${index}`,
      data: pseudoRandom(index % 50 === 0 ? 12_289 : sizes.readUInt16LE(2 * index) % 8192, index),
    }));
    const { bytes: stream } = tar(many);
    for (const piece of [1, 500, 65536]) {
      const pieces = chunks(stream, piece, tight);
      expect(Buffer.concat(pieces).equals(stream)).toBe(true);
      for (const chunk of pieces) expect(chunk.length).toBeLessThanOrEqual(tight.maxSize);
    }
  });

  it('cuts by content alone when max size is under four tar blocks', () => {
    const tiny = { minSize: 100, averageSize: 300, maxSize: 1000 };
    for (const chunk of chunks(bytes, 4096, tiny)) expect(chunk.length).toBeLessThanOrEqual(tiny.maxSize);
  });

  it('ends groups on names that share a suffix about one time in 16, not all or never', () => {
    const suffixed = Array.from({ length: 800 }, (_, index) => ({
      name: `base/16384/${16_384 + index}_fsm`,
      data: pseudoRandom(100, index),
    }));
    const count = chunks(tar(suffixed).bytes, 65536).length;
    expect(count).toBeGreaterThan(800 / 16 / 3);
    expect(count).toBeLessThan((800 / 16) * 3);
  });

  it('handles members without data, a member of exactly averageSize, and a stream cut short', () => {
    const odd = [
      { name: 'base/', data: Buffer.alloc(0) },
      { name: 'base/exact', data: pseudoRandom(PARAMETERS.averageSize, 6) },
      { name: 'base/empty', data: Buffer.alloc(0) },
      { name: 'base/small', data: pseudoRandom(300, 7) },
    ];
    const { bytes: stream, dataStarts } = tar(odd);
    const cuts = ends(chunks(stream, 333));
    expect(cuts).toContain(dataStarts[1]); // the exact-size member is large: its data starts a chunk...
    expect(cuts).toContain(dataStarts[1]! + PARAMETERS.averageSize); // ...and is one chunk
    for (const cut of [100, 512 + 700, dataStarts[1]! + 5000]) {
      const short = stream.subarray(0, cut);
      expect(Buffer.concat(chunks(short, 97)).equals(short)).toBe(true);
    }
  });

  it('handles an empty stream and starts afresh after end()', () => {
    expect(chunks(Buffer.alloc(0), 10)).toEqual([]);
    const cutter = new TarCutter(key, PARAMETERS);
    expect([...cutter.cuts(bytes.subarray(0, 700))]).toEqual([512]); // the first member is large
    expect(cutter.end()).toBe(true);
    const again = [...cutter.cuts(bytes)];
    expect(again).toEqual(ends(chunks(bytes, bytes.length)).filter((cut) => cut < bytes.length));
  });
});
