// Sliding windows of traffic features for one queue, in two halves.
// StepCounter runs on the queue thread after a batch's verdicts are sent:
// it counts packets into the current step (1 s by default) with fixed
// memory (counters, HyperLogLog sketches, a bounded per-source table) and
// allocates nothing per packet. When a step ends it hands a StepRecord over
// (posted, buffers transferred). WindowRing, off the queue thread, keeps the
// last window's worth of steps (60 s) and sums them into one flow vector per
// step: that summary costs about a millisecond, which must not stall the
// verdict path. WindowAggregator joins the two for offline use and tests.
import { DecodedBatch, DecodeStatus, FragBits, L3Bits, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN } from '../packet/decoded';
import { isEchoRequest } from '../flow/server-guess';
import { hasPorts } from '../rules/linear';
import { formatAddress } from '../rules/address';
import { BlameCounter, FEATURE_COUNT, featureIndex } from './feature-set';
import { fmix32, hashAddress, mixWord } from './hash';
import { HLL_REGISTERS, hllAdd, hllEstimate, hllMergeInto } from './hll';
import { SeenSources } from './seen-sources';
import {
  EV_COUNT, EV_ECHO, EV_ODD, EV_STALLED, EV_TCP_FAILED, EV_UDP_FAILED, EV_UDP_UNANSWERED, formatMac, HOST_BITS_WORDS, mergeTarget, PORT_BITS_WORDS,
  PROTO_BIT_ICMP, PROTO_BIT_OTHER, PROTO_BIT_TCP, PROTO_BIT_UDP, SC_BYTES, SC_COUNT, SC_ICMP_ECHO, SC_NEW_SESSIONS, SC_PACKETS, SC_SYN, SC_UDP,
  SOURCE_COUNTERS, SourceTable, SVC_SLOTS, TARGET_NONE,
} from './source-table';
import * as Ev from '../flow/session-evidence';

/** The per-packet inputs the aggregator reads besides the decoded headers. */
export interface WindowInputs {
  tsSec: Uint32Array;
  tsNsec: Uint32Array;
  origLen: Uint32Array;
  /** Byte offset of the source MAC in the packet buffer, or >= 0xffffffff when absent. */
  hwAddrOffset: Uint32Array;
  /** From the verdict engine: session packet count after the packet, 0 if not recorded. */
  sessionPackets: Uint32Array;
  /** From the verdict engine: 1 when the packet should be counted. */
  analysed: Uint8Array;
  /** From the verdict engine: 1 when the packet went to the server side of its exchange. */
  toServer: Uint8Array;
  /** From the verdict engine: the session evidence bits of the packet (flow/session-evidence EV_*). */
  evBits: Uint8Array;
  /** With EV_ODD: the improbable session's symbols, their number and the surprisal that tripped it. */
  oddSeq: Uint32Array;
  oddLen: Uint8Array;
  oddSurprisal: Float32Array;
}

/** The inputs from a queue's metadata columns and its verdict engine's per-packet columns. */
export function windowInputsOf(
  meta: Pick<WindowInputs, 'tsSec' | 'tsNsec' | 'origLen' | 'hwAddrOffset'>,
  engine: Pick<WindowInputs, 'sessionPackets' | 'analysed' | 'toServer' | 'evBits' | 'oddSeq' | 'oddLen' | 'oddSurprisal'>,
): WindowInputs {
  return {
    tsSec: meta.tsSec,
    tsNsec: meta.tsNsec,
    origLen: meta.origLen,
    hwAddrOffset: meta.hwAddrOffset,
    sessionPackets: engine.sessionPackets,
    analysed: engine.analysed,
    toServer: engine.toServer,
    evBits: engine.evBits,
    oddSeq: engine.oddSeq,
    oddLen: engine.oddLen,
    oddSurprisal: engine.oddSurprisal,
  };
}

export interface WindowSource {
  ip: string;
  mac?: string;
  packets: number;
  bytes: number;
  syn: number;
  icmpEcho: number;
  udp: number;
  newSessions: number;
  /** PROTO_BIT_* of what it sent toward servers. */
  protos: number;
  /** (protocol << 16) | destination port when all its port-carrying packets went to one service; else TARGET_*. */
  target: number;
  /** Packets it sent toward servers in the window's newest step: 0 when it has gone quiet (or is blocked already). */
  recent: number;
}

