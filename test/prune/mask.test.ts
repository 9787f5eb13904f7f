import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  applyMask,
  nmMask,
  perMatrixMask,
  perRowMask,
  satisfiesNM,
  selectMask,
} from '../../src/prune/mask.ts';
import { randomMatrix } from '../helpers/random.ts';
import { FieldError } from '../../src/util/errors.ts';

const f32 = (values: number[]): Float32Array => Float32Array.from(values);
const u8 = (values: number[]): Uint8Array => Uint8Array.from(values);

test('per-row: floor(dIn·s) per row, ties at the threshold prune the lower column first', () => {
  const scores = f32([
    3, 1, 2, 1, // threshold 1: columns 1 and 3
    2, 2, 2, 2, // all tied: columns 0 and 1
    5, 1, 1, 1, // three tied at the threshold: columns 1 and 2, column 3 kept
  ]);
  assert.deepEqual(perRowMask(scores, 3, 4, 0.5), u8([0, 1, 0, 1, 1, 1, 0, 0, 0, 1, 1, 0]));
});

test('per-row: the count is Math.floor(dIn·s) in float64, as the reference int(d_in * s)', () => {
  const dIn = 10;
  const scores = randomMatrix(4 * dIn, 1);
  for (const [s, expected] of [[0.29, 2], [0.3, 3], [0.5, 5], [0.99, 9], [0.05, 0]] as const) {
    const mask = perRowMask(scores, 4, dIn, s);
    for (let i = 0; i < 4; i++) {
      const pruned = mask.subarray(i * dIn, (i + 1) * dIn).reduce((a, b) => a + b, 0);
      assert.equal(pruned, expected, `s=${s} row ${i}`);
    }
  }
});

test('per-row: the pruned entries are the smallest of each row (against a stable sort)', () => {
  const dOut = 7;
  const dIn = 33;
  const scores = randomMatrix(dOut * dIn, 2);
  for (let p = 0; p < scores.length; p += 5) scores[p] = 0.5; // plant ties
  const mask = perRowMask(scores, dOut, dIn, 0.6);
  const count = Math.floor(dIn * 0.6);
  for (let i = 0; i < dOut; i++) {
    const order = [...Array(dIn).keys()].sort((a, b) => scores[i * dIn + a] - scores[i * dIn + b] || a - b);
    const expected = new Uint8Array(dIn);
    for (const j of order.slice(0, count)) expected[j] = 1;
    assert.deepEqual(mask.subarray(i * dIn, (i + 1) * dIn), expected);
  }
});

test('per-matrix: t = sorted[floor(N·s)], prune every score ≤ t (ties included)', () => {
  // N·s = 6·0.34 = 2.04 → t = sorted[2] = 2 → the three 2s and the 1: 4 pruned.
  assert.deepEqual(perMatrixMask(f32([1, 2, 2, 2, 3, 4]), 0.34), u8([1, 1, 1, 1, 0, 0]));
  assert.deepEqual(perMatrixMask(f32([4, 2, 3, 2, 1, 2]), 0.34), u8([0, 1, 0, 1, 1, 1]));
  // No ties: exactly floor(N·s) + 1.
  const mask = perMatrixMask(f32([0.6, 0.1, 0.5, 0.3, 0.2, 0.4, 0.9, 0.8]), 0.5);
  assert.deepEqual(mask, u8([0, 1, 1, 1, 1, 1, 0, 0])); // t = sorted[4] = 0.5
});

test('per-matrix on a large random matrix (radix path) prunes floor(N·s)+1 entries, all ≤ every kept one', () => {
  const scores = randomMatrix(300 * 300, 5).map(Math.abs);
  const mask = perMatrixMask(scores, 0.5);
  let pruned = 0;
  let maxPruned = -Infinity;
  let minKept = Infinity;
  for (let p = 0; p < scores.length; p++) {
    if (mask[p]) {
      pruned++;
      maxPruned = Math.max(maxPruned, scores[p]);
    } else minKept = Math.min(minKept, scores[p]);
  }
  assert.equal(pruned, Math.floor(scores.length * 0.5) + 1);
  assert.ok(maxPruned < minKept);
});

test('n:m prunes exactly n per group of m consecutive columns, ties lower column first', () => {
  const scores = f32([
    4, 3, 2, 1, 1, 1, 1, 1,
    0, 9, 0, 9, 5, 6, 7, 8,
  ]);
  const mask = nmMask(scores, 2, 8, 2, 4);
  assert.deepEqual(mask, u8([0, 0, 1, 1, 1, 1, 0, 0, 1, 0, 1, 0, 1, 1, 0, 0]));
  const random = randomMatrix(16 * 64, 4);
  for (const [n, m] of [[2, 4], [4, 8], [1, 4], [3, 4]] as const) {
    const nm = nmMask(random, 16, 64, n, m);
    for (let g = 0; g < nm.length; g += m) assert.equal(nm.subarray(g, g + m).reduce((a, b) => a + b, 0), n);
    assert.ok(satisfiesNM(nm, 16, 64, n, m));
  }
});

