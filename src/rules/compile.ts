// A matcher whose cost per packet does not grow with the number of rules.
//
// Each rule is filed under one "home" index, the field that narrows it most:
// its source prefixes, its destination prefixes, its destination or source
// ports, else its protocol (rules with no protocol go to every protocol's
// list). A packet looks up each index once, which yields a few ascending
// candidate lists; they are merged in rule order from `from`, and each
// candidate is checked field by field (rowMatches, the linear matcher's test
// read from columns), so the answer is always the linear matcher's: the
// indexes only decide which rules are tried.
//
// compileMatcher does the work once per rule set, into plain typed arrays;
// CompiledMatcher is a view of them, cheap enough to build on every thread.
import { FragBits, L3Bits } from '../packet/decoded';
import { wordMask } from './address';
import { ListBuilder, lowerBound, unionSorted } from './candidate-lists';
import { hasPorts, Matcher, MatchInput, ResolvedRule } from './linear';
import { fillPortTable, fitBudget, PORT_SPACE, PortRule } from './port-index';
import { buildPrefixIndex, PrefixIndex, PrefixIndexData, PrefixItem } from './prefix-index';
import { buildRuleTable, RuleTable, rowMatches } from './rule-table';
import { AddressMatch, PortRange } from './types';

export interface CompileOptions {
  /**
   * Most entries all port candidate lists of one port field may hold (the
   * count is per rule and interval, before equal lists are shared). Rules
   * beyond it, widest ranges first, fall back to the protocol lists.
   */
  portEntryBudget?: number;
}

/** 2^20 entries: 4 MiB of Int32 per port field at worst. */
export const DEFAULT_PORT_ENTRY_BUDGET = 1 << 20;

/** Port fields covering more ports than this narrow no better than the protocol. */
export const MAX_INDEXED_PORTS = 4096;

export type Home = 'source' | 'destination' | 'dport' | 'sport' | 'protocol';

export interface CompileStats {
  rules: number;
  /** Rules per home index (after budget fallback). */
  homes: Record<Home, number>;
  /** Port rules moved to the protocol lists by the budget. */
  demoted: number;
  lists: number;
  listEntries: number;
  /** Distinct prefix lengths: source v4/v6, destination v4/v6. */
  prefixLengths: [number, number, number, number];
  /** Most candidate lists a packet can gather. */
  maxLists: number;
  compileMs: number;
}

const HOME_ORDER: readonly Home[] = ['source', 'destination', 'dport', 'sport'];

/** How much an address field narrows a rule, or -1 if it cannot be indexed. */
function addressScore(a: AddressMatch | null): number {
  if (a === null || a.negate || a.prefixes.length === 0) return -1;
  // A v6 /64 is a site, roughly what a v4 /32 is to a blocklist.
  let score = Infinity;
  for (const p of a.prefixes) score = Math.min(score, p.family === 4 ? p.bits : Math.min(32, p.bits >> 1));
  return Math.max(0, score);
}

function portsCovered(ranges: readonly PortRange[]): number {
  let n = 0;
  for (const r of ranges) n += Math.max(0, Math.min(r.hi, PORT_SPACE - 1) - Math.max(r.lo, 0) + 1);
  return n;
}

function portScore(ranges: readonly PortRange[] | null, protocol: number | null): number {
  if (ranges === null || ranges.length === 0) return -1;
  if (protocol !== null && !hasPorts(protocol)) return -1;
  const n = portsCovered(ranges);
  if (n === 0 || n > MAX_INDEXED_PORTS) return -1;
  // One port narrows about as much as a v4 /16 does; a range less.
  return 16 - Math.log2(n);
}

/** The index a rule is filed under; ties go to the earlier in HOME_ORDER. */
export function chooseHome(r: ResolvedRule): Home {
  const scores = [addressScore(r.source), addressScore(r.destination), portScore(r.dport, r.protocol), portScore(r.sport, r.protocol)];
  let best = 0;
  for (let k = 1; k < scores.length; k++) if (scores[k] > scores[best]) best = k;
  return scores[best] < 0 ? 'protocol' : HOME_ORDER[best];
}

const PORT_PROTOCOLS = [6, 17, 132, 136].filter((p) => hasPorts(p));

