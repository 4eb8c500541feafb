// Builds raw IPv4/IPv6 packets from a description. Used off the hot path:
// tests, benchmarks, and operators' `rules test --packet`.
import ipaddr from 'ipaddr.js';
import { PROTO_ICMP, PROTO_ICMPV6, PROTO_SCTP, PROTO_TCP, PROTO_UDP } from './decoded';

export interface PacketSpec {
  src: string;
  dst: string;
  proto: number;
  sport?: number;
  dport?: number;
  /** TCP flag bits (TCP_SYN | ...). */
  tcpFlags?: number;
  tcpWindow?: number;
  icmpType?: number;
  icmpCode?: number;
  payloadLen?: number;
  /** Exact payload bytes (e.g. the packet an ICMP error quotes); overrides payloadLen. */
  payload?: Uint8Array;
  ttl?: number;
  /** IPv4 fragment offset in 8-byte units, and the MF bit. */
  fragOffset?: number;
  moreFragments?: boolean;
}

function l4Header(spec: PacketSpec): Buffer {
  switch (spec.proto) {
    case PROTO_TCP: {
      const h = Buffer.alloc(20);
      h.writeUInt16BE(spec.sport ?? 0, 0);
      h.writeUInt16BE(spec.dport ?? 0, 2);
      h.writeUInt32BE(1, 4);
      h[12] = 5 << 4;
      h[13] = spec.tcpFlags ?? 0;
      h.writeUInt16BE(spec.tcpWindow ?? 64240, 14);
      return h;
    }
    case PROTO_UDP: {
      const h = Buffer.alloc(8);
      h.writeUInt16BE(spec.sport ?? 0, 0);
      h.writeUInt16BE(spec.dport ?? 0, 2);
      h.writeUInt16BE(8 + (spec.payload?.length ?? spec.payloadLen ?? 0), 4);
      return h;
    }
    case PROTO_SCTP: {
      // Common header only: ports, verification tag, checksum.
      const h = Buffer.alloc(12);
      h.writeUInt16BE(spec.sport ?? 0, 0);
      h.writeUInt16BE(spec.dport ?? 0, 2);
      return h;
    }
    case PROTO_ICMP:
    case PROTO_ICMPV6: {
      const h = Buffer.alloc(8);
      h[0] = spec.icmpType ?? (spec.proto === PROTO_ICMP ? 8 : 128);
      h[1] = spec.icmpCode ?? 0;
      return h;
    }
    default:
      return Buffer.alloc(0);
  }
}

export function buildPacket(spec: PacketSpec): Buffer {
  const src = ipaddr.parse(spec.src);
  const dst = ipaddr.parse(spec.dst);
  if (src.kind() !== dst.kind()) throw new Error(`source ${spec.src} and destination ${spec.dst} are of different families`);
  const nonFirst = (spec.fragOffset ?? 0) !== 0;
  const l4 = nonFirst ? Buffer.alloc(0) : l4Header(spec);
  const payload = spec.payload ? Buffer.from(spec.payload) : Buffer.alloc(spec.payloadLen ?? 0, 0x61);
  if (src.kind() === 'ipv4') {
    const ip = Buffer.alloc(20);
    ip[0] = 0x45;
    ip.writeUInt16BE(20 + l4.length + payload.length, 2);
    ip.writeUInt16BE(((spec.moreFragments ? 1 : 0) << 13) | (spec.fragOffset ?? 0), 6);
    ip[8] = spec.ttl ?? 64;
    ip[9] = spec.proto;
    Buffer.from(src.toByteArray()).copy(ip, 12);
    Buffer.from(dst.toByteArray()).copy(ip, 16);
    return Buffer.concat([ip, l4, payload]);
  }
  const ip = Buffer.alloc(40);
  ip[0] = 0x60;
  ip.writeUInt16BE(l4.length + payload.length, 4);
  ip[6] = spec.proto;
  ip[7] = spec.ttl ?? 64;
  Buffer.from(src.toByteArray()).copy(ip, 8);
  Buffer.from(dst.toByteArray()).copy(ip, 24);
  return Buffer.concat([ip, l4, payload]);
}
