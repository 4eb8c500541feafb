// Why a rule set decides a packet the way it does, for `nfips rules test`.
import { buildPacket } from '../packet/build';
import { decodePacket } from '../packet/decode';
import { createDecodedBatch, L3Bits } from '../packet/decoded';
import { createMatcher } from './matcher';
import { firstMismatch, hasPorts, MatchInput, resolveRules } from './linear';
import { PacketDescription } from './packet-text';
import { RuleSet } from './types';
import { escapeControl } from '../log/escape';
import { formatAddress } from './address';
import { protocolName } from './protocols';
import { ruleToJson } from './to-json';
import { DecodedBatch, FragBits, TCP_FLAG_NAMES } from '../packet/decoded';
import { FLOW_ESTABLISHED, FLOW_NEW, Rule } from './types';

export interface Explanation {
  verdict: 'accept' | 'drop' | 'reject';
  decidedBy: { index: number; id: string; description?: string } | 'lock' | 'default' | 'malformed';
  alerts: string[];
  /** Rules before the deciding one, with the first field that did not match, what the rule wants there and what the packet has. */
  skipped: { index: number; id: string; field: string; want: string; got: string }[];
  /** Rules that need an interface (in/out) the packet description does not name: they cannot match it. */
  missingInterfaces: { index: number; id: string; field: 'in' | 'out'; name: string }[];
}

function flagNames(bits: number): string {
  const names = TCP_FLAG_NAMES.filter(([, bit]) => bits & bit).map(([name]) => name);
  return names.length ? names.join(',') : 'none';
}

function stateNames(bits: number): string {
  return [...(bits & FLOW_NEW ? ['new'] : []), ...(bits & FLOW_ESTABLISHED ? ['established'] : [])].join(',') || 'unknown';
}

/** What the packet has in `field`, as text (only for the explanation: not the data path). */
function packetValue(field: string, d: DecodedBatch, p: PacketDescription): string {
  const ports = hasPorts(d.proto[0]) && !(d.frag[0] & FragBits.NonFirst);
  switch (field) {
    case 'family':
      return `ipv${d.family[0]}`;
    case 'protocol':
      return protocolName(d.proto[0]);
    case 'hook':
      return p.hook === 1 ? 'input' : 'forward';
    case 'in':
      return p.in ?? 'none';
    case 'out':
      return p.out ?? 'none';
    case 'source':
      return formatAddress(d.family[0], d.src, 0);
    case 'destination':
      return formatAddress(d.family[0], d.dst, 0);
    case 'sport':
      return ports ? String(d.sport[0]) : 'no ports';
    case 'dport':
      return ports ? String(d.dport[0]) : 'no ports';
    case 'tcpFlags':
      return d.proto[0] === 6 ? flagNames(d.tcpFlags[0]) : 'not TCP';
    case 'icmpType':
      return d.icmpType[0] === 0xffff ? 'not ICMP' : String(d.icmpType[0]);
    case 'icmpCode':
      return d.icmpType[0] === 0xffff ? 'not ICMP' : String(d.icmpCode[0]);
    case 'state':
      return stateNames(p.state);
    default:
      return '';
  }
}

/** What rule r wants in `field`, in the rule file's words. */
function ruleValue(field: string, r: Rule): string {
  if (field === 'enabled') return 'false';
  const v = ruleToJson(r)[field];
  if (v === undefined) return '';
  return Array.isArray(v) ? v.join(',') : String(v);
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
  const missingInterfaces: Explanation['missingInterfaces'] = [];
  rs.rules.forEach((r, index) => {
    if (!r.enabled) return;
    if (r.in !== null && p.in === null) missingInterfaces.push({ index, id: r.id, field: 'in', name: r.in });
    if (r.out !== null && p.out === null) missingInterfaces.push({ index, id: r.id, field: 'out', name: r.out });
  });
  const base = { alerts: [] as string[], skipped: [] as Explanation['skipped'], missingInterfaces };
  if (rs.lock) return { ...base, verdict: 'drop', decidedBy: 'lock' };
  if (!(d.l3[0] & L3Bits.Addresses)) return { ...base, verdict: rs.default, decidedBy: 'malformed' };
  // The engine's matcher decides; the field-by-field walk only explains.
  const matcher = createMatcher(rules);
  let r = matcher.match(m, 0, 0);
  let from = 0;
  while (true) {
    for (let k = from; k < (r < 0 ? rules.length : r); k++) {
      const field = rules[k].enabled ? (firstMismatch(rules[k], m, 0) ?? '?') : 'enabled';
      base.skipped.push({ index: k, id: rules[k].id, field, want: ruleValue(field, rs.rules[k]), got: packetValue(field, d, p) });
    }
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
  const needs = new Map(e.missingInterfaces.map((x) => [x.index, x]));
  for (const s of shown) {
    const need = needs.get(s.index);
    let why = '';
    // The interface case is always spelt out: a packet without "in IF" never
    // meets an in/out rule, and that is easy to miss.
    if ((s.field === 'in' || s.field === 'out') && need && need.field === s.field) why = ` (the rule needs ${s.field} interface ${escapeControl(need.name)} and the packet names none; add "${s.field} ${escapeControl(need.name)}" to --packet)`;
    else if (verbose && s.want !== '') why = s.field === 'enabled' ? ' (the rule is disabled)' : ` (rule: ${escapeControl(s.want)}; packet: ${escapeControl(s.got)})`;
    lines.push(`  rule #${s.index} "${escapeControl(s.id)}" did not match: ${s.field}${why}`);
  }
  return lines.join('\n');
}
