// `--malformed drop`: a packet whose transport header nfips cannot see (see
// Hidden in packet/decoded.ts) is not accepted when a drop or reject rule
// placed before the rule or default that would accept it could have matched
// it. Without this, the rules skip every port/flag/type rule for such a
// packet and the accept that follows is exactly what the attacker wanted.
//
// Hidden packets are the attacker's to send, so the question "could any drop
// rule have matched?" must not cost a walk over every rule: it is answered by
// the same indexed matcher as the rules, over copies of the drop and reject
// rules with the unseen fields cleared (transportBlindRules). Those matchers
// are built on the first hidden packet after a rule set arrives, so ordinary
// traffic never pays for them.
import { couldMatch, protocolUnknown, transportBlindRules } from '../rules/could-match';
import { L3Bits } from '../packet/decoded';
import { MatchInput, Matcher, ResolvedRule } from '../rules/linear';
import { createMatcher } from '../rules/matcher';
import { RuleSet } from '../rules/types';

/** overrules(): the accept rests on a protocol the packet only claims, and the default policy drops. */
export const UNTRUSTED_ACCEPT = -2;

/** drop: hidden packets that a drop/reject rule could have matched are dropped; policy: the rules and default decide as usual. */
export type MalformedPolicy = 'drop' | 'policy';
export const MALFORMED_POLICIES: readonly MalformedPolicy[] = ['drop', 'policy'];

interface BlindMatcher {
  matcher: Matcher;
  /** Rule index in the full rule set of each blind copy. */
  origin: Int32Array;
}

export class HiddenGuard {
  private stopperRules: readonly ResolvedRule[] = [];
  /** Index in the full rule set of each drop or reject rule, ascending. */
  private stoppers = new Int32Array(0);
  /** 1 where the rule accepts. */
  private accepts = new Uint8Array(0);
  /** 1 where the rule names a protocol. */
  private protocolBound = new Uint8Array(0);
  private defaultAccepts = true;
  private known: BlindMatcher | null = null;
  private unknown: BlindMatcher | null = null;

  constructor(private readonly policy: MalformedPolicy) {}

  setRules(rs: RuleSet, resolved: readonly ResolvedRule[]): void {
    const stoppers = rs.rules.flatMap((r, k) => (r.enabled && (r.action === 'drop' || r.action === 'reject') ? [k] : []));
    this.stoppers = Int32Array.from(stoppers);
    this.stopperRules = stoppers.map((k) => resolved[k]);
    this.accepts = Uint8Array.from(rs.rules, (r) => (r.action === 'accept' ? 1 : 0));
    this.protocolBound = Uint8Array.from(rs.rules, (r) => (r.protocol !== null ? 1 : 0));
    this.defaultAccepts = rs.default === 'accept';
    this.known = null;
    this.unknown = null;
  }

  /**
   * For a hidden packet the rules would decide with rule `decided` (-1: the
   * default policy): the first drop/reject rule before it that could have
   * matched, if the outcome would be an accept; UNTRUSTED_ACCEPT when the
   * accept cannot be trusted and only the default policy would drop; else -1.
   */
  overrules(m: MatchInput, i: number, decided: number): number {
    if (this.policy !== 'drop') return -1;
    if (decided >= 0 ? this.accepts[decided] === 0 : !this.defaultAccepts) return -1;
    const unknown = protocolUnknown(m, i);
    // An accept that matched on the protocol the packet names (an IPv6 later
    // fragment, or what follows an unknown header) may not be the endpoint's
    // protocol at all: then every drop rule counts, and the default too.
    const untrusted = decided >= 0 && unknown && this.protocolBound[decided] === 1;
    const limit = decided >= 0 && !untrusted ? decided : this.accepts.length;
    const fallback = untrusted && !this.defaultAccepts ? UNTRUSTED_ACCEPT : -1;
    const s = this.stoppers;
    if (s.length === 0) return fallback;
    if (!(m.d.l3[i] & L3Bits.Addresses)) {
      // Only the kernel's metadata is known (the kernel's own IP checks should
      // have stopped such a packet already): a short walk on hook and interfaces.
      for (let k = 0; k < s.length && s[k] < limit; k++) if (couldMatch(this.stopperRules[k], m, i)) return s[k];
      return fallback;
    }
    const b = unknown ? (this.unknown ??= this.build(false)) : (this.known ??= this.build(true));
    const k = b.matcher.match(m, i, 0);
    if (k < 0) return fallback;
    const rule = s[b.origin[k]];
    return rule < limit ? rule : fallback;
  }

  private build(protocolKnown: boolean): BlindMatcher {
    const blind = transportBlindRules(this.stopperRules, protocolKnown);
    return { matcher: createMatcher(blind.rules), origin: blind.origin };
  }
}
