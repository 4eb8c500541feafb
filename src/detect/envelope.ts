// What single sources do in normal traffic: per-source distributions of the
// evidence measures (failed attempts, unanswered datagrams, echo requests,
// improbable flag sequences, stalled sessions, distinct failed destinations,
// new sessions to one service), per second and per window, learnt from
// normal traffic and stored in the model. A source is blocked only when its
// own value is far outside them: above margin x the learnt quantile, and
// above a fixed floor, so a handful of events never blocks anyone however
// quiet the training traffic was.
import { EVIDENCE_COUNTERS } from '../features/source-table';

/** How a measure adds up over a window. */
export type MeasureKind = 'sum' | 'gauge' | 'distinct' | 'service';

export interface MeasureDef {
  readonly name: MeasureName;
  readonly kind: MeasureKind;
  /** What an alert says. */
  readonly about: string;
  /** Floors: a second's value and a window's value must exceed these, whatever was learnt. */
  readonly floorStep: number;
  readonly floorWindow: number;
  readonly signatureId: number;
  readonly signature: string;
}

export const MEASURE_NAMES = [...EVIDENCE_COUNTERS, 'failed_ports', 'failed_hosts', 'service_sessions'] as const;
export type MeasureName = (typeof MEASURE_NAMES)[number];

export const MEASURES: readonly MeasureDef[] = [
  { name: 'tcp_failed', kind: 'sum', about: 'TCP connection attempts refused (RST), abandoned after the SYN-ACK, or unanswered for 2 s', floorStep: 20, floorWindow: 200, signatureId: 9100101, signature: 'failed TCP connections from one source (SYN flood or scan)' },
  { name: 'udp_failed', kind: 'sum', about: 'UDP flows it opened that got no answer within 2 s', floorStep: 20, floorWindow: 200, signatureId: 9100102, signature: 'unanswered UDP flows from one source (scan or flood)' },
  { name: 'udp_unanswered', kind: 'sum', about: 'UDP datagrams it sent into flows still unanswered 2 s after they began', floorStep: 5000, floorWindow: 100000, signatureId: 9100103, signature: 'UDP flood: datagrams nobody answers' },
  { name: 'echo_requests', kind: 'sum', about: 'ICMP/ICMPv6 echo requests it sent', floorStep: 100, floorWindow: 1200, signatureId: 9100104, signature: 'ICMP echo flood' },
  { name: 'odd_sessions', kind: 'sum', about: 'TCP sessions it opened whose flags it sent are improbable', floorStep: 10, floorWindow: 60, signatureId: 9100105, signature: 'improbable TCP flag sequences (stealth scan: NULL, FIN, XMAS...)' },
  { name: 'stalled_sessions', kind: 'gauge', about: 'its TCP sessions open 5 s or more in which the server has sent no data and it little', floorStep: 20, floorWindow: 20, signatureId: 9100106, signature: 'stalled sessions (slow DoS such as slowloris)' },
  { name: 'failed_ports', kind: 'distinct', about: 'distinct (server, protocol, port) of its failed attempts', floorStep: 10, floorWindow: 20, signatureId: 9100107, signature: 'port scan: failed attempts to many ports' },
  { name: 'failed_hosts', kind: 'distinct', about: 'distinct servers of its failed attempts', floorStep: 10, floorWindow: 20, signatureId: 9100108, signature: 'host sweep: failed attempts to many hosts' },
  { name: 'service_sessions', kind: 'service', about: 'TCP sessions it opened and got going (handshake done) with one server\'s service', floorStep: 10, floorWindow: 30, signatureId: 9100109, signature: 'connection burst to one service (brute force)' },
];
export const MEASURE_INDEX: Readonly<Record<MeasureName, number>> = Object.fromEntries(MEASURES.map((m, i) => [m.name, i])) as Record<MeasureName, number>;

/**
 * Totals over all sources per step, for floods spread over many (spoofed)
 * addresses: the evidence measures that add up, and the attempts behind
 * them (TCP SYNs and UDP datagrams toward servers), which show a spoofed
 * flood at once, before any of its attempts has had time to fail.
 */
