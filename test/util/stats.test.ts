// Hand-computed values; the longer ones were confirmed with scipy 1.17 (spearmanr, pearsonr, rankdata).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { averageRanks, bootstrapCI, mean, pearson, quantile, spearman, std } from '../../src/util/stats.ts';
import { Rng } from '../../src/util/rng.ts';

const close = (actual: number, expected: number, tol = 1e-12) => assert.ok(Math.abs(actual - expected) <= tol, `${actual} vs ${expected}`);

test('mean and sample standard deviation', () => {
  assert.equal(mean([1, 2, 3, 4]), 2.5);
  close(std([1, 2, 3, 4]), Math.sqrt(5 / 3)); // (2.25 + 0.25 + 0.25 + 2.25) / 3
  assert.ok(Number.isNaN(mean([])));
  assert.ok(Number.isNaN(std([1])));
});

test('pearson: ±1 on lines, 0.8 on a hand example, NaN on a constant side', () => {
  close(pearson([1, 2, 3], [2, 4, 6]), 1);
  close(pearson([1, 2, 3], [3, 2, 1]), -1);
  close(pearson([1, 2, 3, 4], [1, 3, 2, 4]), 0.8); // Σdxdy = 4, Σdx² = Σdy² = 5
  close(pearson([3, 1, 4, 1, 5, 9, 2, 6], [2, 7, 1, 8, 2, 8, 1, 8]), 0.2096553190730121);
  assert.ok(Number.isNaN(pearson([1, 1, 1], [1, 2, 3])));
  assert.throws(() => pearson([1, 2], [1]), RangeError);
});

test('averageRanks: ties share the mean of their ranks', () => {
  assert.deepEqual(Array.from(averageRanks([3, 1, 4, 1, 5, 9, 2, 6])), [4, 1.5, 5, 1.5, 6, 8, 3, 7]);
  assert.deepEqual(Array.from(averageRanks([2, 7, 1, 8, 2, 8, 1, 8])), [3.5, 5, 1.5, 7, 3.5, 7, 1.5, 7]);
});

test('spearman with ties', () => {
  // ranks x = [1, 2.5, 2.5, 4], y = [1, 3, 2, 4]: Σdxdy = 4.5, Σdx² = 4.5, Σdy² = 5 → 4.5/√22.5
  close(spearman([1, 2, 2, 3], [1, 3, 2, 4]), 4.5 / Math.sqrt(22.5));
  close(spearman([3, 1, 4, 1, 5, 9, 2, 6], [2, 7, 1, 8, 2, 8, 1, 8]), 0.19885368120992467);
  close(spearman([1, 2, 3, 4], [1, 8, 27, 64]), 1); // monotone, not linear
});

test('quantile interpolates linearly between order statistics', () => {
  close(quantile([1, 2, 3, 4, 10], 0.1), 1.4);
  close(quantile([1, 2, 3, 4, 10], 0.975), 9.4);
  assert.equal(quantile([5], 0.5), 5);
});

test('bootstrapCI: reproducible, degenerate on exact lines, ≈ normal-theory interval for a mean', () => {
  const line = bootstrapCI([1, 2, 3, 4, 5], [2, 4, 6, 8, 10], pearson, { seed: 1 });
  close(line.estimate, 1);
  close(line.lower, 1, 1e-12);
  close(line.upper, 1, 1e-12);
  assert.ok(line.validResamples < line.resamples); // some resamples repeat one point: no correlation

  const rng = new Rng(4);
  const x = Float64Array.from({ length: 1000 }, () => rng.gaussian());
  const meanOfX = (xs: Float64Array) => mean(xs);
  const ci = bootstrapCI(x, x, meanOfX, { seed: 2, resamples: 2000, level: 0.95 });
  assert.deepEqual(ci, bootstrapCI(x, x, meanOfX, { seed: 2, resamples: 2000, level: 0.95 }));
  const halfWidth = (1.959964 * std(x)) / Math.sqrt(x.length);
  assert.ok(ci.lower < ci.estimate && ci.estimate < ci.upper);
  close(ci.upper - ci.lower, 2 * halfWidth, 0.15 * 2 * halfWidth);
  close((ci.upper + ci.lower) / 2, ci.estimate, 0.2 * halfWidth);
  assert.throws(() => bootstrapCI([1], [1], pearson, { level: 1 }), RangeError);
});
