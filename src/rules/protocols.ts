// IP protocol names accepted in rule files (IANA numbers).
export const PROTOCOL_NUMBERS: Readonly<Record<string, number>> = {
  icmp: 1,
  igmp: 2,
  ipip: 4,
  tcp: 6,
  udp: 17,
  ipv6: 41,
  gre: 47,
  esp: 50,
  ah: 51,
  icmpv6: 58,
  'ipv6-icmp': 58,
  ospf: 89,
  pim: 103,
  vrrp: 112,
  sctp: 132,
  udplite: 136,
};

export function protocolName(n: number): string {
  for (const [name, num] of Object.entries(PROTOCOL_NUMBERS)) if (num === n) return name;
  return String(n);
}
