import { test } from 'node:test';
import assert from 'node:assert/strict';
import { kthSmallest, kthSmallestInRange } from '../../src/util/select.ts';
import { randomMatrix, seededRandom } from '../helpers/random.ts';

function sortedCopy(values: Float32Array): Float32Array {
  return Float32Array.from(values).sort();
}

test('kthSmallest matches the sorted order on small inputs (quickselect path), input untouched', () => {
  const values = Float32Array.from([5, -1, 3, 3, 0, -7, 2, 9, 3, 1]);
  const before = Float32Array.from(values);
  const sorted = sortedCopy(values);
  for (let k = 0; k < values.length; k++) assert.equal(kthSmallest(values, k), sorted[k]);
  assert.deepEqual(values, before);
});

test('kthSmallest on many duplicates and on random arrays of assorted sizes', () => {
  const random = seededRandom(3);
  for (const n of [1, 2, 17, 100, 1000, 5000]) {
    const values = new Float32Array(n);
    for (let i = 0; i < n; i++) values[i] = Math.floor(random() * 7) - 3; // heavy ties
    const sorted = sortedCopy(values);
    for (const k of [0, n >> 1, n - 1, Math.floor(random() * n)]) assert.equal(kthSmallest(values, k), sorted[k]);
  }
});

test('kthSmallest radix path (n ≥ 65536): negatives, zeros of both signs, infinities, subnormals', () => {
  const values = randomMatrix(70_000, 11);
  values[5] = -0;
  values[6] = 0;
  values[7] = Infinity;
  values[8] = -Infinity;
  values[9] = 1e-42; // subnormal
  values[10] = -1e-42;
  for (let i = 100; i < 2000; i++) values[i] = 0.25; // a block of ties
  const before = Float32Array.from(values);
  const sorted = sortedCopy(values);
  for (const k of [0, 1, 2, 777, 35_000, 40_000, 69_998, 69_999]) assert.equal(kthSmallest(values, k), sorted[k], `k=${k}`);
  // Around the zeros: -0 and +0 compare equal, so either is a correct answer.
  const zeroRank = sorted.findIndex((v) => v === 0);
  assert.ok(kthSmallest(values, zeroRank) === 0);
  assert.deepEqual(values, before);
});

test('kthSmallest refuses NaN on both paths', () => {
  assert.throws(() => kthSmallest(Float32Array.from([1, NaN, 2]), 1), /NaN/);
  const large = randomMatrix(70_000, 2);
  large[123] = NaN;
  assert.throws(() => kthSmallest(large, 10), /NaN/);
});

test('kthSmallestInRange selects inside one row with a reused scratch', () => {
  const values = Float32Array.from([9, 8, 7, 3, 1, 2, 6, 5]);
  const work = new Float32Array(8);
  assert.equal(kthSmallestInRange(values, 3, 6, 0, work), 1);
  assert.equal(kthSmallestInRange(values, 3, 6, 2, work), 3);
  assert.equal(kthSmallestInRange(values, 0, 3, 1, work), 8);
});
