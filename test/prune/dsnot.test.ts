import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dsnot, type DsnotStats } from '../../src/prune/dsnot.ts';
import { nmMask, perRowMask } from '../../src/prune/mask.ts';
import { randomNormal, seededRandom } from '../helpers/random.ts';

const ones = (n: number) => new Float32Array(n).fill(1);
const prunedColumns = (mask: Uint8Array) => [...mask].flatMap((v, j) => (v ? [j] : []));

function randomLayer(dOut: number, dIn: number, seed: number) {
  const next = seededRandom(seed);
  const gauss = () => randomNormal(next);
  const weights = new Float32Array(dOut * dIn).map(() => gauss());
  const stats: DsnotStats = {
    sqNorm: new Float32Array(dIn).map(() => 0.1 + 4 * next()),
    mean: new Float32Array(dIn).map(() => 2 * gauss()),
    variance: new Float32Array(dIn).map(() => 0.2 + next()),
  };
  const wanda = new Float32Array(dOut * dIn);
  for (let i = 0; i < dOut; i++) for (let j = 0; j < dIn; j++) wanda[i * dIn + j] = Math.abs(weights[i * dIn + j]) * Math.sqrt(stats.sqNorm[j]);
  return { weights, stats, wanda };
}

/** e_i = Σ_{j pruned} W_ij·m_j recomputed from a mask. */
function rowErrors(weights: Float32Array, mask: Uint8Array, mean: Float32Array, dOut: number, dIn: number): number[] {
  return Array.from({ length: dOut }, (_, i) => {
    let e = 0;
    for (let j = 0; j < dIn; j++) if (mask[i * dIn + j]) e += weights[i * dIn + j] * mean[j];
    return e;
  });
}

function rowCounts(mask: Uint8Array, dOut: number, dIn: number): number[] {
  return Array.from({ length: dOut }, (_, i) => mask.subarray(i * dIn, (i + 1) * dIn).reduce((a, b) => a + b, 0));
}

// One row, 6 inputs. c = W·m = [1, −2, 1, 3, −1, −2]; c/v = [1, −1, 1, 3, −2, −2]; Wanda = |W|.
// Initial mask prunes the three smallest Wanda scores: columns 0 (1), 2 (0.5), 4 (1); e₀ = 1 + 1 − 1 = 1.
// Grow (pruned, by c/v): ascending 4 (−2), 0 (1), 2 (1) — high end 2, 0, 4; low end 4, 0, 2.
// Prune list (kept, Wanda ascending 1 (2), 5 (2), 3 (3)) reordered by sign of c: 1, 5 (negative,
// ascending), then 3 (positive, descending) — start 1, 5, 3; end 3, 5, 1.
const hand = {
  weights: Float32Array.of(1, -2, 0.5, 3, -1, 2),
  stats: {
    sqNorm: ones(6),
    mean: Float32Array.of(1, 1, 2, 1, 1, -1),
    variance: Float32Array.of(1, 2, 1, 1, 0.5, 1),
  },
  mask: Uint8Array.of(1, 0, 1, 0, 1, 0),
};

test('hand example, reference default (no sign check): three swaps, |e| grows on the way', () => {
  const result = dsnot(hand.weights, hand.mask, hand.stats, 1, 6);
  // Cycle 1: e = 1 > 0 → grow 2 (c 1), prune 1 (c −2): e = 1 − 2 − 1 = −2 (|e| went 1 → 2: accepted).
  // Cycle 2: e < 0 → grow 4 (c −1), prune 3 (c 3): e = −2 + 3 + 1 = 2.
  // Cycle 3: e > 0 → grow 0 (c 1), prune 5 (c −2): e = 2 − 2 − 1 = −1.
  // Cycle 4: all three pruned weights were grown back: the row stops.
  assert.deepEqual(prunedColumns(result.mask), [1, 3, 5]);
  assert.equal(result.swaps, 3);
  assert.equal(result.cyclesRun, 4);
  assert.equal(result.errorBefore[0], 1);
  assert.equal(result.errorAfter[0], -1);
  assert.deepEqual([...hand.mask], [1, 0, 1, 0, 1, 0], 'input mask untouched');
});

