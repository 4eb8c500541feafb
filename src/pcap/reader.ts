// Streaming reader for classic pcap and pcapng files that fills the same
// batch layout (packet bytes + metadata columns) NFQUEUE batches use, so the
// offline pipeline runs the inline decode/rules/feature code unchanged.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { Field, metaColumns, MetaColumns } from '../batch/layout';
import { createLinkInfo, fillCapturedColumns, isSupportedLinkType, LinkInfo, LinkStatus, parseLink, supportedLinkTypes } from './link';

export interface PcapReaderOptions {
  /** Bytes read from the file at a time (default 1 MiB); the buffer grows for larger records. */
  chunkSize?: number;
  /** Packet buffer bytes per batch slot on average (default 2048); big records just end a batch early. */
  bytesPerPacket?: number;
}

export interface PcapReaderStats {
  /** Packet records read from the file. */
  records: number;
  /** Records handed out as packets. */
  packets: number;
  /** Records carrying something other than IPv4/IPv6 (ARP, LLDP, ...). */
  skippedNonIp: number;
  /** Records whose capture ends inside the link header. */
  skippedShort: number;
  /** pcapng packets on interfaces whose link type is not supported. */
  skippedLinkType: number;
  /** Records longer than any IP packet, cut to MAX_COPY bytes. */
  clipped: number;
  /** The file ends (or turns to garbage) inside a record; everything before it was read. */
  truncated: boolean;
  warnings: string[];
}

export type PcapFormat = 'pcap' | 'pcapng';

// A frame cannot hold more than one maximal IPv6 packet (jumbograms aside)
// plus its link header; copying more would only waste the batch buffer.
const MAX_COPY = 65535 + 40 + 256;
// A sane block or record never comes near this; beyond it the file is corrupt.
const MAX_RECORD = 64 * 1024 * 1024;
const MAX_WARNINGS = 20;

const PCAP_US = 0xa1b2c3d4;
const PCAP_NS = 0xa1b23c4d;
/** Alexey Kuznetzov's patched libpcap: 8 more bytes per record header. */
const PCAP_KUZNETZOV = 0xa1b2cd34;
const NG_SHB = 0x0a0d0d0a;
const NG_BOM = 0x1a2b3c4d;
const NG_IDB = 1;
const NG_SPB = 3;
const NG_EPB = 6;

interface NgInterface {
  linkType: number;
  snapLen: number;
  /** Timestamp units per second. */
  unitsPerSec: number;
  offsetSec: number;
}

function hex(v: number): string {
  return `0x${(v >>> 0).toString(16).padStart(8, '0')}`;
}

export class PcapBatchReader {
  readonly file: string;
  readonly batchSize: number;
  readonly format: PcapFormat;
  /** Packet bytes of the current batch; meta.offset/hwAddrOffset index into it. */
  readonly packets: Uint8Array;
  readonly meta: MetaColumns;
  readonly stats: PcapReaderStats = {
    records: 0,
    packets: 0,
    skippedNonIp: 0,
    skippedShort: 0,
    skippedLinkType: 0,
    clipped: 0,
    truncated: false,
    warnings: [],
  };
  /** Link type of a classic file, or of the first pcapng interface (-1 before one is seen). */
  linkType = -1;

  private fd: number;
  /** File size at open, for progress. */
  readonly fileSize: number;
  private buf: Uint8Array;
  private view: DataView;
  private pos = 0;
  private end = 0;
  /** File offset of buf[end]. */
  private filePos = 0;
  private le = true;
  private done = false;
  private nanos = false;
  private recHdrLen = 16;
  private snapLen = 0;
  private interfaces: NgInterface[] = [];

  // The record found by advance() and not yet copied out.
  private pending = false;
  private recLen = 0;
  private recData = 0;
  private recCap = 0;
  private recOrig = 0;
  private recSec = 0;
  private recNsec = 0;
  private recLink = 0;
  private readonly link: LinkInfo = createLinkInfo();

  /** Bytes of the file consumed so far, for progress. */
  get bytesRead(): number {
    return Math.min(this.fileSize, this.filePos - (this.end - this.pos));
  }

