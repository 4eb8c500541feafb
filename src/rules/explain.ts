// Why a rule set decides a packet the way it does, for `nfips rules test`.
import { buildPacket } from '../packet/build';
import { decodePacket } from '../packet/decode';
import { createDecodedBatch, L3Bits } from '../packet/decoded';
import { createMatcher } from './matcher';
import { firstMismatch, MatchInput, resolveRules } from './linear';
import { PacketDescription } from './packet-text';
import { RuleSet } from './types';
import { escapeControl } from '../log/escape';

export interface Explanation {
  verdict: 'accept' | 'drop' | 'reject';
  decidedBy: { index: number; id: string; description?: string } | 'lock' | 'default' | 'malformed';
  alerts: string[];
  /** Rules before the deciding one, with the first field that did not match. */
  skipped: { index: number; id: string; field: string }[];
}

export function explain(rs: RuleSet, p: PacketDescription): Explanation {
  // Interface names only need to agree between rules and packet here.
  const names = new Map<string, number>();
  const idx = (n: string) => names.get(n) ?? (names.set(n, names.size + 1), names.size);
  const rules = resolveRules(rs.rules, idx);
  const d = createDecodedBatch(1);
  const bytes = buildPacket(p.spec);
  decodePacket(bytes, 0, bytes.length, 0, d);
  const m: MatchInput = {
    d,
    inIfindex: Uint32Array.of(p.in === null ? 0 : idx(p.in)),
    outIfindex: Uint32Array.of(p.out === null ? 0 : idx(p.out)),
    hook: Uint32Array.of(p.hook),
    flowState: Uint8Array.of(p.state),
  };
  const base = { alerts: [] as string[], skipped: [] as Explanation['skipped'] };
  if (rs.lock) return { ...base, verdict: 'drop', decidedBy: 'lock' };
  if (!(d.l3[0] & L3Bits.Addresses)) return { ...base, verdict: rs.default, decidedBy: 'malformed' };
  // The engine's matcher decides; the field-by-field walk only explains.
  const matcher = createMatcher(rules);
  let r = matcher.match(m, 0, 0);
  let from = 0;
  while (true) {
    for (let k = from; k < (r < 0 ? rules.length : r); k++) base.skipped.push({ index: k, id: rules[k].id, field: firstMismatch(rules[k], m, 0) ?? '?' });
    if (r < 0 || rules[r].action !== 'alert') break;
    base.alerts.push(rules[r].id);
    from = r + 1;
    r = matcher.match(m, 0, from);
  }
  if (r < 0) return { ...base, verdict: rs.default, decidedBy: 'default' };
  const rule = rules[r];
  return { ...base, verdict: rule.action as Explanation['verdict'], decidedBy: { index: r, id: rule.id, ...(rule.description ? { description: rule.description } : {}) } };
}

export function formatExplanation(e: Explanation, verbose: boolean): string {
  const lines: string[] = [];
  const by = e.decidedBy;
  if (by === 'lock') lines.push('verdict: drop (lock is on: every packet is dropped)');
  else if (by === 'malformed') lines.push(`verdict: ${e.verdict} (the packet could not be decoded; the default policy applies)`);
  else if (by === 'default') lines.push(`verdict: ${e.verdict} (no rule matched; default policy)`);
  else lines.push(`verdict: ${e.verdict} by rule #${by.index} "${escapeControl(by.id)}"${by.description ? ` (${escapeControl(by.description)})` : ''}`);
  for (const a of e.alerts) lines.push(`alert: rule "${escapeControl(a)}" matched and logs an alert`);
  const shown = verbose ? e.skipped : e.skipped.slice(-20);
  if (shown.length < e.skipped.length) lines.push(`(${e.skipped.length - shown.length} earlier non-matching rules not shown; --verbose shows all)`);
  for (const s of shown) lines.push(`  rule #${s.index} "${escapeControl(s.id)}" did not match: ${s.field}`);
  return lines.join('\n');
}
