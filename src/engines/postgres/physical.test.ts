import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { TarInspector, manifestWalRange } from './physical.js';

const directory = mkdtempSync(join(tmpdir(), 'lifeboat-tar-'));
afterAll(() => rmSync(directory, { recursive: true, force: true }));

const LABEL = 'START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nSTART TIMELINE: 1\n';
const MANIFEST = `{ "PostgreSQL-Backup-Manifest-Version": 1,\n"Files": [${'{ "Path": "base/1/1234", "Size": 8192 },\n'.repeat(3000)}{}],\n"WAL-Ranges": [\n{ "Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000100" }\n],\n"Manifest-Checksum": "00"}\n`;

function tarOf(): Buffer {
  writeFileSync(join(directory, 'backup_label'), LABEL);
  writeFileSync(join(directory, 'PG_VERSION'), '15\n');
  writeFileSync(join(directory, 'big'), Buffer.alloc(700_000, 7));
  writeFileSync(join(directory, 'backup_manifest'), MANIFEST);
  return execFileSync(
    'tar',
    ['-c', '-f', '-', '-C', directory, 'backup_label', 'PG_VERSION', 'big', 'backup_manifest'],
    {
      maxBuffer: 16 * 1024 * 1024,
    },
  );
}

/** Shows the tar to an inspector in pieces of one reused buffer, as the backup session's memory is. */
function inspect(tar: Buffer, chunkSize: number): TarInspector {
  const inspector = new TarInspector();
  const memory = Buffer.alloc(Math.min(chunkSize, tar.length));
  for (let offset = 0; offset < tar.length; offset += chunkSize) {
    const bytes = tar.copy(memory, 0, offset, offset + chunkSize);
    inspector.inspect(memory.subarray(0, bytes));
  }
  memory.fill(0x55); // what it kept must be its own copy
  return inspector;
}

describe('TarInspector', () => {
  const tar = tarOf();
  for (const chunkSize of [1, 511, 512, 4096, 65536, 10_000_000]) {
    it(`finds backup_label and the manifest's WAL range, keeping copies of them (chunks of ${chunkSize})`, () => {
      const inspector = inspect(chunkSize === 1 ? tar.subarray(0, 200_000) : tar, chunkSize);
      if (chunkSize === 1) {
        expect(inspector.label).toBe(LABEL); // the label is within the first bytes
        return;
      }
      expect(inspector.label).toBe(LABEL);
      expect(manifestWalRange(inspector.manifestTail!)).toEqual({
        timeline: 1,
        start: '0/2000028',
        end: '0/2000100',
      });
      expect(inspector.manifestTail!.length).toBeLessThanOrEqual(65536 + chunkSize);
    });
  }
});
