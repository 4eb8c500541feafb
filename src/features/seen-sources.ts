// Which sources were seen before, and since when: kohmar-firewall's
// "packets from sources not seen before". A fixed open-addressing table of
// 32-bit address hashes; when a neighbourhood is full, the entry seen least
// recently gives way, so memory stays fixed under a spoofed-source flood.
// A hash collision can make a new source look known, which only lowers the
// feature slightly.

const MAX_PROBE = 8;

export class SeenSources {
  private readonly mask: number;
  private readonly hashes: Uint32Array;
  private readonly firstSeen: Float64Array;
  private readonly lastSeen: Float64Array;

  constructor(capacity = 65536) {
    let c = 1024;
    while (c < capacity) c <<= 1;
    this.mask = c - 1;
    this.hashes = new Uint32Array(c);
    this.firstSeen = new Float64Array(c);
    this.lastSeen = new Float64Array(c);
  }

  /** Seconds since the source with this hash was first seen (0 if new now); records it. */
  touch(hash: number, now: number): number {
    const h = hash === 0 ? 1 : hash; // 0 marks a free slot
    let victim = -1;
    for (let p = 0; p < MAX_PROBE; p++) {
      const s = (h + Math.imul(p, 0x9e3779b1 | 1)) & this.mask;
      const k = this.hashes[s];
      if (k === h) {
        this.lastSeen[s] = now;
        return now - this.firstSeen[s];
      }
      if (k === 0) {
        victim = s;
        break;
      }
      if (victim < 0 || this.lastSeen[s] < this.lastSeen[victim]) victim = s;
    }
    this.hashes[victim] = h;
    this.firstSeen[victim] = now;
    this.lastSeen[victim] = now;
    return 0;
  }
}