test('applyMask zeros pruned weights; satisfiesNM reads zeros of weights or ones of a mask', () => {
  const weights = f32([1, 2, 3, 4, 5, 6, 7, 8]);
  const mask = u8([1, 0, 0, 1, 0, 1, 1, 0]);
  applyMask(weights, mask);
  assert.deepEqual(weights, f32([0, 2, 3, 0, 5, 0, 0, 8]));
  assert.ok(satisfiesNM(weights, 2, 4, 2, 4));
  assert.ok(!satisfiesNM(weights, 2, 4, 3, 4));
  assert.ok(satisfiesNM(mask, 2, 4, 2, 4));
  assert.ok(!satisfiesNM(u8([1, 0, 0, 0]), 1, 4, 2, 4));
});

test('satisfiesNM, selectMask and applyMask refuse a pattern, width or array they cannot use, naming the argument (satisfiesNM answered false)', () => {
  const refusal = (field: string, problem: string) => (e: unknown) => e instanceof FieldError && e.field === field && e.problem === problem;
  const mask = u8([1, 1, 0, 0, 0, 1, 1, 0]);
  assert.throws(() => satisfiesNM(mask, 2, 4, 0, 0), refusal('m', 'must be an integer ≥ 1, got 0'));
  assert.throws(() => satisfiesNM(mask, 2, 4, 2.5, 4), refusal('n', 'must be an integer in [1, 4], got 2.5'));
  assert.throws(() => satisfiesNM(mask, 2, 4, 5, 4), refusal('n', 'must be an integer in [1, 4], got 5'));
  assert.throws(() => satisfiesNM(mask, 2, 4, 1, 3), refusal('dIn', 'must be a multiple of m = 3 (rows are checked in groups of m consecutive inputs), got 4'));
  assert.throws(() => satisfiesNM(mask, 3, 4, 2, 4), refusal('weightsOrMask', 'must be a Float32Array or Uint8Array of dOut×dIn = 3×4 = 12 weights or mask entries, got 8 entries'));
  assert.throws(() => satisfiesNM([0, 0, 1, 1] as never, 1, 4, 2, 4), refusal('weightsOrMask', 'must be a Float32Array or Uint8Array of dOut×dIn = 1×4 = 4 weights or mask entries, got an array [0, 0, 1, 1]'));
  // Unchecked, a mask or scores of another shape would be plain Errors, and mask entries for the wrong weights would zero the wrong ones.
  const scores = f32([1, 2, 3, 4, 5, 6, 7, 8]);
  const half = { kind: 'unstructured', sparsity: 0.5 } as const;
  assert.throws(() => selectMask(scores, 3, 4, half, 'per-row'), refusal('scores', 'must be a Float32Array of dOut×dIn = 3×4 = 12 scores, got 8 entries'));
  assert.throws(() => selectMask(scores, 2, 4, half, 'per-row', new Uint8Array(4)), refusal('out', 'must be a Uint8Array of dOut×dIn = 2×4 = 8 mask entries, got 4 entries'));
  assert.throws(() => selectMask(scores, 2.5, 4, half, 'per-row'), refusal('dOut', 'must be an integer ≥ 1, got 2.5'));
  assert.throws(() => applyMask(scores, u8([1, 0])), refusal('mask', 'must be a Uint8Array of one entry per weight (8), got a Uint8Array of 2 entries'));
  assert.throws(() => applyMask([1, 2] as never, u8([1, 0])), refusal('weights', 'must be a Float32Array, got an array [1, 2]'));
  // n = m asks whether everything is pruned.
  assert.equal(satisfiesNM(mask, 2, 4, 4, 4), false);
  assert.equal(satisfiesNM(u8([1, 1]), 1, 2, 2, 2), true);
});

test('selectMask dispatches on pattern and selection', () => {
  const scores = f32([1, 4, 3, 2, 8, 7, 6, 5]);
  assert.deepEqual(selectMask(scores, 2, 4, { kind: 'nm', n: 2, m: 4 }, 'per-matrix'), u8([1, 0, 0, 1, 0, 0, 1, 1]));
  assert.deepEqual(selectMask(scores, 2, 4, { kind: 'unstructured', sparsity: 0.5 }, 'per-row'), u8([1, 0, 0, 1, 0, 0, 1, 1]));
  assert.deepEqual(selectMask(scores, 2, 4, { kind: 'unstructured', sparsity: 0.5 }, 'per-matrix'), u8([1, 1, 1, 1, 0, 0, 0, 1]));
});

test('a reused mask buffer is cleared and gives the same masks', () => {
  const scores = randomMatrix(8 * 16, 9);
  const out = new Uint8Array(8 * 16).fill(1);
  assert.deepEqual(perRowMask(scores, 8, 16, 0.25, out), perRowMask(scores, 8, 16, 0.25));
  out.fill(1);
  assert.deepEqual(perMatrixMask(scores, 0.25, out), perMatrixMask(scores, 0.25));
  out.fill(1);
  assert.deepEqual(nmMask(scores, 8, 16, 2, 4, out), nmMask(scores, 8, 16, 2, 4));
  assert.throws(() => perMatrixMask(scores, 0.5, new Uint8Array(3)));
});
