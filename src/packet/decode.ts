// IPv4/IPv6 + TCP/UDP/ICMP/ICMPv6/SCTP header decoding straight from the
// batch buffer. Hand-written rather than a parsing library: it runs for every
// packet and must not allocate, throw or read past the captured bytes.
//
// Besides the headers it says when the transport header is out of sight and
// why (DecodedBatch.hidden): every way of hiding it that an endpoint would
// still accept is named there, so the verdict can refuse to be fooled.
import { DecodedBatch, DecodeStatus, FragBits, Hidden, L3Bits, PROTO_ICMP, PROTO_ICMPV6, PROTO_SCTP, PROTO_TCP, PROTO_UDP, PROTO_UDPLITE } from './decoded';

const NO_ICMP = 0xffff;

function u16(b: Uint8Array, o: number): number {
  return (b[o] << 8) | b[o + 1];
}
function u32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}

// Per protocol number, looked up once per header: tables cost one load
// where chains of comparisons cost up to ten on every IPv6 packet.

/**
 * Bytes of transport header the rules read from (the fixed header); 0 for
 * protocols nfips reads nothing from. A fragment must carry all of them in
 * its first piece, and no later piece may start inside them.
 */
/** IPv6's minimum MTU: every first fragment can hold this much, so no real later fragment starts before it. */
const V6_MIN_MTU = 1280;
const L4_HEADER = new Uint8Array(256);
L4_HEADER[PROTO_TCP] = 20;
L4_HEADER[PROTO_SCTP] = 12;
L4_HEADER[PROTO_UDP] = L4_HEADER[PROTO_UDPLITE] = L4_HEADER[PROTO_ICMP] = L4_HEADER[PROTO_ICMPV6] = 8;

// V6_KIND: 0 for a final protocol (TCP, UDP, ESP, no next header...), else:
/**
 * IPv6 extension headers in the generic form of RFC 8200 section 4 (next
 * header, length in 8-octet units after the first 8): hop-by-hop, routing,
 * destination options, mobility, HIP, shim6 and the two experimental values
 * (RFC 7045).
 */
const V6_GENERIC = 1;
/** Fragment (44) and AH (51) have their own length rules. */
const V6_FRAGMENT = 2;
const V6_AH = 3;
/** Protocol numbers IANA has not assigned (146-252, 255): an endpoint may know one as a header nfips cannot walk. */
const V6_UNASSIGNED = 4;
const V6_KIND = new Uint8Array(256);
for (const h of [0, 43, 60, 135, 139, 140, 253, 254]) V6_KIND[h] = V6_GENERIC;
V6_KIND[44] = V6_FRAGMENT;
V6_KIND[51] = V6_AH;
for (let h = 146; h < 253; h++) V6_KIND[h] = V6_UNASSIGNED;
V6_KIND[255] = V6_UNASSIGNED;

