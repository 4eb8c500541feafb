// Per-source evidence over time, on the main thread: the queue threads'
// step rows (one per source per queue per second) are added up per source
// across queues (a horizontal scan spreads over queues) into a ring of the
// last window's steps. Each arriving row is judged at once against the
// model's per-source thresholds, per second and per window; each step, once
// every queue has had time to report it, is also counted into the learning
// statistics (what single sources do) when those are being collected.
import { formatAddress } from '../rules/address';
import {
  bitmapDistinct, EV_COUNT, formatMac, HOST_BITS_WORDS, mergeTarget, PORT_BITS_WORDS, SVC_SLOTS, TARGET_NONE,
} from '../features/source-table';
import { StepRecord } from '../features/step';
import { AGGREGATE_MEASURES, AggregateMeasure, CROWD_OF, EnvelopeStats, MEASURE_INDEX, MEASURES, MeasureName, serviceName, Threshold, Thresholds } from './envelope';
import { SC_COUNT, SC_SYN, SC_UDP } from '../features/source-table';
import { formatSequence } from '../flow/flag-model';

/** Steps after which a step counts as reported by every queue. */
const FINAL_LAG = 2;
/** Distinct-destination bitmaps are kept in buckets of about a twelfth of the window. */
const BUCKETS = 13;
const STEP_BITS = FINAL_LAG + 1;
export const MAX_TRACKED_SOURCES = 2048;
/** A share of an all-source total under which no source explains it: spread over many addresses. */
export const MIN_SHARE = 0.1;
/** Per-step all-source totals: the EV_COUNT evidence counters, then TCP and UDP attempts. */
const AGG_TCP = EV_COUNT;
const AGG_UDP = EV_COUNT + 1;
const AGG_LEN = EV_COUNT + 2;
/**
 * Steps over which a source's share of a spoofed flood is weighed: its
 * attempts fail up to 2 s after they were made, and a queue may report a
 * step a second late.
 */
const CROWD_STEPS = 4;
const AGG_INDEX: Readonly<Record<AggregateMeasure, number>> = Object.fromEntries(
  AGGREGATE_MEASURES.map((m) => [m, m === 'tcp_attempts' ? AGG_TCP : m === 'udp_attempts' ? AGG_UDP : MEASURE_INDEX[m]]),
) as Record<AggregateMeasure, number>;

export interface Exceeded {
  measure: MeasureName;
  /** Which of the two levels was exceeded (the larger ratio when both were). */
  scale: 'second' | 'window';
  value: number;
  threshold: Threshold;
  /** service_sessions: which service. */
  service?: string;
}

export interface SourceFinding {
  ip: string;
  family: number;
  mac?: string;
  /** Absolute step index (time / step) the finding was made at. */
  step: number;
  exceeded: Exceeded[];
  /** PROTO_BIT_* of its failed, improbable or stalled sessions in the window. */
  evProtos: number;
  /** The one TCP and UDP (proto << 16) | port its evidence was about in the window, or TARGET_*. */
  evTcp: number;
  evUdp: number;
  /** An improbable session of it, when odd_sessions is among the evidence. */
  sequence?: { symbols: string; surprisal: number };
}

export interface AggregateFinding {
  step: number;
  measure: AggregateMeasure;
  total: number;
  threshold: Threshold;
  /** The largest contributors in the step, with their share of the total. */
  top: { ip: string; value: number; share: number }[];
  /** True when no source holds MIN_SHARE of it. */
  distributed: boolean;
}

export interface TrackerOptions {
  windowSeconds: number;
  stepSeconds: number;
  /** null: nothing is judged (recording or learning only). */
  thresholds: Thresholds | null;
  /** Collects what single sources do, per step and per window, when given. */
  stats?: EnvelopeStats | null;
  onFinding?: (f: SourceFinding) => void;
  onAggregate?: (a: AggregateFinding) => void;
  /** A step was finalised (every queue had time to report it). */
  onStepFinal?: (step: number) => void;
  maxSources?: number;
}

