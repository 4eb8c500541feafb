// IPv4/IPv6 + TCP/UDP/ICMP/ICMPv6/SCTP header decoding straight from the
// batch buffer. Hand-written rather than a parsing library: it runs for every
// packet and must not allocate, throw or read past the captured bytes.
import { DecodedBatch, DecodeStatus, FragBits, L3Bits, PROTO_ICMP, PROTO_ICMPV6, PROTO_SCTP, PROTO_TCP, PROTO_UDP, PROTO_UDPLITE } from './decoded';

const NO_ICMP = 0xffff;

function u16(b: Uint8Array, o: number): number {
  return (b[o] << 8) | b[o + 1];
}
function u32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}

function clear(out: DecodedBatch, i: number): void {
  out.status[i] = DecodeStatus.Ok;
  out.l3[i] = 0;
  out.family[i] = 0;
  out.proto[i] = 0;
  const w = i * 4;
  out.src[w] = out.src[w + 1] = out.src[w + 2] = out.src[w + 3] = 0;
  out.dst[w] = out.dst[w + 1] = out.dst[w + 2] = out.dst[w + 3] = 0;
  out.sport[i] = 0;
  out.dport[i] = 0;
  out.ipLen[i] = 0;
  out.ttl[i] = 0;
  out.tcpFlags[i] = 0;
  out.tcpWindow[i] = 0;
  out.icmpType[i] = NO_ICMP;
  out.icmpCode[i] = NO_ICMP;
  out.frag[i] = 0;
  out.fragOffset[i] = 0;
  out.l4Offset[i] = 0;
  out.l4PayloadLen[i] = 0;
}

/**
 * Decodes the packet at buf[off .. off+capLen) into entry i of out.
 * Returns the status it also stores; never throws.
 */
export function decodePacket(buf: Uint8Array, off: number, capLen: number, i: number, out: DecodedBatch): DecodeStatus {
  clear(out, i);
  const end = off + capLen;
  if (capLen < 1 || end > buf.length) return (out.status[i] = DecodeStatus.Truncated);
  const version = buf[off] >> 4;
  if (version === 4) return decodeV4(buf, off, end, i, out);
  if (version === 6) return decodeV6(buf, off, end, i, out);
  return (out.status[i] = DecodeStatus.Malformed);
}

function decodeV4(b: Uint8Array, off: number, end: number, i: number, out: DecodedBatch): DecodeStatus {
  out.family[i] = 4;
  if (end - off < 20) return (out.status[i] = DecodeStatus.Truncated);
  const ihl = (b[off] & 0x0f) * 4;
  const totalLen = u16(b, off + 2);
  if (ihl < 20 || totalLen < ihl) return (out.status[i] = DecodeStatus.Malformed);
  if (end - off < ihl) return (out.status[i] = DecodeStatus.Truncated);
  const fragWord = u16(b, off + 6);
  const fragOffset = fragWord & 0x1fff;
  let frag = 0;
  if (fragWord & 0x2000) frag |= FragBits.MoreFragments;
  if (fragWord & 0x4000) frag |= FragBits.DontFragment;
  if (fragOffset !== 0) frag |= FragBits.NonFirst;
  else if (fragWord & 0x2000) frag |= FragBits.First;
  out.frag[i] = frag;
  out.fragOffset[i] = fragOffset;
  out.ipLen[i] = totalLen;
  out.ttl[i] = b[off + 8];
  const proto = b[off + 9];
  out.proto[i] = proto;
  out.src[i * 4] = u32(b, off + 12);
  out.dst[i * 4] = u32(b, off + 16);
  out.l3[i] = L3Bits.Addresses | L3Bits.Protocol;
  if (fragOffset !== 0) return DecodeStatus.Ok;
  return decodeL4(b, off, off + ihl, end, totalLen - ihl, proto, i, out);
}

