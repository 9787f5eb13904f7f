import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gini, giniSubsample, subsampleIndices } from '../../src/search/gini.ts';
import { Rng } from '../../src/util/rng.ts';

const close = (actual: number, expected: number, tol = 1e-12) => assert.ok(Math.abs(actual - expected) <= tol, `${actual} vs ${expected}`);

test('hand-computed values', () => {
  close(gini(Float64Array.from([1, 1, 1, 1])), 0);
  close(gini(Float64Array.from([0, 0, 0, 1])), 0.75);
  close(gini(Float64Array.from([1, 2, 3, 4])), 0.25); // (−3·1 − 1·2 + 1·3 + 3·4) / (4·10)
  close(gini(Float32Array.from([4, 1, 3, 2])), 0.25); // order of the input does not matter
  close(gini(Float64Array.from([1, 2, 3, 4]), true), 0.25);
});

test('edge cases: empty, one value, all zero → 0; negative or NaN → RangeError', () => {
  assert.equal(gini(new Float64Array(0)), 0);
  assert.equal(gini(Float64Array.from([5])), 0);
  assert.equal(gini(new Float32Array(10)), 0);
  assert.throws(() => gini(Float64Array.from([1, -1, 2])), RangeError);
  assert.throws(() => gini(Float64Array.from([1, NaN, 2])), RangeError);
});

test('scale-invariant, does not modify its input, and equals the mean-absolute-difference form', () => {
  const rng = new Rng(2);
  const values = Float64Array.from({ length: 300 }, () => rng.uniform() ** 3);
  const copy = values.slice();
  const g = gini(values);
  assert.deepEqual(values, copy);
  close(gini(values.map((v) => 7.5 * v)), g);
  // G = Σᵢ Σⱼ |xᵢ − xⱼ| / (2 n² mean)
  let absDiffSum = 0;
  let sum = 0;
  for (const a of values) {
    sum += a;
    for (const b of values) absDiffSum += Math.abs(a - b);
  }
  close(g, absDiffSum / (2 * values.length * sum), 1e-12);
});

test('giniSubsample: exact when the sample covers everything, fixed indices per (length, size, seed)', () => {
  const values = Float64Array.from([3, 0, 1, 7, 2]);
  assert.equal(giniSubsample(values, 5, 0), gini(values));
  assert.equal(giniSubsample(values, 50, 0), gini(values));
  assert.deepEqual(subsampleIndices(1000, 10, 4), subsampleIndices(1000, 10, 4));
  assert.notDeepEqual(subsampleIndices(1000, 10, 4), subsampleIndices(1000, 10, 5));
  const indices = subsampleIndices(5, 3, 9);
  const manual = gini(Float64Array.from(indices, (i) => values[i]));
  assert.equal(giniSubsample(values, 3, 9), manual);
  assert.throws(() => giniSubsample(values, 0, 0), RangeError);
});

test('giniSubsample of 2^16 values estimates the Gini of 10^6 exponential values (0.5) to 0.01', () => {
  const rng = new Rng(8);
  const values = Float32Array.from({ length: 1_000_000 }, () => -Math.log(1 - rng.uniform()));
  const exact = gini(values);
  close(exact, 0.5, 0.005);
  close(giniSubsample(values, 1 << 16, 1), exact, 0.01);
  assert.equal(giniSubsample(values, 1 << 16, 1), giniSubsample(values, 1 << 16, 1));
});
