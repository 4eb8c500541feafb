import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { quietBehaviour } from '../helpers/behaviour';
import { FEATURE_COUNT, FEATURE_NAMES, FEATURES, featureIndex } from '../../src/features/feature-set';
import { Model, validateModel } from '../../src/detect/model';
import { fitScaler, scaleInto, transformValue } from '../../src/detect/scale';
import { createScorer } from '../../src/detect/score';
import { meanSilhouette, MIN_SILHOUETTE, quantile, SILHOUETTE_TOLERANCE, trainModel, TrainingWindow, TrainOptions } from '../../src/detect/train';
import { mulberry32 } from '../../lab/support/mulberry32';

const WINDOW_S = 4;
const STEP_S = 1;
const T0 = 1_714_557_600; // 2024-05-01T10:00:00Z
const NOW = new Date('2024-05-02T08:00:00.000Z');


function gauss(r: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}

const LOG = FEATURES.map((d) => d.transform === 'log1p');

/** Transformed-space value back to a raw feature value. */
function raw(j: number, t: number): number {
  return LOG[j] ? Math.expm1(Math.max(0, t)) : t;
}

/** Centre (transformed space) and within-blob spread of feature j. */
function featureRange(j: number): { lo: number; hi: number; sd: number } {
  if (LOG[j]) return { lo: 1, hi: 8, sd: 0.08 };
  if (FEATURE_NAMES[j] === 'mean_ip_len') return { lo: 100, hi: 1400, sd: 15 };
  if (FEATURE_NAMES[j] === 'ip_len_std') return { lo: 50, hi: 600, sd: 10 };
  return { lo: 0.05, hi: 0.9, sd: 0.01 };
}

function blobCentres(n: number, r: () => number): number[][] {
  return Array.from({ length: n }, () =>
    Array.from({ length: FEATURE_COUNT }, (_, j) => {
      const { lo, hi } = featureRange(j);
      return lo + (hi - lo) * r();
    }),
  );
}

function blobSample(centre: number[], r: () => number): number[] {
  return centre.map((c, j) => raw(j, c + featureRange(j).sd * gauss(r)));
}

function windowsOf(rows: number[][], packets = 1000, first = 0): TrainingWindow[] {
  return rows.map((values, i) => ({ start: T0 + (first + i) * STEP_S, end: T0 + (first + i) * STEP_S + WINDOW_S, packets, values }));
}

const BASE: TrainOptions = { windowSeconds: WINDOW_S, stepSeconds: STEP_S, queues: 1, source: 'synthetic', command: 'unit test', now: NOW };

// Three well separated blobs, windows drawn independently of time.
const blobRng = mulberry32(7);
const CENTRES = blobCentres(3, blobRng);
const BLOB_ROWS = Array.from({ length: 900 }, (_, i) => blobSample(CENTRES[i % 3], blobRng));
const BLOB_WINDOWS = windowsOf(BLOB_ROWS);
const blobs = trainModel(BLOB_WINDOWS, quietBehaviour(), { ...BASE, seed: 3 });

/** Windows in every 4th block of two window lengths. */
function heldOutOf(ws: TrainingWindow[]): TrainingWindow[] {
  const t0 = Math.min(...ws.map((w) => w.start));
  return ws.filter((w) => Math.floor((w.start - t0) / (2 * WINDOW_S)) % 4 === 3);
}
/** Training windows: neither held out nor overlapping a held-out window's time. */
function trainOf(ws: TrainingWindow[]): TrainingWindow[] {
  const t0 = Math.min(...ws.map((w) => w.start));
  const held = heldOutOf(ws);
  return ws.filter((w) => !held.includes(w) && !held.some((h) => w.start < h.end && h.start < w.end) && w.start - t0 >= 0);
}

