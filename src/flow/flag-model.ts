// TCP flag sequences per session, scored by a variable-order Markov model
// (a probabilistic suffix tree, after kohmar-firewall's Detector-1). Each
// packet of a session becomes one symbol: its flag class and its direction
// (from the side that opened the session, or toward it). The model gives
// P(symbol | the longest suffix of the last ORDER symbols seen often enough
// in normal traffic); a symbol whose surprisal -ln P exceeds the model's
// threshold marks the session as improbable (a NULL, FIN or XMAS probe, data
// before the handshake, ...).
//
// The tree is compiled into a dense table over every full context, so the
// queue thread scores a packet with one typed-array read: contexts are the
// last ORDER symbols packed in base CTX_BASE, START padding the beginning.
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN } from '../packet/decoded';

/** Flag classes; the symbol is class + CLASSES * direction. */
export const SYM_SYN = 0;
export const SYM_SYNACK = 1;
export const SYM_ACK = 2;
export const SYM_DATA = 3;
export const SYM_FIN = 4;
export const SYM_RST = 5;
export const SYM_NULL = 6;
/** Any other combination without ACK: FIN alone, XMAS, SYN+FIN, URG or PSH alone... */
export const SYM_ODD = 7;
export const CLASSES = 8;
export const SYMBOLS = CLASSES * 2;
const CLASS_NAMES = ['S', 'SA', 'A', 'D', 'F', 'R', 'NULL', 'ODD'] as const;
/** Context padding before the first symbol. */
export const START = SYMBOLS;
export const CTX_BASE = SYMBOLS + 1;
/** Symbols of context. */
export const ORDER = 3;
export const CONTEXTS = CTX_BASE ** ORDER;
/** Packets of a session that are scored (the opening is where probes and odd handshakes show); all are kept for the alert, 4 bits each in a uint32. */
export const SCORED_SYMBOLS = 8;
export const KEPT_SYMBOLS = 8;
/** A context with fewer observations than this backs off to its shorter suffix. */
export const MIN_CONTEXT_COUNT = 20;
/** Surprisal below this never flags, whatever the training data (about p = 1e-4). */
export const MIN_THRESHOLD = 9.2;
/** Normal symbols allowed above the threshold, as a share of all normal symbols. */
export const THRESHOLD_RATE = 1e-5;

/** The flag class of a TCP packet (ECE/CWR ignored: ECN is not a probe). */
export function flagClass(flags: number, payloadLen: number): number {
  const f = flags & 0x3f;
  if (f & TCP_RST) return SYM_RST;
  if (f & TCP_SYN) {
    if (f & TCP_FIN) return SYM_ODD;
    return f & TCP_ACK ? SYM_SYNACK : SYM_SYN;
  }
  if (f & TCP_ACK) {
    if (f & TCP_FIN) return SYM_FIN;
    return payloadLen > 0 || f & TCP_PSH ? SYM_DATA : SYM_ACK;
  }
  return f === 0 ? SYM_NULL : SYM_ODD;
}

/** Symbol of a packet: its class, plus CLASSES when it went toward the side that opened the session. */
export function symbolOf(flags: number, payloadLen: number, fromOpener: boolean): number {
  return flagClass(flags, payloadLen) + (fromOpener ? 0 : CLASSES);
}

/** The context every session starts in. */
export const START_CONTEXT = (START * CTX_BASE + START) * CTX_BASE + START;

/** The context after `sym` followed context `ctx`. */
export function nextContext(ctx: number, sym: number): number {
  return (ctx * CTX_BASE + sym) % CONTEXTS;
}

export function symbolName(sym: number): string {
  return `${sym < CLASSES ? 'o' : 'r'}:${CLASS_NAMES[sym % CLASSES]}`;
}

/**
 * "o:S r:R" for the first n symbols packed 4 bits each (o: from the side
 * that opened the session, r: the reply direction).
 */
export function formatSequence(packed: number, n: number): string {
  const out: string[] = [];
  for (let k = 0; k < Math.min(n, KEPT_SYMBOLS); k++) out.push(symbolName((packed >>> (4 * k)) & 0xf));
  return out.join(' ');
}

/** One node of the tree as stored in a model: a context suffix (oldest first) and its symbol counts. */
export interface FlagNode {
  ctx: number[];
  counts: number[];
}

export interface FlagModel {
  order: number;
  scoredSymbols: number;
  /** Surprisal (nats) above which a symbol marks its session as improbable. */
  threshold: number;
  /** Symbols learnt from. */
  symbols: number;
  sessions: number;
  nodes: FlagNode[];
}

/**
 * Builds the tree from counts of (full context, symbol), as the queue
 * threads collect them: every suffix's counts are sums of these. Nodes
 * seen fewer than MIN_CONTEXT_COUNT times are left out (their contexts
 * back off to a shorter suffix).
 */
export function buildFlagModel(counts: ReadonlyMap<number, number>, sessions: number): FlagModel {
  const bySuffix = new Map<string, { ctx: number[]; counts: number[] }>();
  let symbols = 0;
  for (const [index, n] of counts) {
    if (!(n > 0)) continue;
    const ctx = Math.floor(index / SYMBOLS);
    const sym = index % SYMBOLS;
    // The START padding is part of the context (it marks the session's
    // beginning), so suffixes keep it: [START, START, START] for the first symbol.
    const padded = paddedContext(ctx);
    symbols += n;
    for (let len = 0; len <= ORDER; len++) {
      const suffix = padded.slice(ORDER - len);
      const key = suffix.join(',');
      let node = bySuffix.get(key);
      if (!node) bySuffix.set(key, (node = { ctx: suffix, counts: new Array<number>(SYMBOLS).fill(0) }));
      node.counts[sym] += n;
    }
  }
  const nodes = [...bySuffix.values()]
    .filter((n) => n.ctx.length === 0 || sum(n.counts) >= MIN_CONTEXT_COUNT)
    .sort((a, b) => a.ctx.length - b.ctx.length || a.ctx.join(',').localeCompare(b.ctx.join(',')));
  const model: FlagModel = { order: ORDER, scoredSymbols: SCORED_SYMBOLS, threshold: MIN_THRESHOLD, symbols, sessions, nodes };
  model.threshold = calibrateThreshold(model, counts);
  return model;
}