test('hand example with the sign check: the first swap would flip the sign, so none happens', () => {
  const result = dsnot(hand.weights, hand.mask, hand.stats, 1, 6, { withoutSameSign: false });
  assert.deepEqual([...result.mask], [...hand.mask]);
  assert.equal(result.swaps, 0);
  assert.equal(result.cyclesRun, 1);
});

test('hand example: maxCycles and the threshold stop the row', () => {
  const twoCycles = dsnot(hand.weights, hand.mask, hand.stats, 1, 6, { maxCycles: 2 });
  assert.deepEqual(prunedColumns(twoCycles.mask), [0, 1, 3]); // after cycles 1 and 2
  assert.equal(twoCycles.errorAfter[0], 2);
  assert.equal(twoCycles.cyclesRun, 2);
  const highThreshold = dsnot(hand.weights, hand.mask, hand.stats, 1, 6, { updateThreshold: 1 }); // |e₀| = 1 is not > 1
  assert.equal(highThreshold.swaps, 0);
  // p = 0 ranks growth by c alone: c of pruned 0, 2, 4 = 1, 1, −1 → high end 2 first, as before.
  assert.equal(dsnot(hand.weights, hand.mask, hand.stats, 1, 6, { powOfVarRegrowing: 0 }).swaps, 3);
});

test('N:M hand example: the prune partner is the least important kept weight of the same group', () => {
  // c = W (m = 1), Wanda = |W|. 2:4 groups [1, 2, 0.5, 3] and [2, −1, 1.5, 0.25] → pruned 0, 2 | 5, 7.
  // e₀ = 1 + 0.5 − 1 + 0.25 = 0.75. Grow high end: 0 (1), 2 (0.5), 7 (0.25), 5 (−1).
  // Cycle 1: grow 0, prune 1 (Wanda 2 < 3): e = 0.75 + 2 − 1 = 1.75. Cycle 2: grow 2, prune 3: 4.25.
  // Cycle 3: grow 7, prune 6 (1.5 < 2): 5.5. Cycle 4: grow 5, prune 4: 8.5. Cycle 5: list used up.
  // The sign never flips, yet |e| grows at every swap: the N:M rule ignores the sign of the partner.
  const weights = Float32Array.of(1, 2, 0.5, 3, 2, -1, 1.5, 0.25);
  const stats = { sqNorm: ones(8), mean: ones(8), variance: ones(8) };
  const mask = nmMask(weights.map(Math.abs), 1, 8, 2, 4);
  assert.deepEqual(prunedColumns(mask), [0, 2, 5, 7]);
  const result = dsnot(weights, mask, stats, 1, 8, { pattern: { n: 2, m: 4 } });
  assert.deepEqual(prunedColumns(result.mask), [1, 3, 4, 6]);
  assert.equal(result.swaps, 4);
  assert.equal(result.cyclesRun, 5);
  assert.equal(result.errorAfter[0], 8.5);

  // With W₁ = −2 the first partner has c = −2: e would become 0.75 − 2 − 1 < 0, refused.
  const flipped = Float32Array.of(1, -2, 0.5, 3, 2, -1, 1.5, 0.25);
  const refused = dsnot(flipped, mask, stats, 1, 8, { pattern: { n: 2, m: 4 } });
  assert.equal(refused.swaps, 0);
  assert.equal(refused.cyclesRun, 1);
});

test('unstructured: every row keeps its count; reported errors match the mask', () => {
  const dOut = 40, dIn = 96;
  for (const seed of [1, 2, 3]) {
    const { weights, stats, wanda } = randomLayer(dOut, dIn, seed);
    for (const sparsity of [0.5, 0.7]) {
      const mask = perRowMask(wanda, dOut, dIn, sparsity);
      const result = dsnot(weights, mask, stats, dOut, dIn, { updateThreshold: 0.05 });
      assert.ok(result.swaps > 0);
      assert.deepEqual(rowCounts(result.mask, dOut, dIn), rowCounts(mask, dOut, dIn));
      const before = rowErrors(weights, mask, stats.mean, dOut, dIn);
      const after = rowErrors(weights, result.mask, stats.mean, dOut, dIn);
      for (let i = 0; i < dOut; i++) {
        assert.ok(Math.abs(result.errorBefore[i] - before[i]) < 1e-9);
        assert.ok(Math.abs(result.errorAfter[i] - after[i]) < 1e-9);
      }
    }
  }
});

