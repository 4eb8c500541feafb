// The shared-memory areas rule snapshots are compiled into. A new
// SharedArrayBuffer per reload is freed only when every thread's garbage
// collector drops it, and a queue thread allocates too little to collect
// often: old snapshots piled up by the hundred megabytes. The main thread
// instead rewrites an area no reader holds any more, so a steady stream of
// reloads cycles through a couple of areas.
//
// Which areas are free is told in versions: a reader that acknowledged
// version w reads the area of w (and, after its next swap, newer ones) but
// never an older one again, since it takes the sets in order. An area filled
// for version v is therefore free once v is below every live reader's
// acknowledged version and below the version the main thread still hands
// out. A reader that never answers keeps its area: that one is forgotten,
// never rewritten, and a fresh one allocated in its place.

/** Room left in a new area for a rule set that grows a little. */
const HEADROOM = 1.25;

interface Area {
  sab: SharedArrayBuffer;
  /** Version of the snapshot last written into it. */
  version: number;
}

export class SharedAreaPool {
  readonly #areas: Area[] = [];
  #allocations = 0;

  /** keep: areas held at most (the one in force plus one being filled). */
  constructor(private readonly keep = 2) {}

  /** SharedArrayBuffers allocated since the pool was made. */
  get allocations(): number {
    return this.#allocations;
  }

  /** The distinct areas the pool holds now. */
  get size(): number {
    return this.#areas.length;
  }

  /**
   * An area of at least `bytes` for the snapshot of `version`.
   * oldestRead: the lowest version a reader may still read (every live
   * reader's acknowledged version and the version in force, at least).
   */
  take(bytes: number, version: number, oldestRead: number): SharedArrayBuffer {
    const free = this.#areas.filter((a) => a.version < oldestRead);
    const fits = free.find((a) => a.sab.byteLength >= bytes);
    if (fits) {
      fits.version = version;
      return fits.sab;
    }
    // Too small, or held: forget one (a held area is never written again) to keep the pool's size.
    const drop = free[0] ?? (this.#areas.length >= this.keep ? this.#areas.reduce((a, b) => (b.version < a.version ? b : a)) : null);
    if (drop) this.#areas.splice(this.#areas.indexOf(drop), 1);
    const area = { sab: new SharedArrayBuffer(Math.ceil((bytes * HEADROOM) / 8) * 8), version };
    this.#allocations++;
    this.#areas.push(area);
    return area.sab;
  }
}