export interface FeatureWindow {
  queue: number;
  /** Epoch seconds; the window covers [start, end). */
  start: number;
  end: number;
  packets: number;
  /** Raw feature values in FEATURES order. */
  values: number[];
  /** Window totals of the per-source counters, for shares. */
  totals: Record<BlameCounter, number>;
  /** The heaviest sources by each per-source counter, busiest first. */
  sources: WindowSource[];
}

export interface WindowOptions {
  queue: number;
  windowSeconds: number;
  stepSeconds: number;
  /** Sources with their own row per step; the rest are summed. */
  maxSourcesPerStep?: number;
  seenSourcesCapacity?: number;
  /** Sources listed per counter in each window summary. */
  topSources?: number;
}

// Bucket counters.
const B_PACKETS = 0;
const B_BYTES = 1;
const B_LEN_SQ = 2;
const B_SYN = 3;
const B_SYNACK = 4;
const B_FIN = 5;
const B_RST = 6;
const B_ICMP = 7;
const B_ICMP_ECHO = 8;
const B_UDP = 9;
const B_SMALL = 10;
const B_OVER_MTU = 11;
const B_FRAG = 12;
const B_NEW_SOURCE_PKTS = 13;
const B_NEW_SESSIONS = 14;
const B_NEW_TCP_SESSIONS = 15;
const B_GRADUATED = 16;
const B_COUNT = 17;

// Sketches per bucket.
const S_CONNS = 0;
const S_SYN_CONNS = 1;
const S_SOURCES = 2;
const S_DST_PORTS = 3;
const S_COUNT = 4;

/** A stamp this many steps before the current one is late; further back, the clock was reset. */
const LATE_STEPS = 2;
/** A session that reaches this many packets is no longer a "few-packet" one. */
export const FEW_PACKETS = 3;
export const SMALL_PACKET = 80;
export const MTU = 1500;
const NO_OFFSET = 0xffffffff;
const EMPTY = new Uint8Array(0);

const F = {
  packets: featureIndex('packets'),
  connections: featureIndex('connections'),
  connectionsPerSource: featureIndex('connections_per_source'),
  synConnections: featureIndex('syn_connections'),
  meanIpLen: featureIndex('mean_ip_len'),
  packetsPerConnection: featureIndex('packets_per_connection'),
  newSourcePackets: featureIndex('new_source_packets'),
  icmpShare: featureIndex('icmp_share'),
  fewPacketShare: featureIndex('few_packet_session_share'),
  newTcpSessions: featureIndex('new_tcp_sessions'),
  udpShare: featureIndex('udp_share'),
  smallShare: featureIndex('small_packet_share'),
  overMtuShare: featureIndex('over_mtu_share'),
  fragmentShare: featureIndex('fragment_share'),
  sources: featureIndex('sources'),
  dstPorts: featureIndex('dst_ports'),
  pps: featureIndex('packets_per_s'),
  bps: featureIndex('bytes_per_s'),
  synPerS: featureIndex('syn_per_s'),
  newSessionsPerS: featureIndex('new_sessions_per_s'),
  synSynAck: featureIndex('syn_synack_ratio'),
  synFin: featureIndex('syn_fin_ratio'),
  rstPerS: featureIndex('rst_per_s'),
  echoPerS: featureIndex('icmp_echo_per_s'),
  udpPerS: featureIndex('udp_per_s'),
  lenStd: featureIndex('ip_len_std'),
  topShare: featureIndex('top_source_share'),
} as const;

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

export interface StepOptions {
  queue: number;
  windowSeconds: number;
  stepSeconds: number;
  /** Sources with their own row per step; the rest are summed. */
  maxSourcesPerStep?: number;
  seenSourcesCapacity?: number;
}

function checkTiming(o: { windowSeconds: number; stepSeconds: number }): void {
  if (!(o.stepSeconds > 0) || !(o.windowSeconds >= o.stepSeconds)) throw new RangeError('window must be at least one step, and the step positive');
}

