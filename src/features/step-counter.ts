// The queue-thread half of the feature windows: StepCounter runs after a
// batch's verdicts are sent and counts packets into the current step (1 s by
// default) with fixed memory (counters, HyperLogLog sketches, a bounded
// per-source table), allocating nothing per packet. When a step ends it hands
// a StepRecord (step.ts) over.
import { DecodedBatch, DecodeStatus, FragBits, L3Bits, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN } from '../packet/decoded';
import { isEchoRequest } from '../flow/server-guess';
import { hasPorts } from '../rules/linear';
import { fmix32, hashAddress, mixWord } from './hash';
import { HLL_REGISTERS, hllAdd } from './hll';
import { SeenSources } from './seen-sources';
import { EV_COUNT, EV_ECHO, EV_ODD, EV_STALLED, EV_TCP_FAILED, EV_UDP_FAILED, EV_UDP_UNANSWERED, HOST_BITS_WORDS, mergeTarget, PORT_BITS_WORDS, PROTO_BIT_ICMP, PROTO_BIT_OTHER, PROTO_BIT_TCP, PROTO_BIT_UDP, SC_BYTES, SC_COUNT, SC_ICMP_ECHO, SC_NEW_SESSIONS, SC_PACKETS, SC_SYN, SC_UDP, SourceTable, SVC_SLOTS } from './source-table';
import * as Ev from '../flow/session-evidence';
import { B_BYTES, B_COUNT, B_FIN, B_FRAG, B_GRADUATED, B_ICMP, B_ICMP_ECHO, B_LEN_SQ, B_NEW_SESSIONS, B_NEW_SOURCE_PKTS, B_NEW_TCP_SESSIONS, B_OVER_MTU, B_PACKETS, B_RST, B_SMALL, B_SYN, B_SYNACK, B_UDP, checkTiming, LATE_STEPS, S_CONNS, S_COUNT, S_DST_PORTS, S_SOURCES, S_SYN_CONNS, StepRecord, StepSources } from './step';

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

/** A session that reaches this many packets is no longer a "few-packet" one. */
export const FEW_PACKETS = 3;
export const SMALL_PACKET = 80;
export const MTU = 1500;
const NO_OFFSET = 0xffffffff;
const EMPTY = new Uint8Array(0);

export interface StepOptions {
  queue: number;
  windowSeconds: number;
  stepSeconds: number;
  /** Sources with their own row per step; the rest are summed. */
  maxSourcesPerStep?: number;
  seenSourcesCapacity?: number;
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
