// Whether a rule could match a packet whose transport header nfips cannot see
// or trust. firstMismatch (linear.ts) answers "does it match?" and treats what
// is missing as a mismatch, which is right for choosing a rule but would let
// a hidden header pass every port rule; this answers "could it, given only
// what is known?", treating what is missing as a match.
import { Hidden, L3Bits, PROTO_ICMP, PROTO_ICMPV6, PROTO_SCTP, PROTO_TCP, PROTO_UDP, PROTO_UDPLITE } from '../packet/decoded';
import { addressMatches, hasPorts, MatchInput, ResolvedRule, resolvedRule } from './linear';

/** Whether the rule's protocol, if any, is all that is known of the packet (see couldMatch). */
export function protocolUnknown(m: MatchInput, i: number): boolean {
  const d = m.d;
  const h = d.hidden[i];
  // An IPv6 fragment's own next header is the sender's word only: the
  // first fragment's decides what the endpoint reassembles.
  return !(d.l3[i] & L3Bits.Protocol) || h === Hidden.UnknownHeader || (h === Hidden.FragmentOverlap && d.family[i] === 6);
}

export function couldMatch(r: ResolvedRule, m: MatchInput, i: number): boolean {
  // Metadata from the kernel is always known.
  if (r.hook !== null && r.hook !== m.hook[i]) return false;
  if (r.in !== null && r.inIndex !== m.inIfindex[i]) return false;
  if (r.out !== null && r.outIndex !== m.outIfindex[i]) return false;
  const d = m.d;
  const l3 = d.l3[i];
  if (l3 & L3Bits.Addresses) {
    const fam = d.family[i];
    if (r.family !== null && r.family !== fam) return false;
    if (r.source && !addressMatches(r.source, fam, d.src, i * 4)) return false;
    if (r.destination && !addressMatches(r.destination, fam, d.dst, i * 4)) return false;
  }
  // Behind an unknown IPv6 header any protocol may follow.
  if (protocolUnknown(m, i)) return true;
  const proto = d.proto[i];
  if (r.protocol !== null && r.protocol !== proto) return false;
  // Ports, flags, types and flow state are unknown: only the protocol can
  // rule them out.
  if ((r.sport || r.dport) && !hasPorts(proto)) return false;
  if (r.tcpFlags && proto !== PROTO_TCP) return false;
  if ((r.icmpType !== null || r.icmpCode !== null) && proto !== PROTO_ICMP && proto !== PROTO_ICMPV6) return false;
  return true;
}

const PORT_PROTOCOLS = [PROTO_TCP, PROTO_UDP, PROTO_SCTP, PROTO_UDPLITE];
const ICMP_PROTOCOLS = [PROTO_ICMP, PROTO_ICMPV6];

/**
 * The protocols a packet with a hidden transport header must carry for rule
 * r to possibly match it (couldMatch, protocol known): [null] for any, [] for
 * none (a port rule for ICMP, say).
 */
export function possibleProtocols(r: ResolvedRule): (number | null)[] {
  const ports = r.sport !== null || r.dport !== null;
  const icmp = r.icmpType !== null || r.icmpCode !== null;
  let set: (number | null)[] = r.protocol !== null ? [r.protocol] : [null];
  if (ports) set = set[0] === null ? PORT_PROTOCOLS : set.filter((p) => p !== null && hasPorts(p));
  if (r.tcpFlags) set = set[0] === null ? [PROTO_TCP] : set.filter((p) => p === PROTO_TCP);
  if (icmp) set = set[0] === null ? ICMP_PROTOCOLS : set.filter((p) => p === PROTO_ICMP || p === PROTO_ICMPV6);
  return set;
}

/**
 * Rules that match exactly where couldMatch does, for packets whose protocol
 * is known (`protocolKnown`) or not, so an indexed matcher can answer
 * couldMatch without walking every rule: transport fields and flow state are
 * cleared, and a rule that needs a protocol for them is split into one copy
 * per protocol it allows. origin[k] is the index in `rules` copy k came from;
 * copies keep the rules' order.
 */
export function transportBlindRules(rules: readonly ResolvedRule[], protocolKnown: boolean): { rules: ResolvedRule[]; origin: Int32Array } {
  const out: ResolvedRule[] = [];
  const origin: number[] = [];
  rules.forEach((r, k) => {
    for (const protocol of protocolKnown ? possibleProtocols(r) : [null]) {
      // A copy as one literal (resolvedRule), then cleared: Object.assign of this many fields made slow dictionary objects.
      const c = resolvedRule(r, r.inIndex, r.outIndex);
      c.sport = c.dport = null;
      c.tcpFlags = null;
      c.icmpType = c.icmpCode = c.state = null;
      c.protocol = protocol;
      out.push(c);
      origin.push(k);
    }
  });
  return { rules: out, origin: Int32Array.from(origin) };
}