describe('trainModel on three blobs', () => {
  it('finds k = 3 by silhouette and records every candidate', () => {
    const { model, summary } = blobs;
    assert.equal(model.k, 3);
    assert.equal(summary.k, 3);
    assert.deepEqual(model.training.kSelection.candidates.map((c) => c.k), [2, 3, 4, 5, 6, 7, 8]);
    const best = summary.silhouettes.reduce((a, b) => (b.silhouette > a.silhouette ? b : a));
    assert.equal(best.k, 3);
    assert.ok(best.silhouette > 0.8, `silhouette ${best.silhouette}`);
  });

  it('keeps the smallest k whose silhouette comes within the tolerance of the best', () => {
    const { model } = blobs;
    const candidates = model.training.kSelection.candidates;
    const top = Math.max(...candidates.map((c) => c.silhouette));
    const kept = candidates.find((c) => c.k === model.k);
    assert.ok(kept && kept.silhouette >= top - SILHOUETTE_TOLERANCE, `k=${model.k} kept: ${JSON.stringify(candidates)}`);
    assert.ok(candidates.filter((c) => c.k < model.k).every((c) => c.silhouette < top - SILHOUETTE_TOLERANCE), 'no smaller k was as good');
    assert.ok(top >= MIN_SILHOUETTE);
    // The text for the operator names the range of k actually tried.
    assert.match(model.training.kSelection.method, new RegExp(`k=2\\.\\.${candidates.at(-1)?.k} `));
  });

  it('produces a model the file format accepts, with the training facts', () => {
    const { model, summary } = blobs;
    assert.doesNotThrow(() => validateModel(JSON.parse(JSON.stringify(model)), 'trained.json'));
    assert.equal(summary.windows, 900);
    // Blocks of 8 windows; blocks 3, 7, ... 111 held out = 28 × 8. Training loses the 3 windows
    // on each side of a held-out block (they overlap held-out time): 900 - 224 - 168.
    assert.equal(summary.heldOutWindows, 224);
    assert.equal(summary.trainWindows, 508);
    assert.equal(trainOf(BLOB_WINDOWS).length, 508, 'the guard is exactly the overlap');
    assert.equal(model.training.from, '2024-05-01T10:00:00.000Z');
    assert.equal(model.training.to, new Date((T0 + 899 + WINDOW_S) * 1000).toISOString());
    assert.equal(model.training.spanSeconds, 899 + WINDOW_S);
    assert.equal(model.training.date, NOW.toISOString());
    assert.equal(model.falseAlarmRate, 0.001);
    assert.equal(model.training.margin, 2.5);
    assert.equal(model.minPackets, 100);
  });

  it('scores fresh samples from the blobs below the threshold', () => {
    const scorer = createScorer(blobs.model);
    const r = mulberry32(99);
    let anomalous = 0;
    for (let i = 0; i < 600; i++) if (scorer.score(blobSample(CENTRES[i % 3], r)).anomalous) anomalous++;
    assert.ok(anomalous <= 3, `${anomalous} of 600 normal windows flagged`);
    assert.ok(blobs.summary.heldOutFalseAlarmRate <= 0.005, `held-out FAR ${blobs.summary.heldOutFalseAlarmRate}`);
  });

  it('flags a far-out window and names the pushed feature first', () => {
    const scorer = createScorer(blobs.model);
    const pps = featureIndex('packets_per_s');
    const normal = CENTRES[1].map((c, j) => raw(j, c));
    const calm = scorer.score(normal);
    assert.ok(!calm.anomalous && calm.score < blobs.model.threshold);
    const flood = [...normal];
    flood[pps] *= 1000;
    const r = scorer.score(flood);
    assert.ok(r.anomalous, `score ${r.score} threshold ${blobs.model.threshold}`);
    assert.equal(r.cluster, calm.cluster);
    assert.equal(r.deviations.length, 5);
    assert.equal(r.deviations[0].feature, 'packets_per_s');
    assert.equal(r.deviations[0].value, flood[pps]);
    assert.ok(r.deviations[0].z > 2, `z ${r.deviations[0].z}`);
    for (let i = 1; i < 5; i++) assert.ok(Math.abs(r.deviations[i - 1].z) >= Math.abs(r.deviations[i].z));
    // z: training std units between the window and its cluster centre.
    const { mean, std } = blobs.model.scaler;
    const expectedZ = (Math.log1p(flood[pps]) - mean[pps]) / std[pps] - blobs.model.centroids[r.cluster][pps];
    assert.ok(Math.abs(r.deviations[0].z - expectedZ) < 1e-9, `${r.deviations[0].z} vs ${expectedZ}`);
  });
});