export class StepCounter implements Ev.EvidenceSink {
  private readonly step: number;
  private readonly windowSeconds: number;
  private readonly counts = new Float64Array(B_COUNT);
  private readonly sketches = new Uint8Array(S_COUNT * HLL_REGISTERS);
  private readonly table: SourceTable;
  private readonly seen: SeenSources;
  /** Step being filled; -1 before the first packet. */
  private current = -1;
  /** Packets stamped up to LATE_STEPS before the current step: counted into it. */
  lateStamps = 0;
  /** Times the clock went back further: the window starts over. */
  clockResets = 0;
  private evidence: Ev.SessionEvidence | null = null;

  constructor(
    private readonly opts: StepOptions,
    private readonly onStep: (r: StepRecord) => void,
  ) {
    checkTiming(opts);
    this.step = opts.stepSeconds;
    this.windowSeconds = opts.windowSeconds;
    this.table = new SourceTable(opts.maxSourcesPerStep ?? 256);
    this.seen = new SeenSources(opts.seenSourcesCapacity ?? 65536);
  }

  /** The sessions' evidence to sweep at every step's end (unanswered attempts, stalled sessions). */
  attachEvidence(ev: Ev.SessionEvidence): void {
    this.evidence = ev;
  }

  /** Counts the analysed packets among 0..n-1, closing steps as their stamps say. */
  observe(n: number, d: DecodedBatch, m: WindowInputs, bytes: Uint8Array): void {
    let counted = 0;
    for (let i = 0; i < n; i++) {
      if (m.analysed[i] === 0) continue;
      const t = m.tsSec[i] + m.tsNsec[i] * 1e-9;
      const idx = Math.floor(t / this.step);
      if (idx !== this.current) {
        if (idx > this.current) this.moveTo(idx);
        else if (this.current - idx > LATE_STEPS) {
          // The clock stepped back (NTP, a pcap with a bad stamp): counting
          // into the current step would freeze the windows until the clock
          // caught up again. Start over from the new time instead.
          this.clockResets++;
          this.moveTo(idx);
        } else this.lateStamps++;
      }
      this.count(d, m, bytes, i, t);
      counted++;
    }
    // A batch with nothing to count still tells the time.
    if (counted === 0 && n > 0) this.advanceTo(m.tsSec[0] + m.tsNsec[0] * 1e-9);
    // Attempts that failed out of band in this batch (ICMP errors, evictions) count in this step.
    if (this.current >= 0) this.evidence?.drain(this);
  }

  /** Moves time forward without packets (an idle queue still closes its steps). */
  advanceTo(nowSeconds: number): void {
    const idx = Math.floor(nowSeconds / this.step);
    if (this.current >= 0 && idx > this.current) this.moveTo(idx);
  }

  /** Closes the current, partly filled step; for the end of a capture. */
  flush(): void {
    if (this.current >= 0) this.moveTo(this.current + 1);
  }

  private moveTo(idx: number): void {
    if (this.current >= 0) this.onStep(this.close());
    this.current = idx;
  }

