// `--malformed drop`: a packet whose transport header nfips cannot see (see
// Hidden in packet/decoded.ts) is not accepted when a drop or reject rule
// placed before the rule or default that would accept it could have matched
// it. Without this, the rules skip every port/flag/type rule for such a
// packet and the accept that follows is exactly what the attacker wanted.
// Only hidden packets come here, so its linear walk costs ordinary traffic
// nothing; it allocates nothing either.
import { couldMatch } from '../rules/could-match';
import { MatchInput, ResolvedRule } from '../rules/linear';
import { RuleSet } from '../rules/types';

/** drop: hidden packets that a drop/reject rule could have matched are dropped; policy: the rules and default decide as usual. */
export type MalformedPolicy = 'drop' | 'policy';
export const MALFORMED_POLICIES: readonly MalformedPolicy[] = ['drop', 'policy'];

export class HiddenGuard {
  private rules: readonly ResolvedRule[] = [];
  /** Indexes of drop and reject rules, ascending. */
  private stoppers = new Int32Array(0);
  /** 1 where the rule accepts. */
  private accepts = new Uint8Array(0);
  private defaultAccepts = true;

  constructor(private readonly policy: MalformedPolicy) {}

  setRules(rs: RuleSet, resolved: readonly ResolvedRule[]): void {
    this.rules = resolved;
    this.stoppers = Int32Array.from(rs.rules.flatMap((r, k) => (r.action === 'drop' || r.action === 'reject' ? [k] : [])));
    this.accepts = Uint8Array.from(rs.rules, (r) => (r.action === 'accept' ? 1 : 0));
    this.defaultAccepts = rs.default === 'accept';
  }

  /**
   * For a hidden packet the rules would decide with rule `decided` (-1: the
   * default policy): the first drop/reject rule before it that could have
   * matched, if the outcome would be an accept; else -1.
   */
  overrules(m: MatchInput, i: number, decided: number): number {
    if (this.policy !== 'drop') return -1;
    if (decided >= 0 ? this.accepts[decided] === 0 : !this.defaultAccepts) return -1;
    const limit = decided >= 0 ? decided : this.rules.length;
    const s = this.stoppers;
    for (let k = 0; k < s.length && s[k] < limit; k++) {
      if (couldMatch(this.rules[s[k]], m, i)) return s[k];
    }
    return -1;
  }
}
