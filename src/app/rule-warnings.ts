// What `nfips run` says about a rule set it loads (at start and at every
// reload): interfaces the rules name that this host does not have. The
// rules still load, since an interface may come up later, but a rule on a
// missing interface silently never matches, which with a default drop can
// stop every connection.
import { EventLog } from '../log/event-log';
import { ifindexOf } from '../rules/interfaces';
import { describeMissing, missingInterfaces } from '../rules/lint';
import { RuleSet } from '../rules/types';

export function logRuleWarnings(log: Pick<EventLog, 'event'>, rs: RuleSet, version: number, exists: (name: string) => boolean = (n) => ifindexOf(n) !== undefined): void {
  for (const m of missingInterfaces(rs, exists)) {
    log.event('rules_warning', { kind: 'missing_interface', interface: m.name, rules: m.rules, rules_version: version, file: rs.origin.file, warning: describeMissing(m) }, 'warn');
  }
}