function clear(out: DecodedBatch, i: number): void {
  out.status[i] = DecodeStatus.Ok;
  out.hidden[i] = Hidden.None;
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

function fail(out: DecodedBatch, i: number, status: DecodeStatus, why: Hidden): DecodeStatus {
  out.hidden[i] = why;
  return (out.status[i] = status);
}

/**
 * Decodes the packet at buf[off .. off+capLen) into entry i of out.
 * Returns the status it also stores; never throws.
 */
export function decodePacket(buf: Uint8Array, off: number, capLen: number, i: number, out: DecodedBatch): DecodeStatus {
  clear(out, i);
  const end = off + capLen;
  if (capLen < 1 || end > buf.length) return fail(out, i, DecodeStatus.Truncated, Hidden.BeyondCopy);
  const version = buf[off] >> 4;
  if (version === 4) return decodeV4(buf, off, end, i, out);
  if (version === 6) return decodeV6(buf, off, end, i, out);
  return fail(out, i, DecodeStatus.Malformed, Hidden.BadIp);
}

function decodeV4(b: Uint8Array, off: number, end: number, i: number, out: DecodedBatch): DecodeStatus {
  out.family[i] = 4;
  if (end - off < 20) return fail(out, i, DecodeStatus.Truncated, Hidden.BeyondCopy);
  const ihl = (b[off] & 0x0f) * 4;
  const totalLen = u16(b, off + 2);
  if (ihl < 20 || totalLen < ihl) return fail(out, i, DecodeStatus.Malformed, Hidden.BadIp);
  if (end - off < ihl) return fail(out, i, DecodeStatus.Truncated, Hidden.BeyondCopy);
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
  if (fragOffset !== 0) {
    // Offset 1 or 2 of TCP lands on the flags and data offset (RFC 1858).
    if (fragOffset * 8 < L4_HEADER[proto]) out.hidden[i] = Hidden.FragmentOverlap;
    return DecodeStatus.Ok;
  }
  return decodeL4(b, off, off + ihl, end, totalLen - ihl, proto, (frag & FragBits.First) !== 0, i, out);
}

function decodeV6(b: Uint8Array, off: number, end: number, i: number, out: DecodedBatch): DecodeStatus {
  out.family[i] = 6;
  if (end - off < 40) return fail(out, i, DecodeStatus.Truncated, Hidden.BeyondCopy);
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
  // Set after a first fragment's header: the rest of the chain and the
  // transport header must then fit in this fragment (RFC 7112).
  let firstFragment = false;
  // Walk every extension header: each is at least 8 bytes, so the captured
  // bytes bound the loop. Stopping early would let a long chain hide the
  // transport header from the rules.
  for (;;) {
    const kind = V6_KIND[next];
    if (kind === V6_GENERIC) {
      if (end - p < 2) return (out.proto[i] = next), fail(out, i, DecodeStatus.Truncated, Hidden.BeyondCopy);
      const len = (b[p + 1] + 1) * 8;
      if (len > remaining) return (out.proto[i] = next), fail(out, i, DecodeStatus.Malformed, firstFragment ? Hidden.TinyFragment : Hidden.BadIp);
      next = b[p];
      p += len;
      remaining -= len;
    } else if (kind === V6_FRAGMENT) {
      if (end - p < 8) return (out.proto[i] = next), fail(out, i, DecodeStatus.Truncated, Hidden.BeyondCopy);
      if (remaining < 8) return (out.proto[i] = next), fail(out, i, DecodeStatus.Malformed, Hidden.BadIp);
      const fw = u16(b, p + 2);
      const fragOffset = fw >> 3;
      let frag = out.frag[i];
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
        // Reassembly takes the chain and the transport header from the
        // first fragment and ignores this one's next header, so neither can
        // be trusted: any offset inside what a first fragment carries at the
        // minimum MTU may land on them (RFC 8200 5, RFC 7112). Real senders
        // fragment at 1280 bytes or more, so their offsets start beyond it
        // (1232 with no header before the fragment header).
        if (fragOffset * 8 < V6_MIN_MTU - (p - off)) out.hidden[i] = Hidden.FragmentOverlap;
        else if (V6_KIND[next] === V6_UNASSIGNED) out.hidden[i] = Hidden.UnknownHeader;
        return DecodeStatus.Ok;
      }
      if (fw & 1) firstFragment = true;
    } else if (kind === V6_AH) {
      // AH: length in 4-byte units, minus 2.
      if (end - p < 2) return (out.proto[i] = next), fail(out, i, DecodeStatus.Truncated, Hidden.BeyondCopy);
      const len = (b[p + 1] + 2) * 4;
      if (len > remaining) return (out.proto[i] = next), fail(out, i, DecodeStatus.Malformed, firstFragment ? Hidden.TinyFragment : Hidden.BadIp);
      next = b[p];
      p += len;
      remaining -= len;
    } else {
      break;
    }
  }
  out.proto[i] = next;
  out.l3[i] |= L3Bits.Protocol;
  // Not a header nfips knows: an endpoint that does could find a transport
  // header behind it. Rules on the number itself still see it.
  if (V6_KIND[next] === V6_UNASSIGNED) out.hidden[i] = Hidden.UnknownHeader;
  // A first fragment whose chain and transport header reach past the minimum
  // MTU: a later fragment that the check above lets through could overlap them.
  else if (firstFragment && p - off + L4_HEADER[next] > V6_MIN_MTU) out.hidden[i] = Hidden.TinyFragment;
  return decodeL4(b, off, p, end, remaining, next, firstFragment, i, out);
}

function decodeL4(b: Uint8Array, pktStart: number, p: number, end: number, l4Len: number, proto: number, firstFragment: boolean, i: number, out: DecodedBatch): DecodeStatus {
  const have = end - p;
  const need = L4_HEADER[proto];
  // Shorter than its own header: in a first fragment that is the tiny
  // fragment attack, in a whole packet a header that cannot be right.
  if (l4Len < need) return fail(out, i, DecodeStatus.Malformed, firstFragment ? Hidden.TinyFragment : Hidden.BadTransport);
  switch (proto) {
    case PROTO_TCP: {
      if (have < 20) return fail(out, i, DecodeStatus.Truncated, Hidden.BeyondCopy);
      const hlen = (b[p + 12] >> 4) * 4;
      if (hlen < 20 || hlen > l4Len) return fail(out, i, DecodeStatus.Malformed, Hidden.BadTransport);
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
      if (have < 4) return fail(out, i, DecodeStatus.Truncated, Hidden.BeyondCopy);
      out.sport[i] = u16(b, p);
      out.dport[i] = u16(b, p + 2);
      out.l4PayloadLen[i] = l4Len - need;
      break;
    }
    case PROTO_ICMP:
    case PROTO_ICMPV6: {
      if (have < 2) return fail(out, i, DecodeStatus.Truncated, Hidden.BeyondCopy);
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
/** Decodes packets from..n-1 into `out` at the same indexes. */
export function decodeBatch(buf: Uint8Array, offset: Uint32Array, capLen: Uint32Array, n: number, out: DecodedBatch, from = 0): number {
  let bad = 0;
  for (let i = from; i < n; i++) {
    if (decodePacket(buf, offset[i], capLen[i], i, out) !== DecodeStatus.Ok) bad++;
  }
  return bad;
}
