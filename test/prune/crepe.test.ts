import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nmMask, perMatrixMask, perRowMask } from '../../src/prune/mask.ts';
import { crepeScores, resolveCrepeParams, type CrepeParams } from '../../src/prune/scores/crepe.ts';
import { forEachWindowSumRow, KERNELS, prefixWeightedRange } from '../../src/util/kernels.ts';
import { relativeImportanceSetup, riaScores } from '../../src/prune/scores/ria.ts';
import { FieldError, UserError } from '../../src/util/errors.ts';
import { randomMatrix, randomSqNorms } from '../helpers/random.ts';

// A 3×4 matrix with A = |W| = 1…12.
const W34 = Float32Array.from([1, -2, 3, -4, 5, 6, -7, 8, 9, -10, 11, 12]);
const ONES4 = new Float32Array(4).fill(1);

function windowSums(values: Float32Array | number[], dOut: number, dIn: number, k: number): number[] {
  const out: number[] = [];
  forEachWindowSumRow(
    dOut,
    dIn,
    k,
    (p, row) => {
      for (let j = 0; j < dIn; j++) row[j] = Math.abs(values[p * dIn + j]);
    },
    (_i, sums) => out.push(...sums),
  );
  return out;
}

/** The window sum by its definition: O(k²) per cell. */
function naiveWindowSums(values: Float32Array, dOut: number, dIn: number, k: number): { sums: number[]; counts: number[] } {
  const r = (k - 1) / 2;
  const sums: number[] = [];
  const counts: number[] = [];
  for (let i = 0; i < dOut; i++) {
    for (let j = 0; j < dIn; j++) {
      let sum = 0;
      let count = 0;
      for (let p = i - r; p <= i + r; p++) {
        for (let q = j - r; q <= j + r; q++) {
          if (p < 0 || p >= dOut || q < 0 || q >= dIn) continue;
          sum += Math.abs(values[p * dIn + q]);
          count++;
        }
      }
      sums.push(sum);
      counts.push(count);
    }
  }
  return { sums, counts };
}

test('k = 3 window sums on a 3×4 matrix by hand: corners, borders, interior', () => {
  assert.deepEqual(windowSums(W34, 3, 4, 3), [
    14, 24, 30, 22, // top row: 1+2+5+6, 1+2+3+5+6+7, 2+3+4+6+7+8, 3+4+7+8
    33, 54, 63, 45, // middle row: full-height windows
    30, 48, 54, 38, // bottom row
  ]);
});

