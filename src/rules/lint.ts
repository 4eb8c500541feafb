// Warnings about a rule set that loads but may not do what its author meant:
// interfaces this host does not have, and rules an earlier rule shadows.
// Neither stops a load (an interface may appear later; a shadowed rule is
// harmless), so they are warnings, not problems that reject the file.
import { prefixContains } from './linear';
import { AddressMatch, PortRange, Prefix, Rule, RuleSet } from './types';

/** Enabled rules `pick` chooses, as warnings name them: `#<index> "<id>"`. */
export function ruleLabels(rs: RuleSet, pick: (r: Rule) => boolean): string[] {
  return rs.rules.flatMap((r, k) => (r.enabled && pick(r) ? [`#${k} "${r.id}"`] : []));
}

export interface MissingInterface {
  name: string;
  /** Rules naming it, with the field (in or out). */
  rules: { index: number; id: string; field: 'in' | 'out' }[];
}

/** Interfaces named by enabled rules that `exists` says are absent, in order of first use. */
export function missingInterfaces(rs: RuleSet, exists: (name: string) => boolean): MissingInterface[] {
  const out = new Map<string, MissingInterface>();
  rs.rules.forEach((r, index) => {
    if (!r.enabled) return;
    for (const field of ['in', 'out'] as const) {
      const name = r[field];
      if (name === null || exists(name)) continue;
      let m = out.get(name);
      if (!m) out.set(name, (m = { name, rules: [] }));
      m.rules.push({ index, id: r.id, field });
    }
  });
  return [...out.values()];
}

export function describeMissing(m: MissingInterface): string {
  const who = m.rules.map((r) => `#${r.index} "${r.id}" (${r.field})`).join(', ');
  return `interface ${m.name} does not exist on this host; rule${m.rules.length === 1 ? '' : 's'} ${who} never match${m.rules.length === 1 ? 'es' : ''} until it does`;
}

export interface Shadowed {
  index: number;
  id: string;
  /** The earlier rule that decides every packet this one matches. */
  by: { index: number; id: string };
}

/** `a` same as or wider than `b`, where null is "any". */
function eqOrAny<T>(a: T | null, b: T | null): boolean {
  return a === null || a === b;
}

function contains(outer: Prefix, inner: Prefix): boolean {
  if (outer.family !== inner.family || outer.bits > inner.bits) return false;
  return prefixContains(outer, inner.family, Uint32Array.from(inner.words), 0);
}

function disjoint(x: Prefix, y: Prefix): boolean {
  return x.family !== y.family || (!contains(x, y) && !contains(y, x));
}

/**
 * Every address `b` matches, `a` matches too. A negated list only speaks for
 * the families it names (see addressMatches), which each case respects.
 */
function addressCovers(a: AddressMatch | null, b: AddressMatch | null): boolean {
  if (a === null) return true;
  if (b === null) return false;
  const families = (m: AddressMatch) => new Set(m.prefixes.map((p) => p.family));
  if (!a.negate && !b.negate) return b.prefixes.every((q) => a.prefixes.some((p) => contains(p, q)));
  if (a.negate && !b.negate) {
    // b's networks lie in a's families and outside all of a's networks.
    const fa = families(a);
    return b.prefixes.every((q) => fa.has(q.family) && a.prefixes.every((p) => disjoint(p, q)));
  }
  if (a.negate && b.negate) {
    // Outside b implies outside a when a's networks lie within b's, family by family.
    const fa = families(a);
    return [...families(b)].every((f) => fa.has(f)) && a.prefixes.every((p) => b.prefixes.some((q) => contains(q, p)));
  }
  // a plain list never covers everything outside b's networks.
  return false;
}

function portsCover(a: PortRange[] | null, b: PortRange[] | null): boolean {
  if (a === null) return true;
  if (b === null) return false;
  // Merge a's ranges so that 80-89 and 90-99 together cover 85-95.
  const merged: PortRange[] = [];
  for (const r of [...a].sort((x, y) => x.lo - y.lo)) {
    const last = merged[merged.length - 1];
    if (last && r.lo <= last.hi + 1) last.hi = Math.max(last.hi, r.hi);
    else merged.push({ lo: r.lo, hi: r.hi });
  }
  return b.every((q) => merged.some((p) => p.lo <= q.lo && q.hi <= p.hi));
}

/**
 * Whether earlier rule `a` matches every packet later rule `b` matches:
 * field by field, each of a's fields equal to or wider than b's. Sound but
 * conservative: it never calls a rule shadowed that is not, and misses
 * cases where only a combination of fields (or of earlier rules) covers b.
 */
export function covers(a: Rule, b: Rule): boolean {
  if (!eqOrAny(a.protocol, b.protocol) || !eqOrAny(a.family, b.family) || !eqOrAny(a.hook, b.hook)) return false;
  if (!eqOrAny(a.in, b.in) || !eqOrAny(a.out, b.out)) return false;
  if (!eqOrAny(a.icmpType, b.icmpType) || !eqOrAny(a.icmpCode, b.icmpCode)) return false;
  if (!addressCovers(a.source, b.source) || !addressCovers(a.destination, b.destination)) return false;
  if (!portsCover(a.sport, b.sport) || !portsCover(a.dport, b.dport)) return false;
  if (a.tcpFlags !== null) {
    // b must require at least a's flags, with the same values.
    if (b.tcpFlags === null || (a.tcpFlags.mask & b.tcpFlags.mask) !== a.tcpFlags.mask || (b.tcpFlags.set & a.tcpFlags.mask) !== a.tcpFlags.set) return false;
  }
  if (a.state !== null && (b.state === null || (b.state & ~a.state) !== 0)) return false;
  return true;
}

/** Enabled rules that an earlier enabled accept/drop/reject rule shadows (alert rules go on, so they shadow nothing). */
export function shadowedRules(rs: RuleSet): Shadowed[] {
  const out: Shadowed[] = [];
  const terminal = rs.rules.map((r, index) => ({ r, index })).filter(({ r }) => r.enabled && r.action !== 'alert');
  rs.rules.forEach((b, index) => {
    if (!b.enabled) return;
    const by = terminal.find((t) => t.index < index && covers(t.r, b));
    if (by) out.push({ index, id: b.id, by: { index: by.index, id: by.r.id } });
  });
  return out;
}

export function describeShadowed(s: Shadowed): string {
  return `rule #${s.index} "${s.id}" is shadowed by rule #${s.by.index} "${s.by.id}": every field of #${s.by.index} is equal to or wider than #${s.index}'s, so #${s.by.index} decides every packet #${s.index} matches (a conservative check: it only reports rules one earlier rule covers field by field)`;
}