export const AGGREGATE_MEASURES = ['tcp_failed', 'udp_failed', 'udp_unanswered', 'echo_requests', 'odd_sessions', 'tcp_attempts', 'udp_attempts'] as const;
export type AggregateMeasure = (typeof AGGREGATE_MEASURES)[number];
/** Floors of the all-source totals per second. */
export const AGGREGATE_FLOORS: Readonly<Record<AggregateMeasure, number>> = { tcp_failed: 500, udp_failed: 500, udp_unanswered: 5000, echo_requests: 1000, odd_sessions: 200, tcp_attempts: 2000, udp_attempts: 20000 };
/** What each aggregate is about, for the distributed alert. */
export const AGGREGATE_ABOUT: Readonly<Record<'tcp_attempts' | 'udp_attempts', { about: string; signatureId: number; signature: string }>> = {
  tcp_attempts: { about: 'TCP SYNs sent toward servers', signatureId: 9100210, signature: 'TCP connection attempts from many addresses (spoofed SYN flood)' },
  udp_attempts: { about: 'UDP datagrams sent toward servers', signatureId: 9100211, signature: 'UDP datagrams from many addresses (spoofed UDP flood)' },
};
/** The all-source total a spoofed address's evidence of a measure is weighed against. */
export const CROWD_OF: Readonly<Partial<Record<MeasureName, AggregateMeasure>>> = {
  tcp_failed: 'tcp_attempts',
  odd_sessions: 'tcp_attempts',
  udp_failed: 'udp_attempts',
  udp_unanswered: 'udp_attempts',
  echo_requests: 'echo_requests',
};

export const DEFAULT_QUANTILE = 0.999;
export const DEFAULT_MARGIN = 3;

// Histogram bins: exact for 0..EXACT-1, then BINS_PER_DOUBLING per doubling
// (9% wide): quantiles of counts from 0 to 10^12 in at most a few hundred bins.
const EXACT = 32;
const BINS_PER_DOUBLING = 8;

export function binOf(v: number): number {
  if (!(v > 0)) return 0;
  if (v < EXACT) return Math.floor(v);
  return EXACT + Math.floor(Math.log2(v / EXACT) * BINS_PER_DOUBLING);
}

/** The largest value a bin holds (quantiles are read conservatively high). */
export function binUpper(b: number): number {
  if (b < EXACT) return b;
  return EXACT * 2 ** ((b - EXACT + 1) / BINS_PER_DOUBLING);
}

/** Sparse log-binned histogram: bin -> count. */
export class Histogram {
  readonly bins = new Map<number, number>();
  total = 0;

  add(v: number, n = 1): void {
    const b = binOf(v);
    this.bins.set(b, (this.bins.get(b) ?? 0) + n);
    this.total += n;
  }

  merge(h: Histogram): void {
    for (const [b, n] of h.bins) this.bins.set(b, (this.bins.get(b) ?? 0) + n);
    this.total += h.total;
  }

  /** The q-quantile (upper edge of its bin); 0 for an empty histogram. */
  quantile(q: number): number {
    if (this.total === 0) return 0;
    const rank = Math.ceil(q * this.total);
    let seen = 0;
    for (const b of [...this.bins.keys()].sort((x, y) => x - y)) {
      seen += this.bins.get(b) ?? 0;
      if (seen >= rank) return binUpper(b);
    }
    return binUpper(Math.max(...this.bins.keys()));
  }

  toJSON(): Record<string, number> {
    return Object.fromEntries([...this.bins].sort((a, b) => a[0] - b[0]).map(([b, n]) => [String(b), n]));
  }

  static from(doc: Record<string, number>): Histogram {
    const h = new Histogram();
    for (const [k, n] of Object.entries(doc)) {
      h.bins.set(Number(k), n);
      h.total += n;
    }
    return h;
  }
}

/** A per-source measure's distributions: the value in one step, and over one window. */
export interface MeasureStats {
  step: Histogram;
  window: Histogram;
}

/** "tcp/22": a service key as stored in models and shown in alerts. */
export function serviceName(key: number): string {
  const proto = key >>> 16;
  return `${proto === 6 ? 'tcp' : proto === 17 ? 'udp' : String(proto)}/${key & 0xffff}`;
}

/** The learning data of the per-source part of a model, accumulated over a capture or a run. */
export class EnvelopeStats {
  readonly measures: MeasureStats[] = MEASURES.map(() => ({ step: new Histogram(), window: new Histogram() }));
  /** service_sessions per service. */
  readonly services = new Map<string, MeasureStats>();
  /** All-source totals per step. */
  readonly aggregate = new Map<AggregateMeasure, Histogram>(AGGREGATE_MEASURES.map((m) => [m, new Histogram()]));
  /** TCP flag sequences: (context * SYMBOLS + symbol) -> count, and sessions scored. */
  readonly sequences = new Map<number, number>();
  sessions = 0;
  /** Steps finalised, and (source, step) samples. */
  steps = 0;
  sourceSteps = 0;

  service(name: string): MeasureStats {
    let s = this.services.get(name);
    if (!s) this.services.set(name, (s = { step: new Histogram(), window: new Histogram() }));
    return s;
  }