test('k = 1: the window is the cell itself, so B = 1 wherever A > 0 and 0 where A = 0', () => {
  assert.deepEqual(windowSums(W34, 3, 4, 1), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  const weights = Float32Array.from([0, 2, -3, 0, 5, 0]);
  const scores = crepeScores(weights, 2, 3, new Float32Array(3).fill(1), { k: 1, alpha: 0, beta: 0, gamma: 1, a: 0 });
  assert.deepEqual(scores, Float32Array.from([0, 1, 1, 0, 1, 0]));
});

test('k larger than the matrix: every window is the whole matrix (sum 78)', () => {
  for (const k of [7, 9, 25]) assert.deepEqual(windowSums(W34, 3, 4, k), new Array(12).fill(78));
  const scores = crepeScores(W34, 3, 4, ONES4, { k: 9, alpha: 0, beta: 0, gamma: 1, a: 0 });
  assert.deepEqual(scores, Float32Array.from([...Array(12).keys()].map((p) => (p + 1) / 78)));
});

test('normalized neighbourhood term B = A / window sum, zero and mean borders, by hand', () => {
  const zero = crepeScores(W34, 3, 4, ONES4, { k: 3, alpha: 0, beta: 0, gamma: 1, a: 0 });
  const expected = [1 / 14, 2 / 24, 3 / 30, 4 / 22, 5 / 33, 6 / 54, 7 / 63, 8 / 45, 9 / 30, 10 / 48, 11 / 54, 12 / 38];
  assert.deepEqual(zero, Float32Array.from(expected));
  // Mean border: the k² − count missing cells take the window's mean → B = A·count / (k²·sum).
  const mean = crepeScores(W34, 3, 4, ONES4, { k: 3, alpha: 0, beta: 0, gamma: 1, a: 0, border: 'mean' });
  const counts = [4, 6, 6, 4, 6, 9, 9, 6, 4, 6, 6, 4];
  assert.deepEqual(mean, Float32Array.from(expected.map((b, p) => (b * counts[p]) / 9)));
});

test('the full CRePE score (α·P + β·Q + γ·B)·x^a on the 3×4 matrix by hand', () => {
  const sqNorms = Float32Array.from([1, 4, 9, 16]); // x^a with a = 1 → sqrt(s) = [1, 2, 3, 4]
  const scores = crepeScores(W34, 3, 4, sqNorms, { k: 3, alpha: 2, beta: 0.5, gamma: 3, a: 1 });
  const rowSums = [10, 26, 42];
  const colSums = [15, 18, 21, 24];
  const windows = [14, 24, 30, 22, 33, 54, 63, 45, 30, 48, 54, 38];
  const expected: number[] = [];
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < 4; j++) {
      const a = i * 4 + j + 1;
      expected.push((0.5 * (a / colSums[j]) + 2 * (a / rowSums[i]) + 3 * (a / windows[i * 4 + j])) * (j + 1));
    }
  }
  assert.deepEqual(scores, Float32Array.from(expected));
});

test('summed-area window sums match the definition on a random 13×17 matrix for k = 1…15', () => {
  const values = randomMatrix(13 * 17, 21);
  for (const k of [1, 3, 5, 7, 9, 15]) {
    const fast = windowSums(values, 13, 17, k);
    const { sums } = naiveWindowSums(values, 13, 17, k);
    for (let p = 0; p < sums.length; p++) assert.ok(Math.abs(fast[p] - sums[p]) <= 1e-12 * sums[p], `k=${k} cell ${p}`);
  }
});

test('RIA identity: α = β = 1, γ = 0, a = 0.5 gives RIA\'s scores and masks bit for bit (64×96)', () => {
  const dOut = 64;
  const dIn = 96;
  const weights = randomMatrix(dOut * dIn, 31);
  const sqNorms = randomSqNorms(dIn, 32);
  const ria = riaScores(weights, dOut, dIn, sqNorms);
  for (const params of [
    { k: 5, alpha: 1, beta: 1, gamma: 0, a: 0.5 },
    { k: 1, alpha: 1, beta: 1, gamma: 0, a: 0.5, variant: 'smooth' as const },
    { k: 9, alpha: 1, beta: 1, gamma: 0, a: 0.5, border: 'mean' as const },
  ]) {
    const crepe = crepeScores(weights, dOut, dIn, sqNorms, params);
    assert.deepEqual(new Uint32Array(crepe.buffer), new Uint32Array(ria.buffer));
    assert.deepEqual(perMatrixMask(crepe, 0.5), perMatrixMask(ria, 0.5));
    assert.deepEqual(perRowMask(crepe, dOut, dIn, 0.6), perRowMask(ria, dOut, dIn, 0.6));
    assert.deepEqual(nmMask(crepe, dOut, dIn, 2, 4), nmMask(ria, dOut, dIn, 2, 4));
  }
});

