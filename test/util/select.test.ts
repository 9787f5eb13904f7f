import { test } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import { kthSmallest, markAtMost, rowKthSmallest } from '../../src/util/select.ts';
import { parallelParts, sharedFloat32 } from '../../src/util/parallel.ts';
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

test('rowKthSmallest selects inside each row; markAtMost marks ≤ threshold', () => {
  const values = Float32Array.from([9, 8, 7, 3, 1, 2, 6, 5, 6]);
  assert.deepEqual(Array.from(rowKthSmallest(values, 3, 3, 0)), [7, 1, 5]);
  assert.deepEqual(Array.from(rowKthSmallest(values, 3, 3, 2)), [9, 3, 6]);
  const mask = new Uint8Array(9).fill(7);
  markAtMost(values, 6, mask);
  assert.deepEqual(Array.from(mask), [0, 0, 0, 1, 1, 1, 1, 1, 1]);
});

test('shared arrays are counted by the worker threads: same answers as the sorted order', () => {
  const dOut = 300;
  const dIn = 4000; // 1.2 M values: above the parallel threshold
  const values = sharedFloat32(dOut * dIn);
  values.set(randomMatrix(dOut * dIn, 5));
  for (let i = 0; i < 5000; i++) values[17 * i] = 0.125; // ties across parts
  const sorted = sortedCopy(values);
  for (const k of [0, 599_999, 600_000, 1_000_000, dOut * dIn - 1]) assert.equal(kthSmallest(values, k), sorted[k], `k=${k}`);
  const thresholds = rowKthSmallest(values, dOut, dIn, 1234);
  for (const row of [0, 1, 150, 299]) assert.equal(thresholds[row], sortedCopy(values.subarray(row * dIn, (row + 1) * dIn))[1234], `row ${row}`);
  // The pool really started: one part per CPU (up to 8), not the single-thread fallback.
  assert.equal(parallelParts(), Math.min(8, os.availableParallelism()));
});
