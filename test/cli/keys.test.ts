// Keys from the command line: a write-only host (recipients only) backs up but cannot dump; the host
// with the identity file can; key rotate and key list; passwords added and removed.
import { spawnSync } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const BIN = fileURLToPath(new URL('../../bin/lifeboat.js', import.meta.url));
const directory = mkdtempSync(join(tmpdir(), 'lifeboat-cli-keys-'));
afterAll(() => rmSync(directory, { recursive: true, force: true }));

const data = createCipheriv('aes-256-ctr', Buffer.alloc(32, 3), Buffer.alloc(16)).update(
  Buffer.alloc(2 * 1024 * 1024),
);
const sha = (buffer: Buffer) => createHash('sha256').update(buffer).digest('hex');

function lifeboat(config: string, args: string[], input?: Buffer, env: NodeJS.ProcessEnv = {}) {
  const result = spawnSync(process.execPath, [BIN, '--config', join(directory, config), ...args], {
    cwd: directory,
    input,
    env: { PATH: process.env.PATH, LIFEBOAT_PASSWORD: 'first password', ...env },
    maxBuffer: 64 * 1024 * 1024,
    timeout: 60_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr.toString() };
}

describe('public-key mode from the CLI', () => {
  let recipient = '';
  beforeAll(async () => {
    const identity = await generateX25519Identity();
    recipient = await identityToRecipient(identity);
    writeFileSync(join(directory, 'identity.txt'), `# test identity\n${identity}\n`, { mode: 0o600 });
    writeFileSync(
      join(directory, 'writer.yaml'),
      `repository: { url: ./pk-repo, recipients: [${recipient}] }\n`,
    );
    writeFileSync(
      join(directory, 'reader.yaml'),
      `repository: { url: ./pk-repo, recipients: [${recipient}], identityFile: ./identity.txt }\n`,
    );
  });

  it('a write-only host backs up; every read fails clearly; the identity restores', () => {
    expect(lifeboat('writer.yaml', ['init']).code).toBe(0);
    expect(lifeboat('writer.yaml', ['config', 'check']).stdout.toString()).toContain(
      'public-key mode, write-only',
    );
    const backup = lifeboat('writer.yaml', ['backup-stream', '--name', 'db'], data);
    expect(backup.code, backup.stderr).toBe(0);
    const id = backup.stdout.toString().trim();
    for (const args of [['dump', id], ['snapshots'], ['check', '--read-data']]) {
      const refused = lifeboat('writer.yaml', args);
      expect(refused.code, args.join(' ')).toBe(1);
      expect(refused.stderr).toMatch(/^lifeboat: error LB_REPO_WRITE_ONLY: .*write-only/);
      expect(refused.stdout.length).toBe(0);
    }
    const dump = lifeboat('reader.yaml', ['dump', id]);
    expect(dump.code, dump.stderr).toBe(0);
    expect(sha(dump.stdout)).toBe(sha(data));
  });

  it('key rotate appends a new identity and prints its recipient; old backups stay readable', () => {
    // Where the identity cannot be kept, the repository does not take the new recipient.
    const keysBefore = lifeboat('reader.yaml', ['key', 'list', '--json']).stdout.toString();
    const lost = lifeboat('reader.yaml', [
      'key',
      'rotate',
      '--identity-output',
      './no-such-directory/identity.txt',
    ]);
    expect(lost.code).not.toBe(0);
    expect(lifeboat('reader.yaml', ['key', 'list', '--json']).stdout.toString()).toBe(keysBefore);
    const rotate = lifeboat('reader.yaml', ['key', 'rotate', '--identity-output', './identity.txt']);
    expect(rotate.code, rotate.stderr).toBe(0);
    const newRecipient = /new recipient (age1[0-9a-z]+)/.exec(rotate.stdout.toString())?.[1];
    expect(newRecipient).toBeDefined();
    expect(statSync(join(directory, 'identity.txt')).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(directory, 'identity.txt'), 'utf8').match(/AGE-SECRET-KEY-1/g)).toHaveLength(2);
    writeFileSync(
      join(directory, 'writer2.yaml'),
      `repository: { url: ./pk-repo, recipients: [${newRecipient}] }\n`,
    );
    writeFileSync(
      join(directory, 'reader2.yaml'),
      `repository: { url: ./pk-repo, recipients: [${newRecipient}], identityFile: ./identity.txt }\n`,
    );
    const after = lifeboat('writer2.yaml', ['backup-stream', '--name', 'db'], data.subarray(0, 1000));
    expect(after.code, after.stderr).toBe(0);
    const list = JSON.parse(lifeboat('reader2.yaml', ['snapshots', '--json']).stdout.toString()) as Array<{
      id: string;
    }>;
    expect(list).toHaveLength(2);
    for (const snapshot of list) expect(lifeboat('reader2.yaml', ['dump', snapshot.id]).code).toBe(0);
    const keys = JSON.parse(lifeboat('reader2.yaml', ['key', 'list', '--json']).stdout.toString()) as Array<{
      recipients: string[];
    }>;
    expect(keys.map((key) => key.recipients[0])).toEqual([recipient, newRecipient]);
  });
});

