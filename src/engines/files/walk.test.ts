import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { type Skipped, walk } from './walk.js';

const scratch = mkdtempSync(join(tmpdir(), 'lifeboat-walk-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('walking a live tree', () => {
  it('leaves out entries deleted after their directory was listed, counting and logging them', async () => {
    const root = join(scratch, 'live');
    mkdirSync(join(root, 'b-dir'), { recursive: true });
    writeFileSync(join(root, 'a-file'), 'a');
    writeFileSync(join(root, 'b-dir', 'inner'), 'i');
    symlinkSync('a-file', join(root, 'c-link'));
    writeFileSync(join(root, 'd-file'), 'd');
    const skipped: Skipped = { count: 0, vanished: 0 };
    const lines: string[] = [];
    const seen: string[] = [];
    for await (const entry of walk([{ disk: root, archive: 'live' }], {}, skipped, (line) =>
      lines.push(line),
    )) {
      seen.push(entry.path);
      // Once the root is listed, its later entries go away: a directory, a symlink and a file.
      if (entry.path === 'live/a-file') {
        rmSync(join(root, 'b-dir'), { recursive: true });
        rmSync(join(root, 'c-link'));
        rmSync(join(root, 'd-file'));
      }
    }
    expect(seen).toEqual(['live', 'live/a-file']);
    expect(skipped).toEqual({ count: 0, vanished: 3 });
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/b-dir vanished during the backup; left out/);
  });
});
