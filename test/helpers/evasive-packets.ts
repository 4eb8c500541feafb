// Raw packets that try to hide their transport header: IPv6 extension chains
// and fragments of both families. For unit tests of the decoder and the
// verdict; the namespace tests craft theirs with scapy (test/evasion/).
import { buildPacket, PacketSpec } from '../../src/packet/build';

export interface Ext {
  /** Next-header value of this header (0 hop-by-hop, 43 routing, 60 destination options, 253...). */
  type: number;
  /** Total length in bytes: a multiple of 8, at least 8. */
  bytes: number;
}

/**
 * An IPv6 packet with generic extension headers between the fixed header
 * and the transport header. Option bytes are PadN (type 1), which every
 * endpoint skips; routing headers get segments left 0.
 */
export function withExtensions(spec: PacketSpec, chain: Ext[]): Buffer {
  const inner = buildPacket(spec);
  if (inner[0] >> 4 !== 6) throw new Error('withExtensions needs an IPv6 packet');
  const headers = chain.map((h, k) => {
    if (h.bytes < 8 || h.bytes % 8 !== 0) throw new Error(`extension length ${h.bytes}: a multiple of 8 from 8`);
    const b = Buffer.alloc(h.bytes);
    b[0] = k + 1 < chain.length ? chain[k + 1].type : inner[6];
    b[1] = h.bytes / 8 - 1;
    if (h.type === 43) {
      b[2] = 0; // routing type 0 header with segments left 0: processed, nothing to route
      b[3] = 0;
    } else {
      b[2] = 1; // PadN over the rest
      b[3] = h.bytes - 4;
    }
    return b;
  });
  const out = Buffer.concat([inner.subarray(0, 40), ...headers, inner.subarray(40)]);
  if (chain.length) out[6] = chain[0].type;
  out.writeUInt16BE(out.length - 40, 4);
  return out;
}

/** IPv4 fragments of a whole packet: `sizes` are the data bytes of each fragment (multiples of 8 but the last). */
export function fragment4(whole: Buffer, sizes: number[], id = 0x4242): Buffer[] {
  const ihl = (whole[0] & 0x0f) * 4;
  const data = whole.subarray(ihl);
  const out: Buffer[] = [];
  let at = 0;
  sizes.forEach((size, k) => {
    const last = k === sizes.length - 1;
    const chunk = data.subarray(at, last ? data.length : at + size);
    const h = Buffer.from(whole.subarray(0, ihl));
    h.writeUInt16BE(ihl + chunk.length, 2);
    h.writeUInt16BE(id, 4);
    h.writeUInt16BE((last ? 0 : 0x2000) | (at / 8), 6);
    out.push(Buffer.concat([h, chunk]));
    at += chunk.length;
  });
  return out;
}

/** One IPv4 fragment of `whole` holding data bytes [from, from+len) at offset from/8. */
export function fragment4At(whole: Buffer, from: number, len: number, more: boolean, id = 0x4242): Buffer {
  const ihl = (whole[0] & 0x0f) * 4;
  const chunk = whole.subarray(ihl + from, ihl + from + len);
  const h = Buffer.from(whole.subarray(0, ihl));
  h.writeUInt16BE(ihl + chunk.length, 2);
  h.writeUInt16BE(id, 4);
  h.writeUInt16BE((more ? 0x2000 : 0) | (from / 8), 6);
  return Buffer.concat([h, chunk]);
}

/**
 * IPv6 fragments: the fixed header is the unfragmentable part, everything
 * after it (extension headers included) is fragmented into `sizes`.
 */
export function fragment6(whole: Buffer, sizes: number[], id = 0x4242): Buffer[] {
  const data = whole.subarray(40);
  const out: Buffer[] = [];
  let at = 0;
  sizes.forEach((size, k) => {
    const last = k === sizes.length - 1;
    const chunk = data.subarray(at, last ? data.length : at + size);
    out.push(fragment6At(whole, at, chunk.length, !last, id));
    at += chunk.length;
  });
  return out;
}

/** One IPv6 fragment holding bytes [from, from+len) of what follows the fixed header. */
export function fragment6At(whole: Buffer, from: number, len: number, more: boolean, id = 0x4242): Buffer {
  const chunk = whole.subarray(40 + from, 40 + from + len);
  const h = Buffer.from(whole.subarray(0, 40));
  const fh = Buffer.alloc(8);
  fh[0] = whole[6];
  fh.writeUInt16BE(((from / 8) << 3) | (more ? 1 : 0), 2);
  fh.writeUInt32BE(id, 4);
  h[6] = 44;
  h.writeUInt16BE(8 + chunk.length, 4);
  return Buffer.concat([h, fh, chunk]);
}
