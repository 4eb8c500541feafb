// Seeded generators of realistic rule sets and traffic, shared by the rules
// micro-benchmark, the inline benchmark's rule file and the matcher tests.
// Same seed, same output.
//
// Rule sets look like a gateway blocklist: a handful of service rules
// ("drop tcp dport 23", odd TCP flags, ICMP timestamp) and then host and
// network entries, clustered in a pool of bad /16s (v4) and /32s (v6) the
// way real feeds are, some also narrowed to a protocol and port. Traffic is
// mixed TCP/UDP/ICMP over v4 and v6; a chosen share of packets is aimed at a
// rule's prefix, the rest goes to random addresses.
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_SYN } from '../../src/packet/decoded';
import { PacketSpec } from '../../src/packet/build';
import { wordMask } from '../../src/rules/address';
import { ResolvedRule, resolvedRule } from '../../src/rules/linear';
import { ruleToJson } from '../../src/rules/to-json';
import { anyRule, Prefix, Rule, RuleAction, RuleSet } from '../../src/rules/types';

/** A rule set as a native rule file's JSON, to write generated sets to disk. */
export function ruleSetToJson(rs: Pick<RuleSet, 'lock' | 'default' | 'rules'>): Record<string, unknown> {
  return { lock: rs.lock, default: rs.default, rules: rs.rules.map(ruleToJson) };
}

/** xorshift32: tiny, fast, and good enough to draw test data. */
export class Rng {
  private s: number;

  constructor(readonly seed: number) {
    this.s = seed >>> 0 || 0x9e3779b9;
  }

  /** Uniform uint32. */
  next(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.next() / 0x100000000;
  }

