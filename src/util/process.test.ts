import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import net from 'node:net';

import { describe, expect, it } from 'vitest';

import { receivedToken, shellQuote, toolOutputSource, type ToolExit } from './process.js';

describe('shellQuote', () => {
  it('gives sh the exact value back, quotes and spaces included', () => {
    for (const value of ['plain', 'with space', "it's", "'", '$HOME `x` "y" \\z', '']) {
      expect(execFileSync('sh', ['-c', `printf %s ${shellQuote(value)}`]).toString()).toBe(value);
    }
  });
});

describe('toolOutputSource', () => {
  const describeExit = (exit: ToolExit) =>
    new Error(`tool failed: code ${exit.code} signal ${exit.signal}: ${exit.stderr}`);
  /** Reads a source to its end through one reused buffer, as a backup session does. */
  const drain = async (source: Awaited<ReturnType<typeof toolOutputSource>>) => {
    const memory = Buffer.alloc(1 << 20);
    const hash = createHash('sha256');
    let size = 0;
    for (let count = await source.readInto(memory); count > 0; count = await source.readInto(memory)) {
      hash.update(memory.subarray(0, count));
      size += count;
    }
    return { size, sha256: hash.digest('hex') };
  };
  // 48 MiB of a known pattern, written by a tool (an inline Node script) to its stdout.
  const writer = (failAfter?: number) => [
    '-e',
    `const block = Buffer.alloc(1 << 20); for (let i = 0; i < block.length; i++) block[i] = (i * 7) & 255;
     let left = 48;
     const next = () => { if (left-- === 0) process.exit(0); if (${failAfter ?? -1} === 48 - left - 1) { process.stderr.write('boom\\n'); process.exit(3); }
       process.stdout.write(block, next); };
     next();`,
  ];
  const expected = () => {
    const block = Buffer.alloc(1 << 20);
    for (let i = 0; i < block.length; i++) block[i] = (i * 7) & 255;
    const hash = createHash('sha256');
    for (let i = 0; i < 48; i++) hash.update(block);
    return { size: 48 << 20, sha256: hash.digest('hex') };
  };

  it("gives exactly the tool's stdout, then the end once it exited 0", async () => {
    const source = await toolOutputSource(process.execPath, writer(), { describe: describeExit });
    expect(await drain(source)).toEqual(expected());
  });

  it('fails, never ends cleanly, when the tool exits non-zero part-way', async () => {
    const source = await toolOutputSource(process.execPath, writer(10), { describe: describeExit });
    await expect(drain(source)).rejects.toThrow(/tool failed: code 3 .*boom/);
  });

  it('destroy() kills the tool and fails the waiting read', async () => {
    const source = await toolOutputSource('sleep', ['30'], { describe: describeExit });
    const started = Date.now();
    const read = source.readInto(Buffer.alloc(1024));
    source.destroy!(new Error('given up'));
    await expect(read).rejects.toThrow('given up');
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('a tool that cannot start fails the read with its description', async () => {
    const source = await toolOutputSource('/nonexistent/tool', [], { describe: describeExit });
    await expect(source.readInto(Buffer.alloc(16))).rejects.toThrow(/tool failed/);
  });
});

describe('receivedToken', () => {
  /** What the accepting side of a fresh Unix socket concludes when the other side sends `bytes`. */
  const verdict = async (token: Buffer, bytes: Buffer, end: boolean): Promise<boolean> => {
    const server = net.createServer({ pauseOnConnect: true });
    const address = `\0lifeboat-test-${process.pid}-${Math.random()}`;
    await new Promise<void>((resolve) => server.listen(address, resolve));
    const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
    const client = net.connect({ path: address });
    client.on('error', () => undefined);
    client.write(bytes);
    if (end) client.end();
    const socket = await accepted;
    try {
      return await receivedToken(socket, token);
    } finally {
      socket.destroy();
      client.destroy();
      server.close();
    }
  };
  const token = Buffer.from('0123456789abcdef0123456789abcdef');

  it('accepts the token, refuses other bytes and a connection that closes before sending all of it', async () => {
    expect(await verdict(token, token, false)).toBe(true);
    expect(await verdict(token, Buffer.from('0123456789abcdef0123456789abcdeX'), false)).toBe(false);
    expect(await verdict(token, token.subarray(0, 10), true)).toBe(false);
  });
});
