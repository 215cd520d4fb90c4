// Shared memory that a borrowed read (Repository.readArtifactBorrowed) opens its segments into, reused
// from one segment to the next.
//
// Why: a segment opened into fresh memory reaches the main thread as a transferred ArrayBuffer, which
// V8 counts as new external memory: a 2 GiB restore ran 76 full mark-compacts of the main heap for that
// alone (~15% of its CPU, on the platform threads that share the two cores with the workers). Views of
// one SharedArrayBuffer, written by the workers in place, are not counted: one mark-compact.
//
// Terms:
//   region    the bytes of one segment's plaintext: reserved before the segment is fetched, released
//             once the consumer has moved past it. Segments are consumed in the order they were
//             reserved, so the arena is a ring (FIFO): a region is placed after the newest one, or at
//             the start when the end has no room for it, and the oldest is the one released.
//   full      no room for a region: the read waits with fewer segments ahead until the consumer
//             releases one. A region is never empty, nor larger than the arena (see restore-stream.ts).

export class RestoreArena {
  readonly memory: SharedArrayBuffer;
  /** Live regions, oldest first: [start, end). */
  private readonly regions: Array<{ start: number; end: number }> = [];

  constructor(readonly size: number) {
    if (!(size > 0)) throw new RangeError(`arena size must be positive (got ${size})`);
    this.memory = new SharedArrayBuffer(size);
  }

  /** Reserves `length` bytes after the newest region: their offset, or undefined when there is no room. */
  tryReserve(length: number): number | undefined {
    // Empty regions are refused: one placed where the oldest starts would make the ring look unwrapped.
    if (!(length > 0 && length <= this.size))
      throw new RangeError(`a region must hold 1 to ${this.size} bytes (asked for ${length})`);
    const oldest = this.regions[0];
    const newest = this.regions.at(-1);
    let start: number | undefined;
    if (oldest === undefined || newest === undefined) start = 0;
    else if (newest.start >= oldest.start) {
      // Not wrapped (the newest lies after the oldest): room after the newest region, else at the start
      // before the oldest.
      if (this.size - newest.end >= length) start = newest.end;
      else if (oldest.start >= length) start = 0;
    } else if (oldest.start - newest.end >= length) start = newest.end; // wrapped: between them
    if (start === undefined) return undefined;
    this.regions.push({ start, end: start + length });
    return start;
  }

  /** Releases the oldest region. */
  releaseOldest(): void {
    if (this.regions.shift() === undefined) throw new Error('internal: no region to release');
  }

  /** Regions reserved and not released. */
  get live(): number {
    return this.regions.length;
  }
}
