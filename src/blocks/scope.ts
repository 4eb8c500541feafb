// How far an anomaly block reaches. The narrowest scope that still stops
// everything the source sent in the anomalous window, so a false alarm
// costs the source as little as possible:
//   service  - all its packets were TCP or UDP to one destination port (a
//              flood or brute force aimed at one service);
//   protocol - one protocol, many ports or none (a SYN scan, a ping flood);
//   source   - anything else (several protocols at once).
import { ResponsibleSource } from '../detect/attribution';
import { BlockTarget, makeTarget } from './block';

export function anomalyTarget(r: Pick<ResponsibleSource, 'ip' | 'protocols' | 'service'>): BlockTarget {
  const only = r.protocols.length === 1 ? r.protocols[0] : undefined;
  if (only !== undefined && r.service && r.service.proto === only) return makeTarget(r.ip, 'service', only, r.service.port);
  if (only === 'tcp' || only === 'udp' || only === 'icmp') return makeTarget(r.ip, 'protocol', only);
  return makeTarget(r.ip, 'source');
}
