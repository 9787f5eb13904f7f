/**
 * Gini index of non-negative values (PHO's proxy, ALGORITHMS.md §7.3): with s₁ ≤ … ≤ sₙ,
 *
 *     G = Σᵢ (2i − n − 1)·sᵢ / (n·Σᵢ sᵢ)
 *
 * 0 when all values are equal, (n − 1)/n when one value holds everything. The weights depend on
 * each value's rank, so the exact index needs a full sort; `giniSubsample` trades exactness for
 * speed on a fixed random subset of positions.
 */
import { Rng, sampleWithoutReplacement } from '../util/rng.ts';

type Values = Float32Array | Float64Array;

/** Exact Gini index; `sorted` = the values are already ascending (skips the copy and sort). */
export function gini(values: Values, sorted = false): number {
  const n = values.length;
  if (n <= 1) return 0;
  const ascending = sorted ? values : values.slice().sort();
  if (!(ascending[0] >= 0) || Number.isNaN(ascending[n - 1])) {
    throw new RangeError(`gini: values must be non-negative numbers (smallest ${ascending[0]}, largest ${ascending[n - 1]})`);
  }
  let total = 0;
  let rankWeighted = 0;
  for (let i = 0; i < n; i++) {
    const v = ascending[i];
    total += v;
    rankWeighted += (2 * i + 1 - n) * v; // (2i − n − 1) with 1-based i
  }
  return total > 0 ? rankWeighted / (n * total) : 0;
}

const indexCache = new Map<string, Uint32Array>();
const INDEX_CACHE_LIMIT = 32;

/**
 * The subsample positions used by `giniSubsample`: `sampleSize` distinct indices of [0, length),
 * sorted, the same for the same (length, sampleSize, seed). Cached, since a search evaluates the
 * same layers again and again.
 */
export function subsampleIndices(length: number, sampleSize: number, seed: number): Uint32Array {
  const key = `${length}:${sampleSize}:${seed}`;
  let indices = indexCache.get(key);
  if (!indices) {
    indices = sampleWithoutReplacement(length, Math.min(sampleSize, length), new Rng(seed));
    if (indexCache.size >= INDEX_CACHE_LIMIT) indexCache.delete(indexCache.keys().next().value!);
    indexCache.set(key, indices);
  }
  return indices;
}

/** Gini index of the values at a fixed random subset of `sampleSize` positions (exact when it covers all). */
export function giniSubsample(values: Values, sampleSize: number, seed: number): number {
  if (!Number.isInteger(sampleSize) || sampleSize < 1) throw new RangeError(`giniSubsample: sampleSize must be a positive integer, got ${sampleSize}`);
  if (sampleSize >= values.length) return gini(values);
  const indices = subsampleIndices(values.length, sampleSize, seed);
  const picked = new Float64Array(indices.length);
  for (let k = 0; k < indices.length; k++) picked[k] = values[indices[k]];
  return gini(picked.sort(), true);
}