test('N:M: the pattern stays exactly n:m, counts kept, the error never changes sign', () => {
  const dOut = 32, dIn = 64;
  for (const [n, m] of [[2, 4], [4, 8], [1, 4]]) {
    const { weights, stats, wanda } = randomLayer(dOut, dIn, 10 + n * m);
    const mask = nmMask(wanda, dOut, dIn, n, m);
    const result = dsnot(weights, mask, stats, dOut, dIn, { pattern: { n, m }, updateThreshold: 0.01 });
    assert.ok(result.swaps > 0, `${n}:${m} made no swap`);
    for (let g = 0; g < dOut * dIn; g += m) {
      assert.equal(result.mask.subarray(g, g + m).reduce((a, b) => a + b, 0), n);
    }
    const after = rowErrors(weights, result.mask, stats.mean, dOut, dIn);
    for (let i = 0; i < dOut; i++) {
      assert.ok(Math.abs(result.errorAfter[i] - after[i]) < 1e-9);
      if (result.errorAfter[i] !== result.errorBefore[i]) {
        assert.equal(Math.sign(result.errorAfter[i]), Math.sign(result.errorBefore[i]));
      }
    }
  }
});

test('rows with |e₀| ≤ τ are left alone', () => {
  const dOut = 30, dIn = 64;
  const { weights, stats, wanda } = randomLayer(dOut, dIn, 77);
  const mask = perRowMask(wanda, dOut, dIn, 0.5);
  const before = rowErrors(weights, mask, stats.mean, dOut, dIn);
  const tau = [...before].map(Math.abs).sort((a, b) => a - b)[15]; // half the rows at or under τ
  const result = dsnot(weights, mask, stats, dOut, dIn, { updateThreshold: tau });
  for (let i = 0; i < dOut; i++) {
    if (Math.abs(before[i]) <= tau) {
      assert.deepEqual([...result.mask.subarray(i * dIn, (i + 1) * dIn)], [...mask.subarray(i * dIn, (i + 1) * dIn)]);
    }
  }
});

test('what the rule guarantees: with the sign check and enough opposite-signed kept weights, |e| falls', () => {
  // Precondition of the guarantee (see dsnot.ts): each row keeps ≥ maxCycles weights whose c has
  // the sign opposite to e₀. Then every swap grows a weight with c of e's sign and prunes one of
  // the opposite sign, and the sign check forbids overshoot: |e| strictly decreases.
  const dOut = 48, dIn = 512, maxCycles = 50;
  const { weights, stats, wanda } = randomLayer(dOut, dIn, 5);
  const mask = perRowMask(wanda, dOut, dIn, 0.5);
  const result = dsnot(weights, mask, stats, dOut, dIn, { withoutSameSign: false, maxCycles, updateThreshold: 0.01 });
  let rowsChanged = 0;
  for (let i = 0; i < dOut; i++) {
    let opposite = 0;
    for (let j = 0; j < dIn; j++) {
      const c = weights[i * dIn + j] * stats.mean[j];
      if (!mask[i * dIn + j] && Math.sign(c) === -Math.sign(result.errorBefore[i])) opposite++;
    }
    assert.ok(opposite >= maxCycles, 'precondition');
    const changed = result.mask.subarray(i * dIn, (i + 1) * dIn).some((v, j) => v !== mask[i * dIn + j]);
    if (changed) {
      rowsChanged++;
      assert.ok(Math.abs(result.errorAfter[i]) < Math.abs(result.errorBefore[i]), `row ${i}`);
      assert.equal(Math.sign(result.errorAfter[i]), Math.sign(result.errorBefore[i]));
    }
  }
  assert.ok(rowsChanged > dOut / 2);
});

test('without the sign check (the default) |e| can end larger than it started', () => {
  // Not a bug in crepe: the reference's rule accepts any swap while |e| > τ (the hand example
  // above goes 1 → −2 → 2 → −1). Random layers show it too.
  const dOut = 64, dIn = 128;
  const { weights, stats, wanda } = randomLayer(dOut, dIn, 9);
  const result = dsnot(weights, perRowMask(wanda, dOut, dIn, 0.5), stats, dOut, dIn);
  let grew = 0;
  for (let i = 0; i < dOut; i++) if (Math.abs(result.errorAfter[i]) > Math.abs(result.errorBefore[i])) grew++;
  assert.ok(grew > 0);
});