test('normalized variant with γ > 0 equals the definition computed naively (both borders)', () => {
  const dOut = 11;
  const dIn = 14;
  const weights = randomMatrix(dOut * dIn, 41);
  weights[20] = 0; // a pruned-looking zero: B = 0 there
  const sqNorms = randomSqNorms(dIn, 42);
  const params = { k: 5, alpha: 0.7, beta: 1.3, gamma: 0.05, a: 0.4 };
  const rowSums = new Array(dOut).fill(0);
  const colSums = new Array(dIn).fill(0);
  for (let i = 0; i < dOut; i++) for (let j = 0; j < dIn; j++) {
    rowSums[i] += Math.abs(weights[i * dIn + j]);
    colSums[j] += Math.abs(weights[i * dIn + j]);
  }
  const { sums, counts } = naiveWindowSums(weights, dOut, dIn, params.k);
  for (const border of ['zero', 'mean'] as const) {
    const scores = crepeScores(weights, dOut, dIn, sqNorms, { ...params, border });
    for (let i = 0; i < dOut; i++) {
      for (let j = 0; j < dIn; j++) {
        const p = i * dIn + j;
        const a = Math.abs(weights[p]);
        let b = a === 0 ? 0 : a / sums[p];
        if (border === 'mean') b *= counts[p] / 25;
        const expected = (params.beta * (a / colSums[j]) + params.alpha * (a / rowSums[i]) + params.gamma * b) * Math.pow(Math.sqrt(sqNorms[j]), params.a);
        assert.ok(Math.abs(scores[p] - expected) <= 1e-6 * Math.abs(expected) + 1e-12, `${border} (${i},${j}) ${scores[p]} vs ${expected}`);
      }
    }
  }
});

test('smooth variant on a 2×2 matrix by hand: (αP + βQ)·x^a + γ·BoxMean[(P + Q)·x^a]', () => {
  // P = [[1/3, 2/3], [3/7, 4/7]], Q = [[1/4, 2/6], [3/4, 4/6]]; Σ(P + Q) = 2 + 2 = 4, x^a = 1.
  // k = 3 covers the whole 2×2 matrix from every cell: box sum 4, zero border divides by 9, mean by 4.
  const weights = Float32Array.from([1, 2, 3, 4]);
  const ones = Float32Array.from([1, 1]);
  const base = [2 / 3 + 1 / 4, 4 / 3 + 2 / 6, 6 / 7 + 3 / 4, 8 / 7 + 4 / 6]; // 2P + Q
  const params = { k: 3, alpha: 2, beta: 1, gamma: 0.5, a: 0.5, variant: 'smooth' as const };
  const zero = crepeScores(weights, 2, 2, ones, params);
  assert.deepEqual(zero, Float32Array.from(base.map((v) => v + (0.5 * 4) / 9)));
  const mean = crepeScores(weights, 2, 2, ones, { ...params, border: 'mean' });
  assert.deepEqual(mean, Float32Array.from(base.map((v) => v + 0.5)));
});

test('parameter validation: k even or < 1, negative, all-zero or non-finite coefficients, bad variant', () => {
  const bad: Partial<CrepeParams>[] = [
    { k: 2 },
    { k: 0 },
    { k: -3 },
    { k: 2.5 },
    { alpha: -1 },
    { gamma: -0.1 },
    { beta: Infinity },
    { alpha: NaN },
    { alpha: 0, beta: 0, gamma: 0 },
    { a: NaN },
    { variant: 'box' as CrepeParams['variant'] },
    { border: 'reflect' as CrepeParams['border'] },
  ];
  for (const params of bad) {
    assert.throws(() => crepeScores(W34, 3, 4, ONES4, params), UserError, JSON.stringify(params));
  }
  assert.throws(() => resolveCrepeParams({ k: 4 }, 'found.json'), /found\.json: k .* odd integer in \[1, 63\], got 4/);
  assert.throws(() => resolveCrepeParams({ k: 65 }, 'found.json'), /found\.json: k .* odd integer in \[1, 63\], got 65/);
  assert.throws(() => resolveCrepeParams({ beta: -1 }, { field: 'crepe' }), (e: unknown) => e instanceof FieldError && e.field === 'crepe.beta' && /must be a finite number ≥ 0, got -1/.test(e.problem));
  assert.deepEqual(resolveCrepeParams({ k: 63 }).k, 63);
  assert.throws(() => resolveCrepeParams({ alpha: 0, beta: 0, gamma: 0 }), /all zero/);
  assert.deepEqual(resolveCrepeParams({ gamma: 2, k: undefined }), { k: 3, alpha: 1, beta: 1, gamma: 2, a: 0.5, variant: 'normalized', border: 'zero' });
});

