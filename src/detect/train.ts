// Trains the one-class model from windows of normal traffic: scale, cluster
// (k chosen by silhouette), per-cluster radii, then a threshold calibrated on
// held-out windows. Pure apart from the clock, which opts.now can replace.
import { FEATURE_COUNT, FEATURE_NAMES, FEATURE_SET_VERSION, FEATURES, FeatureTransform } from '../features/feature-set';
import { KCandidate, Model, MODEL_FORMAT, MODEL_VERSION } from './model';
import { fitScaler, scaleInto } from './scale';
import { createScorer, excessDistance } from './score';
import { isScoreable } from './scoreable';
import { DEFAULT_MARGIN, DEFAULT_QUANTILE, EnvelopeStats, learnEnvelope, SourceEnvelope } from './envelope';
import { buildFlagModel, FlagModel } from '../flow/flag-model';

export interface TrainingWindow {
  /** Epoch seconds. */
  start: number;
  end: number;
  packets: number;
  /** Raw feature values in FEATURE_NAMES order. */
  values: ArrayLike<number>;
}

export interface TrainOptions {
  falseAlarmRate?: number;
  margin?: number;
  kMax?: number;
  minPackets?: number;
  windowSeconds: number;
  stepSeconds: number;
  queues: number;
  source: string;
  command: string;
  seed?: number;
  /** Recorded as training.date; fixed in tests so identical input gives identical JSON. */
  now?: Date;
  /** Per-source envelope: quantile learnt and margin over it (defaults 0.999 and 3). */
  sourceQuantile?: number;
  sourceMargin?: number;
  onProgress?: (phase: string, done: number, total: number) => void;
}

export interface TrainSummary {
  windows: number;
  thinWindows: number;
  trainWindows: number;
  heldOutWindows: number;
  k: number;
  threshold: number;
  heldOutFalseAlarmRate: number;
  silhouettes: KCandidate[];
  sources: SourceEnvelope;
  flags: Pick<FlagModel, 'threshold' | 'sessions' | 'symbols'> & { nodes: number };
}

export const DEFAULTS = { falseAlarmRate: 0.001, margin: 2.5, kMax: 8, minPackets: 100, seed: 1 } as const;
export const MIN_TRAIN_WINDOWS = 40;
export const MIN_HELD_OUT_WINDOWS = 10;
/** Every HOLD_OUT_EVERY-th block is held out (3:1). */
export const HOLD_OUT_EVERY = 4;
export const SILHOUETTE_SAMPLE = 1500;
/** k within this much of the best silhouette counts as good as the best. */
export const SILHOUETTE_TOLERANCE = 0.05;
/** Below this best mean silhouette the clusters are not real; one centroid describes the data as well. */
export const MIN_SILHOUETTE = 0.25;
/** k-means needs a few members per cluster for a radius to mean anything. */
export const WINDOWS_PER_CLUSTER = 5;
export const RADIUS_QUANTILE = 0.95;
export const MIN_RADIUS = 1e-3;
/** Clusters smaller than this take the overall radius: a 95th percentile of 1 or 2 distances is noise. */
export const MIN_CLUSTER_MEMBERS = 3;
/** Held-out windows sitting exactly on centroids would give 0, which a model may not have. */
const MIN_THRESHOLD = 1e-6;

interface KMeansOutput {
  clusters: number[];
  centroids: number[][];
}
type KMeansFn = (data: number[][], k: number, options: { initialization: 'kmeans++'; seed: number }) => KMeansOutput;

// ml-kmeans 7 is ESM-only and publishes its types only through "exports",
// which this project's moduleResolution ("node") cannot see, so a static
// import does not compile. Node >= 20.19 loads it with require().
function loadKmeans(): KMeansFn {
  return (require('ml-kmeans') as { kmeans: KMeansFn }).kmeans;
}

/** Linear interpolation between closest ranks (R type 7) on an ascending array. */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) throw new RangeError('quantile of an empty list');
  const h = (n - 1) * Math.min(1, Math.max(0, q));
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, n - 1);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}

function sortedCopy(xs: ArrayLike<number>): Float64Array {
  return Float64Array.from(xs).sort();
}

function distance(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let sq = 0;
  for (let j = 0; j < a.length; j++) {
    const d = a[j] - b[j];
    sq += d * d;
  }
  return Math.sqrt(sq);
}

/** Full pairwise distance matrix of a sample, computed once and reused for every k. */
function pairwise(rows: readonly number[][]): Float64Array {
  const n = rows.length;
  const d = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const v = distance(rows[i], rows[j]);
      d[i * n + j] = v;
      d[j * n + i] = v;
    }
  }
  return d;
}

/**
 * Mean silhouette: per point (b - a) / max(a, b), a = mean distance to its
 * own cluster, b = smallest mean distance to another cluster; 0 for a point
 * alone in its cluster or when there is no other cluster.
 */
