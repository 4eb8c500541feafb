// How far a block reaches: the narrowest scope that still stops the
// behaviour the source was caught at, so a mistaken block costs it as little
// as possible:
//   service  - the behaviour was all TCP or UDP to one destination port (a
//              flood or brute force aimed at one service);
//   protocol - one protocol, many ports or none (a SYN scan, a ping flood);
//   source   - several protocols at once (a scan over TCP and UDP).
// The rest of what the source sends (its normal traffic) is not blocked.
import type { SourceFinding } from '../detect/source-tracker';
import { PROTO_BIT_ICMP, PROTO_BIT_TCP, PROTO_BIT_UDP } from '../features/source-table';
import { PROTO_TCP, PROTO_UDP } from '../packet/decoded';
import { BlockProto, BlockTarget, covers, makeTarget } from './block';

function narrowest(ip: string, proto: 'tcp' | 'udp', single: number): BlockTarget {
  const wanted = proto === 'tcp' ? PROTO_TCP : PROTO_UDP;
  if (single >= 0 && single >>> 16 === wanted) return makeTarget(ip, 'service', proto, single & 0xffff);
  return makeTarget(ip, 'protocol', proto);
}

/** The blocks that stop what a finding is about, without overlaps. */
export function evidenceTargets(f: Pick<SourceFinding, 'ip' | 'exceeded' | 'evProtos' | 'evTcp' | 'evUdp'>): BlockTarget[] {
  const out: BlockTarget[] = [];
  for (const x of f.exceeded) {
    switch (x.measure) {
      case 'service_sessions': {
        const [proto, port] = (x.service ?? '').split('/');
        out.push(makeTarget(f.ip, 'service', proto, Number(port)));
        break;
      }
      case 'echo_requests':
        out.push(makeTarget(f.ip, 'protocol', 'icmp'));
        break;
      case 'tcp_failed':
      case 'stalled_sessions':
        out.push(narrowest(f.ip, 'tcp', f.evTcp));
        break;
      case 'odd_sessions':
        out.push(makeTarget(f.ip, 'protocol', 'tcp'));
        break;
      case 'udp_failed':
      case 'udp_unanswered':
        out.push(narrowest(f.ip, 'udp', f.evUdp));
        break;
      case 'failed_ports':
      case 'failed_hosts': {
        const protos: BlockProto[] = [];
        if (f.evProtos & PROTO_BIT_TCP) protos.push('tcp');
        if (f.evProtos & PROTO_BIT_UDP) protos.push('udp');
        if (f.evProtos & PROTO_BIT_ICMP) protos.push('icmp');
        out.push(protos.length === 1 ? makeTarget(f.ip, 'protocol', protos[0]) : makeTarget(f.ip, 'source'));
        break;
      }
    }
  }
  // A wider target makes the narrower ones it covers redundant.
  return out.filter((t, i) => !out.some((o, j) => j !== i && covers(o, t) && (!covers(t, o) || j < i)));
}