interface Entry {
  key: string;
  ip: string;
  family: number;
  mac: string | undefined;
  idx: Int32Array;
  v: Float64Array;
  svcKey: Int32Array;
  svcService: Int32Array;
  svcN: Float64Array;
  /** Per step: its TCP SYNs and UDP datagrams toward servers (its share of a flood). */
  att: Float64Array;
  evProtos: Uint8Array;
  evTcp: Int32Array;
  evUdp: Int32Array;
  bIdx: Int32Array;
  ports: Uint32Array;
  hosts: Uint32Array;
  /** The last STEP_BITS steps' own bitmaps (a late queue may still report an older step). */
  sIdx: Int32Array;
  sPorts: Uint32Array;
  sHosts: Uint32Array;
  lastStep: number;
  oddSeq: number;
  oddLen: number;
  oddSurprisal: number;
  oddStep: number;
}

export class SourceTracker {
  readonly #o: TrackerOptions;
  readonly #w: number;
  readonly #bucket: number;
  readonly #entries = new Map<string, Entry>();
  /** All-source evidence totals per step not yet finalised. */
  readonly #agg = new Map<number, Float64Array>();
  #newest = -1;
  #final = -1;
  readonly #max: number;
  readonly #portsScratch = new Uint32Array(PORT_BITS_WORDS);
  readonly #hostsScratch = new Uint32Array(HOST_BITS_WORDS);
  #stats: EnvelopeStats | null;
  #thresholds: Thresholds | null;
  readonly #scratchAgg: Float64Array;
  /** All-source TCP and UDP attempts of the last CROWD_STEPS steps (a ring, by step). */
  readonly #attIdx = new Int32Array(CROWD_STEPS).fill(-1);
  readonly #att = new Float64Array(CROWD_STEPS * 2);
  /** Times the clock jumped (back past the window, or forward by more than one) and the history was dropped. */
  clockJumps = 0;
  /** Sources dropped to stay within maxSources. */
  evicted = 0;
  /** Per-source excesses not reported because the source held a small share of a distributed flood. */
  crowd = 0;