  private close(): StepRecord {
    // What the step's end decides: attempts that stayed unanswered, stalled sessions.
    const ev = this.evidence;
    if (ev) ev.sweep((this.current + 1) * this.step, this);
    const t = this.table;
    const n = t.used;
    const sources: StepSources = {
      n,
      family: new Uint8Array(n),
      addr: new Uint32Array(n * 4),
      macHi: new Int32Array(n),
      macLo: new Int32Array(n),
      counts: new Float64Array(n * SC_COUNT),
      protos: new Uint8Array(n),
      target: new Int32Array(n),
      ev: new Float64Array(n * EV_COUNT),
      portBits: new Uint32Array(n * PORT_BITS_WORDS),
      hostBits: new Uint32Array(n * HOST_BITS_WORDS),
      svcKey: new Int32Array(n * SVC_SLOTS),
      svcService: new Int32Array(n * SVC_SLOTS),
      svcCount: new Uint32Array(n * SVC_SLOTS),
      evProtos: new Uint8Array(n),
      evTcp: new Int32Array(n),
      evUdp: new Int32Array(n),
      oddSeq: new Uint32Array(n),
      oddLen: new Uint8Array(n),
      oddSurprisal: new Float32Array(n),
    };
    let r = 0;
    for (let s = 0; s < t.slots && r < n; s++) {
      if (!t.inUse(s)) continue;
      sources.family[r] = t.family[s];
      sources.addr.set(t.addr.subarray(s * 4, s * 4 + 4), r * 4);
      sources.macHi[r] = t.macHi[s];
      sources.macLo[r] = t.macLo[s];
      sources.counts.set(t.counts.subarray(s * SC_COUNT, (s + 1) * SC_COUNT), r * SC_COUNT);
      sources.protos[r] = t.protos[s];
      sources.target[r] = t.target[s];
      sources.ev.set(t.ev.subarray(s * EV_COUNT, (s + 1) * EV_COUNT), r * EV_COUNT);
      sources.portBits.set(t.portBits.subarray(s * PORT_BITS_WORDS, (s + 1) * PORT_BITS_WORDS), r * PORT_BITS_WORDS);
      sources.hostBits.set(t.hostBits.subarray(s * HOST_BITS_WORDS, (s + 1) * HOST_BITS_WORDS), r * HOST_BITS_WORDS);
      sources.svcKey.set(t.svcKey.subarray(s * SVC_SLOTS, (s + 1) * SVC_SLOTS), r * SVC_SLOTS);
      sources.svcService.set(t.svcService.subarray(s * SVC_SLOTS, (s + 1) * SVC_SLOTS), r * SVC_SLOTS);
      sources.svcCount.set(t.svcCount.subarray(s * SVC_SLOTS, (s + 1) * SVC_SLOTS), r * SVC_SLOTS);
      sources.evProtos[r] = t.evProtos[s];
      sources.evTcp[r] = t.evTcp[s];
      sources.evUdp[r] = t.evUdp[s];
      sources.oddSeq[r] = t.oddSeq[s];
      sources.oddLen[r] = t.oddLen[s];
      sources.oddSurprisal[r] = t.oddSurprisal[s];
      r++;
    }
    const rec: StepRecord = {
      queue: this.opts.queue,
      index: this.current,
      counts: this.counts.slice(),
      sketches: this.sketches.slice(),
      sources,
      others: t.others.slice(),
      othersEv: t.othersEv.slice(),
      sequences: ev ? ev.takeSequenceCounts() : { index: new Uint32Array(0), count: new Uint32Array(0), sessions: 0 },
      lateStamps: this.lateStamps,
      clockResets: this.clockResets,
    };
    this.counts.fill(0);
    this.sketches.fill(0);
    t.clear();
    return rec;
  }

  /**
   * Credits packet i's session evidence to its owner: the packet's source,
   * or its destination when a server's answer decided it (a RST refusing a
   * SYN). The failed attempt's target is the other endpoint.
   */
  private creditPacket(bits: number, d: DecodedBatch, m: WindowInputs, i: number, srcH: number, fam: number, w: number, proto: number, sp: number, dp: number, bytes: Uint8Array): void {
    const ownerIsDst = (bits & Ev.EV_OWNER_IS_DST) !== 0;
    const ownerH = ownerIsDst ? hashAddress(d.dst, w, fam) : srcH;
    const macOff = m.hwAddrOffset[i];
    const table = this.table;
    const row = table.rowFor(ownerH, fam, ownerIsDst ? d.dst : d.src, w, bytes, ownerIsDst || macOff >= NO_OFFSET ? -1 : macOff);
    const servicePort = ownerIsDst ? sp : dp;
    if (row < 0) {
      const o = table.othersEv;
      if (bits & Ev.EV_TCP_FAILED) o[EV_TCP_FAILED]++;
      if (bits & Ev.EV_UDP_UNANSWERED) o[EV_UDP_UNANSWERED]++;
      if (bits & Ev.EV_ODD) o[EV_ODD]++;
      return;
    }
    const e = row * EV_COUNT;
    const svc = (proto << 16) | servicePort;
    if (bits & (Ev.EV_TCP_FAILED | Ev.EV_ODD)) {
      table.evProtos[row] |= PROTO_BIT_TCP;
      table.evTcp[row] = mergeTarget(table.evTcp[row], svc);
    }
    if (bits & Ev.EV_UDP_UNANSWERED) table.evUdp[row] = mergeTarget(table.evUdp[row], svc);
    if (bits & Ev.EV_TCP_FAILED) {
      table.ev[e + EV_TCP_FAILED]++;
      const serverH = ownerIsDst ? srcH : hashAddress(d.dst, w, fam);
      table.markFailure(row, serverH, portHashOf(serverH, proto, servicePort));
    }
    if (bits & Ev.EV_UDP_UNANSWERED) table.ev[e + EV_UDP_UNANSWERED]++;
    if (bits & Ev.EV_SESSION) {
      // Per server and service: a burst of sessions aims at one server (password guessing); a proxy's spread over many.
      const serverH = ownerIsDst ? srcH : hashAddress(d.dst, w, fam);
      table.countService(row, fmix32(mixWord(serverH, svc)) >>> 1, svc);
    }
    if (bits & Ev.EV_ODD) {
      table.ev[e + EV_ODD]++;
      if (table.oddLen[row] === 0 || m.oddSurprisal[i] > table.oddSurprisal[row]) {
        table.oddSeq[row] = m.oddSeq[i];
        table.oddLen[row] = m.oddLen[i];
        table.oddSurprisal[row] = m.oddSurprisal[i];
      }
    }
  }

