// The main-thread half of the feature windows: WindowRing keeps the last
// window's worth of steps (60 s) a queue's StepCounter (step-counter.ts)
// handed over and sums them into one flow vector per step; that summary costs
// about a millisecond, which must not stall the verdict path, so it never
// runs on a queue thread. WindowAggregator joins the two halves synchronously
// for the offline pipeline and tests.
import { DecodedBatch } from '../packet/decoded';
import { formatAddress } from '../rules/address';
import { BlameCounter, FEATURE_COUNT, featureIndex } from './feature-set';
import { HLL_REGISTERS, hllEstimate, hllMergeInto } from './hll';
import { formatMac, mergeTarget, SC_BYTES, SC_COUNT, SC_ICMP_ECHO, SC_NEW_SESSIONS, SC_PACKETS, SC_SYN, SC_UDP, SOURCE_COUNTERS, TARGET_NONE } from './source-table';
import * as Ev from '../flow/session-evidence';
import { B_BYTES, B_COUNT, B_FIN, B_FRAG, B_GRADUATED, B_ICMP, B_ICMP_ECHO, B_LEN_SQ, B_NEW_SESSIONS, B_NEW_SOURCE_PKTS, B_NEW_TCP_SESSIONS, B_OVER_MTU, B_PACKETS, B_RST, B_SMALL, B_SYN, B_SYNACK, B_UDP, checkTiming, LATE_STEPS, S_CONNS, S_DST_PORTS, S_SOURCES, S_SYN_CONNS, StepRecord } from './step';
import { StepCounter, WindowInputs } from './step-counter';

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