describe('password keys from the CLI', () => {
  it('adds a password, lists keys, removes the old one', () => {
    writeFileSync(
      join(directory, 'pw.yaml'),
      'repository: { url: ./pw-repo, password: "${LIFEBOAT_PASSWORD}" }\n',
    );
    expect(lifeboat('pw.yaml', ['init']).code).toBe(0);
    const add = lifeboat('pw.yaml', ['key', 'add'], undefined, { LIFEBOAT_NEW_PASSWORD: 'second password' });
    expect(add.code, add.stderr).toBe(0);
    const keys = JSON.parse(lifeboat('pw.yaml', ['key', 'list', '--json']).stdout.toString()) as Array<{
      id: string;
      current: boolean;
    }>;
    expect(keys).toHaveLength(2);
    const first = keys.find((key) => key.current)!;
    const viaSecond = { LIFEBOAT_PASSWORD: 'second password' };
    const removed = lifeboat('pw.yaml', ['key', 'remove', first.id.slice(0, 8)], undefined, viaSecond);
    expect(removed.code, removed.stderr).toBe(0);
    expect(lifeboat('pw.yaml', ['snapshots']).stderr).toMatch(/LB_REPO_WRONG_KEY/);
    expect(lifeboat('pw.yaml', ['snapshots'], undefined, viaSecond).code).toBe(0);
    const rotate = lifeboat('pw.yaml', ['key', 'rotate'], undefined, viaSecond);
    expect(rotate.code, rotate.stderr).toBe(0);
    expect(rotate.stdout.toString()).toMatch(/^rotated: new key [0-9a-f]{8}/);
  });
});

describe('generated keys from the CLI', () => {
  it('key generate makes a key that inits, backs up and restores; --output writes a 0600 file once', () => {
    const printed = lifeboat('none.yaml', ['key', 'generate']);
    expect(printed.code, printed.stderr).toBe(0);
    const key = printed.stdout.toString().trim();
    expect(key).toMatch(/^lbk1-[A-Za-z0-9_-]{43}$/);
    const json = JSON.parse(lifeboat('none.yaml', ['key', 'generate', '--json']).stdout.toString()) as {
      key: string;
    };
    expect(Object.keys(json)).toEqual(['key']);
    expect(json.key).toMatch(/^lbk1-[A-Za-z0-9_-]{43}$/);

    const file = join(directory, 'generated.key');
    const written = lifeboat('none.yaml', ['key', 'generate', '--output', file]);
    expect(written.code, written.stderr).toBe(0);
    expect(written.stdout.toString()).not.toMatch(/lbk1-/);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const fromFile = readFileSync(file, 'utf8').trim();
    expect(fromFile).toMatch(/^lbk1-[A-Za-z0-9_-]{43}$/);
    expect(fromFile).not.toBe(key);
    const again = lifeboat('none.yaml', ['key', 'generate', '--output', file]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/LB_USAGE/);
    expect(readFileSync(file, 'utf8').trim()).toBe(fromFile);

    writeFileSync(
      join(directory, 'gen.yaml'),
      'repository: { url: ./gen-repo, passwordFile: ./generated.key }\n',
    );
    expect(lifeboat('gen.yaml', ['init']).code).toBe(0);
    const backup = lifeboat('gen.yaml', ['backup-stream', '--name', 'data', '--json'], data);
    expect(backup.code, backup.stderr).toBe(0);
    const { id } = JSON.parse(backup.stdout.toString()) as { id: string };
    expect(sha(lifeboat('gen.yaml', ['dump', id]).stdout)).toBe(sha(data));

    const add = lifeboat('gen.yaml', ['key', 'add'], undefined, { LIFEBOAT_NEW_PASSWORD: key });
    expect(add.code, add.stderr).toBe(0);
    const list = lifeboat('gen.yaml', ['key', 'list']);
    expect(list.stdout.toString().trim().split('\n')).toEqual([
      expect.stringMatching(/^\* [0-9a-f]{8} {2}generated /),
      expect.stringMatching(/^ {2}[0-9a-f]{8} {2}generated /),
    ]);
    writeFileSync(join(directory, 'gen2.yaml'), 'repository: { url: ./gen-repo, password: "${GEN_KEY}" }\n');
    const viaOther = lifeboat('gen2.yaml', ['dump', id], undefined, { GEN_KEY: key });
    expect(sha(viaOther.stdout)).toBe(sha(data));

    // A wrong generated key (one that was generated but never added): a clear error, and the key
    // itself never printed.
    const wrong = lifeboat('gen2.yaml', ['snapshots'], undefined, { GEN_KEY: json.key });
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/LB_REPO_WRONG_KEY: wrong generated key/);
    expect(wrong.stderr).not.toMatch(/lbk1-[A-Za-z0-9_-]{10}/);
  });
});