  /** EvidenceSink: an attempt of the host at words that failed (unanswered, or evicted unanswered). */
  failure(family: number, words: Uint32Array, proto: number, serverHash: number, serverPort: number): void {
    const table = this.table;
    const row = table.rowFor(hashAddress(words, 0, family), family, words, 0, EMPTY, -1);
    const k = proto === PROTO_TCP ? EV_TCP_FAILED : proto === PROTO_UDP ? EV_UDP_FAILED : -1;
    if (row < 0) {
      if (k >= 0) table.othersEv[k]++;
      return;
    }
    if (k >= 0) table.ev[row * EV_COUNT + k]++;
    table.evProtos[row] |= protoBit(proto);
    if (proto === PROTO_TCP) table.evTcp[row] = mergeTarget(table.evTcp[row], (proto << 16) | serverPort);
    else if (proto === PROTO_UDP) table.evUdp[row] = mergeTarget(table.evUdp[row], (proto << 16) | serverPort);
    table.markFailure(row, serverHash, portHashOf(serverHash, proto, serverPort));
  }

  /** EvidenceSink: one stalled session of the host at words. */
  stalled(family: number, words: Uint32Array, proto: number, serverPort: number): void {
    const table = this.table;
    const row = table.rowFor(hashAddress(words, 0, family), family, words, 0, EMPTY, -1);
    if (row < 0) {
      table.othersEv[EV_STALLED]++;
      return;
    }
    table.ev[row * EV_COUNT + EV_STALLED]++;
    table.evProtos[row] |= protoBit(proto);
    table.evTcp[row] = mergeTarget(table.evTcp[row], (proto << 16) | serverPort);
  }

