// Classic pcap writer, for generating test and benchmark captures; not used
// on any packet path.
import { closeSync, openSync, writeSync } from 'node:fs';
import { ETHERTYPE_IPV4, ETHERTYPE_IPV6, LINKTYPE_EN10MB, LINKTYPE_RAW } from './link';

export interface PcapWriterOptions {
  /** LINKTYPE_RAW (101, bare IP packets; default) or LINKTYPE_EN10MB (1, Ethernet frames). */
  linkType?: typeof LINKTYPE_RAW | typeof LINKTYPE_EN10MB;
  /** Nanosecond timestamps (magic a1b23c4d) instead of microseconds. */
  nanos?: boolean;
  /** Write big-endian headers instead of little-endian ones. */
  bigEndian?: boolean;
  snapLen?: number;
}

const FLUSH_AT = 1 << 20;

export class PcapWriter {
  readonly linkType: number;
  readonly nanos: boolean;
  private fd: number;
  private readonly le: boolean;
  private readonly snapLen: number;
  private buf = Buffer.alloc(FLUSH_AT + 65536);
  private used = 0;

  constructor(file: string, opts: PcapWriterOptions = {}) {
    this.linkType = opts.linkType ?? LINKTYPE_RAW;
    this.nanos = opts.nanos ?? false;
    this.le = !(opts.bigEndian ?? false);
    this.snapLen = opts.snapLen ?? 262144;
    this.fd = openSync(file, 'w');
    const h = Buffer.alloc(24);
    this.u32(h, 0, this.nanos ? 0xa1b23c4d : 0xa1b2c3d4);
    this.u16(h, 4, 2);
    this.u16(h, 6, 4);
    this.u32(h, 16, this.snapLen);
    this.u32(h, 20, this.linkType);
    writeSync(this.fd, h);
  }

  /** Appends one record; origLen defaults to bytes.length (a full capture). */
  write(tsSec: number, tsNsec: number, bytes: Uint8Array, origLen = bytes.length): void {
    if (this.fd < 0) throw new Error('pcap writer is closed');
    const incl = Math.min(bytes.length, this.snapLen);
    if (this.used + 16 + incl > this.buf.length) this.flush();
    if (16 + incl > this.buf.length) this.buf = Buffer.alloc(16 + incl);
    const b = this.buf;
    const o = this.used;
    this.u32(b, o, tsSec);
    this.u32(b, o + 4, this.nanos ? tsNsec : Math.floor(tsNsec / 1000));
    this.u32(b, o + 8, incl);
    this.u32(b, o + 12, origLen);
    b.set(bytes.subarray(0, incl), o + 16);
    this.used += 16 + incl;
    if (this.used >= FLUSH_AT) this.flush();
  }

  close(): void {
    if (this.fd < 0) return;
    this.flush();
    closeSync(this.fd);
    this.fd = -1;
  }

  private flush(): void {
    let off = 0;
    while (off < this.used) off += writeSync(this.fd, this.buf, off, this.used - off);
    this.used = 0;
  }

  private u32(b: Buffer, o: number, v: number): void {
    if (this.le) b.writeUInt32LE(v >>> 0, o);
    else b.writeUInt32BE(v >>> 0, o);
  }

  private u16(b: Buffer, o: number, v: number): void {
    if (this.le) b.writeUInt16LE(v, o);
    else b.writeUInt16BE(v, o);
  }
}

export interface EthernetOptions {
  src?: Uint8Array;
  dst?: Uint8Array;
  /** VLAN ids, outermost first; the outer ones of several get 802.1ad tags. */
  vlans?: number[];
  /** Ethertype to announce; by default taken from the IP version nibble. */
  ethertype?: number;
}

/** Wraps a packet in an Ethernet header (with optional VLAN tags). */
export function ethernetFrame(payload: Uint8Array, opts: EthernetOptions = {}): Buffer {
  const vlans = opts.vlans ?? [];
  const f = Buffer.alloc(14 + vlans.length * 4 + payload.length);
  f.set(opts.dst ?? [0x02, 0, 0, 0, 0, 0x02], 0);
  f.set(opts.src ?? [0x02, 0, 0, 0, 0, 0x01], 6);
  let o = 12;
  vlans.forEach((vid, k) => {
    f.writeUInt16BE(k < vlans.length - 1 ? 0x88a8 : 0x8100, o);
    f.writeUInt16BE(vid & 0x0fff, o + 2);
    o += 4;
  });
  const type = opts.ethertype ?? (payload[0] >> 4 === 6 ? ETHERTYPE_IPV6 : ETHERTYPE_IPV4);
  f.writeUInt16BE(type, o);
  f.set(payload, o + 2);
  return f;
}
