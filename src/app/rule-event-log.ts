// Drop, reject and rule-alert events as log records: shared by `nfips run`
// and `nfips replay`, so both print the same lines.
import { EventLog } from '../log/event-log';
import { interfaceNames } from '../rules/interfaces';
import { RuleSet } from '../rules/types';
import { HIDDEN_REASONS } from '../packet/decoded';
import { RuleEvent } from '../verdict/rule-events';

let ifNames = new Map<number, string>();
function ifName(index: number): string | null {
  if (index === 0) return null;
  if (!ifNames.has(index)) ifNames = interfaceNames();
  return ifNames.get(index) ?? String(index);
}

/** signature_id of a rule: its position in the file plus this (ids are strings; EVE wants a number). */
export const RULE_SIGNATURE_BASE = 1_000_000;
export const DEFAULT_POLICY_SIGNATURE = RULE_SIGNATURE_BASE - 1;
/** signature_id of an evasion drop: this plus the reason's code (packet/decoded.ts Hidden). */
export const EVASION_SIGNATURE_BASE = 9_200_000;

export function logRuleEvents(log: Pick<EventLog, 'event'>, queue: number, rs: RuleSet, events: RuleEvent[]): void {
  for (const e of events) {
    const rule = e.rule_index >= 0 ? rs.rules[e.rule_index] : undefined;
    const ruleId = rule ? rule.id : 'default';
    if (e.reason !== undefined) {
      logEvasion(log, queue, ruleId, e);
      continue;
    }
    log.event(e.action, {
      queue,
      rule_id: ruleId,
      ...(rule?.description ? { rule_description: rule.description } : {}),
      // Suricata EVE's alert object: allowed for alert rules, blocked for drop and reject.
      alert: {
        action: e.action === 'alert' ? 'allowed' : 'blocked',
        signature_id: e.rule_index < 0 ? DEFAULT_POLICY_SIGNATURE : RULE_SIGNATURE_BASE + e.rule_index,
        signature: rule?.description ?? `nfips rule ${ruleId}`,
        category: e.rule_index < 0 ? 'nfips default policy' : 'nfips rule',
        severity: e.action === 'alert' ? 3 : 2,
      },
      proto: e.proto.toUpperCase(),
      src_ip: e.src_ip,
      src_port: e.src_port,
      dest_ip: e.dest_ip,
      dest_port: e.dest_port,
      icmp_type: e.icmp_type,
      icmp_code: e.icmp_code,
      in_iface: ifName(e.in_ifindex),
      out_iface: ifName(e.out_ifindex),
      length: e.length,
      suppressed: e.suppressed,
    }, e.action === 'alert' ? 'warn' : 'info');
  }
}

/**
 * A packet dropped because its transport header was out of sight and the
 * rule named could have matched it (`--malformed drop`).
 */
function logEvasion(log: Pick<EventLog, 'event'>, queue: number, ruleId: string, e: RuleEvent): void {
  const reason = e.reason ?? 'none';
  log.event('evasion', {
    queue,
    reason,
    rule_id: ruleId,
    alert: {
      action: 'blocked',
      signature_id: EVASION_SIGNATURE_BASE + HIDDEN_REASONS.indexOf(reason),
      signature: `nfips evasion: ${reason}`,
      category: 'Evasion attempt or malformed packet',
      severity: 2,
    },
    proto: e.proto.toUpperCase(),
    src_ip: e.src_ip,
    // Ports are 0 when the header that holds them was not seen.
    src_port: e.src_port,
    dest_ip: e.dest_ip,
    dest_port: e.dest_port,
    icmp_type: e.icmp_type,
    icmp_code: e.icmp_code,
    in_iface: ifName(e.in_ifindex),
    out_iface: ifName(e.out_ifindex),
    length: e.length,
    suppressed: e.suppressed,
  }, 'warn');
}