  private count(d: DecodedBatch, m: WindowInputs, bytes: Uint8Array, i: number, t: number): void {
    const c = this.counts;
    const ok = d.status[i] === DecodeStatus.Ok;
    const len = ok ? d.ipLen[i] : m.origLen[i];
    c[B_PACKETS]++;
    c[B_BYTES] += len;
    c[B_LEN_SQ] += len * len;
    if (len < SMALL_PACKET) c[B_SMALL]++;
    else if (len > MTU) c[B_OVER_MTU]++;
    if (!ok && !(d.l3[i] & L3Bits.Addresses)) return;
    const fam = d.family[i];
    const w = i * 4;
    const srcH = hashAddress(d.src, w, fam);
    const sk = this.sketches;
    hllAdd(sk, S_SOURCES * HLL_REGISTERS, srcH);
    if (this.seen.touch(srcH, t) < this.windowSeconds) c[B_NEW_SOURCE_PKTS]++;
    if (d.frag[i] & (FragBits.MoreFragments | FragBits.NonFirst)) c[B_FRAG]++;

    const proto = d.proto[i];
    const flags = d.tcpFlags[i];
    const toServer = m.toServer[i] === 1;
    let syn = 0;
    let echo = 0;
    let udp = 0;
    if (proto === PROTO_TCP) {
      if (flags & TCP_SYN) {
        if (flags & TCP_ACK) c[B_SYNACK]++;
        else syn = 1;
      }
      if (flags & TCP_FIN) c[B_FIN]++;
      if (flags & TCP_RST) c[B_RST]++;
    } else if (proto === PROTO_ICMP || proto === PROTO_ICMPV6) {
      c[B_ICMP]++;
      if (isEchoRequest(proto, d.icmpType[i])) echo = 1;
    } else if (proto === PROTO_UDP) {
      udp = 1;
    }
    c[B_SYN] += syn;
    c[B_ICMP_ECHO] += echo;
    c[B_UDP] += udp;

    const ports = ok && hasPorts(proto) && !(d.frag[i] & FragBits.NonFirst);
    const sp = ports ? d.sport[i] : 0;
    const dp = ports ? d.dport[i] : 0;
    let conn = mixWord(srcH, hashAddress(d.dst, w, fam));
    conn = fmix32(mixWord(conn, ((sp << 16) | dp) ^ (proto << 8)));
    hllAdd(sk, S_CONNS * HLL_REGISTERS, conn);
    if (syn) hllAdd(sk, S_SYN_CONNS * HLL_REGISTERS, conn);
    if (ports && toServer) hllAdd(sk, S_DST_PORTS * HLL_REGISTERS, fmix32((proto << 16) | dp));

    const sp1 = m.sessionPackets[i];
    let newSession = 0;
    if (sp1 === 1) {
      newSession = 1;
      c[B_NEW_SESSIONS]++;
      if (proto === PROTO_TCP) c[B_NEW_TCP_SESSIONS]++;
    } else if (sp1 === FEW_PACKETS) {
      c[B_GRADUATED]++;
    }

    const evBits = m.evBits[i];
    if (evBits !== 0) this.creditPacket(evBits, d, m, i, srcH, fam, w, proto, sp, dp, bytes);

    // Per-source rows count what clients send toward servers, so a server
    // answering a flood is not ranked beside the client sending it.
    if (!toServer) return;
    const macOff = m.hwAddrOffset[i];
    const table = this.table;
    const row = table.rowFor(srcH, fam, d.src, w, bytes, macOff >= NO_OFFSET ? -1 : macOff);
    const x = row < 0 ? table.others : table.counts;
    const o = row < 0 ? 0 : row * SC_COUNT;
    x[o + SC_PACKETS]++;
    x[o + SC_BYTES] += len;
    x[o + SC_SYN] += syn;
    x[o + SC_ICMP_ECHO] += echo;
    x[o + SC_UDP] += udp;
    x[o + SC_NEW_SESSIONS] += newSession;
    if (echo) {
      if (row >= 0) table.ev[row * EV_COUNT + EV_ECHO]++;
      else table.othersEv[EV_ECHO]++;
    }
    if (row >= 0) {
      table.protos[row] |= proto === PROTO_TCP ? PROTO_BIT_TCP : proto === PROTO_UDP ? PROTO_BIT_UDP : proto === PROTO_ICMP || proto === PROTO_ICMPV6 ? PROTO_BIT_ICMP : PROTO_BIT_OTHER;
      if (ports) table.target[row] = mergeTarget(table.target[row], (proto << 16) | dp);
    }
  }
}

/** The bitmap hash of a failed attempt's (server, protocol, port). */
function portHashOf(serverHash: number, proto: number, port: number): number {
  return fmix32(mixWord(serverHash, (proto << 16) | port));
}

function protoBit(proto: number): number {
  return proto === PROTO_TCP ? PROTO_BIT_TCP : proto === PROTO_UDP ? PROTO_BIT_UDP : proto === PROTO_ICMP || proto === PROTO_ICMPV6 ? PROTO_BIT_ICMP : PROTO_BIT_OTHER;
}

export interface RingOptions {
  windowSeconds: number;
  stepSeconds: number;
  /** Sources listed per counter in each window summary. */
  topSources?: number;
}

/** The last window's worth of steps of one queue; one summary per step. */
export class WindowRing {
  readonly buckets: number;
  private readonly step: number;
  private readonly slots: (StepRecord | null)[];
  private readonly merged = new Uint8Array(HLL_REGISTERS);
  private readonly topSources: number;
  private last = -1;
  private first = -1;

  constructor(
    opts: RingOptions,
    private readonly onWindow: (w: FeatureWindow) => void,
  ) {
    checkTiming(opts);
    this.step = opts.stepSeconds;
    this.buckets = Math.ceil(opts.windowSeconds / opts.stepSeconds);
    this.slots = new Array<StepRecord | null>(this.buckets).fill(null);
    this.topSources = opts.topSources ?? 5;
  }

