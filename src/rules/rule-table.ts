// Resolved rules as rows of one Float64Array, with their prefixes and port
// ranges in two pools: the form the compiled matcher checks candidates in.
// Typed arrays can live in shared memory, so a queue thread gets a rule set
// without copying or rebuilding an object per rule. Float64 keeps every
// field exactly the number the rule held, so rowMatches is firstMismatch
// (linear.ts) read from columns; the property tests hold the two together.
import { DecodeStatus, FragBits, L3Bits, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP } from '../packet/decoded';
import { wordMask } from './address';
import { hasPorts, MatchInput, ResolvedRule } from './linear';
import { protocolUnknown } from './could-match';
import { AddressMatch, PortRange } from './types';

export interface RuleTable {
  count: number;
  /** Row r is rows[r * ROW .. (r + 1) * ROW), fields F_*. */
  rows: Float64Array;
  /** Per prefix: family, 4 word masks, 4 words (PREFIX_STRIDE). */
  prefixes: Float64Array;
  /** Per range: lo, hi. */
  ranges: Float64Array;
}

const F_FLAGS = 0;
const F_PROTO = 1;
const F_HOOK = 2;
const F_FAMILY = 3;
const F_IN = 4;
const F_OUT = 5;
const F_STATE = 6;
const F_TCP_MASK = 7;
const F_TCP_SET = 8;
const F_ICMP_TYPE = 9;
const F_ICMP_CODE = 10;
/** Start and end (in prefixes or ranges) of each list. */
const F_SRC = 11;
const F_SRC_END = 12; // always F_SRC + 1, as for the others
const F_DST = 13;
const F_DST_END = 14;
const F_SPORT = 15;
const F_SPORT_END = 16;
const F_DPORT = 17;
const F_DPORT_END = 18;
const ROW = 19;
const PREFIX_STRIDE = 9;

// F_FLAGS bits: which nullable fields the rule sets.
const HAS_PROTO = 1;
const HAS_HOOK = 2;
const HAS_FAMILY = 4;
const HAS_IN = 8;
const HAS_OUT = 16;
const HAS_STATE = 32;
const HAS_TCP = 64;
const HAS_ICMP_TYPE = 128;
const HAS_ICMP_CODE = 256;
const HAS_SRC = 512;
const SRC_NEG = 1024;
const HAS_DST = 2048;
const DST_NEG = 4096;
const HAS_SPORT = 8192;
const HAS_DPORT = 16384;
/** Fields a packet with a broken transport header can never satisfy. */
const NEEDS_TRANSPORT = HAS_SPORT | HAS_DPORT | HAS_TCP | HAS_ICMP_TYPE | HAS_ICMP_CODE | HAS_STATE;

export function buildRuleTable(rules: readonly ResolvedRule[]): RuleTable {
  const rows = new Float64Array(rules.length * ROW);
  const prefixes: number[] = [];
  const ranges: number[] = [];
  // Each list goes to its pool; its start and end are written into the row at `at` and at + 1.
  const addresses = (a: AddressMatch | null, o: number): void => {
    rows[o] = prefixes.length / PREFIX_STRIDE;
    for (const p of a?.prefixes ?? []) prefixes.push(p.family, wordMask(p.bits, 0), wordMask(p.bits, 1), wordMask(p.bits, 2), wordMask(p.bits, 3), p.words[0], p.words[1], p.words[2], p.words[3]);
    rows[o + 1] = prefixes.length / PREFIX_STRIDE;
  };
  const ports = (list: readonly PortRange[] | null, o: number): void => {
    rows[o] = ranges.length / 2;
    for (const x of list ?? []) ranges.push(x.lo, x.hi);
    rows[o + 1] = ranges.length / 2;
  };
  rules.forEach((r, k) => {
    const o = k * ROW;
    let flags = 0;
    if (r.protocol !== null) flags |= HAS_PROTO;
    if (r.hook !== null) flags |= HAS_HOOK;
    if (r.family !== null) flags |= HAS_FAMILY;
    if (r.in !== null) flags |= HAS_IN;
    if (r.out !== null) flags |= HAS_OUT;
    if (r.state !== null) flags |= HAS_STATE;
    if (r.tcpFlags !== null) flags |= HAS_TCP;
    if (r.icmpType !== null) flags |= HAS_ICMP_TYPE;
    if (r.icmpCode !== null) flags |= HAS_ICMP_CODE;
    if (r.source !== null) flags |= HAS_SRC | (r.source.negate ? SRC_NEG : 0);
    if (r.destination !== null) flags |= HAS_DST | (r.destination.negate ? DST_NEG : 0);
    if (r.sport !== null) flags |= HAS_SPORT;
    if (r.dport !== null) flags |= HAS_DPORT;
    rows[o + F_FLAGS] = flags;
    rows[o + F_PROTO] = r.protocol ?? 0;
    rows[o + F_HOOK] = r.hook ?? 0;
    rows[o + F_FAMILY] = r.family ?? 0;
    rows[o + F_IN] = r.inIndex;
    rows[o + F_OUT] = r.outIndex;
    rows[o + F_STATE] = r.state ?? 0;
    rows[o + F_TCP_MASK] = r.tcpFlags?.mask ?? 0;
    rows[o + F_TCP_SET] = r.tcpFlags?.set ?? 0;
    rows[o + F_ICMP_TYPE] = r.icmpType ?? 0;
    rows[o + F_ICMP_CODE] = r.icmpCode ?? 0;
    addresses(r.source, o + F_SRC);
    addresses(r.destination, o + F_DST);
    ports(r.sport, o + F_SPORT);
    ports(r.dport, o + F_DPORT);
  });
  return { count: rules.length, rows, prefixes: Float64Array.from(prefixes), ranges: Float64Array.from(ranges) };
}

