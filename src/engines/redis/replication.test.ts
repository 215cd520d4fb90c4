// The payload of a replication transfer (SnapshotSource) over a scripted connection: exactly the bytes
// before the diskless end mark or the $length, however the socket reads and the repository's targets
// split them; a cut connection is an error, never a clean end.
import { randomBytes } from 'node:crypto';

import { describe, expect, it } from 'vitest';

import { isLifeboatError } from '../../errors.js';
import type { Endpoint } from './connection.js';
import { type ByteFeed, SnapshotSource } from './replication.js';

const endpoint = { label: '127.0.0.1:6379' } as Endpoint;

/** A connection that delivers `stream` in socket reads of at most `size` bytes, then closes. */
function scriptedFeed(stream: Buffer, size: number): ByteFeed & { destroyed: boolean } {
  let offset = 0;
  return {
    destroyed: false,
    read(target) {
      const count = stream.copy(target, 0, offset, Math.min(offset + size, stream.length));
      offset += count;
      return Promise.resolve(count);
    },
    destroy() {
      this.destroyed = true;
    },
  };
}

/**
 * Reads the whole payload with targets cycling through `targets` sizes (the end of a slab gives a
 * small one), overwriting each target after it was read, as the repository's memory is reused.
 */
async function drain(source: SnapshotSource, targets: number[]): Promise<Buffer> {
  const out: Buffer[] = [];
  const buffers = targets.map((size) => Buffer.alloc(size));
  for (let turn = 0; ; turn++) {
    const target = buffers[turn % buffers.length]!;
    const count = await source.readInto(target);
    if (count === 0) return Buffer.concat(out);
    // A plain check, not expect(): this loop turns tens of thousands of times.
    if (count > target.length) throw new Error(`read ${count} bytes into a target of ${target.length}`);
    out.push(Buffer.from(target.subarray(0, count)));
    target.fill(0x5a);
  }
}

describe('SnapshotSource (the RDB bytes of a replication transfer)', () => {
  const mark = Buffer.from(randomBytes(20).toString('hex'), 'latin1'); // 40 chars, as Redis sends

  it('gives exactly the bytes before the diskless end mark, wherever reads and targets split them', async () => {
    // The payload ends with most of the mark (a false start) to catch a search that gives up early.
    const payload = Buffer.concat([randomBytes(70_000), mark.subarray(0, 39), randomBytes(3)]);
    const stream = Buffer.concat([payload, mark, Buffer.from('ignored after the mark')]);
    for (const size of [7, 39, 40, 41, 80, 4096, 65536, 1 << 20]) {
      for (const [first, targets] of [
        [0, [1 << 20]],
        [13, [100_000, 3, 1, 5000]],
        [38, [64, 70_000]],
        [20_000, [4096, 41, 2]],
      ] as Array<[number, number[]]>) {
        // `first`: bytes that came with the handshake's last reply.
        const feed = scriptedFeed(stream.subarray(first), size);
        const source = new SnapshotSource(feed, endpoint, stream.subarray(0, first), { mark });
        const got = await drain(source, targets);
        const where = `reads of ${size}, ${first} bytes with the handshake, targets ${targets.join('/')}`;
        expect(got.equals(payload), where).toBe(true);
        expect(feed.destroyed, where).toBe(true);
        expect(await source.readInto(Buffer.alloc(10))).toBe(0);
      }
    }
  });

  it('ends without another read when the handshake brought the whole payload (a small RDB)', async () => {
    // The server sends nothing after the mark (or the $length bytes) until it closes the connection:
    // a read here would fail with "lost", or wait for the idle timeout.
    const payload = randomBytes(90);
    const withMark = Buffer.concat([payload, mark]);
    for (const targets of [[1 << 20], [7, 4096], [1]]) {
      const diskless = new SnapshotSource(scriptedFeed(Buffer.alloc(0), 1), endpoint, withMark, { mark });
      expect((await drain(diskless, targets)).equals(payload)).toBe(true);
      const disk = new SnapshotSource(scriptedFeed(Buffer.alloc(0), 1), endpoint, payload, {
        length: payload.length,
      });
      expect((await drain(disk, targets)).equals(payload)).toBe(true);
    }
  });

  it('gives exactly $length bytes of a disk-based transfer; a connection cut early is an error', async () => {
    const payload = randomBytes(50_000);
    const stream = Buffer.concat([payload, Buffer.from('+extra')]);
    for (const targets of [[1 << 20], [3, 4096, 1]]) {
      const source = new SnapshotSource(
        scriptedFeed(stream.subarray(100), 999),
        endpoint,
        stream.subarray(0, 100),
        {
          length: payload.length,
        },
      );
      expect((await drain(source, targets)).equals(payload)).toBe(true);
    }
    const cut = new SnapshotSource(
      scriptedFeed(payload.subarray(0, 30_000), 4096),
      endpoint,
      Buffer.alloc(0),
      {
        length: payload.length,
      },
    );
    const error = await drain(cut, [8192]).catch((caught: unknown) => caught);
    expect(isLifeboatError(error) && error.code).toBe('LB_ENGINE_UNAVAILABLE');
    expect(String(error)).toMatch(/lost after 30000 of 50000 bytes of the snapshot/);
  });

  it('fails when the connection closes before the end mark, never ending cleanly', async () => {
    const source = new SnapshotSource(scriptedFeed(randomBytes(10_000), 4096), endpoint, Buffer.alloc(0), {
      mark,
    });
    const error = await drain(source, [65536]).catch((caught: unknown) => caught);
    expect(isLifeboatError(error) && error.code).toBe('LB_ENGINE_UNAVAILABLE');
    expect(String(error)).toMatch(/was lost after \d+ bytes of the snapshot/);
  });
});