describe('threshold calibration', () => {
  it('quantile interpolates linearly between closest ranks', () => {
    assert.equal(quantile([1, 2, 3, 4, 5], 0.5), 3);
    assert.equal(quantile([1, 2, 3, 4, 5], 0.999), 4 + 0.996);
    assert.equal(quantile([10, 20], 0.25), 12.5);
    assert.equal(quantile([7], 0.9), 7);
    assert.equal(quantile([1, 2, 3], 1), 3);
  });

  it('threshold = margin × the (1 − falseAlarmRate) quantile of held-out scores', () => {
    const { model, summary } = trainModel(BLOB_WINDOWS, quietBehaviour(), { ...BASE, seed: 3, falseAlarmRate: 0.2, margin: 1 });
    const scorer = createScorer(model);
    const held = heldOutOf(BLOB_WINDOWS);
    assert.equal(summary.heldOutWindows, held.length);
    const scores = held.map((w) => scorer.score(w.values).score).sort((a, b) => a - b);
    const h = (scores.length - 1) * 0.8;
    const byHand = scores[Math.floor(h)] + (h - Math.floor(h)) * (scores[Math.floor(h) + 1] - scores[Math.floor(h)]);
    assert.ok(Math.abs(model.threshold - byHand) < 1e-12, `${model.threshold} vs ${byHand}`);
    const far = scores.filter((s) => s > model.threshold).length / scores.length;
    assert.equal(summary.heldOutFalseAlarmRate, far);
    // Scores strictly above an interpolated quantile: within one window of the rate.
    assert.ok(Math.abs(far - 0.2) <= 1 / scores.length, `held-out FAR ${far}`);

    const wide = trainModel(BLOB_WINDOWS, quietBehaviour(), { ...BASE, seed: 3, falseAlarmRate: 0.2, margin: 2.5 });
    assert.ok(Math.abs(wide.model.threshold - 2.5 * byHand) < 1e-12);
  });

  it('radius of a cluster is the 95th percentile of its members\' distances', () => {
    const { model } = blobs;
    const scale = new Float64Array(FEATURE_COUNT);
    const train = trainOf(BLOB_WINDOWS);
    const byCluster: number[][] = model.centroids.map(() => []);
    for (const w of train) {
      const z = scaleInto(w.values, model.scaler, model.transforms, scale);
      const d = model.centroids.map((c) => Math.hypot(...c.map((x, j) => z[j] - x)));
      const c = d.indexOf(Math.min(...d));
      // Nearest by full distance; the radius is in the scoring metric, the excess over the centre.
      byCluster[c].push(Math.hypot(...model.centroids[c].map((x, j) => Math.max(0, z[j] - x))));
    }
    byCluster.forEach((ds, c) => {
      ds.sort((a, b) => a - b);
      assert.ok(Math.abs(model.radii[c] - quantile(ds, 0.95)) < 1e-9, `cluster ${c}`);
    });
  });
});