  /** A closed step; steps in between that never came were empty. */
  add(r: StepRecord): void {
    if (r.index <= this.last) {
      if (this.last - r.index <= LATE_STEPS) return;
      // The sender's clock went back: start the window over.
      this.slots.fill(null);
      this.first = -1;
      this.last = -1;
    }
    const nb = this.buckets;
    if (this.first < 0) this.first = r.index;
    else {
      // After a gap longer than the window, the windows in between are
      // empty: emit up to one window's worth of them, then jump.
      const upto = Math.min(r.index - 1, this.last + nb);
      for (let b = this.last + 1; b <= upto; b++) {
        this.slots[b % nb] = null;
        this.emit(b + 1, r.queue);
      }
      if (r.index - 1 > upto) this.slots.fill(null);
    }
    this.slots[r.index % nb] = r;
    this.last = r.index;
    this.emit(r.index + 1, r.queue);
  }

  /** Summarises the steps before absolute index `end` (exclusive). */
  private emit(end: number, queue: number): void {
    const nb = this.buckets;
    const covered = Math.min(nb, end - this.first);
    const steps: StepRecord[] = [];
    for (let b = end - covered; b < end; b++) {
      const r = this.slots[b % nb];
      if (r && r.index === b) steps.push(r);
    }
    const sum = new Float64Array(B_COUNT);
    for (const r of steps) for (let k = 0; k < B_COUNT; k++) sum[k] += r.counts[k];
    const distinct = (sketch: number) => {
      this.merged.fill(0);
      for (const r of steps) hllMergeInto(this.merged, r.sketches, sketch * HLL_REGISTERS);
      return Math.round(hllEstimate(this.merged));
    };
    const span = covered * this.step;
    const packets = sum[B_PACKETS];
    const conns = packets > 0 ? Math.max(1, distinct(S_CONNS)) : 0;
    const sources = packets > 0 ? Math.max(1, distinct(S_SOURCES)) : 0;
    const mean = packets > 0 ? sum[B_BYTES] / packets : 0;
    const share = (k: number) => (packets > 0 ? sum[k] / packets : 0);
    const { list, top, totals } = this.mergeSources(steps, end - 1);

    const v = new Array<number>(FEATURE_COUNT).fill(0);
    v[F.packets] = packets;
    v[F.connections] = conns;
    v[F.connectionsPerSource] = sources > 0 ? conns / sources : 0;
    v[F.synConnections] = packets > 0 ? distinct(S_SYN_CONNS) : 0;
    v[F.meanIpLen] = mean;
    v[F.packetsPerConnection] = conns > 0 ? packets / conns : 0;
    v[F.newSourcePackets] = sum[B_NEW_SOURCE_PKTS];
    v[F.icmpShare] = share(B_ICMP);
    // Sessions opened in the window minus those that reached FEW_PACKETS in
    // it; a session opened before the window but growing inside it makes
    // this an underestimate, never more than the opened count.
    v[F.fewPacketShare] = sum[B_NEW_SESSIONS] > 0 ? Math.max(0, sum[B_NEW_SESSIONS] - sum[B_GRADUATED]) / sum[B_NEW_SESSIONS] : 0;
    v[F.newTcpSessions] = sum[B_NEW_TCP_SESSIONS];
    v[F.udpShare] = share(B_UDP);
    v[F.smallShare] = share(B_SMALL);
    v[F.overMtuShare] = share(B_OVER_MTU);
    v[F.fragmentShare] = share(B_FRAG);
    v[F.sources] = sources;
    v[F.dstPorts] = packets > 0 ? distinct(S_DST_PORTS) : 0;
    v[F.pps] = packets / span;
    v[F.bps] = sum[B_BYTES] / span;
    v[F.synPerS] = sum[B_SYN] / span;
    v[F.newSessionsPerS] = sum[B_NEW_SESSIONS] / span;
    v[F.synSynAck] = sum[B_SYN] / (sum[B_SYNACK] + 1);
    v[F.synFin] = sum[B_SYN] / (sum[B_FIN] + 1);
    v[F.rstPerS] = sum[B_RST] / span;
    v[F.echoPerS] = sum[B_ICMP_ECHO] / span;
    v[F.udpPerS] = sum[B_UDP] / span;
    v[F.lenStd] = packets > 0 ? Math.sqrt(Math.max(0, sum[B_LEN_SQ] / packets - mean * mean)) : 0;
    v[F.topShare] = totals.packets > 0 ? top / totals.packets : 0;

    this.onWindow({ queue, start: (end - covered) * this.step, end: end * this.step, packets, values: v, totals, sources: list });
  }