/** addressMatches (linear.ts) over prefixes[from..to). */
function addressIn(t: RuleTable, from: number, to: number, negate: boolean, family: number, words: Uint32Array, base: number): boolean {
  const p = t.prefixes;
  let hit = false;
  let sameFamily = false;
  for (let x = from; x < to; x++) {
    const o = x * PREFIX_STRIDE;
    if (p[o] !== family) continue;
    sameFamily = true;
    let inside = true;
    for (let k = 0; k < 4; k++) {
      const m = p[o + 1 + k];
      if (m === 0) break;
      if (((words[base + k] & m) >>> 0) !== p[o + 5 + k]) {
        inside = false;
        break;
      }
    }
    if (inside) {
      hit = true;
      break;
    }
  }
  return negate ? sameFamily && !hit : hit;
}

function portIn(t: RuleTable, from: number, to: number, port: number): boolean {
  const g = t.ranges;
  for (let x = from; x < to; x++) if (port >= g[2 * x] && port <= g[2 * x + 1]) return true;
  return false;
}

/** Whether row r matches entry i: firstMismatch(rule, m, i) === null. */
export function rowMatches(t: RuleTable, r: number, m: MatchInput, i: number): boolean {
  const w = t.rows;
  const o = r * ROW;
  const flags = w[o + F_FLAGS];
  const d = m.d;
  const proto = d.proto[i];
  const fam = d.family[i];
  if (d.status[i] !== DecodeStatus.Ok) {
    const l3 = d.l3[i];
    if (!(l3 & L3Bits.Addresses)) return false;
    if (flags & HAS_PROTO && !(l3 & L3Bits.Protocol)) return false;
    if (flags & NEEDS_TRANSPORT) return false;
  }
  if (flags & HAS_FAMILY && w[o + F_FAMILY] !== fam) return false;
  if (flags & HAS_PROTO && w[o + F_PROTO] !== proto) return false;
  if (flags & HAS_HOOK && w[o + F_HOOK] !== m.hook[i]) return false;
  if (flags & HAS_IN && w[o + F_IN] !== m.inIfindex[i]) return false;
  if (flags & HAS_OUT && w[o + F_OUT] !== m.outIfindex[i]) return false;
  if (flags & HAS_SRC && !addressIn(t, w[o + F_SRC], w[o + F_SRC_END], (flags & SRC_NEG) !== 0, fam, d.src, i * 4)) return false;
  if (flags & HAS_DST && !addressIn(t, w[o + F_DST], w[o + F_DST_END], (flags & DST_NEG) !== 0, fam, d.dst, i * 4)) return false;
  if (flags & (HAS_SPORT | HAS_DPORT)) {
    if (!hasPorts(proto) || d.frag[i] & FragBits.NonFirst) return false;
    if (flags & HAS_SPORT && !portIn(t, w[o + F_SPORT], w[o + F_SPORT_END], d.sport[i])) return false;
    if (flags & HAS_DPORT && !portIn(t, w[o + F_DPORT], w[o + F_DPORT_END], d.dport[i])) return false;
  }
  if (flags & HAS_TCP) {
    if (proto !== PROTO_TCP || d.frag[i] & FragBits.NonFirst) return false;
    if ((d.tcpFlags[i] & w[o + F_TCP_MASK]) !== w[o + F_TCP_SET]) return false;
  }
  if (flags & (HAS_ICMP_TYPE | HAS_ICMP_CODE)) {
    if ((proto !== PROTO_ICMP && proto !== PROTO_ICMPV6) || d.icmpType[i] === 0xffff) return false;
    if (flags & HAS_ICMP_TYPE && w[o + F_ICMP_TYPE] !== d.icmpType[i]) return false;
    if (flags & HAS_ICMP_CODE && w[o + F_ICMP_CODE] !== d.icmpCode[i]) return false;
  }
  if (flags & HAS_STATE && (w[o + F_STATE] & m.flowState[i]) === 0) return false;
  return true;
}

/** couldMatch (could-match.ts) of row r: whether it could match a packet whose transport header is hidden. */
export function rowCouldMatch(t: RuleTable, r: number, m: MatchInput, i: number): boolean {
  const w = t.rows;
  const o = r * ROW;
  const flags = w[o + F_FLAGS];
  if (flags & HAS_HOOK && w[o + F_HOOK] !== m.hook[i]) return false;
  if (flags & HAS_IN && w[o + F_IN] !== m.inIfindex[i]) return false;
  if (flags & HAS_OUT && w[o + F_OUT] !== m.outIfindex[i]) return false;
  const d = m.d;
  if (d.l3[i] & L3Bits.Addresses) {
    const fam = d.family[i];
    if (flags & HAS_FAMILY && w[o + F_FAMILY] !== fam) return false;
    if (flags & HAS_SRC && !addressIn(t, w[o + F_SRC], w[o + F_SRC_END], (flags & SRC_NEG) !== 0, fam, d.src, i * 4)) return false;
    if (flags & HAS_DST && !addressIn(t, w[o + F_DST], w[o + F_DST_END], (flags & DST_NEG) !== 0, fam, d.dst, i * 4)) return false;
  }
  if (protocolUnknown(m, i)) return true;
  const proto = d.proto[i];
  if (flags & HAS_PROTO && w[o + F_PROTO] !== proto) return false;
  if (flags & (HAS_SPORT | HAS_DPORT) && !hasPorts(proto)) return false;
  if (flags & HAS_TCP && proto !== PROTO_TCP) return false;
  if (flags & (HAS_ICMP_TYPE | HAS_ICMP_CODE) && proto !== PROTO_ICMP && proto !== PROTO_ICMPV6) return false;
  return true;
}