describe('trainModel data handling', () => {
  it('throws with the counts when the capture is too short', () => {
    const r = mulberry32(5);
    const few = windowsOf(Array.from({ length: 30 }, () => blobSample(CENTRES[0], r)));
    assert.throws(() => trainModel(few, quietBehaviour(), BASE), (e: unknown) => {
      assert.ok(e instanceof Error);
      assert.match(e.message, /30 windows, 30 of them with at least 100 packets/);
      assert.match(e.message, /giving 21 training and 6 held-out windows \(3 left out next to held-out ones\)/);
      assert.match(e.message, /at least 40 training and 10 held-out windows are needed/);
      // Over blocks of 8 with 3-window guards: the 40th training window starts at 67 s and lasts 4 s.
      assert.match(e.message, /longer capture is required: at least 71 s of uninterrupted traffic with at least 100 packets in every window/);
      return true;
    });
  });

  it('counts thin windows as too few', () => {
    const r = mulberry32(6);
    const thin = windowsOf(Array.from({ length: 400 }, () => blobSample(CENTRES[0], r)), 99);
    assert.throws(() => trainModel(thin, quietBehaviour(), BASE), /400 windows, 0 of them with at least 100 packets/);
  });

  it('ignores windows below minPackets', () => {
    const r = mulberry32(8);
    // Interleaved wild thin windows; the used ones keep their times, so the split is unchanged.
    const mixed: TrainingWindow[] = [];
    for (const w of BLOB_WINDOWS) {
      mixed.push(w);
      if (w.start % 3 === 0) mixed.push({ ...w, packets: 50, values: blobSample(CENTRES[0], r).map((v) => v * 1e4 + 7) });
    }
    const { model, summary } = trainModel(mixed, quietBehaviour(), { ...BASE, seed: 3 });
    assert.equal(summary.thinWindows, 300);
    assert.equal(summary.windows, 1200);
    assert.equal(summary.trainWindows + summary.heldOutWindows, 732);
    const strip = (m: Model): unknown => ({ ...m, training: { ...m.training, windows: 0, thinWindows: 0 } });
    assert.deepEqual(strip(model), strip(blobs.model));
  });

  it('takes explicit undefined options as defaults', () => {
    const { model } = trainModel(BLOB_WINDOWS, quietBehaviour(), { ...BASE, seed: 3, falseAlarmRate: undefined, margin: undefined, kMax: undefined, minPackets: undefined });
    assert.equal(JSON.stringify(model), JSON.stringify(blobs.model));
  });

  it('honours a custom minPackets', () => {
    const ws = BLOB_WINDOWS.map((w, i) => ({ ...w, packets: i % 2 ? 10 : 5 }));
    const { summary } = trainModel(ws, quietBehaviour(), { ...BASE, minPackets: 8 });
    assert.equal(summary.thinWindows, 450);
  });

  it('is deterministic for a seed', () => {
    const again = trainModel([...BLOB_WINDOWS].reverse(), quietBehaviour(), { ...BASE, seed: 3 });
    assert.equal(JSON.stringify(again.model), JSON.stringify(blobs.model));
  });

  it('refuses non-finite feature values', () => {
    const ws = BLOB_WINDOWS.map((w) => ({ ...w }));
    ws[10] = { ...ws[10], values: Array.from(ws[10].values, (v, j) => (j === 4 ? NaN : v)) };
    assert.throws(() => trainModel(ws, quietBehaviour(), BASE), /window 10 .*mean_ip_len is NaN/);
  });

  it('uses k = 1 (the mean) when the data has no cluster structure', () => {
    const r = mulberry32(11);
    const centre = blobCentres(1, r)[0];
    const { model, summary } = trainModel(windowsOf(Array.from({ length: 500 }, () => blobSample(centre, r))), quietBehaviour(), { ...BASE, kMax: 4 });
    assert.equal(model.k, 1);
    assert.deepEqual(summary.silhouettes.map((c) => c.k), [2, 3, 4]);
    assert.ok(summary.silhouettes.every((c) => c.silhouette < 0.25));
    assert.ok(model.centroids[0].every((x) => Math.abs(x) < 1e-9), 'the mean of standardised training data is 0');
  });
});

describe('clamping at the training floor', () => {
  // Day/night traffic: volume features follow one load level, the mix stays the same.
  const VOLUME = new Set(['packets', 'connections', 'syn_connections', 'new_source_packets', 'new_tcp_sessions', 'sources', 'dst_ports',
    'packets_per_s', 'bytes_per_s', 'syn_per_s', 'new_sessions_per_s', 'rst_per_s', 'icmp_echo_per_s', 'udp_per_s']);
  const r = mulberry32(21);
  const offset = Array.from({ length: FEATURE_COUNT }, (_, j) => (VOLUME.has(FEATURE_NAMES[j]) ? r() * 2 - 1 : 0));
  const mix = blobCentres(1, r)[0].map((c, j) => (LOG[j] && !VOLUME.has(FEATURE_NAMES[j]) ? 0.5 + c / 4 : c));
  function loadWindow(level: number, rr: () => number): number[] {
    return mix.map((c, j) => {
      if (VOLUME.has(FEATURE_NAMES[j])) return raw(j, level + offset[j] + 0.05 * gauss(rr));
      const { sd } = featureRange(j);
      return raw(j, c + 3 * sd * gauss(rr));
    });
  }
  const rows = Array.from({ length: 800 }, () => loadWindow(3 + 3 * r(), r));
  const { model } = trainModel(windowsOf(rows), quietBehaviour(), { ...BASE, seed: 2 });
  const scorer = createScorer(model);
  const unclamped = createScorer({ ...model, scaler: { ...model.scaler, floor: model.scaler.floor.map(() => -Infinity) } });

  it('floor is the per-feature minimum of the scaled training values', () => {
    const ws = windowsOf(rows);
    const keep = new Set(trainOf(ws));
    const s = fitScaler(rows.filter((_, i) => keep.has(ws[i])), model.transforms);
    assert.deepEqual(s, model.scaler);
    const out = new Float64Array(FEATURE_COUNT);
    scaleInto(new Array<number>(FEATURE_COUNT).fill(0), model.scaler, model.transforms, out);
    assert.deepEqual(Array.from(out), model.scaler.floor);
  });

  it('less traffic than training ever saw, same mix, is not anomalous', () => {
    const rr = mulberry32(22);
    for (let i = 0; i < 50; i++) {
      const quiet = loadWindow(0.3, rr);
      const s = scorer.score(quiet).score;
      assert.ok(s <= model.threshold, `quiet window ${i}: score ${s}, threshold ${model.threshold}`);
      assert.ok(unclamped.score(quiet).score <= model.threshold, 'only excess is scored, clamped or not');
    }
  });

  it('an all-zero (idle) vector has no excess: score 0', () => {
    const zero = new Array<number>(FEATURE_COUNT).fill(0);
    const r0 = scorer.score(zero);
    assert.equal(r0.score, 0);
    assert.equal(r0.anomalous, false);
  });

  it('more load than training ever saw, same mix, is anomalous, led by a volume feature', () => {
    const rr = mulberry32(23);
    const r1 = scorer.score(loadWindow(12, rr));
    assert.ok(r1.anomalous, `score ${r1.score}, threshold ${model.threshold}`);
    assert.ok(VOLUME.has(r1.deviations[0].feature), r1.deviations[0].feature);
    assert.ok(r1.deviations[0].z > 0);
  });
});