export function meanSilhouette(dist: Float64Array, labels: ArrayLike<number>, k: number): number {
  const n = labels.length;
  const size = new Float64Array(k);
  for (let i = 0; i < n; i++) size[labels[i]]++;
  const sum = new Float64Array(k);
  let total = 0;
  for (let i = 0; i < n; i++) {
    sum.fill(0);
    for (let j = 0; j < n; j++) if (j !== i) sum[labels[j]] += dist[i * n + j];
    const own = labels[i];
    if (size[own] < 2) continue;
    const a = sum[own] / (size[own] - 1);
    let b = Infinity;
    for (let c = 0; c < k; c++) if (c !== own && size[c] > 0) b = Math.min(b, sum[c] / size[c]);
    if (b === Infinity) continue;
    const m = Math.max(a, b);
    if (m > 0) total += (b - a) / m;
  }
  return n === 0 ? 0 : total / n;
}

function nearest(row: ArrayLike<number>, centroids: readonly number[][]): { cluster: number; distance: number } {
  let cluster = 0;
  let best = Infinity;
  centroids.forEach((c, i) => {
    const d = distance(row, c);
    if (d < best) {
      best = d;
      cluster = i;
    }
  });
  return { cluster, distance: best };
}

/** Shortest gap-free capture whose split meets both minimums, with one window per queue per step. */
/**
 * Where a window starting `offset` seconds into the capture goes: blocks of
 * two window lengths, every HOLD_OUT_EVERY-th held out, and training
 * windows that would overlap a held-out window's time left out ('guard').
 */
export function splitRole(offset: number, windowSeconds: number, stepSeconds: number): 'train' | 'held-out' | 'guard' {
  const blockSeconds = 2 * Math.ceil(windowSeconds / stepSeconds - 1e-9) * stepSeconds;
  const block = Math.floor(offset / blockSeconds + 1e-9);
  const held = (b: number) => b >= 0 && b % HOLD_OUT_EVERY === HOLD_OUT_EVERY - 1;
  if (held(block)) return 'held-out';
  if (held(block + 1) && offset > (block + 1) * blockSeconds - windowSeconds) return 'guard';
  // The last held-out window starts one step before this block and lasts a window.
  if (held(block - 1) && offset < block * blockSeconds - stepSeconds + windowSeconds) return 'guard';
  return 'train';
}

export function minimumCaptureSeconds(stepSeconds: number, windowSeconds: number, queues: number): number {
  let train = 0;
  let held = 0;
  let steps = 0;
  while (train < MIN_TRAIN_WINDOWS || held < MIN_HELD_OUT_WINDOWS) {
    const role = splitRole(steps * stepSeconds, windowSeconds, stepSeconds);
    if (role === 'held-out') held += queues;
    else if (role === 'train') train += queues;
    steps++;
  }
  return (steps - 1) * stepSeconds + windowSeconds;
}

function iso(epochSeconds: number): string {
  return new Date(epochSeconds * 1000).toISOString();
}

function checkOptions(o: Required<Pick<TrainOptions, 'falseAlarmRate' | 'margin' | 'kMax' | 'minPackets' | 'seed'>> & TrainOptions): void {
  const bad = (what: string, v: number): never => {
    throw new RangeError(`invalid training option: ${what}, got ${v}`);
  };
  if (!(o.falseAlarmRate >= 0 && o.falseAlarmRate < 1)) bad('--false-alarm-rate must be in [0, 1)', o.falseAlarmRate);
  if (!(o.margin > 0)) bad('--margin must be > 0', o.margin);
  if (!(Number.isInteger(o.kMax) && o.kMax >= 1)) bad('--k-max must be an integer >= 1', o.kMax);
  if (!(o.minPackets >= 0)) bad('--min-packets must be >= 0', o.minPackets);
  // The ranges `nfips run` accepts, so every model trained here can be run.
  if (!(Number.isInteger(o.windowSeconds) && o.windowSeconds >= 1 && o.windowSeconds <= 3600)) bad('--window-seconds must be an integer from 1 to 3600', o.windowSeconds);
  if (!(Number.isInteger(o.stepSeconds) && o.stepSeconds >= 1 && o.stepSeconds <= o.windowSeconds)) bad('--step-seconds must be an integer from 1 to --window-seconds', o.stepSeconds);
  if (!(Number.isInteger(o.queues) && o.queues >= 1)) bad('--queues must be an integer >= 1', o.queues);
  if (!Number.isInteger(o.seed)) bad('--seed must be an integer', o.seed);
  if (o.sourceQuantile !== undefined && !(o.sourceQuantile > 0.5 && o.sourceQuantile < 1)) bad('--source-quantile must be between 0.5 and 1', o.sourceQuantile);
  if (o.sourceMargin !== undefined && !(o.sourceMargin >= 1)) bad('--source-margin must be >= 1', o.sourceMargin);
}

