import { execFileSync, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { prefetchingCommand, prepareSpool, runPrefetch } from './prefetch.js';

const scratch = mkdtempSync(join(tmpdir(), 'lifeboat-prefetch-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
const me = { uid: process.getuid!(), gid: process.getgid!() };
const SIZE = 16 * 1024 * 1024;
let made = 0;

/** Runs a restore_command the way PostgreSQL does (sh -c, %f and %p substituted): its exit status. */
function restoreCommand(command: string, file: string, path: string): number {
  const line = command.replaceAll('%f', file).replaceAll('%p', path);
  return spawnSync('sh', ['-c', line]).status!;
}

describe('the prefetching restore_command', () => {
  it('takes a spooled file, copies a kept one, answers a known-missing one, else runs the fallback', async () => {
    const spool = join(scratch, `spool-${made++}`);
    await prepareSpool(spool, me);
    const ran = join(scratch, `fallback-${made}`);
    const command = prefetchingCommand(spool, `echo %f >> ${ran}; exit 1`);
    writeFileSync(join(spool, '000000010000000000000003'), 'segment 3');
    writeFileSync(join(spool, '.keep', '00000002.history'), 'history 2');
    writeFileSync(join(spool, '.none', '00000003.history'), '');
    const into = join(scratch, `RECOVERYXLOG-${made}`);

    expect(restoreCommand(command, '000000010000000000000003', into)).toBe(0);
    expect(readFileSync(into, 'utf8')).toBe('segment 3');
    expect(existsSync(join(spool, '000000010000000000000003'))).toBe(false); // taken (a rename)
    // Kept files answer every time.
    for (let time = 0; time < 2; time++) {
      rmSync(into, { force: true });
      expect(restoreCommand(command, '00000002.history', into)).toBe(0);
      expect(readFileSync(into, 'utf8')).toBe('history 2');
    }
    // Known missing: "not in the archive" without running the fallback.
    rmSync(into, { force: true });
    expect(restoreCommand(command, '00000003.history', into)).toBe(1);
    expect(existsSync(into)).toBe(false);
    expect(existsSync(ran)).toBe(false);
    // Anything else, and a spool that is gone: the fallback decides.
    expect(restoreCommand(command, '000000010000000000000004', into)).toBe(1);
    rmSync(spool, { recursive: true });
    expect(restoreCommand(command, '00000003.history', into)).toBe(1);
    expect(readFileSync(ran, 'utf8')).toBe('000000010000000000000004\n00000003.history\n');
  });

  it('quotes the spool for the shell', () => {
    const spool = join(scratch, "it's here");
    expect(prefetchingCommand(spool, 'fetch')).toContain(`'${scratch}/it'\\''s here'/.keep/%f`);
    execFileSync('sh', ['-n', '-c', prefetchingCommand(spool, 'fetch %f "%p"')]);
  });
});

describe('runPrefetch', () => {
  const hex = (value: number) => value.toString(16).toUpperCase().padStart(8, '0');
  const segment = (timeline: number, number: number) => `${hex(timeline)}00000000${hex(number)}`;

  /** Resolves once `check()` holds (polled). */
  const until = async (check: () => boolean) => {
    while (!check()) await new Promise((resolve) => setTimeout(resolve, 5));
  };

  it('spools segments in order within the window, keeps history files and the last segment, marks what is missing', async () => {
    const spool = join(scratch, `spool-${made++}`);
    await prepareSpool(spool, me);
    // Timeline 2 branched off at segment 5; segment 9 is archived while the restore runs.
    const archive = new Map<string, string>([
      ['00000002.history', '1\t0/5000000\tno recovery target specified\n'],
      [segment(1, 2), 'old, before the start'],
      ...[3, 4, 5, 6].map((n) => [segment(1, n), `1/${n}`] as [string, string]),
      ...[5, 6, 7, 8].map((n) => [segment(2, n), `2/${n}`] as [string, string]),
      ['000000010000000000000004.00000028.backup', 'label'],
    ]);
    let listings = 0;
    const reads: string[] = [];
    let stop = false;
    const taken: string[] = [];
    let most = 0;
    const prefetch = {
      window: 2,
      list: () => {
        if (++listings === 2) archive.set(segment(2, 9), '2/9'); // archived meanwhile
        return Promise.resolve([...archive.keys()]);
      },
      read: (name: string) => {
        reads.push(name);
        return Promise.resolve(Buffer.from(archive.get(name)!));
      },
    };
    // The server: takes what is spooled, one file at a time.
    const server = (async () => {
      while (!stop) {
        const waiting = readdirSync(spool)
          .filter((name) => !name.startsWith('.'))
          .sort();
        most = Math.max(most, waiting.length);
        for (const name of waiting.slice(0, 1)) {
          renameSync(join(spool, name), join(scratch, `taken-${made}-${name}`));
          taken.push(name);
        }
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    const running = runPrefetch(
      spool,
      prefetch,
      segment(1, 3),
      SIZE,
      () => stop,
      () => undefined,
      {
        owner: me,
        toEnd: true,
        pollMs: 10,
      },
    );
    const none = () => readdirSync(join(spool, '.none')).sort();
    const keep = () => readdirSync(join(spool, '.keep')).sort();
    await until(() => none().includes(segment(2, 10)));
    // Timeline 1's 5 and 6 are past its switch: the server reads timeline 2's from 5 on, never those.
    const order = [
      segment(1, 3),
      segment(1, 4),
      segment(2, 5),
      segment(2, 6),
      segment(2, 7),
      segment(2, 8),
      segment(2, 9),
    ];
    expect(reads).toEqual(['00000002.history', ...order]); // history files first, then by number
    expect(none()).toEqual(['00000001.history', '00000003.history', segment(2, 10)].sort());
    // The last segment listed is kept (the one of the listing before is not).
    expect(keep()).toEqual(['00000002.history', segment(2, 9)]);
    expect(readFileSync(join(spool, '.keep', segment(2, 9)), 'utf8')).toBe('2/9');
    // Archived while the server replays: the marks go, the files come.
    archive.set(
      '00000003.history',
      '1\t0/5000000\tno recovery target specified\n2\t0/9000000\tno recovery target specified\n',
    );
    archive.set(segment(3, 10), '3/10');
    await until(() => none().includes(segment(3, 11)));
    expect(none()).toEqual(['00000001.history', segment(3, 11)].sort());
    expect(keep()).toEqual(['00000002.history', '00000003.history', segment(3, 10)]);
    await until(() => !readdirSync(spool).some((name) => !name.startsWith('.')));
    stop = true;
    expect(await running).toBe(10); // eight segments and two history files
    await server;
    expect(taken.sort()).toEqual([...order, segment(3, 10)].sort());
    expect(most).toBeLessThanOrEqual(2);
  });

  it("spools only the segments of the server's timeline path, never an abandoned or sibling timeline's", async () => {
    const spool = join(scratch, `spool-${made++}`);
    await prepareSpool(spool, me);
    // Timeline 2 branched off 1 at segment 4 and was abandoned; timeline 3 branched off 1 at segment 6.
    // The base backup starts on timeline 1 at segment 2.
    const archive = new Map<string, string>([
      ['00000002.history', '1\t0/4000010\tno recovery target specified\n'],
      ['00000003.history', '1\t0/6000010\tbefore 2026-11-23 05:00:00+00\n'],
      ...[2, 3, 4, 5, 6, 7, 8].map((n) => [segment(1, n), `1/${n}`] as [string, string]),
      ...[4, 5, 6, 7].map((n) => [segment(2, n), `2/${n}`] as [string, string]),
      ...[6, 7].map((n) => [segment(3, n), `3/${n}`] as [string, string]),
    ]);
    const reads: string[] = [];
    let stop = false;
    const server = (async () => {
      while (!stop) {
        for (const name of readdirSync(spool).filter((file) => !file.startsWith('.')))
          renameSync(join(spool, name), join(scratch, `taken-${made}-${name}`));
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    const fetched = await runPrefetch(
      spool,
      {
        window: 2,
        list: () => Promise.resolve([...archive.keys()]),
        read: (name: string) => {
          reads.push(name);
          return Promise.resolve(Buffer.from(archive.get(name)!));
        },
      },
      segment(1, 2),
      SIZE,
      () => false,
      () => undefined,
      { owner: me },
    );
    stop = true;
    await server;
    expect(reads.filter((name) => !name.endsWith('.history'))).toEqual([
      segment(1, 2),
      segment(1, 3),
      segment(1, 4),
      segment(1, 5),
      segment(3, 6), // the segment holding the switch point is read from the new timeline
      segment(3, 7),
    ]);
    expect(fetched).toBe(8); // and the two history files
    expect(readdirSync(join(spool, '.keep')).sort()).toEqual([
      '00000002.history',
      '00000003.history',
      segment(3, 7),
    ]);
  });

  it("leaves nothing out when the history of the base backup's timeline is not in the archive", async () => {
    const spool = join(scratch, `spool-${made++}`);
    await prepareSpool(spool, me);
    const reads: string[] = [];
    // A base backup on timeline 2 whose history file is missing: the prefetch cannot tell the path, so
    // it spools by number and timeline as before, and the server decides.
    const names = [segment(2, 2), segment(2, 3), segment(3, 3)];
    await runPrefetch(
      spool,
      {
        window: 8,
        list: () => Promise.resolve(names),
        read: (name: string) => {
          reads.push(name);
          return Promise.resolve(Buffer.from('x'));
        },
      },
      segment(2, 2),
      SIZE,
      () => false,
      () => undefined,
      { owner: me },
    );
    expect(reads).toEqual(names);
  });

  it('follows timeline 1 alone while the archive has no history file for timeline 2', async () => {
    const spool = join(scratch, `spool-${made++}`);
    await prepareSpool(spool, me);
    const reads: string[] = [];
    // The server probes 00000002.history, finds none, and stays on timeline 1 (3's history is no use).
    await runPrefetch(
      spool,
      {
        window: 8,
        list: () => Promise.resolve(['00000003.history', segment(1, 1), segment(2, 2), segment(3, 2)]),
        read: (name: string) => {
          reads.push(name);
          return Promise.resolve(Buffer.from(name.endsWith('.history') ? '1\t0/2000000\tx\n' : 'x'));
        },
      },
      segment(1, 1),
      SIZE,
      () => false,
      () => undefined,
      { owner: me },
    );
    expect(reads).toEqual(['00000003.history', segment(1, 1)]);
  });

  it('stops at the end of the archive, marking no segment, when the recovery has another target', async () => {
    const spool = join(scratch, `spool-${made++}`);
    await prepareSpool(spool, me);
    let listings = 0;
    const fetched = await runPrefetch(
      spool,
      {
        list: () => {
          listings++;
          return Promise.resolve([segment(1, 1), segment(1, 2)]);
        },
        read: () => Promise.resolve(Buffer.from('x')),
      },
      segment(1, 1),
      SIZE,
      () => false,
      () => undefined,
      { owner: me },
    );
    expect(fetched).toBe(2);
    expect(listings).toBe(2); // once more at the end, in case more was archived
    expect(readdirSync(join(spool, '.none')).sort()).toEqual(['00000001.history', '00000002.history']);
    expect(readdirSync(join(spool, '.keep'))).toEqual([segment(1, 2)]);
  });

  it('marks no missing segment when it is stopped before the end, and reports a failed read', async () => {
    const spool = join(scratch, `spool-${made++}`);
    await prepareSpool(spool, me);
    const lines: string[] = [];
    const fetched = await runPrefetch(
      spool,
      {
        list: () => Promise.resolve([segment(1, 1), segment(1, 2)]),
        read: (name: string) =>
          name === segment(1, 2)
            ? Promise.reject(new Error('pack missing'))
            : Promise.resolve(Buffer.from('1')),
      },
      segment(1, 1),
      SIZE,
      () => false,
      (line) => lines.push(line),
      { owner: me, toEnd: true },
    );
    expect(fetched).toBe(1);
    expect(lines).toEqual(['WAL prefetch stopped (pack missing); the server fetches the rest itself']);
    expect(readdirSync(join(spool, '.none'))).toEqual(['00000001.history', '00000002.history']);
  });
});
