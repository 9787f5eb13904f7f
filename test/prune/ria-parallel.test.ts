import { test } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import { riaScores } from '../../src/prune/scores/ria.ts';
import { perMatrixMask, perRowMask } from '../../src/prune/mask.ts';
import { parallelParts, sharedFloat32 } from '../../src/util/parallel.ts';
import { randomMatrix, seededRandom } from '../helpers/random.ts';

// 640 × 2000 = 1.28 M weights: above the threshold from which worker threads take part.
const dOut = 640;
const dIn = 2000;

test('RIA on worker threads gives the one-thread scores bit for bit, and both equal the formula in float64', () => {
  const weights = randomMatrix(dOut * dIn, 21);
  for (let j = 0; j < dIn; j += 97) for (let i = 0; i < dOut; i++) weights[i * dIn + j] = 0; // zero columns
  const uniform = seededRandom(22);
  const sqNorms = Float32Array.from({ length: dIn }, () => Math.exp(6 * uniform() - 3));
  const shared = riaScores(weights, dOut, dIn, sqNorms, {}, sharedFloat32(dOut * dIn));
  const plain = riaScores(weights, dOut, dIn, sqNorms, {}, new Float32Array(dOut * dIn));
  assert.equal(parallelParts(), Math.min(8, os.availableParallelism()), 'the worker pool started');
  assert.deepEqual(new Uint32Array(shared.buffer), new Uint32Array(plain.buffer));

  // The formula, entry by entry, for a few rows and columns: (|W|/C_j + |W|/R_i)·sqrt(s_j)^0.5.
  for (const i of [0, 1, 333, dOut - 1]) {
    let rowSum = 0;
    for (let j = 0; j < dIn; j++) rowSum += Math.abs(weights[i * dIn + j]);
    for (const j of [0, 1, 96, 97, 1234, dIn - 1]) {
      let colSum = 0;
      for (let r = 0; r < dOut; r++) colSum += Math.abs(weights[r * dIn + j]);
      const a = Math.abs(weights[i * dIn + j]);
      const expected = colSum === 0 ? 0 : (a / colSum + a / rowSum) * Math.sqrt(Math.sqrt(sqNorms[j]));
      assert.ok(Math.abs(shared[i * dIn + j] - expected) <= 1e-6 * Math.abs(expected), `(${i}, ${j}): ${shared[i * dIn + j]} vs ${expected}`);
    }
  }

  // Masks from shared and plain scores are the same.
  assert.deepEqual(perMatrixMask(shared, 0.5), perMatrixMask(plain, 0.5));
  assert.deepEqual(perRowMask(shared, dOut, dIn, 0.3), perRowMask(plain, dOut, dIn, 0.3));
});

test('masks from large shared scores are marked on worker threads: the same masks as one thread, ties included', () => {
  // Scores on a coarse grid, so many entries tie at every threshold.
  const uniform = seededRandom(31);
  const plain = Float32Array.from({ length: dOut * dIn }, () => Math.floor(uniform() * 64) / 8);
  const shared = sharedFloat32(plain.length);
  shared.set(plain);

  const sharedMatrix = perMatrixMask(shared, 0.5);
  const plainMatrix = perMatrixMask(plain, 0.5);
  assert.ok(sharedMatrix.buffer instanceof SharedArrayBuffer, 'the workers wrote a shared mask');
  assert.ok(!(plainMatrix.buffer instanceof SharedArrayBuffer), 'plain scores are marked on this thread');
  assert.deepEqual(Array.from(sharedMatrix), Array.from(plainMatrix));
  // Per matrix: every score ≤ sorted[floor(N/2)] is pruned, ties included.
  const threshold = Float32Array.from(plain).sort()[Math.floor(plain.length / 2)];
  let expected = 0;
  for (const v of plain) expected += +(v <= threshold);
  assert.equal(sharedMatrix.reduce((a, b) => a + b, 0), expected);

  const count = Math.floor(dIn * 0.3);
  const sharedRow = perRowMask(shared, dOut, dIn, 0.3);
  assert.ok(sharedRow.buffer instanceof SharedArrayBuffer);
  assert.deepEqual(Array.from(sharedRow), Array.from(perRowMask(plain, dOut, dIn, 0.3)));
  // Per row: exactly `count` marks; ties at the row's threshold go to the lowest columns.
  for (const i of [0, 1, 320, dOut - 1]) {
    const row = plain.subarray(i * dIn, (i + 1) * dIn);
    const order = Array.from(row.keys()).sort((a, b) => row[a] - row[b] || a - b);
    const marked = new Set(order.slice(0, count));
    for (let j = 0; j < dIn; j++) assert.equal(sharedRow[i * dIn + j], marked.has(j) ? 1 : 0, `(${i}, ${j})`);
  }
  // A given output buffer is used as it is (plain here: marked on this thread, same result).
  const out = new Uint8Array(plain.length).fill(7);
  assert.equal(perRowMask(shared, dOut, dIn, 0.3, out), out);
  assert.deepEqual(Array.from(out), Array.from(sharedRow));
});
