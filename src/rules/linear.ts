// What it means for a rule to match a packet, checked field by field, and a
// matcher that tries the rules one after another. The compiled matcher
// (compile.ts) must always agree with this one; the property test holds it to that.
import { DecodedBatch, DecodeStatus, FragBits, L3Bits, PROTO_ICMP, PROTO_ICMPV6, PROTO_SCTP, PROTO_TCP, PROTO_UDP, PROTO_UDPLITE } from '../packet/decoded';
import { wordMask } from './address';
import { AddressMatch, PortRange, Prefix, Rule } from './types';

/** Per-packet inputs besides the decoded headers; columns indexed like DecodedBatch. */
export interface MatchInput {
  d: DecodedBatch;
  inIfindex: Uint32Array;
  outIfindex: Uint32Array;
  hook: Uint32Array;
  /** FLOW_NEW / FLOW_ESTABLISHED from the flow table; 0 when unknown. */
  flowState: Uint8Array;
}

/** A rule with interface names resolved to indexes (-1: no such interface, never matches). */
export interface ResolvedRule extends Rule {
  inIndex: number;
  outIndex: number;
}

export interface Matcher {
  /** Index of the first rule at or after `from` that matches entry i, or -1. */
  match(m: MatchInput, i: number, from: number): number;
}

/**
 * A copy of a rule as one object literal naming every field in a fixed
 * order: every rule then shares one hidden class with all fields in the
 * object. Spreading varied objects made ruleMatches megamorphic (30x
 * slower), and Object.assign of this many fields (22) onto a small object
 * leaves it in slow dictionary mode.
 */
export function resolvedRule(r: Rule, inIndex: number, outIndex: number): ResolvedRule {
  return {
    id: r.id,
    description: r.description,
    action: r.action,
    protocol: r.protocol,
    source: r.source,
    destination: r.destination,
    sport: r.sport,
    dport: r.dport,
    tcpFlags: r.tcpFlags,
    icmpType: r.icmpType,
    icmpCode: r.icmpCode,
    in: r.in,
    out: r.out,
    hook: r.hook,
    family: r.family,
    state: r.state,
    enabled: r.enabled,
    log: r.log,
    severity: r.severity,
    sid: r.sid,
    inIndex,
    outIndex,
  };
}

export function resolveRules(rules: readonly Rule[], ifindex: (name: string) => number | undefined): ResolvedRule[] {
  return rules.map((r) => resolvedRule(r, r.in === null ? 0 : (ifindex(r.in) ?? -1), r.out === null ? 0 : (ifindex(r.out) ?? -1)));
}

export function hasPorts(proto: number): boolean {
  return proto === PROTO_TCP || proto === PROTO_UDP || proto === PROTO_SCTP || proto === PROTO_UDPLITE;
}

export function prefixContains(p: Prefix, family: number, words: Uint32Array, base: number): boolean {
  if (p.family !== family) return false;
  for (let k = 0; k < 4; k++) {
    const m = wordMask(p.bits, k);
    if (m === 0) return true;
    if (((words[base + k] & m) >>> 0) !== p.words[k]) return false;
  }
  return true;
}

/**
 * A negated list only speaks for the families it names: "!10.0.0.0/8"
 * matches IPv4 packets outside 10/8 and no IPv6 packet at all.
 */
export function addressMatches(a: AddressMatch, family: number, words: Uint32Array, base: number): boolean {
  let hit = false;
  let sameFamily = false;
  for (let k = 0; k < a.prefixes.length; k++) {
    const p = a.prefixes[k];
    if (p.family !== family) continue;
    sameFamily = true;
    if (prefixContains(p, family, words, base)) {
      hit = true;
      break;
    }
  }
  return a.negate ? sameFamily && !hit : hit;
}

function portIn(ranges: PortRange[], port: number): boolean {
  for (let k = 0; k < ranges.length; k++) if (port >= ranges[k].lo && port <= ranges[k].hi) return true;
  return false;
}

/**
 * The first field of rule r that entry i fails, or null when the rule
 * matches. Whether the rule is enabled is not its business: the compiled
 * matcher files no disabled rule, so the per-packet path never asks.
 */
export function firstMismatch(r: ResolvedRule, m: MatchInput, i: number): string | null {
  const d = m.d;
  const proto = d.proto[i];
  const fam = d.family[i];
  if (d.status[i] !== DecodeStatus.Ok) {
    // A broken transport header: only rules that need nothing from it may
    // judge the packet, so a malformed TCP header cannot slip past an
    // address rule, and never matches a port rule by accident.
    const l3 = d.l3[i];
    if (!(l3 & L3Bits.Addresses)) return 'decode';
    if (r.protocol !== null && !(l3 & L3Bits.Protocol)) return 'protocol';
    if (r.sport || r.dport || r.tcpFlags || r.icmpType !== null || r.icmpCode !== null || r.state !== null) return 'transport header (malformed or truncated)';
  }
  if (r.family !== null && r.family !== fam) return 'family';
  if (r.protocol !== null && r.protocol !== proto) return 'protocol';
  if (r.hook !== null && r.hook !== m.hook[i]) return 'hook';
  if (r.in !== null && r.inIndex !== m.inIfindex[i]) return 'in';
  if (r.out !== null && r.outIndex !== m.outIfindex[i]) return 'out';
  if (r.source && !addressMatches(r.source, fam, d.src, i * 4)) return 'source';
  if (r.destination && !addressMatches(r.destination, fam, d.dst, i * 4)) return 'destination';
  if (r.sport || r.dport) {
    // Ports exist only in the first fragment of a port-carrying protocol.
    if (!hasPorts(proto) || d.frag[i] & FragBits.NonFirst) return r.sport ? 'sport' : 'dport';
    if (r.sport && !portIn(r.sport, d.sport[i])) return 'sport';
    if (r.dport && !portIn(r.dport, d.dport[i])) return 'dport';
  }
  if (r.tcpFlags) {
    if (proto !== PROTO_TCP || d.frag[i] & FragBits.NonFirst) return 'tcpFlags';
    if ((d.tcpFlags[i] & r.tcpFlags.mask) !== r.tcpFlags.set) return 'tcpFlags';
  }
  if (r.icmpType !== null || r.icmpCode !== null) {
    if ((proto !== PROTO_ICMP && proto !== PROTO_ICMPV6) || d.icmpType[i] === 0xffff) return r.icmpType !== null ? 'icmpType' : 'icmpCode';
    if (r.icmpType !== null && r.icmpType !== d.icmpType[i]) return 'icmpType';
    if (r.icmpCode !== null && r.icmpCode !== d.icmpCode[i]) return 'icmpCode';
  }
  if (r.state !== null && (r.state & m.flowState[i]) === 0) return 'state';
  return null;
}

export function ruleMatches(r: ResolvedRule, m: MatchInput, i: number): boolean {
  return firstMismatch(r, m, i) === null;
}

export class LinearMatcher implements Matcher {
  constructor(private readonly rules: readonly ResolvedRule[]) {}

  match(m: MatchInput, i: number, from: number): number {
    if (!(m.d.l3[i] & L3Bits.Addresses)) return -1;
    const rules = this.rules;
    // A disabled rule never matches, as the compiled matcher never files one.
    for (let r = from; r < rules.length; r++) if (rules[r].enabled && ruleMatches(rules[r], m, i)) return r;
    return -1;
  }
}
