// What `nfips run` says about a rule set it loads (at start and at every
// reload): interfaces the rules name that this host does not have. The
// rules still load, since an interface may come up later, but a rule on a
// missing interface silently never matches, which with a default drop can
// stop every connection. The names come from the compile (the snapshot's
// unresolvedInterfaces), not from a second look at the system, so the
// warning says what the rules in force actually resolved.
import { EventLog } from '../log/event-log';
import { describeMissing, missingInterfaces, ruleLabels } from '../rules/lint';
import { RuleSet } from '../rules/types';

export function logRuleWarnings(log: Pick<EventLog, 'event'>, rs: RuleSet, version: number, unresolved: readonly string[], capture = false): void {
  for (const m of missingInterfaces(rs, (n) => !unresolved.includes(n))) {
    log.event('rules_warning', { kind: 'missing_interface', interface: m.name, rules: m.rules, rules_version: version, file: rs.origin.file, warning: describeMissing(m) }, 'warn');
  }
  if (capture) for (const w of captureRuleWarnings(rs)) log.event('rules_warning', { ...w, rules_version: version, file: rs.origin.file }, 'warn');
}

/**
 * nfips watch: a captured frame carries the interface it was captured on
 * (taken as its input interface, whichever way it went; an NFLOG record
 * carries both of the packet's), and no hook. Rules that lean on those
 * mean something else here, or nothing.
 */
export function captureRuleWarnings(rs: RuleSet): { kind: string; rules: string[]; warning: string }[] {
  const out: { kind: string; rules: string[]; warning: string }[] = [];
  const ins = ruleLabels(rs, (r) => r.in !== null);
  if (ins.length) out.push({ kind: 'capture_in_interface', rules: ins, warning: `${ins.join(', ')}: "in" matches every frame captured on that interface, whichever way it went (NFLOG records keep the packet's own input interface)` });
  const outs = ruleLabels(rs, (r) => r.out !== null);
  if (outs.length) out.push({ kind: 'capture_out_interface', rules: outs, warning: `${outs.join(', ')}: "out" never matches a frame captured from an interface (only NFLOG records of forwarded packets carry an output interface)` });
  const hooks = ruleLabels(rs, (r) => r.hook !== null);
  if (hooks.length) out.push({ kind: 'capture_hook', rules: hooks, warning: `${hooks.join(', ')}: a captured frame has no netfilter hook, so a rule naming one never matches in nfips watch` });
  return out;
}
