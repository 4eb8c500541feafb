// What `nfips run` says about a rule set it loads (at start and at every
// reload): interfaces the rules name that this host does not have. The
// rules still load, since an interface may come up later, but a rule on a
// missing interface silently never matches, which with a default drop can
// stop every connection. The names come from the compile (the snapshot's
// unresolvedInterfaces), not from a second look at the system, so the
// warning says what the rules in force actually resolved.
import { EventLog } from '../log/event-log';
import { describeMissing, missingInterfaces } from '../rules/lint';
import { RuleSet } from '../rules/types';

export function logRuleWarnings(log: Pick<EventLog, 'event'>, rs: RuleSet, version: number, unresolved: readonly string[]): void {
  for (const m of missingInterfaces(rs, (n) => !unresolved.includes(n))) {
    log.event('rules_warning', { kind: 'missing_interface', interface: m.name, rules: m.rules, rules_version: version, file: rs.origin.file, warning: describeMissing(m) }, 'warn');
  }
}
