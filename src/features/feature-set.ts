// The window feature vector: names, order and scaling. A model stores this
// list and is refused when it differs, so changing it means a new
// FEATURE_SET_VERSION and retrained models.

/** log1p for heavy-tailed counts and rates; identity for shares and sizes. */
export type FeatureTransform = 'log1p' | 'linear';

export interface FeatureDef {
  readonly name: string;
  readonly transform: FeatureTransform;
  /** What an alert says about it. */
  readonly doc: string;
  /** Which per-source counter explains it when it deviates (see attribution). */
  readonly blame: BlameCounter;
}

/** Per-source counters kept by the heavy-hitter tables. */
export type BlameCounter = 'packets' | 'bytes' | 'syn' | 'icmpEcho' | 'udp' | 'newSessions';

export const FEATURE_SET_VERSION = 1;

export const FEATURES: readonly FeatureDef[] = [
  // 2columnS's six
  { name: 'packets', transform: 'log1p', doc: 'packets in the window', blame: 'packets' },
  { name: 'connections', transform: 'log1p', doc: 'distinct (src, sport, dst, dport)', blame: 'newSessions' },
  { name: 'connections_per_source', transform: 'log1p', doc: 'connections / distinct sources', blame: 'newSessions' },
  { name: 'syn_connections', transform: 'log1p', doc: 'distinct connections with a SYN', blame: 'syn' },
  { name: 'mean_ip_len', transform: 'linear', doc: 'mean IP total length (also kohmar\'s average packet size)', blame: 'bytes' },
  { name: 'packets_per_connection', transform: 'log1p', doc: 'packets / connections', blame: 'packets' },
  // kohmar-firewall
  { name: 'new_source_packets', transform: 'log1p', doc: 'packets from sources first seen within the window', blame: 'packets' },
  { name: 'icmp_share', transform: 'linear', doc: 'ICMP/ICMPv6 share of packets', blame: 'icmpEcho' },
  { name: 'few_packet_session_share', transform: 'linear', doc: 'share of new sessions with fewer than 3 packets', blame: 'newSessions' },
  { name: 'new_tcp_sessions', transform: 'log1p', doc: 'TCP sessions created', blame: 'newSessions' },
  { name: 'udp_share', transform: 'linear', doc: 'UDP share of packets', blame: 'udp' },
  { name: 'small_packet_share', transform: 'linear', doc: 'share of packets under 80 bytes', blame: 'packets' },
  { name: 'over_mtu_share', transform: 'linear', doc: 'share of packets over 1500 bytes (GSO aggregates count)', blame: 'bytes' },
  { name: 'fragment_share', transform: 'linear', doc: 'share of IP fragments', blame: 'packets' },
  { name: 'sources', transform: 'log1p', doc: 'distinct source addresses', blame: 'packets' },
  { name: 'dst_ports', transform: 'log1p', doc: 'distinct destination ports on the server side', blame: 'syn' },
  // rates and balances
  { name: 'packets_per_s', transform: 'log1p', doc: 'packets per second', blame: 'packets' },
  { name: 'bytes_per_s', transform: 'log1p', doc: 'bytes per second', blame: 'bytes' },
  { name: 'syn_per_s', transform: 'log1p', doc: 'SYN (no ACK) per second', blame: 'syn' },
  { name: 'new_sessions_per_s', transform: 'log1p', doc: 'sessions created per second', blame: 'newSessions' },
  { name: 'syn_synack_ratio', transform: 'log1p', doc: 'SYN / (SYN-ACK + 1)', blame: 'syn' },
  { name: 'syn_fin_ratio', transform: 'log1p', doc: 'SYN / (FIN + 1)', blame: 'syn' },
  { name: 'rst_per_s', transform: 'log1p', doc: 'RST per second', blame: 'syn' },
  { name: 'icmp_echo_per_s', transform: 'log1p', doc: 'ICMP/ICMPv6 echo requests per second', blame: 'icmpEcho' },
  { name: 'udp_per_s', transform: 'log1p', doc: 'UDP packets per second', blame: 'udp' },
  { name: 'ip_len_std', transform: 'linear', doc: 'standard deviation of the IP total length', blame: 'bytes' },
  { name: 'top_source_share', transform: 'linear', doc: 'share of the busiest client in the packets sent toward servers', blame: 'packets' },
];

export const FEATURE_COUNT = FEATURES.length;
export const FEATURE_NAMES: readonly string[] = FEATURES.map((f) => f.name);

/** Index of a feature by name; throws on a typo so misuse fails at load time. */
export function featureIndex(name: string): number {
  const i = FEATURE_NAMES.indexOf(name);
  if (i < 0) throw new RangeError(`unknown feature ${name}`);
  return i;
}