/**
 * The threshold: the surprisal that at most THRESHOLD_RATE of the normal
 * symbols exceed under the model, and never below MIN_THRESHOLD.
 */
function calibrateThreshold(m: FlagModel, counts: ReadonlyMap<number, number>): number {
  const table = compileFlagModel({ ...m, threshold: MIN_THRESHOLD }).surprisal;
  const seen: { s: number; n: number }[] = [];
  let total = 0;
  for (const [index, n] of counts) {
    if (!(n > 0)) continue;
    seen.push({ s: table[index], n });
    total += n;
  }
  seen.sort((a, b) => b.s - a.s);
  let allowed = total * THRESHOLD_RATE;
  let t = MIN_THRESHOLD;
  for (const x of seen) {
    if (x.n > allowed) {
      t = Math.max(t, x.s);
      break;
    }
    allowed -= x.n;
  }
  return Math.round(t * 1000) / 1000;
}

function paddedContext(ctx: number): number[] {
  const out: number[] = [];
  for (let k = ORDER - 1; k >= 0; k--) out.push(Math.floor(ctx / CTX_BASE ** k) % CTX_BASE);
  return out;
}

function sum(xs: readonly number[]): number {
  let s = 0;
  for (const x of xs) s += x;
  return s;
}

export interface CompiledFlagModel {
  /** -ln P(symbol | context), at context * SYMBOLS + symbol. */
  surprisal: Float32Array;
  threshold: number;
  scoredSymbols: number;
}

/**
 * Dense surprisal table. Each context's distribution interpolates its own
 * counts with its suffix's distribution (Witten-Bell: the suffix weighs as
 * much as the number of distinct symbols the context was seen followed by),
 * from the empty context (add-one smoothed) up. A transition never seen
 * after a context that was always followed by the same thing gets about
 * 1 / n of what the shorter context says; after a context seen followed by
 * many different things, several times more.
 */
export function compileFlagModel(m: FlagModel): CompiledFlagModel {
  const nodes = new Map(m.nodes.map((n) => [n.ctx.join(','), n.counts]));
  const prob = new Map<string, Float64Array>();
  const root = new Float64Array(SYMBOLS);
  const rootCounts = nodes.get('') ?? new Array<number>(SYMBOLS).fill(0);
  const rootTotal = sum(rootCounts);
  for (let s = 0; s < SYMBOLS; s++) root[s] = (rootCounts[s] + 1) / (rootTotal + SYMBOLS);
  prob.set('', root);
  const distribution = (ctx: number[]): Float64Array => {
    const key = ctx.join(',');
    const cached = prob.get(key);
    if (cached) return cached;
    const lower = distribution(ctx.slice(1));
    const counts = nodes.get(key);
    if (!counts) {
      prob.set(key, lower);
      return lower;
    }
    const n = sum(counts);
    const distinct = counts.filter((c) => c > 0).length;
    const p = new Float64Array(SYMBOLS);
    for (let s = 0; s < SYMBOLS; s++) p[s] = (counts[s] + distinct * lower[s]) / (n + distinct);
    prob.set(key, p);
    return p;
  };
  const surprisal = new Float32Array(CONTEXTS * SYMBOLS);
  for (let c = 0; c < CONTEXTS; c++) {
    const p = distribution(paddedContext(c));
    for (let s = 0; s < SYMBOLS; s++) surprisal[c * SYMBOLS + s] = -Math.log(p[s]);
  }
  return { surprisal, threshold: m.threshold, scoredSymbols: m.scoredSymbols };
}

/** A compiled model in shared memory: compiled once on the main thread, read by every queue thread. */
export interface SharedFlagModel {
  surprisal: SharedArrayBuffer;
  threshold: number;
  scoredSymbols: number;
}

export function shareFlagModel(m: FlagModel): SharedFlagModel {
  const c = compileFlagModel(m);
  const surprisal = new SharedArrayBuffer(c.surprisal.byteLength);
  new Float32Array(surprisal).set(c.surprisal);
  return { surprisal, threshold: c.threshold, scoredSymbols: c.scoredSymbols };
}

export function openFlagModel(s: SharedFlagModel): CompiledFlagModel {
  return { surprisal: new Float32Array(s.surprisal), threshold: s.threshold, scoredSymbols: s.scoredSymbols };
}

/** The JSON schema of the model file's `flags` section. */
export const FLAG_MODEL_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['order', 'scoredSymbols', 'threshold', 'symbols', 'sessions', 'nodes'],
  properties: {
    order: { const: ORDER },
    scoredSymbols: { const: SCORED_SYMBOLS },
    threshold: { type: 'number', minimum: MIN_THRESHOLD },
    symbols: { type: 'integer', minimum: 0 },
    sessions: { type: 'integer', minimum: 0 },
    nodes: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['ctx', 'counts'],
        properties: {
          ctx: { type: 'array', maxItems: ORDER, items: { type: 'integer', minimum: 0, maximum: START } },
          counts: { type: 'array', minItems: SYMBOLS, maxItems: SYMBOLS, items: { type: 'integer', minimum: 0 } },
        },
      },
    },
  },
} as const;
