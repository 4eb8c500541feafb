// Drop, reject and rule-alert events as log records: shared by `nfips run`
// and `nfips replay`, so both print the same lines.
import { EventLog } from '../log/event-log';
import { interfaceNames } from '../rules/interfaces';
import { RuleSet } from '../rules/types';
import { HIDDEN_REASONS } from '../packet/decoded';
import { RuleEvent } from '../verdict/rule-events';
import { LOCK_RULE } from '../verdict/engine';

let ifNames = new Map<number, string>();
function ifName(index: number): string | null {
  if (index === 0) return null;
  if (!ifNames.has(index)) ifNames = interfaceNames();
  return ifNames.get(index) ?? String(index);
}

/**
 * signature_id of a rule without a `sid`: its position in the file plus this
 * (ids are strings; EVE wants a number). A `sid` (at most MAX_RULE_SID) is
 * used as given: it stays put when rules are inserted above it.
 */
export const RULE_SIGNATURE_BASE = 1_000_000;
export const DEFAULT_POLICY_SIGNATURE = RULE_SIGNATURE_BASE - 1;
/** Lock drops are only logged in a dry run (--rules-mode log). */
export const LOCK_SIGNATURE = RULE_SIGNATURE_BASE - 2;

/** EVE alert.action: what was done to the packet. */
function eveAction(action: RuleEvent['action']): string {
  if (action === 'alert' || action === 'accept') return 'allowed';
  if (action === 'drop' || action === 'reject') return 'blocked';
  return action;
}

/** Event type: a would-drop is a drop the dry run did not do, told apart by alert.action. */
function eventType(action: RuleEvent['action']): string {
  return action === 'would-drop' ? 'drop' : action === 'would-reject' ? 'reject' : action;
}
/** signature_id of an evasion drop: this plus the reason's code (packet/decoded.ts Hidden). */
export const EVASION_SIGNATURE_BASE = 9_200_000;

/** ifaceName: names of interface indexes (replay states its own); the host's by default. */
export function logRuleEvents(log: Pick<EventLog, 'event'>, queue: number, rs: RuleSet, events: RuleEvent[], ifaceName: (index: number) => string | null = ifName): void {
  for (const e of events) {
    const rule = e.rule_index >= 0 ? rs.rules[e.rule_index] : undefined;
    const lock = e.rule_index === LOCK_RULE;
    const ruleId = rule ? rule.id : lock ? 'lock' : 'default';
    if (e.reason !== undefined) {
      logEvasion(log, queue, ruleId, e, ifaceName);
      continue;
    }
    const quiet = e.action === 'alert' || e.action === 'accept';
    log.event(eventType(e.action), {
      queue,
      rule_id: ruleId,
      ...(rule?.description ? { rule_description: rule.description } : {}),
      // Suricata EVE's alert object: allowed for alert and accept rules,
      // blocked for drop and reject, would-drop/would-reject in a dry run.
      alert: {
        action: eveAction(e.action),
        signature_id: rule ? (rule.sid ?? RULE_SIGNATURE_BASE + e.rule_index) : lock ? LOCK_SIGNATURE : DEFAULT_POLICY_SIGNATURE,
        signature: rule?.description ?? (lock ? 'nfips lock: every packet is dropped' : `nfips rule ${ruleId}`),
        category: rule ? 'nfips rule' : lock ? 'nfips lock' : 'nfips default policy',
        severity: rule?.severity ?? (quiet ? 3 : 2),
      },
      ...packetFields(e, ifaceName),
    }, e.action === 'alert' ? 'warn' : 'info');
  }
}

/**
 * A packet dropped because its transport header was out of sight and the
 * rule named could have matched it (`--malformed drop`).
 */
function logEvasion(log: Pick<EventLog, 'event'>, queue: number, ruleId: string, e: RuleEvent, ifaceName: (index: number) => string | null): void {
  const reason = e.reason ?? 'none';
  log.event('evasion', {
    queue,
    reason,
    rule_id: ruleId,
    alert: {
      action: e.action === 'would-drop' ? 'would-drop' : 'blocked',
      signature_id: EVASION_SIGNATURE_BASE + HIDDEN_REASONS.indexOf(reason),
      signature: `nfips evasion: ${reason}`,
      category: 'Evasion attempt or malformed packet',
      severity: 2,
    },
    // Ports are 0 when the header that holds them was not seen.
    ...packetFields(e, ifaceName),
  }, 'warn');
}

/** The packet's EVE fields, the same in rule and evasion events. */
function packetFields(e: RuleEvent, ifaceName: (index: number) => string | null) {
  return {
    proto: e.proto.toUpperCase(),
    src_ip: e.src_ip,
    src_port: e.src_port,
    dest_ip: e.dest_ip,
    dest_port: e.dest_port,
    icmp_type: e.icmp_type,
    icmp_code: e.icmp_code,
    in_iface: ifaceName(e.in_ifindex),
    out_iface: ifaceName(e.out_ifindex),
    length: e.length,
    suppressed: e.suppressed,
  };
}