function decodeV6(b: Uint8Array, off: number, end: number, i: number, out: DecodedBatch): DecodeStatus {
  out.family[i] = 6;
  if (end - off < 40) return (out.status[i] = DecodeStatus.Truncated);
  const payloadLen = u16(b, off + 4);
  out.ipLen[i] = payloadLen + 40;
  out.ttl[i] = b[off + 7];
  const w = i * 4;
  for (let k = 0; k < 4; k++) {
    out.src[w + k] = u32(b, off + 8 + k * 4);
    out.dst[w + k] = u32(b, off + 24 + k * 4);
  }
  out.l3[i] = L3Bits.Addresses;
  let next = b[off + 6];
  let p = off + 40;
  let remaining = payloadLen;
  // Walk every extension header: each is at least 8 bytes, so the captured
  // bytes bound the loop. Stopping early would let a long chain hide the
  // transport header from the rules.
  for (;;) {
    if (next === 0 || next === 43 || next === 60) {
      // Hop-by-hop, routing, destination options: length in 8-byte units.
      if (end - p < 2) return (out.proto[i] = next), (out.status[i] = DecodeStatus.Truncated);
      const len = (b[p + 1] + 1) * 8;
      if (len > remaining) return (out.status[i] = DecodeStatus.Malformed);
      next = b[p];
      p += len;
      remaining -= len;
    } else if (next === 44) {
      if (end - p < 8) return (out.proto[i] = next), (out.status[i] = DecodeStatus.Truncated);
      if (remaining < 8) return (out.status[i] = DecodeStatus.Malformed);
      const fw = u16(b, p + 2);
      const fragOffset = fw >> 3;
      let frag = 0;
      if (fw & 1) frag |= FragBits.MoreFragments;
      if (fragOffset !== 0) frag |= FragBits.NonFirst;
      else if (fw & 1) frag |= FragBits.First;
      out.frag[i] = frag;
      out.fragOffset[i] = fragOffset;
      next = b[p];
      p += 8;
      remaining -= 8;
      if (fragOffset !== 0) {
        out.proto[i] = next;
        out.l3[i] |= L3Bits.Protocol;
        return DecodeStatus.Ok;
      }
    } else if (next === 51) {
      // AH: length in 4-byte units, minus 2.
      if (end - p < 2) return (out.proto[i] = next), (out.status[i] = DecodeStatus.Truncated);
      const len = (b[p + 1] + 2) * 4;
      if (len > remaining) return (out.status[i] = DecodeStatus.Malformed);
      next = b[p];
      p += len;
      remaining -= len;
    } else {
      break;
    }
  }
  out.proto[i] = next;
  out.l3[i] |= L3Bits.Protocol;
  return decodeL4(b, off, p, end, remaining, next, i, out);
}

function decodeL4(b: Uint8Array, pktStart: number, p: number, end: number, l4Len: number, proto: number, i: number, out: DecodedBatch): DecodeStatus {
  const have = end - p;
  switch (proto) {
    case PROTO_TCP: {
      if (l4Len < 20) return (out.status[i] = DecodeStatus.Malformed);
      if (have < 20) return (out.status[i] = DecodeStatus.Truncated);
      const hlen = (b[p + 12] >> 4) * 4;
      if (hlen < 20 || hlen > l4Len) return (out.status[i] = DecodeStatus.Malformed);
      out.sport[i] = u16(b, p);
      out.dport[i] = u16(b, p + 2);
      out.tcpFlags[i] = b[p + 13];
      out.tcpWindow[i] = u16(b, p + 14);
      out.l4PayloadLen[i] = l4Len - hlen;
      break;
    }
    case PROTO_UDP:
    case PROTO_SCTP:
    case PROTO_UDPLITE: {
      const hlen = proto === PROTO_SCTP ? 12 : 8;
      if (l4Len < hlen) return (out.status[i] = DecodeStatus.Malformed);
      if (have < 4) return (out.status[i] = DecodeStatus.Truncated);
      out.sport[i] = u16(b, p);
      out.dport[i] = u16(b, p + 2);
      out.l4PayloadLen[i] = l4Len - hlen;
      break;
    }
    case PROTO_ICMP:
    case PROTO_ICMPV6: {
      if (l4Len < 4) return (out.status[i] = DecodeStatus.Malformed);
      if (have < 2) return (out.status[i] = DecodeStatus.Truncated);
      out.icmpType[i] = b[p];
      out.icmpCode[i] = b[p + 1];
      out.l4PayloadLen[i] = l4Len - 4;
      break;
    }
    default:
      out.l4PayloadLen[i] = l4Len;
      // Extension headers may end beyond the captured bytes; no offset then.
      if (have < 0) return DecodeStatus.Ok;
  }
  out.l4Offset[i] = p - pktStart;
  return DecodeStatus.Ok;
}

/** Decodes n packets described by the metadata columns. Returns how many were not Ok. */
export function decodeBatch(buf: Uint8Array, offset: Uint32Array, capLen: Uint32Array, n: number, out: DecodedBatch): number {
  let bad = 0;
  for (let i = 0; i < n; i++) {
    if (decodePacket(buf, offset[i], capLen[i], i, out) !== DecodeStatus.Ok) bad++;
  }
  return bad;
}
