// Scores one window feature vector against a model. Runs for every queue
// every second, so all scratch is allocated once in createScorer.
import type { Model } from './model';
import { scaleInto } from './scale';

export interface Deviation {
  feature: string;
  /** Raw (untransformed) value of the window. */
  value: number;
  /** Scaled value minus the nearest centroid's coordinate: training std units away from the cluster centre. */
  z: number;
}

export interface ScoreResult {
  /** distance / radius of the nearest cluster. */
  score: number;
  anomalous: boolean;
  cluster: number;
  /** Euclidean distance to the nearest centroid, in scaled space. */
  distance: number;
  /** Up to TOP_DEVIATIONS features, largest excess (z) first; the tail may be negative when few features exceed. */
  deviations: Deviation[];
}

export type ScoringModel = Pick<Model, 'features' | 'transforms' | 'scaler' | 'centroids' | 'radii' | 'threshold'>;

export interface Scorer {
  readonly threshold: number;
  /**
   * The returned object and its deviations are reused by the next call;
   * copy what must outlive it.
   */
  score(raw: ArrayLike<number>): ScoreResult;
}

export const TOP_DEVIATIONS = 5;

/**
 * Distance counting only the features above the centre: nfips alerts on
 * excess. A window with less of something than its cluster (a smaller UDP
 * share because TCP grew, a lull) is not an attack on its own; whatever grew
 * instead shows up as excess elsewhere.
 */
export function excessDistance(scaled: ArrayLike<number>, centroid: ArrayLike<number>, base = 0): number {
  let sq = 0;
  for (let j = 0; j < scaled.length; j++) {
    const d = scaled[j] - centroid[base + j];
    if (d > 0) sq += d * d;
  }
  return Math.sqrt(sq);
}

export function createScorer(model: ScoringModel): Scorer {
  const f = model.features.length;
  const k = model.centroids.length;
  const centroids = new Float64Array(k * f);
  model.centroids.forEach((c, i) => centroids.set(c, i * f));
  const radii = Float64Array.from(model.radii);
  const { transforms, scaler, features, threshold } = model;
  const scaled = new Float64Array(f);
  const top = Math.min(TOP_DEVIATIONS, f);
  const topIdx = new Int32Array(top);
  const topAbs = new Float64Array(top);
  const deviations: Deviation[] = Array.from({ length: top }, () => ({ feature: '', value: 0, z: 0 }));
  const result: ScoreResult = { score: 0, anomalous: false, cluster: 0, distance: 0, deviations };

  function score(raw: ArrayLike<number>): ScoreResult {
    if (raw.length !== f) throw new RangeError(`feature vector has ${raw.length} values, the model expects ${f}`);
    scaleInto(raw, scaler, transforms, scaled);
    let best = 0;
    let bestSq = Infinity;
    for (let c = 0; c < k; c++) {
      const base = c * f;
      let sq = 0;
      for (let j = 0; j < f; j++) {
        const d = scaled[j] - centroids[base + j];
        sq += d * d;
      }
      if (sq < bestSq) {
        bestSq = sq;
        best = c;
      }
    }
    // The nearest cluster by full distance (the one training assigned), scored by excess.
    const distance = excessDistance(scaled, centroids, best * f);
    result.cluster = best;
    result.distance = distance;
    result.score = distance / radii[best];
    result.anomalous = result.score > threshold;

    // Largest excess first (insertion into a fixed top list); ties keep the lower feature index.
    let n = 0;
    const base = best * f;
    for (let j = 0; j < f; j++) {
      const a = scaled[j] - centroids[base + j];
      if (n === top && a <= topAbs[top - 1]) continue;
      let i = n < top ? n++ : top - 1;
      while (i > 0 && topAbs[i - 1] < a) {
        topAbs[i] = topAbs[i - 1];
        topIdx[i] = topIdx[i - 1];
        i--;
      }
      topAbs[i] = a;
      topIdx[i] = j;
    }
    for (let i = 0; i < top; i++) {
      const j = topIdx[i];
      const d = deviations[i];
      d.feature = features[j];
      d.value = raw[j];
      d.z = scaled[j] - centroids[base + j];
    }
    return result;
  }

  return { threshold, score };
}
