// Classic pcap files: a 24-byte file header (magic, snap length, link type),
// then records of a 16-byte header and the captured bytes.
import { isSupportedLinkType, supportedLinkTypes } from './link';
import { MAX_RECORD, ReadContext, RecordFormat } from './record';

const PCAP_US = 0xa1b2c3d4;
const PCAP_NS = 0xa1b23c4d;
/** Alexey Kuznetzov's patched libpcap: 8 more bytes per record header. */
const PCAP_KUZNETZOV = 0xa1b2cd34;

/** The classic format when the file starts with one of its magics (either byte order), else null. */
export function openClassic(ctx: ReadContext): RecordFormat | null {
  const w = ctx.in;
  for (const le of [false, true]) {
    const magic = w.view.getUint32(w.pos, le);
    if (magic !== PCAP_US && magic !== PCAP_NS && magic !== PCAP_KUZNETZOV) continue;
    w.le = le;
    if (w.ensure(24) < 24) throw new Error(`${ctx.file}: pcap file header is cut short`);
    const snapLen = w.u32(w.pos + 16);
    // The top bits hold FCS information, not the link type.
    ctx.linkType = w.u32(w.pos + 20) & 0xffff;
    if (!isSupportedLinkType(ctx.linkType)) {
      throw new Error(`${ctx.file}: unsupported link type ${ctx.linkType} (supported: ${supportedLinkTypes()})`);
    }
    w.pos += 24;
    return new ClassicRecords(ctx, magic === PCAP_NS, magic === PCAP_KUZNETZOV ? 24 : 16, snapLen);
  }
  return null;
}

class ClassicRecords implements RecordFormat {
  constructor(
    private readonly ctx: ReadContext,
    private readonly nanos: boolean,
    private readonly recHdrLen: number,
    private readonly snapLen: number,
  ) {}

  next(): boolean {
    const { ctx, recHdrLen: h } = this;
    const w = ctx.in;
    const got = w.ensure(h);
    if (got === 0) return false;
    if (got < h) return this.stop(`file ends inside a record header after ${ctx.stats.records} records`);
    const incl = w.u32(w.pos + 8);
    if (incl > Math.max(this.snapLen, 262144) || incl > MAX_RECORD) {
      return this.stop(`record ${ctx.stats.records + 1} claims ${incl} captured bytes (snaplen ${this.snapLen}): the file is corrupt from here`);
    }
    if (w.ensure(h + incl) < h + incl) return this.stop(`file ends inside record ${ctx.stats.records + 1}`);
    const q = w.pos;
    const r = ctx.rec;
    r.sec = w.u32(q);
    const frac = w.u32(q + 4);
    r.nsec = this.nanos ? Math.min(frac, 999_999_999) : Math.min(frac, 999_999) * 1000;
    r.cap = incl;
    r.orig = w.u32(q + 12);
    r.data = q + h;
    r.len = h + incl;
    r.link = ctx.linkType;
    ctx.stats.records++;
    return true;
  }

  private stop(msg: string): false {
    this.ctx.stop(msg);
    return false;
  }
}
