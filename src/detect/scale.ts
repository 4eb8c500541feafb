// Feature scaling: transform, standardise, then clamp from below. Pure
// functions; scaleInto allocates nothing because it runs on every window.
import type { FeatureTransform } from '../features/feature-set';

export interface Scaler {
  /** Per feature, in transformed space. */
  mean: number[];
  std: number[];
  /** Per feature, the smallest scaled value seen in training. */
  floor: number[];
}

/**
 * std = max(sample std, REL_STD_FLOOR × |mean|, MIN_STD[transform]), in
 * transformed space. A feature that never varied in training (no RST, no
 * fragments) would otherwise turn its first tiny blip into dozens of
 * standard deviations and drown every other feature in the distance.
 */
export const REL_STD_FLOOR = 0.05;
/** log1p: ~10% change of (count + 1); linear: one percentage point of a share. */
export const MIN_STD: Readonly<Record<FeatureTransform, number>> = { log1p: 0.1, linear: 0.01 };

/** NaN (a 0/0 ratio) counts as 0: nothing was observed. log1p ignores negatives, which only rounding can produce. */
export function transformValue(x: number, t: FeatureTransform): number {
  const v = x === x ? x : 0;
  return t === 'log1p' ? Math.log1p(v > 0 ? v : 0) : v;
}

export function fitScaler(rows: readonly (ArrayLike<number>)[], transforms: readonly FeatureTransform[]): Scaler {
  const f = transforms.length;
  if (rows.length === 0) throw new RangeError('fitScaler: no rows');
  const mean = new Array<number>(f).fill(0);
  const m2 = new Array<number>(f).fill(0);
  // Welford: hours of windows of large counts sum without losing precision.
  rows.forEach((row, n) => {
    if (row.length !== f) throw new RangeError(`fitScaler: row ${n} has ${row.length} values, expected ${f}`);
    for (let j = 0; j < f; j++) {
      const x = transformValue(row[j], transforms[j]);
      const d = x - mean[j];
      mean[j] += d / (n + 1);
      m2[j] += d * (x - mean[j]);
    }
  });
  const std = mean.map((mu, j) => {
    const sd = rows.length > 1 ? Math.sqrt(m2[j] / (rows.length - 1)) : 0;
    return Math.max(sd, REL_STD_FLOOR * Math.abs(mu), MIN_STD[transforms[j]]);
  });
  const floor = new Array<number>(f).fill(Infinity);
  for (const row of rows) {
    for (let j = 0; j < f; j++) {
      const z = (transformValue(row[j], transforms[j]) - mean[j]) / std[j];
      if (z < floor[j]) floor[j] = z;
    }
  }
  return { mean, std, floor };
}

/**
 * Writes the scaled vector of raw into out and returns out. Values are
 * clamped to >= floor: nfips alerts on excess, so less of something than
 * training ever saw (a quiet link) must not look anomalous.
 */
export function scaleInto(
  raw: ArrayLike<number>,
  scaler: Readonly<Scaler>,
  transforms: readonly FeatureTransform[],
  out: Float64Array,
): Float64Array {
  const { mean, std, floor } = scaler;
  for (let j = 0; j < transforms.length; j++) {
    const z = (transformValue(raw[j], transforms[j]) - mean[j]) / std[j];
    out[j] = z < floor[j] ? floor[j] : z;
  }
  return out;
}
