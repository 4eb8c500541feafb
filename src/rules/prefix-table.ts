// Open-addressing hash table from (tag, masked address words) to an int, laid
// out in one Int32Array so a lookup allocates nothing and IPv6 keys never
// become strings. Filled once when a rule set is compiled; read per packet.
//
// Slot layout: [tag, value, w0, w1, w2, w3, -, -] (width 4, IPv6) or
// [tag, value, w0, -] (width 1, IPv4). Tag 0 marks an empty slot.

/** get() result for a key that is not in the table. */
export const MISS = -2;

/** Keys are 32-bit words; callers pass them as int32 (x | 0, or x & mask). */
function hashKey(tag: number, w0: number, w1: number, w2: number, w3: number): number {
  let h = Math.imul(tag, 0x9e3779b1);
  h = Math.imul(h ^ w0, 0x6b43a9b5);
  h ^= h >>> 15;
  h = Math.imul(h ^ w1, 0x3c6ef373);
  h ^= h >>> 13;
  h = Math.imul(h ^ w2, 0xa54ff53b);
  h ^= h >>> 16;
  h = Math.imul(h ^ w3, 0x1b873593);
  h ^= h >>> 15;
  return h;
}

function hashKey1(tag: number, w0: number): number {
  let h = Math.imul(tag, 0x9e3779b1);
  h = Math.imul(h ^ w0, 0x6b43a9b5);
  h ^= h >>> 15;
  h = Math.imul(h, 0x3c6ef373);
  h ^= h >>> 13;
  return h;
}

/** A filled table as plain data, to be shared with other threads and viewed there. */
export interface PrefixTableData {
  width: 1 | 4;
  slots: Int32Array;
  used: number;
}

export class PrefixTable {
  private readonly slots: Int32Array;
  private readonly stride: number;
  private readonly mask: number;
  private used = 0;

  /** width: significant words per key (1 for IPv4, 4 for IPv6); `from`: the data of a filled table to read. */
  constructor(
    readonly width: 1 | 4,
    expected: number,
    from?: PrefixTableData,
  ) {
    this.stride = width === 1 ? 4 : 8;
    if (from) {
      this.slots = from.slots;
      this.used = from.used;
    } else {
      let capacity = 8;
      // Load factor at most 1/2 keeps probe runs short and guarantees an empty slot.
      while (capacity < expected * 2) capacity *= 2;
      this.slots = new Int32Array(capacity * this.stride);
    }
    this.mask = this.slots.length / this.stride - 1;
  }

  /** A table reading the same slots (no copy). */
  static view(data: PrefixTableData): PrefixTable {
    return new PrefixTable(data.width, 0, data);
  }

  get data(): PrefixTableData {
    return { width: this.width, slots: this.slots, used: this.used };
  }

  get size(): number {
    return this.used;
  }

  /** Inserts or overwrites. Compile time only; tag must be >= 1. */
  set(tag: number, w0: number, w1: number, w2: number, w3: number, value: number): void {
    if (tag < 1) throw new RangeError('tag must be >= 1');
    if ((this.used + 1) * 2 > this.mask + 1) throw new RangeError('prefix table is full');
    const at = this.find(tag, w0 | 0, w1 | 0, w2 | 0, w3 | 0);
    const s = this.slots;
    if (s[at] === 0) {
      s[at] = tag;
      s[at + 2] = w0;
      if (this.width === 4) {
        s[at + 3] = w1;
        s[at + 4] = w2;
        s[at + 5] = w3;
      }
      this.used++;
    }
    s[at + 1] = value;
  }

  /** The value stored under the key, or MISS. */
  get(tag: number, w0: number, w1: number, w2: number, w3: number): number {
    const at = this.find(tag, w0, w1, w2, w3);
    return this.slots[at] === 0 ? MISS : this.slots[at + 1];
  }

  /** Offset of the key's slot, or of the empty slot where it would go. */
  private find(tag: number, w0: number, w1: number, w2: number, w3: number): number {
    const s = this.slots;
    const stride = this.stride;
    const mask = this.mask;
    const wide = this.width === 4;
    let i = (wide ? hashKey(tag, w0, w1, w2, w3) : hashKey1(tag, w0)) & mask;
    for (;;) {
      const at = i * stride;
      const t = s[at];
      if (t === 0) return at;
      if (t === tag && s[at + 2] === w0 && (!wide || (s[at + 3] === w1 && s[at + 4] === w2 && s[at + 5] === w3))) return at;
      i = (i + 1) & mask;
    }
  }
}
