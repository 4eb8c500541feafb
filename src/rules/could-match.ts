// Whether a rule could match a packet whose transport header nfips cannot see
// or trust. firstMismatch (linear.ts) answers "does it match?" and treats what
// is missing as a mismatch, which is right for choosing a rule but would let
// a hidden header pass every port rule; this answers "could it, given only
// what is known?", treating what is missing as a match.
import { Hidden, L3Bits, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP } from '../packet/decoded';
import { addressMatches, hasPorts, MatchInput, ResolvedRule } from './linear';

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
  if (!(l3 & L3Bits.Protocol) || d.hidden[i] === Hidden.UnknownHeader) return true;
  const proto = d.proto[i];
  if (r.protocol !== null && r.protocol !== proto) return false;
  // Ports, flags, types and flow state are unknown: only the protocol can
  // rule them out.
  if ((r.sport || r.dport) && !hasPorts(proto)) return false;
  if (r.tcpFlags && proto !== PROTO_TCP) return false;
  if ((r.icmpType !== null || r.icmpCode !== null) && proto !== PROTO_ICMP && proto !== PROTO_ICMPV6) return false;
  return true;
}
