// Decoded headers of one batch, as columns. Allocated once per queue; the
// decoder overwrites entries 0..n-1 for every batch.

export const enum DecodeStatus {
  Ok = 0,
  /** Captured bytes end before a header the packet claims to have. */
  Truncated = 1,
  /** Header fields that cannot be right (version, lengths). */
  Malformed = 2,
}

export const enum FragBits {
  MoreFragments = 1,
  DontFragment = 2,
  /** Not the first fragment: no transport header in this packet. */
  NonFirst = 4,
  /** First fragment of a fragmented datagram. */
  First = 8,
}

/**
 * Why nfips cannot see (or trust) a packet's transport header; 0 when it
 * can. Such a packet must not be accepted when a drop rule could have
 * matched it (src/verdict/hidden-guard.ts): each of these is a known way to
 * slip a packet past rules on ports, flags or ICMP types.
 */
export const enum Hidden {
  None = 0,
  /** The copied bytes end before the transport header does (long IPv6 extension chains). */
  BeyondCopy = 1,
  /** A first fragment without the whole transport header, or for IPv6 without the whole header chain (RFC 1858, RFC 7112). */
  TinyFragment = 2,
  /** A later fragment whose offset lies inside the transport header: it would rewrite what the rules read (RFC 1858). */
  FragmentOverlap = 3,
  /** An IPv6 next header that is neither a known extension header nor an assigned protocol: what follows is unknown. */
  UnknownHeader = 4,
  /** A transport header that cannot be right (TCP data offset, lengths shorter than the header). */
  BadTransport = 5,
  /** No usable IP header, or an extension header longer than the packet. */
  BadIp = 6,
}

/** Event names of Hidden reasons, indexed by code. */
export const HIDDEN_REASONS = ['none', 'beyond-copy-range', 'tiny-first-fragment', 'fragment-overlap', 'unknown-next-header', 'bad-transport-header', 'bad-ip-header'] as const;

/** What is trustworthy in a packet whose status is not Ok. */
export const enum L3Bits {
  /** Family and addresses were read from a valid IP header. */
  Addresses = 1,
  /** The transport protocol is known (IPv6: the extension chain was walked). */
  Protocol = 2,
}

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
export const TCP_URG = 0x20;
export const TCP_ECE = 0x40;
export const TCP_CWR = 0x80;

/** Flag names in the order rule files and tools print them; each also has a one-letter form (its initial). */
export const TCP_FLAG_NAMES: readonly (readonly [string, number])[] = [
  ['SYN', TCP_SYN],
  ['ACK', TCP_ACK],
  ['FIN', TCP_FIN],
  ['RST', TCP_RST],
  ['PSH', TCP_PSH],
  ['URG', TCP_URG],
  ['ECE', TCP_ECE],
  ['CWR', TCP_CWR],
];

export const PROTO_ICMP = 1;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const PROTO_ICMPV6 = 58;
export const PROTO_SCTP = 132;
export const PROTO_UDPLITE = 136;

export interface DecodedBatch {
  readonly capacity: number;
  status: Uint8Array;
  /** Hidden reason; never 0 when status is not Ok. */
  hidden: Uint8Array;
  /** L3Bits: lets rules on addresses still judge packets whose transport header is broken. */
  l3: Uint8Array;
  /** 4 or 6; 0 when the version nibble is neither. */
  family: Uint8Array;
  /** Transport protocol (after IPv6 extension headers). */
  proto: Uint8Array;
  /** 4 words per packet, network order read big-endian; IPv4 uses word 0 only. */
  src: Uint32Array;
  dst: Uint32Array;
  sport: Uint16Array;
  dport: Uint16Array;
  /** IP total length (IPv6: payload length + 40). */
  ipLen: Uint32Array;
  ttl: Uint8Array;
  tcpFlags: Uint8Array;
  tcpWindow: Uint16Array;
  /** ICMP/ICMPv6 type and code; 0xffff when not ICMP. */
  icmpType: Uint16Array;
  icmpCode: Uint16Array;
  frag: Uint8Array;
  fragOffset: Uint16Array;
  /** Offset of the transport header from the packet start; 0 when absent. */
  l4Offset: Uint16Array;
  /** Bytes of transport payload, from the IP lengths (not the captured bytes). */
  l4PayloadLen: Uint32Array;
}

export function createDecodedBatch(capacity: number): DecodedBatch {
  return {
    capacity,
    status: new Uint8Array(capacity),
    hidden: new Uint8Array(capacity),
    l3: new Uint8Array(capacity),
    family: new Uint8Array(capacity),
    proto: new Uint8Array(capacity),
    src: new Uint32Array(capacity * 4),
    dst: new Uint32Array(capacity * 4),
    sport: new Uint16Array(capacity),
    dport: new Uint16Array(capacity),
    ipLen: new Uint32Array(capacity),
    ttl: new Uint8Array(capacity),
    tcpFlags: new Uint8Array(capacity),
    tcpWindow: new Uint16Array(capacity),
    icmpType: new Uint16Array(capacity),
    icmpCode: new Uint16Array(capacity),
    frag: new Uint8Array(capacity),
    fragOffset: new Uint16Array(capacity),
    l4Offset: new Uint16Array(capacity),
    l4PayloadLen: new Uint32Array(capacity),
  };
}
