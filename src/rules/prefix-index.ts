// Finds every indexed prefix that contains an address, for one address family.
//
// A binary search over the distinct prefix lengths (Waldvogel et al.): one
// hash probe per step, so a lookup costs about log2(lengths) + 1 probes
// however many prefixes there are. "Markers" placed at shorter lengths steer
// the search towards longer prefixes, and each marker remembers the longest
// real prefix it lies in, so the search ends at the longest match. The other
// matching prefixes are that one's ancestors, chained through `parent`: the
// caller walks the chain and takes each prefix's own candidate list.
//
// IPv4 first reads a table indexed by the top 16 bits: it holds the longest
// prefix of at most 16 bits there, and which lengths above 16 occur inside
// that /16. The search then runs over those lengths only (none, for most
// addresses; one when a /16 holds only hosts). IPv6 searches all its lengths.
import { wordMask } from './address';
import { MISS, PrefixTable, PrefixTableData } from './prefix-table';

/** A distinct prefix and the id of its list of rules. */
export interface PrefixItem {
  words: readonly number[];
  bits: number;
  list: number;
}

type Words = [number, number, number, number];

function maskWords(words: readonly number[], bits: number): Words {
  return [(words[0] ?? 0) & wordMask(bits, 0), (words[1] ?? 0) & wordMask(bits, 1), (words[2] ?? 0) & wordMask(bits, 2), (words[3] ?? 0) & wordMask(bits, 3)];
}

function keyOf(w: Words, bits: number): string {
  return `${bits}/${w[0]},${w[1]},${w[2]},${w[3]}`;
}

/** No set of lengths: the search is skipped. */
const NO_SET = 0;

/** A built index as plain data (typed arrays and numbers), to be shared with other threads. */
export interface PrefixIndexData {
  table: PrefixTableData;
  /** Bits of the direct first-level table (0: none, search set 1 always). */
  topBits: number;
  /** Per top-bits value x: [2x] longest short prefix entry + 1 (0: none), [2x + 1] length set. */
  top: Int32Array;
  /** Length set s is setLengths[setStart[s] .. setStart[s + 1]), ascending. */
  setStart: Int32Array;
  setLengths: Int32Array;
  /** Masks of each length 0..maxBits, 4 words each. */
  masks: Int32Array;
  /** Per real prefix: its candidate list id. */
  entryList: Int32Array;
  /** Per real prefix: the next shorter real prefix containing it, or -1. */
  entryParent: Int32Array;
  /** Longest parent chain, counting the prefix itself. */
  maxDepth: number;
  /** Distinct prefix lengths in all. */
  lengthCount: number;
}

export class PrefixIndex {
  private readonly table: PrefixTable;
  private readonly topBits: number;
  private readonly top: Int32Array;
  private readonly setStart: Int32Array;
  private readonly setLengths: Int32Array;
  private readonly masks: Int32Array;
  readonly entryList: Int32Array;
  readonly entryParent: Int32Array;
  readonly maxDepth: number;
  readonly lengthCount: number;

  /** A view of built data; nothing is copied. */
  constructor(data: PrefixIndexData) {
    this.table = PrefixTable.view(data.table);
    this.topBits = data.topBits;
    this.top = data.top;
    this.setStart = data.setStart;
    this.setLengths = data.setLengths;
    this.masks = data.masks;
    this.entryList = data.entryList;
    this.entryParent = data.entryParent;
    this.maxDepth = data.maxDepth;
    this.lengthCount = data.lengthCount;
  }

  get empty(): boolean {
    return this.entryList.length === 0;
  }

  /** The longest real prefix containing words[base..base+3], or -1. */
  longest(words: Uint32Array, base: number): number {
    const a = words[base];
    let best = -1;
    let set = 1;
    if (this.topBits > 0) {
      const x = (a >>> (32 - this.topBits)) * 2;
      best = this.top[x] - 1;
      set = this.top[x + 1];
      if (set === NO_SET) return best;
    }
    const lengths = this.setLengths;
    const masks = this.masks;
    const table = this.table;
    const b = words[base + 1];
    const c = words[base + 2];
    const d = words[base + 3];
    let lo = this.setStart[set];
    let hi = this.setStart[set + 1] - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const len = lengths[mid];
      const o = len * 4;
      const v = table.get(len + 1, a & masks[o], b & masks[o + 1], c & masks[o + 2], d & masks[o + 3]);
      if (v === MISS) {
        hi = mid - 1;
      } else {
        best = v;
        lo = mid + 1;
      }
    }
    return best;
  }
}

/** Top bits read directly for IPv4 (a 2^16-entry table); IPv6 hashes every length. */
const V4_TOP_BITS = 16;

/** Interns ascending length lists; set 0 is the empty set. */
function lengthSets(): { id: (lengths: number[]) => number; start: number[]; flat: number[] } {
  const ids = new Map<string, number>();
  const start = [0, 0];
  const flat: number[] = [];
  const id = (lengths: number[]): number => {
    const key = lengths.join(',');
    let s = ids.get(key);
    if (s === undefined) {
      s = start.length - 1;
      flat.push(...lengths);
      start.push(flat.length);
      ids.set(key, s);
    }
    return s;
  };
  return { id, start, flat };
}