  constructor(file: string, batchSize = 256, opts: PcapReaderOptions = {}) {
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batch size must be a positive integer, not ${batchSize}`);
    this.file = file;
    this.batchSize = batchSize;
    const chunk = Math.max(64, opts.chunkSize ?? 1 << 20);
    this.buf = new Uint8Array(chunk);
    this.view = new DataView(this.buf.buffer);
    this.packets = new Uint8Array(batchSize * Math.max(64, opts.bytesPerPacket ?? 2048) + MAX_COPY);
    this.meta = metaColumns(new ArrayBuffer(Field.Count * batchSize * 4), batchSize);
    this.fd = openSync(file, 'r');
    try {
      this.fileSize = fstatSync(this.fd).size;
      this.format = this.readFileHeader();
      // Finds the first packet now, so a pcapng file with an unsupported
      // link type fails here rather than after batches went out.
      this.advance();
    } catch (err) {
      closeSync(this.fd);
      this.fd = -1;
      throw err;
    }
  }

  /**
   * Fills up to batchSize packets into packets/meta and returns how many;
   * 0 at the end of the file. The previous batch is overwritten.
   */
  next(): number {
    const m = this.meta;
    const out = this.packets;
    const cap = out.length;
    let n = 0;
    let used = 0;
    while (n < this.batchSize && this.pending) {
      const copy = Math.min(this.recCap, MAX_COPY);
      if (used + copy > cap) break;
      const st = this.stats;
      const status = parseLink(this.recLink, this.buf, this.recData, copy, this.link);
      if (status === LinkStatus.Ip) {
        out.set(this.buf.subarray(this.recData, this.recData + copy), used);
        const hl = this.link.headerLen;
        // Some writers leave the original length 0 or below the captured one.
        fillCapturedColumns(m, n, used, this.link, copy - hl, Math.max(this.recOrig, this.recCap) - hl, this.recSec, this.recNsec);
        if (copy < this.recCap) st.clipped++;
        used += copy;
        n++;
        st.packets++;
      } else if (status === LinkStatus.NotIp) {
        st.skippedNonIp++;
      } else {
        st.skippedShort++;
      }
      this.consume();
      this.advance();
    }
    return n;
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
    this.pending = false;
    this.done = true;
  }

  private warn(msg: string): void {
    if (this.stats.warnings.length < MAX_WARNINGS) this.stats.warnings.push(`${this.file}: ${msg}`);
  }

  /** Stops reading: the rest of the file cannot be trusted. */
  private stopTruncated(msg: string): void {
    this.stats.truncated = true;
    this.warn(msg);
    this.done = true;
    this.pending = false;
  }

  /**
   * Makes buf[pos .. pos+k) valid. Returns the bytes available when the
   * file ends first (then fewer than k).
   */
  private ensure(k: number): number {
    if (this.end - this.pos >= k) return k;
    if (k > this.buf.length) {
      const bigger = new Uint8Array(Math.max(k, this.buf.length * 2));
      bigger.set(this.buf.subarray(this.pos, this.end));
      this.end -= this.pos;
      this.pos = 0;
      this.buf = bigger;
      this.view = new DataView(bigger.buffer);
    } else if (this.pos > 0) {
      this.buf.copyWithin(0, this.pos, this.end);
      this.end -= this.pos;
      this.pos = 0;
    }
    while (this.end - this.pos < k && this.fd >= 0) {
      const got = readSync(this.fd, this.buf, this.end, this.buf.length - this.end, this.filePos);
      if (got <= 0) break;
      this.end += got;
      this.filePos += got;
    }
    return Math.min(k, this.end - this.pos);
  }

  /** Skips k bytes, most of which may not be in the buffer. False if the file ends first. */
  private skip(k: number): boolean {
    const inBuf = this.end - this.pos;
    if (k <= inBuf) {
      this.pos += k;
      return true;
    }
    this.filePos += k - inBuf;
    this.pos = this.end = 0;
    return this.filePos <= this.fileSize;
  }

  private u16(o: number): number {
    return this.view.getUint16(o, this.le);
  }

  private u32(o: number): number {
    return this.view.getUint32(o, this.le);
  }

  private readFileHeader(): PcapFormat {
    const have = this.ensure(4);
    if (have < 4) throw new Error(`${this.file}: not a pcap or pcapng file (${have === 0 ? 'empty file' : 'too short'})`);
    const be = this.view.getUint32(this.pos, false);
    if (be === NG_SHB) return 'pcapng';
    for (const le of [false, true]) {
      const magic = this.view.getUint32(this.pos, le);
      if (magic === PCAP_US || magic === PCAP_NS || magic === PCAP_KUZNETZOV) {
        this.le = le;
        this.nanos = magic === PCAP_NS;
        this.recHdrLen = magic === PCAP_KUZNETZOV ? 24 : 16;
        if (this.ensure(24) < 24) throw new Error(`${this.file}: pcap file header is cut short`);
        this.snapLen = this.u32(this.pos + 16);
        // The top bits hold FCS information, not the link type.
        this.linkType = this.u32(this.pos + 20) & 0xffff;
        if (!isSupportedLinkType(this.linkType)) {
          throw new Error(`${this.file}: unsupported link type ${this.linkType} (supported: ${supportedLinkTypes()})`);
        }
        this.pos += 24;
        return 'pcap';
      }
    }
    throw new Error(`${this.file}: not a pcap or pcapng file (magic ${hex(be)})`);
  }

  private consume(): void {
    this.pos += this.recLen;
    this.pending = false;
  }

  /** Finds the next packet record, leaving it in buf as the pending record. */
  private advance(): void {
    if (this.done) return;
    if (this.format === 'pcap') this.advanceClassic();
    else this.advanceNg();
  }

  private advanceClassic(): void {
    const h = this.recHdrLen;
    const got = this.ensure(h);
    if (got === 0) {
      this.done = true;
      return;
    }
    if (got < h) return this.stopTruncated(`file ends inside a record header after ${this.stats.records} records`);
    const p = this.pos;
    const incl = this.u32(p + 8);
    if (incl > Math.max(this.snapLen, 262144) || incl > MAX_RECORD) {
      return this.stopTruncated(`record ${this.stats.records + 1} claims ${incl} captured bytes (snaplen ${this.snapLen}): the file is corrupt from here`);
    }
    if (this.ensure(h + incl) < h + incl) return this.stopTruncated(`file ends inside record ${this.stats.records + 1}`);
    const q = this.pos;
    this.recSec = this.u32(q);
    const frac = this.u32(q + 4);
    this.recNsec = this.nanos ? Math.min(frac, 999_999_999) : Math.min(frac, 999_999) * 1000;
    this.recCap = incl;
    this.recOrig = this.u32(q + 12);
    this.recData = q + h;
    this.recLen = h + incl;
    this.recLink = this.linkType;
    this.pending = true;
    this.stats.records++;
  }

  private advanceNg(): void {
    for (;;) {
      const got = this.ensure(12);
      if (got === 0) {
        this.done = true;
        return;
      }
      if (got < 12) return this.stopTruncated(`file ends inside a block header after ${this.stats.records} records`);
      const p = this.pos;
      const type = this.u32(p);
      if (type === NG_SHB) {
        // A section header sets the byte order of everything up to the next one.
        const bom = this.view.getUint32(p + 8, false);
        if (bom === NG_BOM) this.le = false;
        else if (bom === 0x4d3c2b1a) this.le = true;
        else return this.stopTruncated(`section header with a bad byte-order magic ${hex(bom)}`);
        this.interfaces = [];
      }
      const len = this.u32(p + 4);
      if (len < 12 || len % 4 !== 0 || len > MAX_RECORD) {
        return this.stopTruncated(`block of type ${hex(type)} has an impossible length ${len}: the file is corrupt from here`);
      }
      if (type !== NG_SHB && type !== NG_IDB && type !== NG_EPB && type !== NG_SPB) {
        if (!this.skip(len)) return this.stopTruncated(`file ends inside a block of type ${hex(type)}`);
        continue;
      }
      if (this.ensure(len) < len) return this.stopTruncated(`file ends inside a block of type ${hex(type)} after ${this.stats.records} records`);
      const q = this.pos;
      if (type === NG_SHB) {
        this.pos += len;
      } else if (type === NG_IDB) {
        this.readIdb(q, len);
        this.pos += len;
      } else if (this.readNgPacket(type, q, len)) {
        return;
      } else if (this.done) {
        return;
      } else {
        this.pos += len;
      }
    }
  }

  private readIdb(q: number, len: number): void {
    if (len < 20) {
      this.warn(`interface description block too short (${len} bytes)`);
      this.interfaces.push({ linkType: -1, snapLen: 0, unitsPerSec: 1e6, offsetSec: 0 });
      return;
    }
    const linkType = this.u16(q + 8);
    const intf: NgInterface = { linkType, snapLen: this.u32(q + 12), unitsPerSec: 1e6, offsetSec: 0 };
    let o = q + 16;
    const optEnd = q + len - 4;
    while (o + 4 <= optEnd) {
      const code = this.u16(o);
      const olen = this.u16(o + 2);
      if (code === 0 || o + 4 + olen > optEnd) break;
      if (code === 9 && olen >= 1) {
        const r = this.buf[o + 4];
        intf.unitsPerSec = r & 0x80 ? 2 ** (r & 0x7f) : 10 ** r;
      } else if (code === 14 && olen >= 8) {
        const hi = this.view.getInt32(o + 4 + (this.le ? 4 : 0), this.le);
        const lo = this.u32(o + 4 + (this.le ? 0 : 4));
        intf.offsetSec = hi * 4294967296 + lo;
      }
      o += 4 + ((olen + 3) & ~3);
    }
    if (this.linkType < 0) this.linkType = linkType;
    if (!isSupportedLinkType(linkType)) this.warn(`interface ${this.interfaces.length} has unsupported link type ${linkType}; its packets are skipped`);
    this.interfaces.push(intf);
  }

  /** Sets up the pending record from an EPB/SPB. False when the block holds no usable packet. */
  private readNgPacket(type: number, q: number, len: number): boolean {
    let ifIdx = 0;
    let data: number;
    let capLen: number;
    let origLen: number;
    let sec = 0;
    let nsec = 0;
    if (type === NG_EPB) {
      if (len < 32) {
        this.warn(`enhanced packet block too short (${len} bytes)`);
        return false;
      }
      ifIdx = this.u32(q + 8);
      capLen = this.u32(q + 20);
      origLen = this.u32(q + 24);
      data = q + 28;
      if (capLen > len - 32) {
        this.stopTruncated(`packet block ${this.stats.records + 1} claims ${capLen} bytes in a ${len}-byte block: the file is corrupt from here`);
        return false;
      }
    } else {
      if (len < 16) {
        this.warn(`simple packet block too short (${len} bytes)`);
        return false;
      }
      origLen = this.u32(q + 8);
      data = q + 12;
      capLen = Math.min(origLen, len - 16);
    }
    const intf = this.interfaces[ifIdx];
    if (intf === undefined) {
      this.stopTruncated(`packet block refers to interface ${ifIdx}, which was never described: the file is corrupt from here`);
      return false;
    }
    this.stats.records++;
    if (!isSupportedLinkType(intf.linkType)) {
      // The first packet is found while opening: a file none of whose
      // interfaces can be read fails there, like a classic file would.
      if (this.stats.records === 1 && !this.interfaces.some((i) => isSupportedLinkType(i.linkType))) {
        throw new Error(`${this.file}: unsupported link type ${intf.linkType} (supported: ${supportedLinkTypes()})`);
      }
      this.stats.skippedLinkType++;
      return false;
    }
    if (type === NG_SPB) {
      if (intf.snapLen > 0) capLen = Math.min(capLen, intf.snapLen);
    } else {
      const hi = this.u32(q + 12);
      const lo = this.u32(q + 16);
      const ts = splitTimestamp(hi, lo, intf.unitsPerSec);
      sec = ts.sec + intf.offsetSec;
      nsec = ts.nsec;
    }
    this.recSec = sec >>> 0;
    this.recNsec = nsec;
    this.recCap = capLen;
    this.recOrig = origLen;
    this.recData = data;
    this.recLen = len;
    this.recLink = intf.linkType;
    this.pending = true;
    return true;
  }
}

const tsOut = { sec: 0, nsec: 0 };

/** Exact seconds and nanoseconds of a 64-bit count of 1/unitsPerSec ticks, without BigInt allocations. */
export function splitTimestamp(hi: number, lo: number, unitsPerSec: number): { sec: number; nsec: number } {
  let sec: number;
  let rem: number;
  if (hi < 0x200000) {
    // Below 2^53: plain doubles are exact.
    const v = hi * 4294967296 + lo;
    sec = Math.floor(v / unitsPerSec);
    rem = v - sec * unitsPerSec;
  } else {
    // Long division in 16-bit digits keeps every intermediate below 2^53
    // for any resolution up to 2^37 ticks per second.
    const digits = [hi >>> 16, hi & 0xffff, lo >>> 16, lo & 0xffff];
    sec = 0;
    rem = 0;
    for (const d of digits) {
      const cur = rem * 65536 + d;
      const q = Math.floor(cur / unitsPerSec);
      rem = cur - q * unitsPerSec;
      sec = sec * 65536 + q;
    }
  }
  tsOut.sec = sec;
  const perUnit = 1e9 / unitsPerSec;
  tsOut.nsec = Number.isInteger(perUnit) ? rem * perUnit : Math.min(999_999_999, Math.floor((rem / unitsPerSec) * 1e9 + 1e-6));
  return tsOut;
}
