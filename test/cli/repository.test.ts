// The raw-stream commands as a user runs them: init, backup-stream, snapshots, dump; clear errors for
// a wrong password and a second init; and backups killed with SIGKILL that leave no visible snapshot.
import { spawn, spawnSync } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, describe, expect, it } from 'vitest';

const BIN = fileURLToPath(new URL('../../bin/lifeboat.js', import.meta.url));
const directory = mkdtempSync(join(tmpdir(), 'lifeboat-cli-repo-'));
afterAll(() => rmSync(directory, { recursive: true, force: true }));
writeFileSync(
  join(directory, 'lifeboat.yaml'),
  'repository:\n  url: ./repo\n  password: ${LIFEBOAT_PASSWORD}\n',
);

const data = (size: number, seed: number) =>
  createCipheriv('aes-256-ctr', Buffer.alloc(32, seed), Buffer.alloc(16)).update(Buffer.alloc(size));
const sha = (buffer: Buffer) => createHash('sha256').update(buffer).digest('hex');

function lifeboat(args: string[], input?: Buffer, password = 'cli-test-password') {
  const result = spawnSync(process.execPath, [BIN, ...args], {
    cwd: directory,
    input,
    env: { PATH: process.env.PATH, LIFEBOAT_PASSWORD: password },
    maxBuffer: 256 * 1024 * 1024,
    timeout: 120_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr.toString() };
}

/** Snapshot ids, read without asserting (the repository may be damaged). */
function snapshotIdsUnchecked(): string[] {
  return (JSON.parse(lifeboat(['snapshots', '--json']).stdout.toString()) as Array<{ id: string }>).map(
    (snapshot) => snapshot.id,
  );
}

function snapshotIds(): string[] {
  const run = lifeboat(['snapshots', '--json']);
  expect(run.code, run.stderr).toBe(0);
  return (JSON.parse(run.stdout.toString()) as Array<{ id: string }>).map((snapshot) => snapshot.id);
}

describe('lifeboat init, backup-stream, snapshots, dump', () => {
  const input = data(9 * 1024 * 1024 + 123, 1);
  let id = '';

  it('creates the repository once, and refuses a second init', () => {
    const first = lifeboat(['init']);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout.toString()).toMatch(/^created lifeboat repository [0-9a-f]{8} at /);
    const second = lifeboat(['init']);
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/^lifeboat: error LB_REPO_EXISTS: a lifeboat repository already exists/);
  });

  it('stores stdin and prints the snapshot id ({"id"} with --json)', () => {
    const run = lifeboat(['backup-stream', '--name', 'blob', '--json'], input);
    expect(run.code, run.stderr).toBe(0);
    const parsed = JSON.parse(run.stdout.toString()) as { id: string; size: number; sha256: string };
    expect(parsed).toMatchObject({ size: input.length, sha256: sha(input) });
    id = parsed.id;
    const plain = lifeboat(['backup-stream', '--name', 'blob'], input);
    expect(plain.stdout.toString().trim()).toMatch(/^[0-9a-f]{64}$/);
  });

  it('reads stdin from a regular file, and from a slow pipe left in non-blocking mode', () => {
    const file = join(directory, 'input.bin');
    writeFileSync(file, input);
    const env = { PATH: process.env.PATH, LIFEBOAT_PASSWORD: 'cli-test-password' };
    const command = [process.execPath, BIN, 'backup-stream', '--name', 'stdin', '--json'];
    const fd = openSync(file, 'r');
    try {
      const run = spawnSync(command[0]!, command.slice(1), {
        cwd: directory,
        stdio: [fd, 'pipe', 'pipe'],
        env,
      });
      expect(run.status, run.stderr.toString()).toBe(0);
      expect(JSON.parse(run.stdout.toString())).toMatchObject({ size: input.length, sha256: sha(input) });
    } finally {
      closeSync(fd);
    }
    // A pipe whose read end is non-blocking (as another program may leave it): reads that find it
    // empty fail with EAGAIN, which must mean "wait", not an error or the end.
    const feeder = [
      'import os, subprocess, sys, time',
      'r, w = os.pipe()',
      'os.set_blocking(r, False)',
      'child = subprocess.Popen(sys.argv[2:], stdin=r, stdout=subprocess.PIPE)',
      'os.close(r)',
      'data = memoryview(open(sys.argv[1], "rb").read())',
      'for at in range(0, len(data), 1 << 20):',
      '    piece = data[at:at + (1 << 20)]',
      '    while piece:',
      '        piece = piece[os.write(w, piece):]',
      '    time.sleep(0.05)',
      'os.close(w)',
      'sys.stdout.buffer.write(child.communicate()[0])',
      'sys.exit(child.returncode)',
    ].join('\n');
    const run = spawnSync('python3', ['-c', feeder, file, ...command], {
      cwd: directory,
      env,
      timeout: 120_000,
    });
    expect(run.status, run.stderr.toString()).toBe(0);
    expect(JSON.parse(run.stdout.toString())).toMatchObject({ size: input.length, sha256: sha(input) });
  });

  it('lists snapshots and dumps an artifact bit-exactly by id prefix', () => {
    expect(snapshotIds()).toContain(id);
    const human = lifeboat(['snapshots']);
    expect(human.stdout.toString()).toContain(id.slice(0, 8));
    const dump = lifeboat(['dump', id.slice(0, 12)]);
    expect(dump.code, dump.stderr).toBe(0);
    expect(sha(dump.stdout)).toBe(sha(input));
  });

  it('reports a reader that ends early (a closed pipe) and a full disk as LB_OUTPUT_FAILED, not as a bug', () => {
    const piped = spawnSync(
      'bash',
      [
        '--norc',
        '--noprofile',
        '-c',
        `"${process.execPath}" "${BIN}" dump ${id} | head -c 100 > /dev/null; echo "\${PIPESTATUS[0]}"`,
      ],
      {
        cwd: directory,
        env: { PATH: process.env.PATH, LIFEBOAT_PASSWORD: 'cli-test-password' },
        timeout: 120_000,
      },
    );
    expect(piped.stdout.toString().trim()).toBe('1');
    expect(piped.stderr.toString()).toMatch(
      /^lifeboat: error LB_OUTPUT_FAILED: cannot write blob to standard output after \d+ of \d+ bytes: EPIPE \(the command reading it ended first\)$/m,
    );
    expect(piped.stderr.toString()).not.toContain('LB_INTERNAL');
    const full = openSync('/dev/full', 'w');
    try {
      const run = spawnSync(process.execPath, [BIN, 'dump', id], {
        cwd: directory,
        env: { PATH: process.env.PATH, LIFEBOAT_PASSWORD: 'cli-test-password' },
        stdio: ['ignore', full, 'pipe'],
        timeout: 120_000,
      });
      expect(run.status).toBe(1);
      expect(run.stderr.toString()).toMatch(
        /LB_OUTPUT_FAILED: cannot write blob to standard output after 0 of \d+ bytes: ENOSPC/,
      );
    } finally {
      closeSync(full);
    }
  });

  it('still lists the readable snapshots when one manifest is damaged, names that one and exits 1', () => {
    const second = lifeboat(['backup-stream', '--name', 'small'], data(1000, 9));
    expect(second.code, second.stderr).toBe(0);
    const damagedId = second.stdout.toString().trim();
    const file = join(directory, 'repo', 'snapshots', damagedId);
    const flipped = Buffer.from(readFileSync(file));
    flipped[flipped.length - 5]! ^= 0x40;
    writeFileSync(file, flipped);
    try {
      const listed = lifeboat(['snapshots', '--json']);
      expect(listed.code).toBe(1);
      const rows = JSON.parse(listed.stdout.toString()) as Array<{ id: string; error?: { code: string } }>;
      expect(rows.find((row) => row.id === id)?.error).toBeUndefined();
      expect(rows.find((row) => row.id === damagedId)?.error?.code).toBe('LB_REPO_CORRUPT');
      const human = lifeboat(['snapshots']);
      expect(human.stdout.toString()).toContain(id.slice(0, 8));
      expect(human.stdout.toString()).toContain(`${damagedId.slice(0, 8)}  UNREADABLE: LB_REPO_CORRUPT`);
    } finally {
      rmSync(file); // the tests below count on the first snapshot alone (its data goes at a prune)
    }
  });

  it('gives clear errors for a wrong password and an unknown snapshot', () => {
    const wrong = lifeboat(['snapshots'], undefined, 'not-the-password');
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/^lifeboat: error LB_REPO_WRONG_KEY: /);
    const unknown = lifeboat(['dump', 'ffffffff']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/LB_SNAPSHOT_NOT_FOUND: no snapshot with id ffffffff/);
  });

  it('leaves no visible snapshot when backups are killed with SIGKILL, and the next backup succeeds', async () => {
    const before = snapshotIds();
    for (const delayMs of [150, 600, 1500]) {
      const child = spawn(process.execPath, [BIN, 'backup-stream', '--name', 'killed'], {
        cwd: directory,
        env: { PATH: process.env.PATH, LIFEBOAT_PASSWORD: 'cli-test-password' },
        stdio: ['pipe', 'ignore', 'ignore'],
      });
      child.stdin.on('error', () => undefined);
      // Feed 1 MiB every 20 ms: the backup is still running when the kill comes.
      let seed = 10;
      const feeder = setInterval(() => child.stdin.write(data(1024 * 1024, seed++)), 20);
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      child.kill('SIGKILL');
      clearInterval(feeder);
      await new Promise((resolve) => child.once('exit', resolve));
      expect(snapshotIds()).toEqual(before);
    }
    // Kills around the commit: the input ends, then the kill comes 0-400 ms later, while the last pack,
    // the index or the snapshot is being written (or after). Either no new snapshot is listed, or one
    // that restores whole.
    let known = snapshotIds();
    let landed = 0;
    for (const [round, delayMs] of [0, 30, 60, 100, 150, 250, 400].entries()) {
      const input = data(6 * 1024 * 1024, 90 + round);
      const child = spawn(process.execPath, [BIN, 'backup-stream', '--name', `commit-${round}`], {
        cwd: directory,
        env: { PATH: process.env.PATH, LIFEBOAT_PASSWORD: 'cli-test-password' },
        stdio: ['pipe', 'ignore', 'ignore'],
      });
      child.stdin.on('error', () => undefined);
      const exited = new Promise((resolve) => child.once('exit', resolve));
      await new Promise<void>((resolve) => child.stdin.end(input, resolve));
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      child.kill('SIGKILL');
      await exited;
      const now = snapshotIds();
      const added = now.filter((id) => !known.includes(id));
      expect(added.length, `round ${round}`).toBeLessThanOrEqual(1);
      for (const id of added) expect(sha(lifeboat(['dump', id]).stdout)).toBe(sha(input));
      landed += added.length;
      known = now;
    }
    console.log(`[crash] kills around the commit: ${landed} of 7 backups had made their snapshot visible`);
    const check = lifeboat(['check', '--read-data']);
    expect(check.code, check.stderr).toBe(0);
    expect(check.stdout.toString()).toMatch(/^no problems in \d+ snapshots, .* \(all data read\)/);
    // The killed processes' locks are stale (their pids are gone): prune runs and removes their packs.
    const prune = lifeboat(['prune']);
    expect(prune.code, prune.stderr).toBe(0);
    const [, unused, unreferenced] = /deleted (\d+) unused and (\d+) unreferenced packs/.exec(
      prune.stdout.toString(),
    )!;
    expect(Number(unused) + Number(unreferenced)).toBeGreaterThan(0); // the killed backups left packs
    const after = data(3 * 1024 * 1024, 42);
    const run = lifeboat(['backup-stream', '--name', 'after-crash'], after);
    expect(run.code, run.stderr).toBe(0);
    const dump = lifeboat(['dump', run.stdout.toString().trim()]);
    expect(sha(dump.stdout)).toBe(sha(after));
  });

  it('check reports damage with LB_REPO_CORRUPT, naming the object and the affected snapshots', () => {
    const packs = spawnSync('find', [join(directory, 'repo', 'data'), '-type', 'f'], { encoding: 'utf8' })
      .stdout.trim()
      .split('\n');
    // Damage every pack (some are unreferenced leftovers of the killed backups, which check skips).
    const originals = packs.map((pack) => readFileSync(pack));
    packs.forEach((pack, index) => {
      const damaged = Buffer.from(originals[index]!);
      damaged[100]! ^= 0xff;
      writeFileSync(pack, damaged);
    });
    const run = lifeboat(['check', '--read-data', '--json']);
    expect(run.code).toBe(1);
    const parsed = JSON.parse(run.stdout.toString()) as {
      error: {
        code: string;
        details: { report: { problems: Array<{ object: string }>; affectedSnapshots: string[] } };
      };
    };
    expect(parsed.error.code).toBe('LB_REPO_CORRUPT');
    const named = parsed.error.details.report.problems.map((problem) => problem.object);
    expect(named.length).toBeGreaterThan(0);
    for (const object of named)
      expect(packs.map((pack) => `data/${pack.split('/data/')[1]}`)).toContain(object);
    expect(parsed.error.details.report.affectedSnapshots.sort()).toEqual(snapshotIdsUnchecked().sort());
    packs.forEach((pack, index) => writeFileSync(pack, originals[index]!));
    expect(lifeboat(['check', '--read-data']).code).toBe(0);
  });

  it('forget --dry-run shows what goes and why the rest stays; forget --prune frees it; check passes', () => {
    const all = snapshotIds();
    const dry = lifeboat(['forget', '--keep-last', '1', '--dry-run']);
    expect(dry.code, dry.stderr).toBe(0);
    const text = dry.stdout.toString();
    expect(text).toMatch(/keep\s+snapshot\s+[0-9a-f]{8}\s+\S+\s+\S+\s+\(last 1\)/);
    expect(text).toMatch(/would remove/);
    expect(snapshotIds()).toEqual(all);
    const json = JSON.parse(
      lifeboat(['forget', '--keep-within', '1h', '--dry-run', '--json']).stdout.toString(),
    ) as {
      decisions: Array<{ keep: boolean; reasons: string[] }>;
    };
    expect(json.decisions.every((decision) => decision.keep && decision.reasons.includes('within'))).toBe(
      true,
    );
    const run = lifeboat(['forget', '--keep-last', '1', '--source', 'blob', '--prune']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout.toString()).toMatch(/prune: deleted \d+ packs/);
    expect(snapshotIds().length).toBeLessThan(all.length);
    expect(lifeboat(['check', '--read-data']).code).toBe(0);
    const noPolicy = lifeboat(['forget']);
    expect(noPolicy.code).toBe(2);
    expect(noPolicy.stderr).toMatch(/LB_USAGE: no retention policy/);
  });
});