  constructor(o: TrackerOptions) {
    this.#o = o;
    this.#stats = o.stats ?? null;
    this.#thresholds = o.thresholds;
    this.#w = Math.max(1, Math.ceil(o.windowSeconds / o.stepSeconds));
    this.#bucket = Math.max(1, Math.ceil(this.#w / (BUCKETS - 1)));
    this.#scratchAgg = new Float64Array(AGG_LEN);
    this.#max = o.maxSources ?? MAX_TRACKED_SOURCES;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** One queue's closed step. */
  add(rec: StepRecord): void {
    const k = rec.index;
    if (this.#newest >= 0 && (k < this.#final - this.#w || k > this.#newest + this.#w)) {
      // The clock stepped (NTP, a capture's gap): the ring no longer
      // describes the time around k. Start over rather than judge on a
      // stale ring, or count a gap of nothing as seconds of traffic learnt.
      this.#finalizeUpTo(this.#newest);
      this.#reset();
    }
    const s = rec.sources;
    // A record for a step already finalised still counts per source; its all-source total is gone.
    const agg = k > this.#final ? this.#aggFor(k) : this.#scratchAgg.fill(0);
    for (let c = 0; c < EV_COUNT; c++) agg[c] += rec.othersEv[c];
    agg[AGG_TCP] += rec.others[SC_SYN];
    agg[AGG_UDP] += rec.others[SC_UDP];
    const ca = this.#attSlot(k);
    if (ca >= 0) {
      this.#att[ca * 2] += rec.others[SC_SYN];
      this.#att[ca * 2 + 1] += rec.others[SC_UDP];
    }
    if (this.#stats) this.#stats.addSequences(rec.sequences.index, rec.sequences.count, rec.sequences.sessions);
    const touched: Entry[] = [];
    for (let r = 0; r < s.n; r++) {
      const e = this.#entry(s.family[r], s.addr, r * 4);
      if (e.mac === undefined) e.mac = formatMac(s.macHi[r], s.macLo[r]);
      const slot = this.#slot(e, k);
      if (slot < 0) continue; // older than what this source's ring holds
      const vb = slot * EV_COUNT;
      for (let c = 0; c < EV_COUNT; c++) {
        // Stalled sessions are a level per queue; the queues' levels add up too.
        const x = s.ev[r * EV_COUNT + c];
        e.v[vb + c] += x;
        agg[c] += x;
      }
      const syn = s.counts[r * SC_COUNT + SC_SYN];
      const udp = s.counts[r * SC_COUNT + SC_UDP];
      e.att[slot * 2] += syn;
      e.att[slot * 2 + 1] += udp;
      agg[AGG_TCP] += syn;
      agg[AGG_UDP] += udp;
      if (ca >= 0) {
        this.#att[ca * 2] += syn;
        this.#att[ca * 2 + 1] += udp;
      }
      for (let j = 0; j < SVC_SLOTS; j++) {
        const n = s.svcCount[r * SVC_SLOTS + j];
        if (n > 0) mergeService(e, slot, s.svcKey[r * SVC_SLOTS + j], s.svcService[r * SVC_SLOTS + j], n);
      }
      e.evProtos[slot] |= s.evProtos[r];
      e.evTcp[slot] = mergeTarget(e.evTcp[slot], s.evTcp[r]);
      e.evUdp[slot] = mergeTarget(e.evUdp[slot], s.evUdp[r]);
      this.#orBits(e, k, s.portBits, r * PORT_BITS_WORDS, s.hostBits, r * HOST_BITS_WORDS);
      if (s.oddLen[r] > 0 && (e.oddStep !== k || s.oddSurprisal[r] > e.oddSurprisal)) {
        e.oddSeq = s.oddSeq[r];
        e.oddLen = s.oddLen[r];
        e.oddSurprisal = s.oddSurprisal[r];
        e.oddStep = k;
      }
      if (k > e.lastStep) e.lastStep = k;
      touched.push(e);
    }
    const th = this.#thresholds;
    if (th) {
      for (const e of touched) {
        const f = this.#judge(e, k, th, agg);
        if (f) this.#o.onFinding?.(f);
      }
      this.#judgeAggregate(k, agg, th);
    }
    if (k > this.#newest) {
      this.#newest = k;
      this.#finalizeUpTo(k - FINAL_LAG);
    }
  }

  /** Judges with these thresholds from now on (null: judges nothing). */
  setThresholds(t: Thresholds | null): void {
    this.#thresholds = t;
  }

  /** Where the learning statistics go from now on (null: nowhere). */
  setStats(stats: EnvelopeStats | null): void {
    this.#stats = stats;
  }

  /** Finalises every step still open (end of a capture). */
  flush(): void {
    this.#finalizeUpTo(this.#newest);
  }

  /** The evidence of one source in the window ending at step k, for tests and status. */
  values(ip: string, k: number): Record<MeasureName, { second: number; window: number }> | null {
    const e = [...this.#entries.values()].find((x) => x.ip === ip);
    if (!e) return null;
    const out = {} as Record<MeasureName, { second: number; window: number }>;
    MEASURES.forEach((m) => {
      out[m.name] = m.kind === 'service' ? this.#serviceTop(e, k) : this.#measure(e, k, MEASURE_INDEX[m.name]);
    });
    return out;
  }

  #aggFor(k: number): Float64Array {
    let a = this.#agg.get(k);
    if (!a) this.#agg.set(k, (a = new Float64Array(AGG_LEN)));
    return a;
  }

  #entry(family: number, words: Uint32Array, base: number): Entry {
    const key = family === 6 ? `6/${words[base]}/${words[base + 1]}/${words[base + 2]}/${words[base + 3]}` : `4/${words[base]}`;
    let e = this.#entries.get(key);
    if (e) return e;
    const w = this.#w;
    e = {
      key,
      ip: formatAddress(family, words, base),
      family,
      mac: undefined,
      idx: new Int32Array(w).fill(-1),
      v: new Float64Array(w * EV_COUNT),
      svcKey: new Int32Array(w * SVC_SLOTS).fill(-1),
      svcService: new Int32Array(w * SVC_SLOTS),
      svcN: new Float64Array(w * SVC_SLOTS),
      att: new Float64Array(w * 2),
      evProtos: new Uint8Array(w),
      evTcp: new Int32Array(w).fill(TARGET_NONE),
      evUdp: new Int32Array(w).fill(TARGET_NONE),
      bIdx: new Int32Array(BUCKETS).fill(-1),
      ports: new Uint32Array(BUCKETS * PORT_BITS_WORDS),
      hosts: new Uint32Array(BUCKETS * HOST_BITS_WORDS),
      sIdx: new Int32Array(STEP_BITS).fill(-1),
      sPorts: new Uint32Array(STEP_BITS * PORT_BITS_WORDS),
      sHosts: new Uint32Array(STEP_BITS * HOST_BITS_WORDS),
      lastStep: -1,
      oddSeq: 0,
      oddLen: 0,
      oddSurprisal: 0,
      oddStep: -1,
    };
    this.#entries.set(key, e);
    return e;
  }

  /** The ring slot of step k, cleared if it held an older step; -1 if it holds a newer one. */
  #slot(e: Entry, k: number): number {
    const slot = k % this.#w;
    if (e.idx[slot] > k) return -1;
    if (e.idx[slot] !== k) {
      e.idx[slot] = k;
      e.v.fill(0, slot * EV_COUNT, (slot + 1) * EV_COUNT);
      e.svcKey.fill(-1, slot * SVC_SLOTS, (slot + 1) * SVC_SLOTS);
      e.svcService.fill(0, slot * SVC_SLOTS, (slot + 1) * SVC_SLOTS);
      e.svcN.fill(0, slot * SVC_SLOTS, (slot + 1) * SVC_SLOTS);
      e.att[slot * 2] = 0;
      e.att[slot * 2 + 1] = 0;
      e.evProtos[slot] = 0;
      e.evTcp[slot] = TARGET_NONE;
      e.evUdp[slot] = TARGET_NONE;
    }
    return slot;
  }

