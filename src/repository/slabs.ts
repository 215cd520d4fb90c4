// Shared memory for the chunks of a backup in flight. Input is copied into slabs (SharedArrayBuffers);
// a chunk is a view into its slab that the workers read in place: no buffer per chunk, no transfer,
// no copy back. A slab is reused once the last job holding a chunk of it is done.
//
// Why: with a fresh ArrayBuffer per chunk, a 2 GiB backup allocated and freed over 4 GB of memory
// outside V8's heap; V8 answers every ~64 MB of that with a full mark-compact (over 100 of them) and
// the kernel with page faults for every fresh buffer. A few reused slabs cost neither.
//
// Terms:
//   slab      one SharedArrayBuffer; the session fills it from the front and cuts chunks out of it.
//   holder    whoever may still read a chunk of the slab: the filling session, a worker's identify or
//             seal job, the stream hash. Each holds one reference; the last release recycles the slab.
//   bound     at most `count` slabs exist; acquire() waits for a release beyond that, which bounds
//             memory whatever the input size.

/** One slab: `bytes` views all of it; references count its holders. */
export class Slab {
  readonly bytes: Buffer;
  private references = 0;

  constructor(
    private readonly pool: SlabPool,
    size: number,
  ) {
    this.bytes = Buffer.from(new SharedArrayBuffer(size));
  }

  retain(): void {
    this.references++;
  }

  release(): void {
    if (this.references <= 0) throw new Error('slab released more often than retained');
    if (--this.references === 0) this.pool.recycle(this);
  }
}

export class SlabPool {
  private readonly free: Slab[] = [];
  private readonly waiters: Array<(slab: Slab) => void> = [];
  private created = 0;

  /**
   * @param size bytes per slab: at least twice the largest chunk, so a chunk carried over into a fresh
   *   slab always leaves room to complete it
   * @param count slabs at most
   */
  constructor(
    readonly size: number,
    readonly count: number,
  ) {}

  /** A slab with one reference (the caller's); waits while every slab is held. */
  acquire(): Promise<Slab> {
    let slab = this.free.pop();
    if (!slab && this.created < this.count) {
      this.created++;
      slab = new Slab(this, this.size);
    }
    if (slab) {
      slab.retain();
      return Promise.resolve(slab);
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Called by the slab's last release. */
  recycle(slab: Slab): void {
    const waiter = this.waiters.shift();
    if (waiter) {
      slab.retain();
      waiter(slab);
    } else {
      this.free.push(slab);
    }
  }
}