/** Prefix indexes for one address field, v4 and v6. */
function buildAddressIndexes(rules: readonly ResolvedRule[], members: readonly number[], pick: (r: ResolvedRule) => AddressMatch | null, lists: ListBuilder): [PrefixIndexData, PrefixIndexData] {
  const byKey = [new Map<string, { words: number[]; bits: number; rules: number[] }>(), new Map<string, { words: number[]; bits: number; rules: number[] }>()];
  for (const ri of members) {
    for (const p of pick(rules[ri])?.prefixes ?? []) {
      const map = byKey[p.family === 4 ? 0 : 1];
      // Odd lengths and host bits are cleaned up to a prefix that contains
      // the original, so it still yields every candidate the original could.
      const bits = Math.min(p.family === 4 ? 32 : 128, Math.max(0, Math.floor(p.bits) || 0));
      const words = [0, 1, 2, 3].map((k) => (p.words[k] ?? 0) & wordMask(bits, k));
      const key = `${bits}/${words.join(',')}`;
      let g = map.get(key);
      if (!g) map.set(key, (g = { words, bits, rules: [] }));
      if (g.rules[g.rules.length - 1] !== ri) g.rules.push(ri);
    }
  }
  const build = (width: 1 | 4, map: Map<string, { words: number[]; bits: number; rules: number[] }>): PrefixIndexData => {
    const items: PrefixItem[] = Array.from(map.values(), (g) => ({ words: g.words, bits: g.bits, list: lists.intern(g.rules) }));
    return buildPrefixIndex(width, items);
  };
  return [build(1, byKey[0]), build(4, byKey[1])];
}

/** One Int32Array of port tables; base[proto] is a table's offset, or -1. */
function buildPortIndex(rules: readonly PortRule[], protocolOf: (rule: number) => number | null, lists: ListBuilder): { table: Int32Array; base: Int32Array } {
  const base = new Int32Array(256).fill(-1);
  const used = PORT_PROTOCOLS.filter((proto) => rules.some((p) => protocolOf(p.rule) === null || protocolOf(p.rule) === proto));
  const table = new Int32Array(used.length * PORT_SPACE);
  used.forEach((proto, t) => {
    base[proto] = t * PORT_SPACE;
    const mine = rules.filter((p) => protocolOf(p.rule) === null || protocolOf(p.rule) === proto);
    fillPortTable(mine, (ids) => lists.intern(ids), table, t * PORT_SPACE);
  });
  return { table, base };
}

/**
 * A compiled rule set as plain data: typed arrays and numbers only, so it
 * can be moved into shared memory and read by every queue thread without a
 * copy (see shared-arrays.ts). CompiledMatcher is the view that matches.
 */
export interface MatcherData {
  /** The rules themselves, for checking candidates. */
  table: RuleTable;
  /** Candidate lists (candidate-lists.ts): list n is listData[listStart[n] .. listStart[n + 1]). */
  listData: Int32Array;
  listStart: Int32Array;
  src4: PrefixIndexData;
  src6: PrefixIndexData;
  dst4: PrefixIndexData;
  dst6: PrefixIndexData;
  dportTable: Int32Array;
  dportBase: Int32Array;
  sportTable: Int32Array;
  sportBase: Int32Array;
  /** Per IP protocol: list of its protocol-homed rules plus the wildcard ones. */
  protoList: Int32Array;
  stats: CompileStats;
}

/** Builds the indexes of a rule set; the slow part, done once per rule set on the main thread. */
export function compileMatcher(rules: readonly ResolvedRule[], options: CompileOptions = {}): MatcherData {
  const t0 = performance.now();
  const budget = options.portEntryBudget ?? DEFAULT_PORT_ENTRY_BUDGET;
  const lists = new ListBuilder();
  const homes: Record<Home, number[]> = { source: [], destination: [], dport: [], sport: [], protocol: [] };
  // A disabled rule is filed nowhere, so it is never even a candidate.
  rules.forEach((r, i) => {
    if (r.enabled) homes[chooseHome(r)].push(i);
  });

  const [src4, src6] = buildAddressIndexes(rules, homes.source, (r) => r.source, lists);
  const [dst4, dst6] = buildAddressIndexes(rules, homes.destination, (r) => r.destination, lists);

  const protocolOf = (i: number): number | null => rules[i].protocol;
  const dport = fitBudget(homes.dport.map((rule) => ({ rule, ranges: rules[rule].dport ?? [] })), budget);
  const sport = fitBudget(homes.sport.map((rule) => ({ rule, ranges: rules[rule].sport ?? [] })), budget);
  const dportIndex = buildPortIndex(dport.kept, protocolOf, lists);
  const sportIndex = buildPortIndex(sport.kept, protocolOf, lists);
  const demoted = [...dport.demoted, ...sport.demoted].map((p) => p.rule);
  const protoHomed = unionSorted(homes.protocol, demoted.sort((a, b) => a - b));

  const wildcard = protoHomed.filter((i) => rules[i].protocol === null);
  const byProto = new Map<number, number[]>();
  for (const i of protoHomed) {
    const p = rules[i].protocol;
    if (p === null) continue;
    // Protocol numbers outside 0..255 can never equal a packet's.
    if (!Number.isInteger(p) || p < 0 || p > 255) continue;
    if (!byProto.has(p)) byProto.set(p, []);
    byProto.get(p)?.push(i);
  }
  const wildcardList = lists.intern(wildcard);
  const protoList = new Int32Array(256).fill(wildcardList);
  for (const [p, own] of byProto) protoList[p] = lists.intern(unionSorted(own, wildcard));

  const packed = lists.finish();
  const maxLists = Math.max(src4.maxDepth, src6.maxDepth) + Math.max(dst4.maxDepth, dst6.maxDepth) + 3;
  const table = buildRuleTable(rules);
  return {
    table,
    listData: packed.data,
    listStart: packed.start,
    src4,
    src6,
    dst4,
    dst6,
    dportTable: dportIndex.table,
    dportBase: dportIndex.base,
    sportTable: sportIndex.table,
    sportBase: sportIndex.base,
    protoList,
    stats: {
      rules: rules.length,
      homes: {
        source: homes.source.length,
        destination: homes.destination.length,
        dport: dport.kept.length,
        sport: sport.kept.length,
        protocol: protoHomed.length,
      },
      demoted: demoted.length,
      lists: lists.count,
      listEntries: packed.data.length,
      prefixLengths: [src4.lengthCount, src6.lengthCount, dst4.lengthCount, dst6.lengthCount],
      maxLists,
      compileMs: performance.now() - t0,
    },
  };
}