  #orBits(e: Entry, k: number, ports: Uint32Array, pBase: number, hosts: Uint32Array, hBase: number): void {
    // A late record never wipes a newer bucket or step.
    const b = Math.floor(k / this.#bucket);
    const bs = b % BUCKETS;
    if (e.bIdx[bs] < b) {
      e.bIdx[bs] = b;
      e.ports.fill(0, bs * PORT_BITS_WORDS, (bs + 1) * PORT_BITS_WORDS);
      e.hosts.fill(0, bs * HOST_BITS_WORDS, (bs + 1) * HOST_BITS_WORDS);
    }
    if (e.bIdx[bs] === b) {
      for (let j = 0; j < PORT_BITS_WORDS; j++) e.ports[bs * PORT_BITS_WORDS + j] |= ports[pBase + j];
      for (let j = 0; j < HOST_BITS_WORDS; j++) e.hosts[bs * HOST_BITS_WORDS + j] |= hosts[hBase + j];
    }
    const ss = k % STEP_BITS;
    if (e.sIdx[ss] < k) {
      e.sIdx[ss] = k;
      e.sPorts.fill(0, ss * PORT_BITS_WORDS, (ss + 1) * PORT_BITS_WORDS);
      e.sHosts.fill(0, ss * HOST_BITS_WORDS, (ss + 1) * HOST_BITS_WORDS);
    }
    if (e.sIdx[ss] === k) {
      for (let j = 0; j < PORT_BITS_WORDS; j++) e.sPorts[ss * PORT_BITS_WORDS + j] |= ports[pBase + j];
      for (let j = 0; j < HOST_BITS_WORDS; j++) e.sHosts[ss * HOST_BITS_WORDS + j] |= hosts[hBase + j];
    }
  }