  addSequences(index: ArrayLike<number>, count: ArrayLike<number>, sessions: number): void {
    for (let k = 0; k < index.length; k++) this.sequences.set(index[k], (this.sequences.get(index[k]) ?? 0) + count[k]);
    this.sessions += sessions;
  }

  merge(o: EnvelopeStats): void {
    this.measures.forEach((m, i) => {
      m.step.merge(o.measures[i].step);
      m.window.merge(o.measures[i].window);
    });
    for (const [name, s] of o.services) {
      const t = this.service(name);
      t.step.merge(s.step);
      t.window.merge(s.window);
    }
    for (const [m, h] of o.aggregate) this.aggregate.get(m)!.merge(h);
    for (const [k, n] of o.sequences) this.sequences.set(k, (this.sequences.get(k) ?? 0) + n);
    this.sessions += o.sessions;
    this.steps += o.steps;
    this.sourceSteps += o.sourceSteps;
  }

  get empty(): boolean {
    return this.steps === 0;
  }

  toJSON(): EnvelopeStatsDoc {
    return {
      steps: this.steps,
      source_steps: this.sourceSteps,
      measures: Object.fromEntries(MEASURES.map((m, i) => [m.name, { step: this.measures[i].step.toJSON(), window: this.measures[i].window.toJSON() }])),
      services: Object.fromEntries([...this.services].map(([k, s]) => [k, { step: s.step.toJSON(), window: s.window.toJSON() }])),
      aggregate: Object.fromEntries([...this.aggregate].map(([k, h]) => [k, h.toJSON()])),
      sequences: Object.fromEntries([...this.sequences].map(([k, n]) => [String(k), n])),
      sessions: this.sessions,
    };
  }

  /** From a recording line (validated by the caller's schema). */
  static from(doc: EnvelopeStatsDoc): EnvelopeStats {
    const s = new EnvelopeStats();
    s.steps = doc.steps;
    s.sourceSteps = doc.source_steps;
    MEASURES.forEach((m, i) => {
      const d = doc.measures[m.name];
      if (!d) return;
      s.measures[i].step.merge(Histogram.from(d.step));
      s.measures[i].window.merge(Histogram.from(d.window));
    });
    for (const [k, d] of Object.entries(doc.services)) {
      const t = s.service(k);
      t.step.merge(Histogram.from(d.step));
      t.window.merge(Histogram.from(d.window));
    }
    for (const m of AGGREGATE_MEASURES) if (doc.aggregate[m]) s.aggregate.get(m)!.merge(Histogram.from(doc.aggregate[m]));
    for (const [k, n] of Object.entries(doc.sequences)) s.sequences.set(Number(k), n);
    s.sessions = doc.sessions;
    return s;
  }
}

type HistogramDoc = Record<string, number>;
export interface EnvelopeStatsDoc {
  steps: number;
  source_steps: number;
  measures: Partial<Record<MeasureName, { step: HistogramDoc; window: HistogramDoc }>>;
  services: Record<string, { step: HistogramDoc; window: HistogramDoc }>;
  aggregate: Partial<Record<AggregateMeasure, HistogramDoc>>;
  sequences: Record<string, number>;
  sessions: number;
}

const histogramSchema = { type: 'object', propertyNames: { pattern: '^[0-9]{1,4}$' }, additionalProperties: { type: 'integer', minimum: 0 } } as const;
const measureStatsSchema = { type: 'object', additionalProperties: false, required: ['step', 'window'], properties: { step: histogramSchema, window: histogramSchema } } as const;

export const ENVELOPE_STATS_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['steps', 'source_steps', 'measures', 'services', 'aggregate', 'sequences', 'sessions'],
  properties: {
    steps: { type: 'integer', minimum: 0 },
    source_steps: { type: 'integer', minimum: 0 },
    measures: { type: 'object', additionalProperties: false, properties: Object.fromEntries(MEASURE_NAMES.map((n) => [n, measureStatsSchema])) },
    services: { type: 'object', propertyNames: { pattern: '^(tcp|udp)/[0-9]{1,5}$' }, additionalProperties: measureStatsSchema },
    aggregate: { type: 'object', additionalProperties: false, properties: Object.fromEntries(AGGREGATE_MEASURES.map((n) => [n, histogramSchema])) },
    sequences: { type: 'object', propertyNames: { pattern: '^[0-9]{1,6}$' }, additionalProperties: { type: 'integer', minimum: 0 } },
    sessions: { type: 'integer', minimum: 0 },
  },
} as const;

/** Learnt quantiles of one measure: a source's value in one step and over one window. */
export interface LearntLevel {
  step: number;
  window: number;
}