export class CompiledMatcher implements Matcher {
  readonly stats: CompileStats;
  private readonly table: RuleTable;
  private readonly listData: Int32Array;
  private readonly listStart: Int32Array;
  private readonly src4: PrefixIndex;
  private readonly src6: PrefixIndex;
  private readonly dst4: PrefixIndex;
  private readonly dst6: PrefixIndex;
  private readonly dportTable: Int32Array;
  private readonly dportBase: Int32Array;
  private readonly sportTable: Int32Array;
  private readonly sportBase: Int32Array;
  private readonly protoList: Int32Array;
  /** Merge cursors (positions in listData) and list ends, sized for the worst packet. */
  private readonly cur: Int32Array;
  private readonly end: Int32Array;

  /** A view of compiled data: a few small objects, however many rules (the swap a queue thread makes). */
  constructor(data: MatcherData) {
    this.stats = data.stats;
    this.table = data.table;
    this.listData = data.listData;
    this.listStart = data.listStart;
    this.src4 = new PrefixIndex(data.src4);
    this.src6 = new PrefixIndex(data.src6);
    this.dst4 = new PrefixIndex(data.dst4);
    this.dst6 = new PrefixIndex(data.dst6);
    this.dportTable = data.dportTable;
    this.dportBase = data.dportBase;
    this.sportTable = data.sportTable;
    this.sportBase = data.sportBase;
    this.protoList = data.protoList;
    this.cur = new Int32Array(data.stats.maxLists);
    this.end = new Int32Array(data.stats.maxLists);
  }

  match(m: MatchInput, i: number, from: number): number {
    const d = m.d;
    if (!(d.l3[i] & L3Bits.Addresses)) return -1;
    if (from < 0) from = 0;
    const base = i * 4;
    const v6 = d.family[i] === 6;
    let k = this.addChain(v6 ? this.src6 : this.src4, d.src, base, from, 0);
    k = this.addChain(v6 ? this.dst6 : this.dst4, d.dst, base, from, k);
    const proto = d.proto[i];
    // Only first fragments carry ports; the port tables exist only for port protocols.
    if ((d.frag[i] & FragBits.NonFirst) === 0) {
      const db = this.dportBase[proto];
      if (db >= 0) k = this.addList(this.dportTable[db + d.dport[i]], from, k);
      const sb = this.sportBase[proto];
      if (sb >= 0) k = this.addList(this.sportTable[sb + d.sport[i]], from, k);
    }
    k = this.addList(this.protoList[proto], from, k);
    return this.merge(m, i, k);
  }

  /** Adds the lists of the longest matching prefix and of its ancestors. */
  private addChain(index: PrefixIndex, words: Uint32Array, base: number, from: number, k: number): number {
    if (index.empty) return k;
    const lists = index.entryList;
    const parent = index.entryParent;
    for (let e = index.longest(words, base); e >= 0; e = parent[e]) k = this.addList(lists[e], from, k);
    return k;
  }

  /** Adds list `id` from its first rule >= from, if any is left. */
  private addList(id: number, from: number, k: number): number {
    const start = this.listStart;
    let s = start[id];
    const e = start[id + 1];
    if (from > 0 && s < e) s = lowerBound(this.listData, s, e, from);
    if (s === e) return k;
    this.cur[k] = s;
    this.end[k] = e;
    return k + 1;
  }

  /** k-way merge of the gathered lists in rule order; the first verified rule wins. */
  private merge(m: MatchInput, i: number, k: number): number {
    const data = this.listData;
    const cur = this.cur;
    const end = this.end;
    const table = this.table;
    while (k > 0) {
      let best = data[cur[0]];
      for (let j = 1; j < k; j++) {
        const v = data[cur[j]];
        if (v < best) best = v;
      }
      if (rowMatches(table, best, m, i)) return best;
      // Advance every list at `best` (a rule can sit in several); drop the finished ones.
      for (let j = 0; j < k; ) {
        if (data[cur[j]] === best) {
          const next = cur[j] + 1;
          if (next === end[j]) {
            k--;
            cur[j] = cur[k];
            end[j] = end[k];
            continue;
          }
          cur[j] = next;
        }
        j++;
      }
    }
    return -1;
  }
}
