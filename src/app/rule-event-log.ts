// Drop, reject and rule-alert events as log records: shared by `nfips run`
// and `nfips replay`, so both print the same lines.
import { EventLog } from '../log/event-log';
import { interfaceNames } from '../rules/interfaces';
import { RuleSet } from '../rules/types';
import { RuleEvent } from '../verdict/rule-events';

let ifNames = new Map<number, string>();
function ifName(index: number): string | null {
  if (index === 0) return null;
  if (!ifNames.has(index)) ifNames = interfaceNames();
  return ifNames.get(index) ?? String(index);
}

export function logRuleEvents(log: Pick<EventLog, 'event'>, queue: number, rs: RuleSet, events: RuleEvent[]): void {
  for (const e of events) {
    const rule = e.rule_index >= 0 ? rs.rules[e.rule_index] : undefined;
    log.event(e.action, {
      queue,
      rule_id: rule ? rule.id : 'default',
      ...(rule?.description ? { rule_description: rule.description } : {}),
      proto: e.proto,
      src_ip: e.src_ip,
      src_port: e.src_port,
      dest_ip: e.dest_ip,
      dest_port: e.dest_port,
      in_iface: ifName(e.in_ifindex),
      out_iface: ifName(e.out_ifindex),
      length: e.length,
      suppressed: e.suppressed,
    }, e.action === 'alert' ? 'warn' : 'info');
  }
}