/**
 * Trains a model: the window classifier from `windows`, the per-source
 * envelope and the flag-sequence model from `behaviour` (collected over the
 * same traffic).
 */
export function trainModel(windows: readonly TrainingWindow[], behaviour: EnvelopeStats, options: TrainOptions): { model: Model; summary: TrainSummary } {
  // ?? rather than spread: a CLI passes unset flags as explicit undefined.
  const opts = {
    ...options,
    falseAlarmRate: options.falseAlarmRate ?? DEFAULTS.falseAlarmRate,
    margin: options.margin ?? DEFAULTS.margin,
    kMax: options.kMax ?? DEFAULTS.kMax,
    minPackets: options.minPackets ?? DEFAULTS.minPackets,
    seed: options.seed ?? DEFAULTS.seed,
  };
  checkOptions(opts);
  const { falseAlarmRate, margin, kMax, minPackets, seed, windowSeconds, stepSeconds } = opts;
  const progress = opts.onProgress ?? ((): void => undefined);
  const transforms: FeatureTransform[] = FEATURES.map((d) => d.transform);

  windows.forEach((w, i) => {
    if (w.values.length !== FEATURE_COUNT) throw new RangeError(`train: window ${i} has ${w.values.length} feature values, expected ${FEATURE_COUNT}`);
    for (let j = 0; j < FEATURE_COUNT; j++) {
      if (!Number.isFinite(w.values[j])) throw new RangeError(`train: window ${i} (${iso(w.start)}): ${FEATURE_NAMES[j]} is ${w.values[j]}, expected a finite number`);
    }
  });

  // Thinner windows are never scored: too little traffic to judge, and nothing to prevent.
  const inTime = [...windows].sort((a, b) => a.start - b.start);
  const used = inTime.filter((w) => isScoreable(w, { minPackets, windowSeconds }));

  // Windows overlap (1-s step over 60-s windows), so neighbours are near
  // copies: hold out whole blocks two windows long, and leave out of
  // training every window that shares time with a held-out one, so the
  // held-out false-alarm rate is measured on data training never saw.
  const t0 = used.length ? used[0].start : 0;
  const train: TrainingWindow[] = [];
  const heldOut: TrainingWindow[] = [];
  let guarded = 0;
  for (const w of used) {
    const role = splitRole(w.start - t0, windowSeconds, stepSeconds);
    if (role === 'held-out') heldOut.push(w);
    else if (role === 'train') train.push(w);
    else guarded++;
  }
  const blockWindows = 2 * Math.ceil(windowSeconds / stepSeconds - 1e-9);
  if (train.length < MIN_TRAIN_WINDOWS || heldOut.length < MIN_HELD_OUT_WINDOWS) {
    throw new Error(
      `not enough traffic to train: ${windows.length} windows, ${used.length} of them with at least ${minPackets} packets, ` +
        `giving ${train.length} training and ${heldOut.length} held-out windows (${guarded} left out next to held-out ones); at least ${MIN_TRAIN_WINDOWS} training and ` +
        `${MIN_HELD_OUT_WINDOWS} held-out windows are needed (every ${HOLD_OUT_EVERY}th block of ${blockWindows} windows is held out). ` +
        `A longer capture is required: at least ${minimumCaptureSeconds(stepSeconds, windowSeconds, opts.queues)} s ` +
        `of uninterrupted traffic with at least ${minPackets} packets in every window.`,
    );
  }

  progress('scaling', 0, 1);
  const scaler = fitScaler(train.map((w) => w.values), transforms);
  const scratch = new Float64Array(FEATURE_COUNT);
  const data = train.map((w) => Array.from(scaleInto(w.values, scaler, transforms, scratch)));
  progress('scaling', 1, 1);

  const kHi = Math.min(kMax, Math.floor(train.length / WINDOWS_PER_CLUSTER));
  const sampleSize = Math.min(SILHOUETTE_SAMPLE, data.length);
  // Evenly spaced in time: deterministic and covers the whole capture.
  const sampleIdx = Array.from({ length: sampleSize }, (_, i) => Math.floor((i * data.length) / sampleSize));
  const candidates: KCandidate[] = [];
  const fits = new Map<number, number[][]>();
  if (kHi >= 2) {
    const kmeans = loadKmeans();
    const dist = pairwise(sampleIdx.map((i) => data[i]));
    for (let k = 2; k <= kHi; k++) {
      progress('clustering', k - 2, kHi - 1);
      const fit = kmeans(data, k, { initialization: 'kmeans++', seed });
      const labels = Int32Array.from(sampleIdx, (i) => fit.clusters[i]);
      candidates.push({ k, silhouette: meanSilhouette(dist, labels, k) });
      fits.set(k, fit.centroids);
    }
    progress('clustering', kHi - 1, kHi - 1);
  }
  // The smallest k within SILHOUETTE_TOLERANCE of the best: more clusters
  // than the data needs give tight radii and false alarms on new normal days.
  const top = candidates.reduce((m, c) => Math.max(m, c.silhouette), -Infinity);
  const best = candidates.find((c) => c.silhouette >= top - SILHOUETTE_TOLERANCE) ?? null;
  let centroids: number[][];
  if (best !== null && top >= MIN_SILHOUETTE) {
    centroids = fits.get(best.k) ?? [];
  } else {
    const mean = new Array<number>(FEATURE_COUNT).fill(0);
    for (const row of data) for (let j = 0; j < FEATURE_COUNT; j++) mean[j] += row[j] / data.length;
    centroids = [mean];
  }

  // Members by nearest centroid, the rule scoring uses; a centroid nobody is
  // nearest to would only ever catch outliers with a made-up radius.
  let assigned = data.map((row) => nearest(row, centroids));
  const populated = centroids.map((_, c) => assigned.some((a) => a.cluster === c));
  if (populated.includes(false)) {
    centroids = centroids.filter((_, c) => populated[c]);
    assigned = data.map((row) => nearest(row, centroids));
  }
  // Radii in the metric scoring uses: the excess over the centre.
  const excess = assigned.map((a, i) => excessDistance(data[i], centroids[a.cluster]));
  const overall = Math.max(MIN_RADIUS, quantile(sortedCopy(excess), RADIUS_QUANTILE));
  const radii = centroids.map((_, c) => {
    const members = excess.filter((_, i) => assigned[i].cluster === c);
    if (members.length < MIN_CLUSTER_MEMBERS) return overall;
    return Math.max(MIN_RADIUS, quantile(sortedCopy(members), RADIUS_QUANTILE));
  });

  progress('calibrating', 0, 1);
  const features = [...FEATURE_NAMES];
  const scorer = createScorer({ features, transforms, scaler, centroids, radii, threshold: Infinity });
  const heldOutScores = sortedCopy(heldOut.map((w) => scorer.score(w.values).score));
  // threshold = margin × Q(1 − falseAlarmRate) of held-out scores, Q linear-interpolated.
  const threshold = Math.max(MIN_THRESHOLD, margin * quantile(heldOutScores, 1 - falseAlarmRate));
  const heldOutFalseAlarmRate = heldOutScores.filter((s) => s > threshold).length / heldOutScores.length;
  progress('calibrating', 1, 1);

  if (behaviour.empty) {
    throw new Error('no per-source behaviour in the training data (it was recorded by an older nfips, which kept windows only); record the normal traffic again with this nfips');
  }
  const sources = learnEnvelope(behaviour, opts.sourceQuantile ?? DEFAULT_QUANTILE, opts.sourceMargin ?? DEFAULT_MARGIN);
  const flags = buildFlagModel(behaviour.sequences, behaviour.sessions);

  const from = inTime[0].start;
  const to = inTime.reduce((m, w) => Math.max(m, w.end), -Infinity);
  const method =
    kHi >= 2
      ? `smallest k within ${SILHOUETTE_TOLERANCE} of the max mean silhouette over k=2..${kHi} on ≤${SILHOUETTE_SAMPLE} windows; k=1 when the max < ${MIN_SILHOUETTE}`
      : `k=1: ${train.length} training windows are too few for k ≥ 2 (${WINDOWS_PER_CLUSTER} per cluster needed)`;
  const model: Model = {
    format: MODEL_FORMAT,
    version: MODEL_VERSION,
    featureSetVersion: FEATURE_SET_VERSION,
    features,
    transforms,
    scaler,
    k: centroids.length,
    centroids,
    radii,
    threshold,
    falseAlarmRate,
    minPackets,
    windowSeconds,
    stepSeconds,
    queues: opts.queues,
    training: {
      windows: windows.length,
      thinWindows: windows.length - used.length,
      trainWindows: train.length,
      heldOutWindows: heldOut.length,
      heldOutFalseAlarmRate,
      margin,
      from: iso(from),
      to: iso(to),
      spanSeconds: to - from,
      source: opts.source,
      command: opts.command,
      date: (opts.now ?? new Date()).toISOString(),
      seed,
      kSelection: { method, candidates },
    },
    sources,
    flags,
  };
  return {
    model,
    summary: {
      windows: windows.length,
      thinWindows: windows.length - used.length,
      trainWindows: train.length,
      heldOutWindows: heldOut.length,
      k: model.k,
      threshold,
      heldOutFalseAlarmRate,
      silhouettes: candidates,
      sources,
      flags: { threshold: flags.threshold, sessions: flags.sessions, symbols: flags.symbols, nodes: flags.nodes.length },
    },
  };
}