/** Builds the index over distinct prefixes (equal masked keys must be merged by the caller). */
export function buildPrefixIndex(width: 1 | 4, items: readonly PrefixItem[]): PrefixIndexData {
  const topBits = width === 1 && items.length > 0 ? V4_TOP_BITS : 0;
  const lengths = Array.from(new Set(items.map((p) => p.bits))).sort((x, y) => x - y);
  // IPv4 keys are numbers (length and masked word): no string per probe, which made most of the compile time.
  const keyAt = (words: readonly number[], bits: number): number | string => (width === 1 ? bits * 0x100000000 + (((words[0] ?? 0) & wordMask(bits, 0)) >>> 0) : keyOf(maskWords(words, bits), bits));
  const real = new Map<number | string, number>();
  items.forEach((p, e) => {
    const key = keyAt(p.words, p.bits);
    if (real.has(key)) throw new Error(`duplicate prefix ${keyOf(maskWords(p.words, p.bits), p.bits)}`);
    real.set(key, e);
  });

  // Longest real prefix of at most `bits` bits that contains `words`.
  const longestReal = (words: readonly number[], bits: number): number => {
    for (let l = lengths.length - 1; l >= 0; l--) {
      if (lengths[l] > bits) continue;
      const e = real.get(keyAt(words, lengths[l]));
      if (e !== undefined) return e;
    }
    return -1;
  };

  const entryList = new Int32Array(items.length);
  const entryParent = new Int32Array(items.length);
  items.forEach((p, e) => {
    entryList[e] = p.list;
    entryParent[e] = longestReal(p.words, p.bits - 1);
  });
  let maxDepth = 0;
  for (let e = 0; e < items.length; e++) {
    let depth = 0;
    for (let x = e; x >= 0; x = entryParent[x]) depth++;
    maxDepth = Math.max(maxDepth, depth);
  }

  // Which lengths each search runs over: per top-bits value for IPv4, all of them for IPv6.
  const sets = lengthSets();
  const topOf = (p: PrefixItem): number => ((p.words[0] ?? 0) >>> 0) >>> (32 - topBits);
  const searched = topBits > 0 ? items.filter((p) => p.bits > topBits) : items;
  const lengthsIn = new Map<number, Set<number>>();
  for (const p of searched) {
    const t = topBits > 0 ? topOf(p) : 0;
    if (!lengthsIn.has(t)) lengthsIn.set(t, new Set());
    lengthsIn.get(t)?.add(p.bits);
  }
  const setOf = new Map<number, number>();
  for (const [t, ls] of lengthsIn) setOf.set(t, sets.id(Array.from(ls).sort((x, y) => x - y)));
  if (topBits === 0) sets.id(lengths); // set 1: every length

  const top = new Int32Array(topBits > 0 ? 2 << topBits : 0);
  if (topBits > 0) {
    const short = items.map((p, e) => ({ p, e })).filter(({ p }) => p.bits <= topBits);
    short.sort((x, y) => x.p.bits - y.p.bits);
    for (const { p, e } of short) {
      const at = ((p.words[0] ?? 0) & wordMask(p.bits, 0)) >>> (32 - topBits);
      const span = 2 ** (topBits - Math.max(0, p.bits));
      for (let x = at; x < at + span; x++) top[2 * x] = e + 1;
    }
    for (const [t, s] of setOf) top[2 * t + 1] = s;
  }

  // Key -> value (the longest real prefix at or above the key): reals first, then markers.
  const slots = new Map<number | string, { tag: number; w: Words; value: number }>();
  for (const p of searched) {
    const key = keyAt(p.words, p.bits);
    slots.set(key, { tag: p.bits + 1, w: maskWords(p.words, p.bits), value: real.get(key) ?? -1 });
  }
  const flat = sets.flat;
  for (const p of searched) {
    const s = topBits > 0 ? (setOf.get(topOf(p)) ?? NO_SET) : 1;
    // Binary search over flat[start[s] .. start[s + 1]), as longest() will run it.
    let lo = sets.start[s];
    let hi = sets.start[s + 1] - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const len = flat[mid];
      if (len === p.bits) break;
      if (len > p.bits) {
        hi = mid - 1;
        continue;
      }
      const key = keyAt(p.words, len);
      if (!slots.has(key)) slots.set(key, { tag: len + 1, w: maskWords(p.words, len), value: longestReal(p.words, len) });
      lo = mid + 1;
    }
  }

  const table = new PrefixTable(width, slots.size);
  for (const s of slots.values()) table.set(s.tag, s.w[0], s.w[1], s.w[2], s.w[3], s.value);
  const maxBits = Math.max(0, ...lengths);
  const masks = new Int32Array((maxBits + 1) * 4);
  for (let l = 0; l <= maxBits; l++) for (let k = 0; k < 4; k++) masks[l * 4 + k] = wordMask(l, k);
  return { table: table.data, topBits, top, setStart: Int32Array.from(sets.start), setLengths: Int32Array.from(sets.flat), masks, entryList, entryParent, maxDepth, lengthCount: lengths.length };
}
