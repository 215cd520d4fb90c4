import { describe, expect, it } from 'vitest';

import { Progress, type ProgressStream } from './progress.js';

function terminal(isTTY: boolean): ProgressStream & { text: string } {
  return {
    isTTY,
    columns: 120,
    text: '',
    write(chunk: string) {
      this.text += chunk;
      return true;
    },
  };
}

describe('Progress', () => {
  it('shows bytes, total, percentage, rate and ETA on a terminal', () => {
    let now = 0;
    const stream = terminal(true);
    const progress = new Progress({
      label: 'backup main-db',
      total: 1024 ** 3,
      stream,
      enabled: true,
      now: () => now,
    });
    for (let step = 1; step <= 10; step++) {
      now += 1000;
      progress.update(step * 50 * 1024 ** 2); // 50 MiB per second
    }
    expect(progress.render()).toBe('backup main-db  500 MiB / 1 GiB  48%  50 MiB/s  ETA 10s');
    expect(stream.text).toContain('\rbackup main-db');
    progress.finish();
    expect(stream.text.endsWith('\n')).toBe(true);
    expect(stream.text).toContain('500 MiB / 1 GiB  48%  50 MiB/s in 10s');
  });

  it('works without a known total', () => {
    let now = 0;
    const progress = new Progress({ label: 'dump', stream: terminal(true), enabled: true, now: () => now });
    now = 2000;
    progress.advance(4 * 1024 ** 2);
    expect(progress.render()).toBe('dump  4 MiB  2 MiB/s');
  });

  it('stays silent when not a terminal (pipes, --json)', () => {
    const stream = terminal(false);
    const progress = new Progress({ label: 'backup', total: 100, stream });
    progress.update(50);
    progress.finish();
    expect(progress.enabled).toBe(false);
    expect(stream.text).toBe('');
  });
});
