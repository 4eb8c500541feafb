// Candidate lists of the compiled matcher: ascending rule indexes, interned so
// equal lists are stored once, all packed into one Int32Array. List 0 is the
// empty list.

export interface PackedLists {
  /** Rule indexes of every list, back to back. */
  data: Int32Array;
  /** List n is data[start[n] .. start[n + 1]). */
  start: Int32Array;
}

export class ListBuilder {
  private readonly data: number[] = [];
  private readonly start: number[] = [0];
  private readonly ids = new Map<string, number>();

  constructor() {
    this.intern([]);
  }

  /** Id of the list holding exactly these ascending, distinct rule indexes. */
  intern(sorted: readonly number[]): number {
    const key = sorted.join(',');
    const known = this.ids.get(key);
    if (known !== undefined) return known;
    const id = this.start.length - 1;
    for (const r of sorted) this.data.push(r);
    this.start.push(this.data.length);
    this.ids.set(key, id);
    return id;
  }

  get count(): number {
    return this.start.length - 1;
  }

  finish(): PackedLists {
    return { data: Int32Array.from(this.data), start: Int32Array.from(this.start) };
  }
}

/** Ascending union of ascending lists, without duplicates. */
export function unionSorted(a: readonly number[], b: readonly number[]): number[] {
  const out: number[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const v = j >= b.length || (i < a.length && a[i] <= b[j]) ? a[i++] : b[j++];
    if (out.length === 0 || out[out.length - 1] !== v) out.push(v);
  }
  return out;
}

/** First position in data[lo..hi) holding a value >= v (hi if none). */
export function lowerBound(data: Int32Array, lo: number, hi: number, v: number): number {
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (data[mid] < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
