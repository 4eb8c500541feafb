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
// are compiled with the rule set, on the main thread (compileGuard), so no
// queue thread ever stops to build one when the first hidden packet comes.
import { protocolUnknown, transportBlindRules } from '../rules/could-match';
import { L3Bits } from '../packet/decoded';
import { CompiledMatcher, compileMatcher, MatcherData } from '../rules/compile';
import { MatchInput, ResolvedRule } from '../rules/linear';
import { buildRuleTable, rowCouldMatch, RuleTable } from '../rules/rule-table';
import { RuleSet } from '../rules/types';

/** overrules(): the accept rests on a protocol the packet only claims, and the default policy drops. */
export const UNTRUSTED_ACCEPT = -2;

/** drop: hidden packets that a drop/reject rule could have matched are dropped; policy: the rules and default decide as usual. */
export type MalformedPolicy = 'drop' | 'policy';
export const MALFORMED_POLICIES: readonly MalformedPolicy[] = ['drop', 'policy'];

interface BlindMatcher {
  matcher: CompiledMatcher;
  /** Rule index in the full rule set of each blind copy. */
  origin: Int32Array;
}

/** What the guard needs of a rule set, compiled once: plain typed arrays, shareable between threads. */
export interface GuardData {
  /** The --malformed policy it was compiled for: the guard follows it, so the two cannot disagree. */
  policy: MalformedPolicy;
  /** Index in the full rule set of each enabled drop or reject rule, ascending. */
  stoppers: Int32Array;
  /** Row k: the rule stoppers[k], interfaces resolved. */
  stopperRules: RuleTable;
  /** 1 where the rule accepts. */
  accepts: Uint8Array;
  /** 1 where the rule names a protocol. */
  protocolBound: Uint8Array;
  defaultAccepts: boolean;
  /** Blind copies of the stoppers for packets whose protocol is known, and for the others. */
  known: { matcher: MatcherData; origin: Int32Array };
  unknown: { matcher: MatcherData; origin: Int32Array };
}

/** policy 'policy' never asks the guard, so nothing is compiled for it. */
export function compileGuard(rs: RuleSet, resolved: readonly ResolvedRule[], policy: MalformedPolicy = 'drop'): GuardData {
  const stoppers = policy === 'drop' ? rs.rules.flatMap((r, k) => (r.enabled && (r.action === 'drop' || r.action === 'reject') ? [k] : [])) : [];
  const stopperRules = stoppers.map((k) => resolved[k]);
  const blind = (protocolKnown: boolean) => {
    const b = transportBlindRules(stopperRules, protocolKnown);
    return { matcher: compileMatcher(b.rules), origin: b.origin };
  };
  return {
    policy,
    stoppers: Int32Array.from(stoppers),
    stopperRules: buildRuleTable(stopperRules),
    accepts: Uint8Array.from(rs.rules, (r) => (r.action === 'accept' ? 1 : 0)),
    protocolBound: Uint8Array.from(rs.rules, (r) => (r.protocol !== null ? 1 : 0)),
    defaultAccepts: rs.default === 'accept',
    known: blind(true),
    unknown: blind(false),
  };
}

export class HiddenGuard {
  private stopperRules: RuleTable = buildRuleTable([]);
  private stoppers: Int32Array = new Int32Array(0);
  private accepts: Uint8Array = new Uint8Array(0);
  private protocolBound: Uint8Array = new Uint8Array(0);
  private defaultAccepts = true;
  private known: BlindMatcher | null = null;
  private unknown: BlindMatcher | null = null;
  private policy: MalformedPolicy = 'drop';

  /** Takes a compiled rule set's guard data, policy included; builds views only. */
  setRules(g: GuardData): void {
    this.policy = g.policy;
    this.stoppers = g.stoppers;
    this.stopperRules = g.stopperRules;
    this.accepts = g.accepts;
    this.protocolBound = g.protocolBound;
    this.defaultAccepts = g.defaultAccepts;
    this.known = { matcher: new CompiledMatcher(g.known.matcher), origin: g.known.origin };
    this.unknown = { matcher: new CompiledMatcher(g.unknown.matcher), origin: g.unknown.origin };
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
      for (let k = 0; k < s.length && s[k] < limit; k++) if (rowCouldMatch(this.stopperRules, k, m, i)) return s[k];
      return fallback;
    }
    const b = unknown ? this.unknown : this.known;
    if (b === null) return fallback;
    const k = b.matcher.match(m, i, 0);
    if (k < 0) return fallback;
    const rule = s[b.origin[k]];
    return rule < limit ? rule : fallback;
  }
}