  /** A sum/gauge/distinct measure of e: its value at step k and over the window ending at k. */
  #measure(e: Entry, k: number, m: number): { second: number; window: number } {
    const def = MEASURES[m];
    const w = this.#w;
    if (def.kind === 'distinct') {
      const isPorts = def.name === 'failed_ports';
      const words = isPorts ? PORT_BITS_WORDS : HOST_BITS_WORDS;
      const bits = isPorts ? e.ports : e.hosts;
      const acc = isPorts ? this.#portsScratch : this.#hostsScratch;
      const ss = k % STEP_BITS;
      acc.fill(0);
      const lo = Math.floor((k - w + 1) / this.#bucket);
      const hi = Math.floor(k / this.#bucket);
      for (let b = 0; b < BUCKETS; b++) {
        if (e.bIdx[b] < lo || e.bIdx[b] > hi) continue;
        for (let j = 0; j < words; j++) acc[j] |= bits[b * words + j];
      }
      const second = e.sIdx[ss] === k ? bitmapDistinct(isPorts ? e.sPorts : e.sHosts, ss * words, words) : 0;
      return { second, window: bitmapDistinct(acc, 0, words) };
    }
    const c = m; // sum and gauge measures are the first EV_COUNT, in EVIDENCE_COUNTERS order
    let second = 0;
    let window = 0;
    for (let slot = 0; slot < w; slot++) {
      const at = e.idx[slot];
      if (at <= k - w || at > k) continue;
      const x = e.v[slot * EV_COUNT + c];
      if (at === k) second = x;
      window = def.kind === 'gauge' ? Math.max(window, x) : window + x;
    }
    return { second, window };
  }

  /** Working sessions of e per (server, service) pair at step k and over the window. */
  #services(e: Entry, k: number): Map<number, { service: number; second: number; window: number }> {
    const out = new Map<number, { service: number; second: number; window: number }>();
    const w = this.#w;
    for (let slot = 0; slot < w; slot++) {
      const at = e.idx[slot];
      if (at <= k - w || at > k) continue;
      for (let j = 0; j < SVC_SLOTS; j++) {
        const key = e.svcKey[slot * SVC_SLOTS + j];
        const n = e.svcN[slot * SVC_SLOTS + j];
        if (key < 0 || n <= 0) continue;
        let x = out.get(key);
        if (!x) out.set(key, (x = { service: e.svcService[slot * SVC_SLOTS + j], second: 0, window: 0 }));
        x.window += n;
        if (at === k) x.second += n;
      }
    }
    return out;
  }

