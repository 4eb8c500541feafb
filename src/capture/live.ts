// Live capture through libpcap (the `cap` package), delivered as batches in
// the column layout of NFQUEUE batches and of PcapBatchReader, so training
// on an interface runs the same decode/feature code as the inline path.
import { Field, metaColumns, MetaColumns } from '../batch/layout';
import {
  createLinkInfo,
  fillCapturedColumns,
  ipLengthField,
  isSupportedLinkType,
  LINKTYPE_EN10MB,
  LINKTYPE_LINUX_SLL,
  LINKTYPE_NULL,
  LINKTYPE_RAW,
  LinkStatus,
  parseLink,
  supportedLinkTypes,
} from '../pcap/link';
import { CapHandle, loadCap } from './cap-types';

export interface LiveCaptureOptions {
  /** Bytes kept per frame, link header included (default 256). */
  snaplen?: number;
  /** libpcap's kernel buffer in MiB (default 16). */
  bufferMb?: number;
  /** BPF filter (default 'ip or ip6'). */
  filter?: string;
  /** Packets per batch (default 256). */
  batchSize?: number;
  /** A partial batch is delivered after this long (default 100 ms). */
  flushMs?: number;
}

export interface LiveCaptureStats {
  /** Frames libpcap handed over. */
  packets: number;
  /** IPv4/IPv6 packets delivered in batches. */
  delivered: number;
  skippedNonIp: number;
  skippedShort: number;
  /** Frames longer than snaplen (their origLen comes from the IP header). */
  cutBySnaplen: number;
  batches: number;
  /** Batches filled while no onBatch callback was registered. */
  discardedBatches: number;
  /** Drops inside libpcap/the kernel; null because cap 0.2 does not expose pcap_stats. */
  dropped: number | null;
}

/** The batch (packets/meta) is reused as soon as the callback returns. */
export type BatchCallback = (n: number, packets: Uint8Array, meta: MetaColumns) => void;

// cap 0.2 leaves a half-open libpcap handle behind when open() throws and
// aborts the process if such an object is ever garbage collected; keeping
// them reachable avoids that (errors here are rare and usually fatal anyway).
const failedHandles: CapHandle[] = [];

function linkTypeOf(name: string): number {
  switch (name) {
    case 'ETHERNET':
      return LINKTYPE_EN10MB;
    case 'NULL':
      return LINKTYPE_NULL;
    case 'RAW':
      return LINKTYPE_RAW;
    case 'LINKTYPE_LINUX_SLL':
      return LINKTYPE_LINUX_SLL;
    default: {
      const m = /^Unknown linktype (\d+)$/.exec(name);
      return m ? Number(m[1]) : -1;
    }
  }
}

export class LiveCapture {
  readonly iface: string;
  readonly linkType: number;
  readonly batchSize: number;
  readonly snaplen: number;
  /** Batch bytes: one snaplen-sized slot per packet. */
  readonly packets: Uint8Array;
  readonly meta: MetaColumns;
  readonly stats: LiveCaptureStats = {
    packets: 0,
    delivered: 0,
    skippedNonIp: 0,
    skippedShort: 0,
    cutBySnaplen: 0,
    batches: 0,
    discardedBatches: 0,
    dropped: null,
  };

  private cap: CapHandle | null;
  private readonly frame: Buffer;
  private readonly link = createLinkInfo();
  private n = 0;
  private cb: BatchCallback | null = null;
  private timer: NodeJS.Timeout | null;
  // cap reports no capture timestamps (its 'packet' event carries only the
  // length), so packets are stamped at receipt: a wall-clock anchor taken
  // once plus the monotonic high-resolution clock since then.
  private readonly anchorSec: number;
  private readonly anchorMs: number;
  private readonly anchorHr: number;

