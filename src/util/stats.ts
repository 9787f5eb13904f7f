/**
 * Small statistics for proxy validation: mean, sample standard deviation, Pearson and
 * Spearman correlation, and percentile bootstrap confidence intervals over paired samples.
 */
import { Rng } from './rng.ts';

type Numbers = ArrayLike<number>;

export function mean(x: Numbers): number {
  if (x.length === 0) return NaN;
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += x[i];
  return sum / x.length;
}

/** Sample standard deviation (n − 1 in the denominator); NaN for fewer than two values. */
export function std(x: Numbers): number {
  if (x.length < 2) return NaN;
  const m = mean(x);
  let sumSq = 0;
  for (let i = 0; i < x.length; i++) sumSq += (x[i] - m) ** 2;
  return Math.sqrt(sumSq / (x.length - 1));
}

/** Pearson correlation; NaN when either side is constant or has fewer than two values. */
export function pearson(x: Numbers, y: Numbers): number {
  checkPaired(x, y);
  if (x.length < 2) return NaN;
  const mx = mean(x);
  const my = mean(y);
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < x.length; i++) {
    const dx = x[i] - mx;
    const dy = y[i] - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  return sxx > 0 && syy > 0 ? sxy / Math.sqrt(sxx * syy) : NaN;
}

/** 1-based ranks; tied values share the average of the ranks they span. */
export function averageRanks(x: Numbers): Float64Array {
  const order = Array.from({ length: x.length }, (_, i) => i).sort((a, b) => x[a] - x[b]);
  const ranks = new Float64Array(x.length);
  for (let start = 0; start < order.length; ) {
    let end = start + 1;
    while (end < order.length && x[order[end]] === x[order[start]]) end++;
    const sharedRank = (start + 1 + end) / 2; // mean of ranks start+1 … end
    for (let k = start; k < end; k++) ranks[order[k]] = sharedRank;
    start = end;
  }
  return ranks;
}

/** Spearman rank correlation: Pearson correlation of the average ranks. */
export function spearman(x: Numbers, y: Numbers): number {
  checkPaired(x, y);
  return pearson(averageRanks(x), averageRanks(y));
}

export interface BootstrapOptions {
  resamples?: number;
  level?: number;
  seed?: number;
}

export interface ConfidenceInterval {
  /** The statistic on the original sample. */
  estimate: number;
  lower: number;
  upper: number;
  level: number;
  resamples: number;
  /** Resamples whose statistic was finite (e.g. a resample of identical points has no correlation). */
  validResamples: number;
}

/**
 * Percentile bootstrap: resample the (x, y) pairs with replacement, recompute `stat`, and take the
 * (1 − level)/2 and (1 + level)/2 quantiles (linear interpolation between order statistics).
 */
export function bootstrapCI(
  x: Numbers,
  y: Numbers,
  stat: (x: Float64Array, y: Float64Array) => number,
  opts: BootstrapOptions = {},
): ConfidenceInterval {
  checkPaired(x, y);
  const resamples = opts.resamples ?? 2000;
  const level = opts.level ?? 0.95;
  if (!(level > 0 && level < 1)) throw new RangeError(`bootstrapCI: level must be in (0, 1), got ${level}`);
  if (!Number.isInteger(resamples) || resamples < 1) throw new RangeError(`bootstrapCI: resamples must be a positive integer, got ${resamples}`);
  const n = x.length;
  const estimate = stat(Float64Array.from(x), Float64Array.from(y));
  if (n === 0) return { estimate, lower: NaN, upper: NaN, level, resamples, validResamples: 0 };

  const rng = new Rng(opts.seed ?? 0);
  const xs = new Float64Array(n);
  const ys = new Float64Array(n);
  const stats: number[] = [];
  for (let r = 0; r < resamples; r++) {
    for (let i = 0; i < n; i++) {
      const pick = rng.below(n);
      xs[i] = x[pick];
      ys[i] = y[pick];
    }
    const value = stat(xs, ys);
    if (Number.isFinite(value)) stats.push(value);
  }
  const sorted = Float64Array.from(stats).sort();
  const alpha = (1 - level) / 2;
  return {
    estimate,
    lower: quantile(sorted, alpha),
    upper: quantile(sorted, 1 - alpha),
    level,
    resamples,
    validResamples: sorted.length,
  };
}

/** Quantile p of ascending values, interpolating linearly between order statistics (numpy's default). */
export function quantile(ascending: Numbers, p: number): number {
  const n = ascending.length;
  if (n === 0) return NaN;
  const position = (n - 1) * p;
  const below = Math.floor(position);
  const above = Math.min(below + 1, n - 1);
  return ascending[below] + (position - below) * (ascending[above] - ascending[below]);
}

function checkPaired(x: Numbers, y: Numbers): void {
  if (x.length !== y.length) throw new RangeError(`paired samples differ in length: ${x.length} vs ${y.length}`);
}