describe('fitScaler', () => {
  const transforms = FEATURES.map((d) => d.transform);
  const pk = featureIndex('packets');
  const rst = featureIndex('rst_per_s');
  const frag = featureIndex('fragment_share');
  const len = featureIndex('mean_ip_len');
  const udp = featureIndex('udp_share');
  const rows = [0.1, 0.3, 0.5, 0.7].map((share, i) => {
    const v = new Array<number>(FEATURE_COUNT).fill(0);
    v[pk] = 1000;
    v[len] = 600 + i * 1e-3;
    v[udp] = share;
    return v;
  });
  const s = fitScaler(rows, transforms);

  it('uses the sample std when the feature varies', () => {
    assert.ok(Math.abs(s.mean[udp] - 0.4) < 1e-12);
    assert.ok(Math.abs(s.std[udp] - Math.sqrt(0.2 / 3)) < 1e-12);
    assert.ok(Math.abs(s.floor[udp] - (0.1 - 0.4) / Math.sqrt(0.2 / 3)) < 1e-12);
  });

  it('floors the std of features that never varied: max(std, 5% of |mean|, 0.1 log1p / 0.01 linear)', () => {
    assert.equal(s.std[rst], 0.1);
    assert.equal(s.std[frag], 0.01);
    assert.ok(Math.abs(s.std[pk] - 0.05 * Math.log1p(1000)) < 1e-12);
    assert.ok(Math.abs(s.std[len] - 0.05 * 600.0015) < 1e-9);
    // One RST per 60-s window is then a modest deviation, not a hundredfold one.
    const out = new Float64Array(FEATURE_COUNT);
    scaleInto(rows[0].map((v, j) => (j === rst ? 1 / 60 : v)), s, transforms, out);
    assert.ok(out[rst] > 0.1 && out[rst] < 0.2, `z ${out[rst]}`);
  });

  it('treats NaN as 0 and negative counts as 0 under log1p', () => {
    assert.equal(transformValue(NaN, 'log1p'), 0);
    assert.equal(transformValue(NaN, 'linear'), 0);
    assert.equal(transformValue(-3, 'log1p'), 0);
    assert.equal(transformValue(-3, 'linear'), -3);
    assert.equal(transformValue(Math.E - 1, 'log1p'), 1);
  });
});

describe('meanSilhouette', () => {
  it('matches a hand computation', () => {
    // Points on a line: 0, 1 in cluster 0; 10 in cluster 1.
    const pts = [0, 1, 10];
    const dist = new Float64Array(9);
    for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) dist[i * 3 + j] = Math.abs(pts[i] - pts[j]);
    // s0 = (10 − 1)/10, s1 = (9 − 1)/9, s2 = 0 (alone)
    assert.ok(Math.abs(meanSilhouette(dist, [0, 0, 1], 2) - (0.9 + 8 / 9) / 3) < 1e-12);
  });
});
