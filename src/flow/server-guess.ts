// Which side of an exchange is the server, from one packet, in
// eBPF_TrafficAnalyzer's order: a SYN (or an ICMP echo) says it outright;
// otherwise a port below 1024; otherwise the lower port. Shared by the
// session table (which keeps the strongest guess per session) and the
// features (for packets no session was recorded for).
import { PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, TCP_ACK, TCP_SYN } from '../packet/decoded';

/** Weakest first; stronger evidence seen later replaces a weaker guess. */
export const enum ServerGuess {
  /** No ports and no handshake: the initiator's peer (ICMP errors: the sender). */
  Initiator = 0,
  LowerPort = 1,
  WellKnownPort = 2,
  Handshake = 3,
}
export const SERVER_GUESS_NAMES = ['initiator', 'lower_port', 'port_below_1024', 'handshake'] as const;

/** ICMP(v6) echo request / reply, by protocol. */
export function isEchoRequest(proto: number, type: number): boolean {
  return (proto === PROTO_ICMP && type === 8) || (proto === PROTO_ICMPV6 && type === 128);
}
export function isEchoReply(proto: number, type: number): boolean {
  return (proto === PROTO_ICMP && type === 0) || (proto === PROTO_ICMPV6 && type === 129);
}

/**
 * The guess from one packet, packed as (strength << 1) | dstIsServer.
 * ports: whether sport/dport are meaningful (a transport with ports, not a
 * non-first fragment).
 */
export function guessFromPacket(proto: number, flags: number, icmpType: number, sport: number, dport: number, ports: boolean): number {
  if (proto === PROTO_TCP && ports && (flags & TCP_SYN)) return (ServerGuess.Handshake << 1) | ((flags & TCP_ACK) === 0 ? 1 : 0);
  if (proto === PROTO_ICMP || proto === PROTO_ICMPV6) {
    if (isEchoRequest(proto, icmpType)) return (ServerGuess.Handshake << 1) | 1;
    // Echo replies and ICMP errors come from the answering side.
    return isEchoReply(proto, icmpType) ? ServerGuess.Handshake << 1 : ServerGuess.Initiator << 1;
  }
  if (!ports) return (ServerGuess.Initiator << 1) | 1;
  if ((dport < 1024) !== (sport < 1024)) return (ServerGuess.WellKnownPort << 1) | (dport < 1024 ? 1 : 0);
  return (ServerGuess.LowerPort << 1) | (dport <= sport ? 1 : 0);
}
