// pcapng files: blocks of type and length; a section header sets the byte
// order, interface descriptions give each interface's link type, snap length
// and timestamp resolution, and enhanced or simple packet blocks carry the
// packets. Other blocks are skipped.
import { hex } from './file-window';
import { isSupportedLinkType, supportedLinkTypes } from './link';
import { MAX_RECORD, ReadContext, RecordFormat } from './record';

export const NG_SHB = 0x0a0d0d0a;
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

export class PcapngRecords implements RecordFormat {
  private interfaces: NgInterface[] = [];
  private stopped = false;

  constructor(private readonly ctx: ReadContext) {}

  next(): boolean {
    const { ctx } = this;
    const w = ctx.in;
    for (;;) {
      const got = w.ensure(12);
      if (got === 0) return false;
      if (got < 12) return this.stop(`file ends inside a block header after ${ctx.stats.records} records`);
      const p = w.pos;
      const type = w.u32(p);
      if (type === NG_SHB) {
        // A section header sets the byte order of everything up to the next one.
        const bom = w.view.getUint32(p + 8, false);
        if (bom === NG_BOM) w.le = false;
        else if (bom === 0x4d3c2b1a) w.le = true;
        else return this.stop(`section header with a bad byte-order magic ${hex(bom)}`);
        this.interfaces = [];
      }
      const len = w.u32(p + 4);
      if (len < 12 || len % 4 !== 0 || len > MAX_RECORD) {
        return this.stop(`block of type ${hex(type)} has an impossible length ${len}: the file is corrupt from here`);
      }
      if (type !== NG_SHB && type !== NG_IDB && type !== NG_EPB && type !== NG_SPB) {
        if (!w.skip(len)) return this.stop(`file ends inside a block of type ${hex(type)}`);
        continue;
      }
      if (w.ensure(len) < len) return this.stop(`file ends inside a block of type ${hex(type)} after ${ctx.stats.records} records`);
      const q = w.pos;
      if (type === NG_SHB) {
        w.pos += len;
      } else if (type === NG_IDB) {
        this.readIdb(q, len);
        w.pos += len;
      } else if (this.readPacket(type, q, len)) {
        return true;
      } else if (this.stopped) {
        return false;
      } else {
        w.pos += len;
      }
    }
  }

  private stop(msg: string): false {
    this.stopped = true;
    this.ctx.stop(msg);
    return false;
  }

  private readIdb(q: number, len: number): void {
    const { ctx } = this;
    const w = ctx.in;
    if (len < 20) {
      ctx.warn(`interface description block too short (${len} bytes)`);
      this.interfaces.push({ linkType: -1, snapLen: 0, unitsPerSec: 1e6, offsetSec: 0 });
      return;
    }
    const linkType = w.u16(q + 8);
    const intf: NgInterface = { linkType, snapLen: w.u32(q + 12), unitsPerSec: 1e6, offsetSec: 0 };
    let o = q + 16;
    const optEnd = q + len - 4;
    while (o + 4 <= optEnd) {
      const code = w.u16(o);
      const olen = w.u16(o + 2);
      if (code === 0 || o + 4 + olen > optEnd) break;
      if (code === 9 && olen >= 1) {
        const r = w.buf[o + 4];
        intf.unitsPerSec = r & 0x80 ? 2 ** (r & 0x7f) : 10 ** r;
      } else if (code === 14 && olen >= 8) {
        const hi = w.view.getInt32(o + 4 + (w.le ? 4 : 0), w.le);
        const lo = w.u32(o + 4 + (w.le ? 0 : 4));
        intf.offsetSec = hi * 4294967296 + lo;
      }
      o += 4 + ((olen + 3) & ~3);
    }
    if (ctx.linkType < 0) ctx.linkType = linkType;
    if (!isSupportedLinkType(linkType)) ctx.warn(`interface ${this.interfaces.length} has unsupported link type ${linkType}; its packets are skipped`);
    this.interfaces.push(intf);
  }

  /** Sets up the pending record from an EPB/SPB. False when the block holds no usable packet. */
  private readPacket(type: number, q: number, len: number): boolean {
    const { ctx } = this;
    const w = ctx.in;
    let ifIdx = 0;
    let data: number;
    let capLen: number;
    let origLen: number;
    let sec = 0;
    let nsec = 0;
    if (type === NG_EPB) {
      if (len < 32) {
        ctx.warn(`enhanced packet block too short (${len} bytes)`);
        return false;
      }
      ifIdx = w.u32(q + 8);
      capLen = w.u32(q + 20);
      origLen = w.u32(q + 24);
      data = q + 28;
      if (capLen > len - 32) {
        this.stop(`packet block ${ctx.stats.records + 1} claims ${capLen} bytes in a ${len}-byte block: the file is corrupt from here`);
        return false;
      }
    } else {
      if (len < 16) {
        ctx.warn(`simple packet block too short (${len} bytes)`);
        return false;
      }
      origLen = w.u32(q + 8);
      data = q + 12;
      capLen = Math.min(origLen, len - 16);
    }
    const intf = this.interfaces[ifIdx];
    if (intf === undefined) {
      this.stop(`packet block refers to interface ${ifIdx}, which was never described: the file is corrupt from here`);
      return false;
    }
    ctx.stats.records++;
    if (!isSupportedLinkType(intf.linkType)) {
      // The first packet is found while opening: a file none of whose
      // interfaces can be read fails there, like a classic file would.
      if (ctx.stats.records === 1 && !this.interfaces.some((i) => isSupportedLinkType(i.linkType))) {
        throw new Error(`${ctx.file}: unsupported link type ${intf.linkType} (supported: ${supportedLinkTypes()})`);
      }
      ctx.stats.skippedLinkType++;
      return false;
    }
    if (type === NG_SPB) {
      if (intf.snapLen > 0) capLen = Math.min(capLen, intf.snapLen);
    } else {
      const ts = splitTimestamp(w.u32(q + 12), w.u32(q + 16), intf.unitsPerSec);
      sec = ts.sec + intf.offsetSec;
      nsec = ts.nsec;
    }
    const r = ctx.rec;
    r.sec = sec >>> 0;
    r.nsec = nsec;
    r.cap = capLen;
    r.orig = origLen;
    r.data = data;
    r.len = len;
    r.link = intf.linkType;
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