test('CRePE scores split over columns into 2, 3 or 8 parts are the same bits as one part (both variants and borders, k = 1…9)', () => {
  for (const [dOut, dIn] of [[9, 5], [17, 23], [6, 40]]) {
    const weights = randomMatrix(dOut * dIn, dOut + dIn);
    weights[3] = 0;
    const setup = relativeImportanceSetup(weights, dOut, dIn, randomSqNorms(dIn, dIn), 1.25);
    for (const smooth of [false, true]) for (const meanBorder of [false, true]) for (const k of [1, 3, 5, 9]) {
      const args = { weights, ...setup, k, alpha: 1, beta: 0.7, gamma: 0.3, smooth, meanBorder };
      const whole = new Float32Array(dOut * dIn).fill(Number.NaN);
      KERNELS.crepeNeighbourhoodScores({ ...args, out: whole }, 0, 1);
      assert.ok(whole.every(Number.isFinite), 'every score written');
      for (const parts of [2, 3, 8]) {
        const split = new Float32Array(dOut * dIn).fill(Number.NaN);
        for (let part = 0; part < parts; part++) KERNELS.crepeNeighbourhoodScores({ ...args, out: split }, part, parts);
        assert.deepEqual(new Uint32Array(split.buffer), new Uint32Array(whole.buffer), `${dOut}×${dIn} k=${k} smooth=${smooth} mean=${meanBorder} parts=${parts}`);
      }
    }
  }
});

test('window sums of a column range equal those of the whole row; the row is filled only as far as the range needs', () => {
  const values = randomMatrix(11 * 19, 5);
  for (const k of [1, 3, 7]) {
    const whole = windowSums(values, 11, 19, k);
    for (const [c0, c1] of [[0, 4], [4, 13], [13, 19]]) {
      let widest = 0;
      forEachWindowSumRow(11, 19, k, (p, row, end) => {
        widest = Math.max(widest, end);
        for (let j = 0; j < end; j++) row[j] = Math.abs(values[p * 19 + j]);
      }, (i, sums) => {
        for (let j = c0; j < c1; j++) assert.equal(sums[j], whole[i * 19 + j], `k=${k} (${i}, ${j})`);
      }, c0, c1);
      assert.equal(widest, Math.min(19, c1 + (k - 1) / 2));
    }
  }
});

test('prefix-weighted column parts cover the columns in order, widest first, with equal work ρ·end + (1 − ρ)·width', () => {
  assert.deepEqual(prefixWeightedRange(10, 0, 1, 0.3), [0, 10]);
  for (const [n, parts] of [[2048, 2], [2048, 8], [5, 3], [2, 8]]) {
    let previous = 0;
    const work: number[] = [];
    for (let part = 0; part < parts; part++) {
      const [start, end] = prefixWeightedRange(n, part, parts, 0.3);
      assert.equal(start, previous);
      assert.ok(end >= start);
      work.push(0.3 * end + 0.7 * (end - start));
      previous = end;
    }
    assert.equal(previous, n);
    // Rounding to whole columns moves a part's work by at most about one column.
    if (n >= 100) for (const w of work) assert.ok(Math.abs(w - work[0]) <= 1.5, `${n}/${parts}: ${work.join(', ')}`);
  }
  // 2048 columns in two parts: ρ·n / (2 − ρ) … 1205 columns for the first.
  assert.deepEqual(prefixWeightedRange(2048, 0, 2, 0.3), [0, 1205]);
});