/** The per-source part of a model. */
export interface SourceEnvelope {
  quantile: number;
  margin: number;
  measures: Record<MeasureName, LearntLevel>;
  /** service_sessions per TCP service seen often enough; other services use measures.service_sessions (all services pooled) with higher floors. */
  services: Record<string, LearntLevel>;
  /** All-source totals per step. */
  aggregate: Record<AggregateMeasure, number>;
  steps: number;
  sourceSteps: number;
}

/** Services with fewer (source, server, second) samples than this use the pooled level. */
export const MIN_SERVICE_SAMPLES = 300;
/**
 * Floors for a service the model never learnt: its threshold is the pooled
 * level of all services, and at least these, since nothing says how busy
 * that service normally is.
 */
export const UNLEARNT_SERVICE_FLOORS = { step: 30, window: 300 } as const;

export function learnEnvelope(s: EnvelopeStats, quantile = DEFAULT_QUANTILE, margin = DEFAULT_MARGIN): SourceEnvelope {
  const level = (m: MeasureStats): LearntLevel => ({ step: round3(m.step.quantile(quantile)), window: round3(m.window.quantile(quantile)) });
  const measures = Object.fromEntries(MEASURES.map((m, i) => [m.name, level(s.measures[i])])) as Record<MeasureName, LearntLevel>;
  const services: Record<string, LearntLevel> = {};
  for (const [k, st] of [...s.services].sort((a, b) => a[0].localeCompare(b[0]))) if (st.step.total >= MIN_SERVICE_SAMPLES) services[k] = level(st);
  const aggregate = Object.fromEntries(AGGREGATE_MEASURES.map((m) => [m, round3(s.aggregate.get(m)!.quantile(quantile))])) as Record<AggregateMeasure, number>;
  return { quantile, margin, measures, services, aggregate, steps: s.steps, sourceSteps: s.sourceSteps };
}

const levelSchema = { type: 'object', additionalProperties: false, required: ['step', 'window'], properties: { step: { type: 'number', minimum: 0 }, window: { type: 'number', minimum: 0 } } } as const;

export const SOURCE_ENVELOPE_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['quantile', 'margin', 'measures', 'services', 'aggregate', 'steps', 'sourceSteps'],
  properties: {
    quantile: { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 1 },
    margin: { type: 'number', minimum: 1 },
    measures: { type: 'object', additionalProperties: false, required: [...MEASURE_NAMES], properties: Object.fromEntries(MEASURE_NAMES.map((n) => [n, levelSchema])) },
    services: { type: 'object', propertyNames: { pattern: '^(tcp|udp)/[0-9]{1,5}$' }, additionalProperties: levelSchema },
    aggregate: { type: 'object', additionalProperties: false, required: [...AGGREGATE_MEASURES], properties: Object.fromEntries(AGGREGATE_MEASURES.map((n) => [n, { type: 'number', minimum: 0 }])) },
    steps: { type: 'integer', minimum: 0 },
    sourceSteps: { type: 'integer', minimum: 0 },
  },
} as const;

/** A threshold with how it was set, for the alert. */
export interface Threshold {
  value: number;
  learnt: number;
  margin: number;
  floor: number;
}

export function threshold(learnt: number, margin: number, floor: number): Threshold {
  return { value: Math.max(floor, margin * learnt), learnt, margin, floor };
}

/** Thresholds of every measure per step and per window, and of the all-source totals; services looked up by name. */
export class Thresholds {
  readonly step: Threshold[];
  readonly window: Threshold[];
  readonly aggregate: Record<AggregateMeasure, Threshold>;
  readonly #services = new Map<string, { step: Threshold; window: Threshold }>();

  constructor(private readonly env: SourceEnvelope) {
    this.step = MEASURES.map((m) => threshold(env.measures[m.name].step, env.margin, m.floorStep));
    this.window = MEASURES.map((m) => threshold(env.measures[m.name].window, env.margin, m.floorWindow));
    this.aggregate = Object.fromEntries(AGGREGATE_MEASURES.map((m) => [m, threshold(env.aggregate[m], env.margin, AGGREGATE_FLOORS[m])])) as Record<AggregateMeasure, Threshold>;
  }

  service(name: string): { step: Threshold; window: Threshold } {
    let t = this.#services.get(name);
    if (!t) {
      const learnt = this.env.services[name];
      const i = MEASURE_INDEX.service_sessions;
      const pooled = this.env.measures.service_sessions;
      t = learnt
        ? { step: threshold(learnt.step, this.env.margin, MEASURES[i].floorStep), window: threshold(learnt.window, this.env.margin, MEASURES[i].floorWindow) }
        : { step: threshold(pooled.step, this.env.margin, UNLEARNT_SERVICE_FLOORS.step), window: threshold(pooled.window, this.env.margin, UNLEARNT_SERVICE_FLOORS.window) };
      this.#services.set(name, t);
    }
    return t;
  }
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;