  /** Uniform integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.float() * (hi - lo + 1));
  }

  chance(p: number): boolean {
    return this.float() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.float() * items.length)];
  }
}

/** Object.assign, not spread: V8 gives spread-built copies a hidden class each. */
export function resolved(r: Rule, inIndex = 0, outIndex = 0): ResolvedRule {
  // As the engine builds them (one fast hidden class), so the linear figures are the engine's.
  return resolvedRule(r, inIndex, outIndex);
}

export function prefixOf(family: 4 | 6, words: readonly number[], bits: number): Prefix {
  const w: [number, number, number, number] = [0, 0, 0, 0];
  for (let k = 0; k < 4; k++) w[k] = ((words[k] ?? 0) & wordMask(bits, k)) >>> 0;
  return { family, words: w, bits };
}

/** Address text of the given words (v4: word 0). */
export function addressText(family: 4 | 6, w: readonly number[]): string {
  if (family === 4) return `${w[0] >>> 24}.${(w[0] >>> 16) & 255}.${(w[0] >>> 8) & 255}.${w[0] & 255}`;
  const groups: string[] = [];
  for (let k = 0; k < 4; k++) groups.push(((w[k] >>> 16) & 0xffff).toString(16), (w[k] & 0xffff).toString(16));
  return groups.join(':');
}

/** A random address inside prefix p. */
export function addressIn(rng: Rng, p: Prefix): number[] {
  const w: number[] = [];
  const words = p.family === 4 ? 1 : 4;
  for (let k = 0; k < 4; k++) {
    if (k >= words) {
      w.push(0);
      continue;
    }
    const m = wordMask(p.bits, k);
    w.push(((p.words[k] & m) | (rng.next() & ~m)) >>> 0);
  }
  return w;
}

/** A public-looking v4 /16 (not 0/8, 10/8, 127/8, or multicast and above). */
function publicV4Net(rng: Rng): number {
  for (;;) {
    const a = rng.int(1, 223);
    if (a !== 10 && a !== 127 && a !== 192 && a !== 172) return ((a << 24) | (rng.int(0, 255) << 16)) >>> 0;
  }
}

interface ServiceRule {
  fill(r: Rule): void;
}

// The few address-free rules every gateway carries, whatever the list size.
const SERVICE_RULES: readonly ServiceRule[] = [
  { fill: (r) => ((r.protocol = 6), (r.dport = [{ lo: 23, hi: 23 }])) },
  { fill: (r) => ((r.protocol = 6), (r.dport = [{ lo: 135, hi: 139 }, { lo: 445, hi: 445 }])) },
  { fill: (r) => ((r.protocol = 17), (r.dport = [{ lo: 1900, hi: 1900 }])) },
  { fill: (r) => ((r.protocol = 6), (r.tcpFlags = { mask: TCP_SYN | TCP_FIN, set: TCP_SYN | TCP_FIN })) },
  { fill: (r) => ((r.protocol = 17), (r.dport = [{ lo: 11211, hi: 11211 }])) },
  { fill: (r) => ((r.protocol = 1), (r.icmpType = 13)) },
];

const NARROW_PORTS: readonly { protocol: number; lo: number; hi: number }[] = [
  { protocol: 6, lo: 22, hi: 22 },
  { protocol: 6, lo: 3389, hi: 3389 },
  { protocol: 6, lo: 445, hi: 445 },
  { protocol: 6, lo: 5900, hi: 5910 },
  { protocol: 17, lo: 53, hi: 53 },
  { protocol: 17, lo: 161, hi: 162 },
];

function action(rng: Rng): RuleAction {
  const x = rng.float();
  return x < 0.85 ? 'drop' : x < 0.9 ? 'reject' : 'alert';
}

function v4Bits(rng: Rng): number {
  return rng.chance(0.55) ? 32 : rng.int(16, 24);
}

function v6Bits(rng: Rng): number {
  return rng.pick([128, 128, 128, 128, 64, 64, 48, 48, 56, 32]);
}

/** A blocklist-like rule set of n rules. */
export function generateRules(n: number, seed: number): ResolvedRule[] {
  const rng = new Rng(seed);
  const services = Math.min(SERVICE_RULES.length, Math.ceil(n / 2));
  const v4Nets = Array.from({ length: Math.max(4, Math.ceil(n / 20)) }, () => publicV4Net(rng));
  const v6Nets = Array.from({ length: Math.max(2, Math.ceil(n / 100)) }, () => [((0x2000 + rng.int(0, 0xfff)) << 16) | rng.int(0, 0xffff), 0, 0, 0]);
  // Service rules spread through the list rather than all at the top.
  const serviceAt = new Map<number, number>();
  for (let s = 0; s < services; s++) serviceAt.set(Math.floor((s * n) / services), s);
  const rules: ResolvedRule[] = [];
  for (let i = 0; i < n; i++) {
    const r = anyRule(`r${i}`, action(rng));
    const s = serviceAt.get(i);
    if (s !== undefined) {
      SERVICE_RULES[s].fill(r);
    } else {
      const v6 = rng.chance(0.15);
      const p = v6 ? prefixOf(6, addressIn(rng, prefixOf(6, rng.pick(v6Nets), 32)), v6Bits(rng)) : prefixOf(4, addressIn(rng, prefixOf(4, [rng.pick(v4Nets)], 16)), v4Bits(rng));
      const match = { negate: false, prefixes: [p] };
      if (rng.chance(0.6)) r.source = match;
      else r.destination = match;
      if (rng.chance(0.15)) {
        const np = rng.pick(NARROW_PORTS);
        r.protocol = np.protocol;
        r.dport = [{ lo: np.lo, hi: np.hi }];
      }
    }
    rules.push(resolved(r));
  }
  return rules;
}

const COMMON_TCP_PORTS = [443, 443, 443, 443, 80, 80, 22, 25, 993, 8080, 23, 445, 3389];
const COMMON_UDP_PORTS = [53, 53, 53, 443, 123, 1900, 161, 51820];

function internal(rng: Rng, family: 4 | 6): number[] {
  return family === 4 ? [((10 << 24) | (rng.int(0, 3) << 16) | rng.int(0, 0xffff)) >>> 0, 0, 0, 0] : [0xfd000000, 0, rng.int(0, 15), rng.next()];
}

function outside(rng: Rng, family: 4 | 6): number[] {
  return family === 4 ? [(publicV4Net(rng) | rng.int(0, 0xffff)) >>> 0, 0, 0, 0] : [(0x2000 + rng.int(0, 0xfff)) * 0x10000 + rng.int(0, 0xffff), rng.next(), rng.next(), rng.next()];
}

/**
 * count packets; about hitShare of them are aimed at a rule's address (and
 * port, if it has one), the rest are ordinary traffic between an internal
 * host and a random outside one.
 */
export function generatePackets(rules: readonly Rule[], count: number, seed: number, hitShare = 0.1): PacketSpec[] {
  const rng = new Rng(seed);
  const targets = rules.filter((r) => r.source?.prefixes.length || r.destination?.prefixes.length);
  const out: PacketSpec[] = [];
  for (let n = 0; n < count; n++) {
    const aim = targets.length > 0 && rng.chance(hitShare) ? rng.pick(targets) : null;
    const aimPrefix = aim ? (aim.source ?? aim.destination)?.prefixes[0] : undefined;
    const family: 4 | 6 = aimPrefix ? aimPrefix.family : rng.chance(0.2) ? 6 : 4;
    let src = internal(rng, family);
    let dst = outside(rng, family);
    if (rng.chance(0.5)) [src, dst] = [dst, src];
    if (aim && aimPrefix) {
      if (aim.source) src = addressIn(rng, aimPrefix);
      else dst = addressIn(rng, aimPrefix);
    }
    const x = rng.float();
    let proto = x < 0.7 ? 6 : x < 0.92 ? 17 : family === 4 ? 1 : 58;
    if (aim?.protocol != null) proto = aim.protocol;
    const spec: PacketSpec = { src: addressText(family, src), dst: addressText(family, dst), proto, payloadLen: rng.int(0, 64) };
    if (proto === 6 || proto === 17) {
      spec.sport = rng.int(32768, 60999);
      spec.dport = aim?.dport ? aim.dport[0].lo : rng.pick(proto === 6 ? COMMON_TCP_PORTS : COMMON_UDP_PORTS);
      if (proto === 6) spec.tcpFlags = rng.chance(0.15) ? TCP_SYN : TCP_ACK | (rng.chance(0.3) ? TCP_PSH : 0);
    } else {
      spec.icmpType = family === 4 ? rng.pick([8, 0, 3, 11]) : rng.pick([128, 129, 135, 136]);
    }
    out.push(spec);
  }
  return out;
}
