// The progress display long commands use: one line on the terminal, redrawn in place, showing bytes
// done, total, percentage, rate and ETA. Silent unless both stdout and stderr are terminals and --json
// is off, so pipes, logs and scripts never see it.
//
// Terms:
//   rate  bytes per second, smoothed with an exponential moving average over ~2 s so it does not jump.
//   ETA   (total - done) / rate, shown only when the total is known and the rate is above zero.
//
// Written by hand: cli-progress and similar draw bars from counts but have no byte rate smoothing, and
// pulling a dependency for one redrawn line is more code to audit than this.
import prettyBytes from 'pretty-bytes';

import { formatDuration } from '../util/duration.js';

/** Minimal view of a terminal stream (process.stderr in real use, a fake in tests). */
export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(text: string): boolean;
}

export interface ProgressOptions {
  /** Shown before the numbers, e.g. "backup main-db". */
  label: string;
  /** Total bytes when known (enables percentage and ETA). */
  total?: number;
  /** Where to draw (default process.stderr). */
  stream?: ProgressStream;
  /** Force on or off; default: on when stdout and the stream are TTYs. */
  enabled?: boolean;
  /** Milliseconds between redraws. Default 100. */
  intervalMs?: number;
  /** Clock, replaceable in tests. */
  now?: () => number;
}

export class Progress {
  readonly enabled: boolean;
  private readonly stream: ProgressStream;
  private readonly now: () => number;
  private readonly intervalMs: number;
  private done = 0;
  private rate = 0;
  private lastSample: { at: number; done: number };
  private lastDraw = Number.NEGATIVE_INFINITY;
  private readonly started: number;

  constructor(private readonly options: ProgressOptions) {
    this.stream = options.stream ?? process.stderr;
    this.enabled = options.enabled ?? (process.stdout.isTTY === true && this.stream.isTTY === true);
    this.now = options.now ?? Date.now;
    this.intervalMs = options.intervalMs ?? 100;
    this.started = this.now();
    this.lastSample = { at: this.started, done: 0 };
  }

  /** Adds bytes to the count (the usual call from a stream's data events). */
  advance(bytes: number): void {
    this.update(this.done + bytes);
  }

  /** Sets the absolute count of bytes done. */
  update(done: number, total?: number): void {
    this.done = done;
    if (total !== undefined) this.options.total = total;
    const at = this.now();
    const elapsed = at - this.lastSample.at;
    if (elapsed >= 250) {
      const instant = ((done - this.lastSample.done) * 1000) / elapsed;
      const weight = Math.min(1, elapsed / 2000);
      this.rate = this.rate === 0 ? instant : this.rate + weight * (instant - this.rate);
      this.lastSample = { at, done };
    }
    if (this.enabled && at - this.lastDraw >= this.intervalMs) {
      this.lastDraw = at;
      this.draw(this.render());
    }
  }

  /** Draws the final line (average rate over the whole run) and moves to a new line. */
  finish(): void {
    if (!this.enabled) return;
    const seconds = Math.max((this.now() - this.started) / 1000, 0.001);
    this.rate = this.done / seconds;
    this.draw(`${this.render(false)} in ${formatDuration(seconds * 1000)}`);
    this.stream.write('\n');
  }

  /** The status line, e.g. "backup main-db  1.2 GB / 4 GB  30%  85 MB/s  ETA 34s". */
  render(withEta = true): string {
    const { label, total } = this.options;
    const parts = [label, total === undefined ? bytes(this.done) : `${bytes(this.done)} / ${bytes(total)}`];
    if (total !== undefined && total > 0)
      parts.push(`${Math.min(100, Math.floor((this.done / total) * 100))}%`);
    parts.push(`${bytes(this.rate)}/s`);
    if (withEta && total !== undefined && this.rate > 0 && total > this.done) {
      parts.push(`ETA ${formatDuration(((total - this.done) / this.rate) * 1000)}`);
    }
    return parts.join('  ');
  }

  private draw(line: string): void {
    const width = this.stream.columns ?? 100;
    this.stream.write(`\r${line.slice(0, Math.max(10, width - 1)).padEnd(Math.max(10, width - 1))}`);
  }
}

function bytes(count: number): string {
  return prettyBytes(Math.max(0, count), { binary: true, maximumFractionDigits: 1 });
}