  /** Adds up the per-step source rows of the window; returns the top sources by each counter. */
  private mergeSources(steps: StepRecord[], newest: number): { list: WindowSource[]; top: number; totals: Record<BlameCounter, number> } {
    const rows = new Map<string, { family: number; words: Uint32Array; macHi: number; macLo: number; c: Float64Array; protos: number; target: number; recent: number }>();
    const totals = new Float64Array(SC_COUNT);
    for (const st of steps) {
      for (let k = 0; k < SC_COUNT; k++) totals[k] += st.others[k];
      const s = st.sources;
      for (let i = 0; i < s.n; i++) {
        const a = i * 4;
        const key = `${s.family[i]}/${s.addr[a]}/${s.addr[a + 1]}/${s.addr[a + 2]}/${s.addr[a + 3]}`;
        let r = rows.get(key);
        if (!r) {
          r = { family: s.family[i], words: s.addr.slice(a, a + 4), macHi: s.macHi[i], macLo: s.macLo[i], c: new Float64Array(SC_COUNT), protos: 0, target: TARGET_NONE, recent: 0 };
          rows.set(key, r);
        }
        r.protos |= s.protos[i];
        if (st.index === newest) r.recent += s.counts[i * SC_COUNT + SC_PACKETS];
        r.target = mergeTarget(r.target, s.target[i]);
        for (let k = 0; k < SC_COUNT; k++) {
          const v = s.counts[i * SC_COUNT + k];
          r.c[k] += v;
          totals[k] += v;
        }
      }
    }
    const all = [...rows.values()];
    const picked = new Set<(typeof all)[number]>();
    let top = 0;
    for (const r of all) top = Math.max(top, r.c[SC_PACKETS]);
    for (let k = 0; k < SC_COUNT; k++) {
      all
        .filter((r) => r.c[k] > 0)
        .sort((x, y) => y.c[k] - x.c[k])
        .slice(0, this.topSources)
        .forEach((r) => picked.add(r));
    }
    const list = [...picked]
      .sort((x, y) => y.c[SC_PACKETS] - x.c[SC_PACKETS])
      .map((r) => {
        const src: WindowSource = {
          ip: formatAddress(r.family, r.words, 0),
          packets: r.c[SC_PACKETS],
          bytes: r.c[SC_BYTES],
          syn: r.c[SC_SYN],
          icmpEcho: r.c[SC_ICMP_ECHO],
          udp: r.c[SC_UDP],
          newSessions: r.c[SC_NEW_SESSIONS],
          protos: r.protos,
          target: r.target,
          recent: r.recent,
        };
        const mac = formatMac(r.macHi, r.macLo);
        if (mac) src.mac = mac;
        return src;
      });
    const totalsRecord = Object.fromEntries(SOURCE_COUNTERS.map((name, k) => [name, totals[k]])) as Record<BlameCounter, number>;
    return { list, top, totals: totalsRecord };
  }
}

/** StepCounter and WindowRing in one, synchronously: offline pipeline and tests. */
export class WindowAggregator {
  private readonly counter: StepCounter;
  private readonly ring: WindowRing;

  /** onStep sees each closed step before its window is summed (the per-source tracker takes them). */
  constructor(opts: WindowOptions, onWindow: (w: FeatureWindow) => void, onStep?: (r: StepRecord) => void) {
    this.ring = new WindowRing(opts, onWindow);
    this.counter = new StepCounter(opts, (r) => {
      onStep?.(r);
      this.ring.add(r);
    });
  }

  attachEvidence(ev: Ev.SessionEvidence): void {
    this.counter.attachEvidence(ev);
  }

  get lateStamps(): number {
    return this.counter.lateStamps;
  }

  get clockResets(): number {
    return this.counter.clockResets;
  }

  observe(n: number, d: DecodedBatch, m: WindowInputs, bytes: Uint8Array): void {
    this.counter.observe(n, d, m, bytes);
  }

  advanceTo(nowSeconds: number): void {
    this.counter.advanceTo(nowSeconds);
  }

  flush(): void {
    this.counter.flush();
  }
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