  constructor(iface: string, opts: LiveCaptureOptions = {}) {
    const snaplen = opts.snaplen ?? 256;
    const batchSize = opts.batchSize ?? 256;
    const bufferMb = opts.bufferMb ?? 16;
    const filter = opts.filter ?? 'ip or ip6';
    if (!Number.isInteger(snaplen) || snaplen < 64 || snaplen > 262144) throw new Error(`snaplen must be an integer in 64..262144, not ${snaplen}`);
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batch size must be a positive integer, not ${batchSize}`);
    if (!(bufferMb > 0 && bufferMb <= 2047)) throw new Error(`capture buffer must be 1..2047 MiB, not ${bufferMb}`);
    this.iface = iface;
    this.snaplen = snaplen;
    this.batchSize = batchSize;
    this.packets = new Uint8Array(batchSize * snaplen);
    this.meta = metaColumns(new ArrayBuffer(Field.Count * batchSize * 4), batchSize);
    this.frame = Buffer.alloc(snaplen);

    const { Cap } = loadCap();
    const names = Cap.deviceList().map((d) => d.name);
    if (!names.includes(iface)) {
      throw new Error(`cannot capture on "${iface}": no such interface (available: ${names.join(', ') || 'none'})`);
    }
    const cap = new Cap();
    let linkName: string;
    try {
      linkName = cap.open(iface, filter, Math.floor(bufferMb * 1024 * 1024), this.frame);
    } catch (err) {
      failedHandles.push(cap);
      const msg = (err as Error).message;
      if (/permission|not permitted|EPERM|EACCES/i.test(msg)) {
        throw new Error(`capturing on "${iface}" needs root or CAP_NET_RAW (libpcap: ${msg})`);
      }
      if (/no such device/i.test(msg)) throw new Error(`cannot capture on "${iface}": no such interface (available: ${names.join(', ')})`);
      throw new Error(`cannot capture on "${iface}" with filter "${filter}": ${msg}`);
    }
    const lt = linkTypeOf(linkName);
    if (!isSupportedLinkType(lt)) {
      cap.close();
      throw new Error(`cannot capture on "${iface}": unsupported link type ${lt >= 0 ? lt : linkName} (supported: ${supportedLinkTypes()})`);
    }
    this.linkType = lt;
    this.cap = cap;
    const wall = Date.now();
    this.anchorHr = performance.now();
    this.anchorSec = Math.floor(wall / 1000);
    this.anchorMs = wall - this.anchorSec * 1000;
    cap.on('packet', (nbytes, truncated) => this.onPacket(nbytes, truncated));
    this.timer = setInterval(() => this.flush(), opts.flushMs ?? 100);
    this.timer.unref();
  }

  /** Registers the consumer; call it right after construction (packets arrive from the next tick). */
  onBatch(cb: BatchCallback): void {
    this.cb = cb;
  }

  /** Delivers what is pending and closes the capture. Safe to call more than once. */
  stop(): void {
    if (!this.cap) return;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.flush();
    const cap = this.cap;
    this.cap = null;
    cap.removeAllListeners('packet');
    cap.close();
  }

  get running(): boolean {
    return this.cap !== null;
  }

  private onPacket(nbytes: number, truncated: boolean): void {
    const st = this.stats;
    st.packets++;
    const f = this.frame;
    const status = parseLink(this.linkType, f, 0, nbytes, this.link);
    if (status !== LinkStatus.Ip) {
      if (status === LinkStatus.NotIp) st.skippedNonIp++;
      else st.skippedShort++;
      return;
    }
    const i = this.n;
    const base = i * this.snaplen;
    this.packets.set(f.subarray(0, nbytes), base);
    const m = this.meta;
    const hl = this.link.headerLen;
    const cap = nbytes - hl;
    let orig = cap;
    if (truncated) {
      st.cutBySnaplen++;
      orig = Math.max(cap, ipLengthField(f, hl, cap));
    }
    const ms = this.anchorMs + (performance.now() - this.anchorHr);
    const s = Math.floor(ms / 1000);
    fillCapturedColumns(m, i, base, this.link, cap, orig, this.anchorSec + s, Math.min(999_999_999, Math.floor((ms - s * 1000) * 1e6)));
    this.n = i + 1;
    if (this.n === this.batchSize) this.flush();
  }

  private flush(): void {
    const n = this.n;
    if (n === 0) return;
    this.n = 0;
    this.stats.batches++;
    if (this.cb) {
      this.stats.delivered += n;
      this.cb(n, this.packets, this.meta);
    } else {
      this.stats.discardedBatches++;
    }
  }
}
