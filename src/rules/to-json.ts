// Rule -> native rule file JSON, the inverse of load.ts: how `nfips rules
// test` shows a loaded rule back to the operator.
import { TCP_FLAG_NAMES } from '../packet/decoded';
import { formatPrefix } from './address';
import { protocolName } from './protocols';
import { AddressMatch, FLOW_ESTABLISHED, FLOW_NEW, logsByDefault, PortRange, Rule } from './types';


function addresses(a: AddressMatch): string | string[] {
  if (a.prefixes.length === 0) return a.negate ? '*' : '!*';
  const list = a.prefixes.map((p) => `${a.negate ? '!' : ''}${formatPrefix(p)}`);
  return list.length === 1 ? list[0] : list;
}

function ports(list: PortRange[]): number | string | (number | string)[] {
  const items = list.map((r) => (r.lo === r.hi ? r.lo : `${r.lo}-${r.hi}`));
  return items.length === 1 ? items[0] : items;
}

export function ruleToJson(r: Rule): Record<string, unknown> {
  const out: Record<string, unknown> = { id: r.id };
  if (r.description !== undefined) out.description = r.description;
  out.action = r.action;
  if (r.protocol !== null) out.protocol = /^\d+$/.test(protocolName(r.protocol)) ? r.protocol : protocolName(r.protocol);
  if (r.source) out.source = addresses(r.source);
  if (r.destination) out.destination = addresses(r.destination);
  if (r.sport) out.sport = ports(r.sport);
  if (r.dport) out.dport = ports(r.dport);
  if (r.tcpFlags) {
    out.tcpFlags = TCP_FLAG_NAMES.filter(([, bit]) => r.tcpFlags!.mask & bit)
      .map(([name, bit]) => (r.tcpFlags!.set & bit ? name : `!${name}`))
      .join(',');
  }
  if (r.icmpType !== null) out.icmpType = r.icmpType;
  if (r.icmpCode !== null) out.icmpCode = r.icmpCode;
  if (r.in !== null) out.in = r.in;
  if (r.out !== null) out.out = r.out;
  if (r.hook !== null) out.hook = r.hook === 1 ? 'input' : 'forward';
  if (r.family !== null) out.family = r.family === 4 ? 'ipv4' : 'ipv6';
  if (r.state !== null) {
    const s = [...(r.state & FLOW_NEW ? ['new'] : []), ...(r.state & FLOW_ESTABLISHED ? ['established'] : [])];
    out.state = s.length === 1 ? s[0] : s;
  }
  if (!r.enabled) out.enabled = false;
  if (r.log !== logsByDefault(r.action)) out.log = r.log;
  if (r.severity !== null) out.severity = r.severity;
  if (r.sid !== null) out.sid = r.sid;
  return out;
}
