import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';

import { describe, expect, it } from 'vitest';

import { counted } from './counted.js';

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('counted', () => {
  it('loses nothing when the consumer attaches late, and counts every byte', async () => {
    const parts = [Buffer.from('PGDMP'), Buffer.alloc(70_000, 7), Buffer.from('end')];
    let bytes = 0;
    const stream = counted(Readable.from(parts), (n) => (bytes += n));
    await sleep(30); // as an engine awaiting mkdtemp before it reads
    const body = await collect(stream);
    expect(body.equals(Buffer.concat(parts))).toBe(true);
    expect(bytes).toBe(body.length);
  });

  it('passes a read error on to the consumer', async () => {
    const source = new Readable({
      read() {
        this.destroy(new Error('pack missing'));
      },
    });
    await expect(collect(counted(source, () => {}))).rejects.toThrow('pack missing');
  });

  it('destroys the source when the consumer gives up', async () => {
    const source = new Readable({ read() {} });
    const stream = counted(source, () => {});
    stream.destroy();
    await sleep(10);
    expect(source.destroyed).toBe(true);
  });
});