  #serviceTop(e: Entry, k: number): { second: number; window: number } {
    let second = 0;
    let window = 0;
    for (const x of this.#services(e, k).values()) {
      second = Math.max(second, x.second);
      window = Math.max(window, x.window);
    }
    return { second, window };
  }

  #judge(e: Entry, k: number, th: Thresholds, agg: Float64Array): SourceFinding | null {
    const exceeded: Exceeded[] = [];
    const push = (measure: MeasureName, v: { second: number; window: number }, t: { step: Threshold; window: Threshold }, service?: string) => {
      // Only what it is doing now counts: a source that stopped is not judged on what the window remembers.
      if (!(v.second > 0)) return;
      // In a flood spread over many addresses, a source holding a small share
      // of it may only be a spoofed address (its own kernel resets the
      // SYN-ACKs meant for the attacker): the distributed alert covers it.
      const crowd = CROWD_OF[measure];
      if (crowd && this.#inCrowd(e, k, th, agg, crowd, v.second)) {
        this.crowd++;
        return;
      }
      const rs = v.second / t.step.value;
      const rw = v.window / t.window.value;
      if (rs <= 1 && rw <= 1) return;
      const x: Exceeded = rs >= rw ? { measure, scale: 'second', value: v.second, threshold: t.step } : { measure, scale: 'window', value: v.window, threshold: t.window };
      if (service) x.service = service;
      exceeded.push(x);
    };
    MEASURES.forEach((def, m) => {
      if (def.kind === 'service') return;
      push(def.name, this.#measure(e, k, m), { step: th.step[m], window: th.window[m] });
    });
    for (const v of this.#services(e, k).values()) {
      const name = serviceName(v.service);
      push('service_sessions', v, th.service(name), name);
    }
    if (exceeded.length === 0) return null;
    exceeded.sort((a, b) => b.value / b.threshold.value - a.value / a.threshold.value);
    let evProtos = 0;
    let evTcp = TARGET_NONE;
    let evUdp = TARGET_NONE;
    for (let slot = 0; slot < this.#w; slot++) {
      const at = e.idx[slot];
      if (at <= k - this.#w || at > k) continue;
      evProtos |= e.evProtos[slot];
      evTcp = mergeTarget(evTcp, e.evTcp[slot]);
      evUdp = mergeTarget(evUdp, e.evUdp[slot]);
    }
    const f: SourceFinding = { ip: e.ip, family: e.family, step: k, exceeded, evProtos, evTcp, evUdp };
    if (e.mac) f.mac = e.mac;
    if (e.oddLen > 0 && exceeded.some((x) => x.measure === 'odd_sessions')) f.sequence = { symbols: formatSequence(e.oddSeq, e.oddLen), surprisal: Math.round(e.oddSurprisal * 100) / 100 };
    return f;
  }

  /**
   * Whether e's evidence on a measure judged against `crowd` may be a
   * spoofed address's: over the last CROWD_STEPS steps the all-source
   * attempts (echo requests for echo) exceeded their envelope, and e made
   * under MIN_SHARE of them.
   */
  #inCrowd(e: Entry, k: number, th: Thresholds, agg: Float64Array, crowd: AggregateMeasure, own: number): boolean {
    const limit = th.aggregate[crowd].value;
    if (crowd === 'echo_requests') return agg[AGG_INDEX.echo_requests] > limit && own < MIN_SHARE * agg[AGG_INDEX.echo_requests];
    const col = crowd === 'tcp_attempts' ? 0 : 1;
    let mine = 0;
    let all = 0;
    let peak = 0;
    for (let j = k - CROWD_STEPS + 1; j <= k; j++) {
      const cs = ((j % CROWD_STEPS) + CROWD_STEPS) % CROWD_STEPS;
      if (this.#attIdx[cs] === j) {
        all += this.#att[cs * 2 + col];
        peak = Math.max(peak, this.#att[cs * 2 + col]);
      }
      const slot = ((j % this.#w) + this.#w) % this.#w;
      if (e.idx[slot] === j) mine += e.att[slot * 2 + col];
    }
    return peak > limit && mine < MIN_SHARE * all;
  }

  /** The crowd ring's slot of step k (cleared if it held an older one), or -1 if it holds a newer one. */
  #attSlot(k: number): number {
    const cs = ((k % CROWD_STEPS) + CROWD_STEPS) % CROWD_STEPS;
    if (this.#attIdx[cs] > k) return -1;
    if (this.#attIdx[cs] !== k) {
      this.#attIdx[cs] = k;
      this.#att[cs * 2] = 0;
      this.#att[cs * 2 + 1] = 0;
    }
    return cs;
  }

  #judgeAggregate(k: number, agg: Float64Array, th: Thresholds): void {
    for (const m of AGGREGATE_MEASURES) {
      const c = AGG_INDEX[m];
      const total = agg[c];
      const t = th.aggregate[m];
      if (!(total > t.value)) continue;
      const top: { ip: string; value: number; share: number }[] = [];
      for (const e of this.#entries.values()) {
        const slot = k % this.#w;
        if (e.idx[slot] !== k) continue;
        const value = c === AGG_TCP ? e.att[slot * 2] : c === AGG_UDP ? e.att[slot * 2 + 1] : e.v[slot * EV_COUNT + c];
        if (value > 0) top.push({ ip: e.ip, value, share: Math.round((value / total) * 1000) / 1000 });
      }
      top.sort((a, b) => b.value - a.value);
      top.length = Math.min(top.length, 5);
      this.#o.onAggregate?.({ step: k, measure: m, total, threshold: t, top, distributed: !top.some((x) => x.share >= MIN_SHARE) });
    }
  }

  #reset(): void {
    this.#entries.clear();
    this.#agg.clear();
    this.#attIdx.fill(-1);
    this.#newest = -1;
    this.#final = -1;
    this.clockJumps++;
  }

  #finalizeUpTo(k: number): void {
    if (this.#final < 0) this.#final = k - 1;
    for (let j = this.#final + 1; j <= k; j++) this.#finalize(j);
    if (k > this.#final) this.#final = k;
    this.#prune();
  }

  #finalize(j: number): void {
    const stats = this.#stats;
    const agg = this.#agg.get(j);
    this.#agg.delete(j);
    if (stats) {
      stats.steps++;
      for (const m of AGGREGATE_MEASURES) stats.aggregate.get(m)!.add(agg ? agg[AGG_INDEX[m]] : 0);
      if (agg) {
        for (const e of this.#entries.values()) {
          if (e.idx[j % this.#w] !== j) continue;
          stats.sourceSteps++;
          MEASURES.forEach((def, m) => {
            if (def.kind === 'service') return;
            const v = this.#measure(e, j, m);
            stats.measures[m].step.add(v.second);
            stats.measures[m].window.add(v.window);
          });
          let topSecond = 0;
          let topWindow = 0;
          for (const v of this.#services(e, j).values()) {
            const s = stats.service(serviceName(v.service));
            s.step.add(v.second);
            s.window.add(v.window);
            topSecond = Math.max(topSecond, v.second);
            topWindow = Math.max(topWindow, v.window);
          }
          const sm = stats.measures[MEASURE_INDEX.service_sessions];
          sm.step.add(topSecond);
          sm.window.add(topWindow);
        }
      }
    }
    this.#o.onStepFinal?.(j);
  }

  /** Forgets sources silent for a whole window; beyond maxSources, the ones with the least evidence. */
  #prune(): void {
    const horizon = this.#final - this.#w;
    for (const [key, e] of this.#entries) if (e.lastStep <= horizon) this.#entries.delete(key);
    if (this.#entries.size <= this.#max) return;
    const weight = (e: Entry) => {
      let s = 0;
      for (let i = 0; i < e.v.length; i++) s += e.v[i];
      return s;
    };
    const ranked = [...this.#entries.values()].map((e) => ({ e, w: weight(e) })).sort((a, b) => a.w - b.w);
    const drop = this.#entries.size - Math.floor(this.#max * 0.9);
    for (let i = 0; i < drop; i++) {
      this.#entries.delete(ranked[i].e.key);
      this.evicted++;
    }
  }
}

/** Adds a (server-service key, count) to step slot of e: the same key adds up; else an empty or the smaller slot takes it. */
function mergeService(e: Entry, slot: number, key: number, service: number, n: number): void {
  const b = slot * SVC_SLOTS;
  for (let j = 0; j < SVC_SLOTS; j++) {
    if (e.svcKey[b + j] === key) {
      e.svcN[b + j] += n;
      return;
    }
  }
  let min = b;
  for (let j = 0; j < SVC_SLOTS; j++) {
    if (e.svcKey[b + j] < 0) {
      e.svcKey[b + j] = key;
      e.svcService[b + j] = service;
      e.svcN[b + j] = n;
      return;
    }
    if (e.svcN[b + j] < e.svcN[min]) min = b + j;
  }
  // Both taken by other pairs: keep the larger, as Misra-Gries would.
  if (n > e.svcN[min]) {
    e.svcKey[min] = key;
    e.svcService[min] = service;
    e.svcN[min] = n;
  }
}
