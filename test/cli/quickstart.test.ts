// The README's quickstart works as written: scripts/quickstart.sh backs up a demo PostgreSQL, wrecks
// it, restores it and drills, and every lifeboat command in it succeeds.
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { afterAll, describe, expect, it } from 'vitest';

const SCRIPT = fileURLToPath(new URL('../../scripts/quickstart.sh', import.meta.url));

describe('scripts/quickstart.sh', () => {
  const parent = mkdtempSync(join(tmpdir(), 'lifeboat-quickstart-'));
  chmodSync(parent, 0o755); // the demo server and lifeboat run as the postgres user when we are root
  const demo = join(parent, 'demo');
  const env = { ...process.env, LIFEBOAT_DEMO_DIR: demo };
  afterAll(async () => {
    await promisify(execFile)(SCRIPT, ['clean'], { env }).catch(() => undefined);
    rmSync(parent, { recursive: true, force: true });
  });

  it('backs up, survives the disaster, restores and drills', async () => {
    const { stdout } = await promisify(execFile)(SCRIPT, [], { env, maxBuffer: 16 * 1024 * 1024 });
    expect(stdout).toContain('customers: 5000, orders: 20000');
    expect(stdout).toMatch(/shop: 4 difference\(s\) from snapshot/);
    expect(stdout).toMatch(/restored into source \(logical\)/);
    expect(stdout).toMatch(/shop: matches snapshot/);
    expect(stdout).toMatch(/^shop +ok +logical /m);
  }, 180_000);
});
