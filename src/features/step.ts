// One closed step of one queue's traffic: what the queue thread's
// StepCounter (step-counter.ts) hands to the main thread's WindowRing
// (window.ts), posted with its buffers transferred. The bucket and sketch
// slots below are the layout both sides read.

// Bucket counters.
export const B_PACKETS = 0;
export const B_BYTES = 1;
export const B_LEN_SQ = 2;
export const B_SYN = 3;
export const B_SYNACK = 4;
export const B_FIN = 5;
export const B_RST = 6;
export const B_ICMP = 7;
export const B_ICMP_ECHO = 8;
export const B_UDP = 9;
export const B_SMALL = 10;
export const B_OVER_MTU = 11;
export const B_FRAG = 12;
export const B_NEW_SOURCE_PKTS = 13;
export const B_NEW_SESSIONS = 14;
export const B_NEW_TCP_SESSIONS = 15;
export const B_GRADUATED = 16;
export const B_COUNT = 17;

// Sketches per bucket.
export const S_CONNS = 0;
export const S_SYN_CONNS = 1;
export const S_SOURCES = 2;
export const S_DST_PORTS = 3;
export const S_COUNT = 4;

/** One closed step of one queue: what StepCounter hands to WindowRing. */
export interface StepRecord {
  queue: number;
  /** Absolute step number: floor(time / step). */
  index: number;
  counts: Float64Array;
  /** S_COUNT HyperLogLog register sets, one after the other. */
  sketches: Uint8Array;
  /** Per-source rows, compacted: n rows. */
  sources: StepSources;
  /** Counters of the sources that found no row. */
  others: Float64Array;
  /** Evidence counters of the sources that found no row. */
  othersEv: Float64Array;
  /** (context, symbol) counts of the TCP flag sequences scored in the step, sparse, and the sessions begun: the flag model's training data. */
  sequences: { index: Uint32Array; count: Uint32Array; sessions: number };
  /** Since the counter started: packets stamped a little before their step, and clock steps back. */
  lateStamps: number;
  clockResets: number;
}

/** The per-source rows of one step, in columns (n rows). */
export interface StepSources {
  n: number;
  family: Uint8Array;
  addr: Uint32Array;
  macHi: Int32Array;
  macLo: Int32Array;
  counts: Float64Array;
  protos: Uint8Array;
  target: Int32Array;
  /** EV_COUNT evidence counters per row. */
  ev: Float64Array;
  portBits: Uint32Array;
  hostBits: Uint32Array;
  svcKey: Int32Array;
  svcService: Int32Array;
  svcCount: Uint32Array;
  evProtos: Uint8Array;
  evTcp: Int32Array;
  evUdp: Int32Array;
  oddSeq: Uint32Array;
  oddLen: Uint8Array;
  oddSurprisal: Float32Array;
}

/** A stamp this many steps before the current one is late; further back, the clock was reset. */
export const LATE_STEPS = 2;

/** The window and step lengths both halves accept. */
export function checkTiming(o: { windowSeconds: number; stepSeconds: number }): void {
  if (!(o.stepSeconds > 0) || !(o.windowSeconds >= o.stepSeconds)) throw new RangeError('window must be at least one step, and the step positive');
}

/** Buffers to transfer with a posted StepRecord (no copy). */
export function stepTransferList(r: StepRecord): ArrayBuffer[] {
  const s = r.sources;
  return [
    r.counts.buffer, r.sketches.buffer, r.others.buffer, r.othersEv.buffer, r.sequences.index.buffer, r.sequences.count.buffer,
    s.family.buffer, s.addr.buffer, s.macHi.buffer, s.macLo.buffer, s.counts.buffer, s.protos.buffer, s.target.buffer,
    s.ev.buffer, s.portBits.buffer, s.hostBits.buffer, s.svcKey.buffer, s.svcService.buffer, s.svcCount.buffer, s.evProtos.buffer, s.evTcp.buffer, s.evUdp.buffer, s.oddSeq.buffer, s.oddLen.buffer, s.oddSurprisal.buffer,
  ] as ArrayBuffer[];
}
