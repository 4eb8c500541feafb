// Streaming reader for classic pcap and pcapng files that fills the same
// batch layout (packet bytes + metadata columns) NFQUEUE batches use, so the
// offline pipeline runs the inline decode/rules/feature code unchanged. The
// formats' own record walks are in classic.ts and pcapng.ts.
import { Field, metaColumns, MetaColumns } from '../batch/layout';
import { openClassic } from './classic';
import { FileWindow, hex } from './file-window';
import { createLinkInfo, fillCapturedColumns, LinkInfo, LinkStatus, parseLink } from './link';
import { NG_SHB, PcapngRecords } from './pcapng';
import { PcapReaderStats, PcapRecord, ReadContext, RecordFormat } from './record';

export { splitTimestamp } from './pcapng';
export type { PcapReaderStats } from './record';

export interface PcapReaderOptions {
  /** Bytes read from the file at a time (default 1 MiB); the buffer grows for larger records. */
  chunkSize?: number;
  /** Packet buffer bytes per batch slot on average (default 2048); big records just end a batch early. */
  bytesPerPacket?: number;
}

export type PcapFormat = 'pcap' | 'pcapng';

// A frame cannot hold more than one maximal IPv6 packet (jumbograms aside)
// plus its link header; copying more would only waste the batch buffer.
const MAX_COPY = 65535 + 40 + 256;
const MAX_WARNINGS = 20;

export class PcapBatchReader implements ReadContext {
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
  /** File size at open, for progress. */
  readonly fileSize: number;
  readonly in: FileWindow;
  /** The record found by advance() and not yet copied out. */
  readonly rec: PcapRecord = { len: 0, data: 0, cap: 0, orig: 0, sec: 0, nsec: 0, link: 0 };

  private readonly records: RecordFormat;
  private pending = false;
  private done = false;
  private readonly link: LinkInfo = createLinkInfo();

  /** Bytes of the file consumed so far, for progress. */
  get bytesRead(): number {
    return this.in.consumed;
  }

  constructor(file: string, batchSize = 256, opts: PcapReaderOptions = {}) {
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batch size must be a positive integer, not ${batchSize}`);
    this.file = file;
    this.batchSize = batchSize;
    this.packets = new Uint8Array(batchSize * Math.max(64, opts.bytesPerPacket ?? 2048) + MAX_COPY);
    this.meta = metaColumns(new ArrayBuffer(Field.Count * batchSize * 4), batchSize);
    this.in = new FileWindow(file, Math.max(64, opts.chunkSize ?? 1 << 20));
    try {
      this.fileSize = this.in.size;
      [this.format, this.records] = this.openFormat();
      // Finds the first packet now, so a pcapng file with an unsupported
      // link type fails here rather than after batches went out.
      this.advance();
    } catch (err) {
      this.in.close();
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
    const r = this.rec;
    let n = 0;
    let used = 0;
    while (n < this.batchSize && this.pending) {
      const copy = Math.min(r.cap, MAX_COPY);
      if (used + copy > cap) break;
      const st = this.stats;
      const status = parseLink(r.link, this.in.buf, r.data, copy, this.link);
      if (status === LinkStatus.Ip) {
        out.set(this.in.buf.subarray(r.data, r.data + copy), used);
        const hl = this.link.headerLen;
        // Some writers leave the original length 0 or below the captured one.
        fillCapturedColumns(m, n, used, this.link, copy - hl, Math.max(r.orig, r.cap) - hl, r.sec, r.nsec);
        if (copy < r.cap) st.clipped++;
        used += copy;
        n++;
        st.packets++;
      } else if (status === LinkStatus.NotIp) {
        st.skippedNonIp++;
      } else {
        st.skippedShort++;
      }
      this.in.pos += r.len;
      this.pending = false;
      this.advance();
    }
    return n;
  }

  close(): void {
    this.in.close();
    this.pending = false;
    this.done = true;
  }

  /** For the formats (ReadContext): a note kept in stats.warnings. */
  warn(msg: string): void {
    if (this.stats.warnings.length < MAX_WARNINGS) this.stats.warnings.push(`${this.file}: ${msg}`);
  }

  /** For the formats (ReadContext): the rest of the file cannot be trusted; what was read stands. */
  stop(msg: string): void {
    this.stats.truncated = true;
    this.warn(msg);
    this.done = true;
    this.pending = false;
  }

  private openFormat(): [PcapFormat, RecordFormat] {
    const w = this.in;
    const have = w.ensure(4);
    if (have < 4) throw new Error(`${this.file}: not a pcap or pcapng file (${have === 0 ? 'empty file' : 'too short'})`);
    const be = w.view.getUint32(w.pos, false);
    if (be === NG_SHB) return ['pcapng', new PcapngRecords(this)];
    const classic = openClassic(this);
    if (classic) return ['pcap', classic];
    throw new Error(`${this.file}: not a pcap or pcapng file (magic ${hex(be)})`);
  }

  /** Finds the next packet record, leaving it in the file window as the pending record. */
  private advance(): void {
    if (this.done) return;
    this.pending = this.records.next();
    if (!this.pending) this.done = true;
  }
}
