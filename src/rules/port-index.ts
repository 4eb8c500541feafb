// Port -> candidate list, for one port field and one protocol. The port space
// is cut into elementary intervals at every range edge; each interval gets the
// ascending list of rules covering it, and a 65536-entry table maps a port to
// its interval's list in one read.
import { PortRange } from './types';

export const PORT_SPACE = 65536;

export interface PortRule {
  rule: number;
  ranges: readonly PortRange[];
}

/** Ranges clipped to the port space; empty ones dropped. */
function clipped(ranges: readonly PortRange[]): PortRange[] {
  const out: PortRange[] = [];
  for (const r of ranges) {
    const lo = Math.max(0, Math.ceil(r.lo));
    const hi = Math.min(PORT_SPACE - 1, Math.floor(r.hi));
    if (lo <= hi) out.push({ lo, hi });
  }
  return out;
}

/** Interval starts, ascending, beginning at 0 and ending with the PORT_SPACE sentinel. */
function edges(rules: readonly PortRule[]): number[] {
  const set = new Set<number>([0, PORT_SPACE]);
  for (const p of rules) for (const r of clipped(p.ranges)) set.add(r.lo).add(r.hi + 1);
  return Array.from(set).sort((a, b) => a - b);
}

function edgeIndex(e: readonly number[], v: number): number {
  let lo = 0;
  let hi = e.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (e[mid] < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** How many interval lists a rule would sit in, given these edges. */
function intervalsCovered(e: readonly number[], ranges: readonly PortRange[]): number {
  let n = 0;
  for (const r of clipped(ranges)) n += edgeIndex(e, r.hi + 1) - edgeIndex(e, r.lo);
  return n;
}

/**
 * Splits rules into those the index keeps and those it gives up on, so that
 * the lists hold at most `budget` entries in all. Wide, overlapping ranges
 * repeat a rule in many intervals; the rules repeated most go first. The
 * count is taken with every rule's edges, an upper bound once some are gone.
 */
export function fitBudget(rules: readonly PortRule[], budget: number): { kept: PortRule[]; demoted: PortRule[] } {
  const e = edges(rules);
  const cost = rules.map((p) => ({ p, n: intervalsCovered(e, p.ranges) }));
  let total = cost.reduce((s, c) => s + c.n, 0);
  const demoted = new Set<PortRule>();
  if (total > budget) {
    const widest = [...cost].sort((a, b) => b.n - a.n || b.p.rule - a.p.rule);
    for (const c of widest) {
      if (total <= budget) break;
      demoted.add(c.p);
      total -= c.n;
    }
  }
  return { kept: rules.filter((p) => !demoted.has(p)), demoted: rules.filter((p) => demoted.has(p)) };
}

/**
 * Fills table[base .. base + PORT_SPACE) with list ids; `intern` turns an
 * ascending rule list into an id. Rules must come in ascending rule order.
 */
export function fillPortTable(rules: readonly PortRule[], intern: (sorted: readonly number[]) => number, table: Int32Array, base: number): void {
  const e = edges(rules);
  const members: number[][] = Array.from({ length: e.length - 1 }, () => []);
  for (const p of rules) {
    for (const r of clipped(p.ranges)) {
      const to = edgeIndex(e, r.hi + 1);
      for (let j = edgeIndex(e, r.lo); j < to; j++) {
        const m = members[j];
        // A rule's own ranges may overlap; rules arrive ascending, so a repeat is the last entry.
        if (m.length === 0 || m[m.length - 1] !== p.rule) m.push(p.rule);
      }
    }
  }
  for (let j = 0; j < members.length; j++) table.fill(intern(members[j]), base + e[j], base + e[j + 1]);
}
