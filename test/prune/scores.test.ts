import { test } from 'node:test';
import assert from 'node:assert/strict';
import { perRowMask } from '../../src/prune/mask.ts';
import { crepeScores } from '../../src/prune/scores/crepe.ts';
import { METHODS, METHOD_NAMES, requiredStatistics, scoreMatrix } from '../../src/prune/methods.ts';
import { magnitudeScores } from '../../src/prune/scores/magnitude.ts';
import { riaScores } from '../../src/prune/scores/ria.ts';
import { wandaScores } from '../../src/prune/scores/wanda.ts';
import { FieldError } from '../../src/util/errors.ts';
import { randomMatrix, randomSqNorms } from '../helpers/random.ts';

// W = [[1, -2, 3], [-4, 0, 6]], s = [4, 1, 9] → ‖X_j‖ ∝ sqrt(s) = [2, 1, 3].
// Column sums of |W|: C = [5, 2, 9]; row sums: R = [6, 10].
const W = Float32Array.from([1, -2, 3, -4, 0, 6]);
const SQ_NORMS = Float32Array.from([4, 1, 9]);

function assertClose(actual: Float32Array, expected: number[], relative = 1e-6): void {
  assert.equal(actual.length, expected.length);
  for (let p = 0; p < expected.length; p++) {
    assert.ok(Math.abs(actual[p] - expected[p]) <= relative * Math.abs(expected[p]) + 1e-12, `entry ${p}: ${actual[p]} vs ${expected[p]}`);
  }
}

test('magnitude: |W|', () => {
  assert.deepEqual(magnitudeScores(W, 2, 3), Float32Array.from([1, 2, 3, 4, 0, 6]));
});

test('wanda: |W|·sqrt(s_j)', () => {
  assert.deepEqual(wandaScores(W, 2, 3, SQ_NORMS), Float32Array.from([2, 2, 9, 8, 0, 18]));
});

test('ria: (|W|/C_j + |W|/R_i)·sqrt(s_j)^a, by hand, a = 0.5 and a = 1', () => {
  const act = [Math.SQRT2, 1, Math.sqrt(3)]; // sqrt(sqrt(s))
  assertClose(riaScores(W, 2, 3, SQ_NORMS), [
    (1 / 5 + 1 / 6) * act[0], (2 / 2 + 2 / 6) * act[1], (3 / 9 + 3 / 6) * act[2],
    (4 / 5 + 4 / 10) * act[0], 0, (6 / 9 + 6 / 10) * act[2],
  ]);
  assertClose(riaScores(W, 2, 3, SQ_NORMS, { a: 1 }), [
    (1 / 5 + 1 / 6) * 2, (2 / 2 + 2 / 6) * 1, (3 / 9 + 3 / 6) * 3,
    (4 / 5 + 4 / 10) * 2, 0, (6 / 9 + 6 / 10) * 3,
  ]);
});

test('ria: an all-zero row or column scores 0, not NaN; a dead input channel scores 0', () => {
  const weights = Float32Array.from([0, 0, 0, 1, 0, 2]); // row 0 zero, column 1 zero
  const scores = riaScores(weights, 2, 3, Float32Array.from([1, 1, 0]));
  assert.deepEqual(scores, Float32Array.from([0, 0, 0, 1 / 1 + 1 / 3, 0, 0]));
  assert.ok(scores.every((v) => Number.isFinite(v)));
});

test('ria with only the row term and a = 1 reproduces Wanda\'s per-row ranking', () => {
  const dOut = 24;
  const dIn = 40;
  const weights = randomMatrix(dOut * dIn, 7);
  const sqNorms = randomSqNorms(dIn, 8);
  const rowOnly = crepeScores(weights, dOut, dIn, sqNorms, { alpha: 1, beta: 0, gamma: 0, a: 1 });
  const wanda = wandaScores(weights, dOut, dIn, sqNorms);
  for (const s of [0.3, 0.5, 0.7]) assert.deepEqual(perRowMask(rowOnly, dOut, dIn, s), perRowMask(wanda, dOut, dIn, s));
});

test('registry: default selections, statistics, scoreMatrix, unknown method', () => {
  assert.deepEqual(METHOD_NAMES, ['magnitude', 'wanda', 'sparsegpt', 'ria', 'crepe']);
  assert.equal(METHODS.wanda.defaultSelection, 'per-row');
  assert.equal(METHODS.ria.defaultSelection, 'per-matrix');
  assert.equal(METHODS.magnitude.defaultSelection, 'per-matrix');
  assert.equal(METHODS.crepe.defaultSelection, 'per-matrix');
  assert.equal(METHODS.sparsegpt.defaultSelection, 'per-matrix');
  assert.deepEqual(METHODS.magnitude.statistics, []);
  assert.deepEqual(METHODS.wanda.statistics, ['sqnorm']);
  assert.deepEqual(METHODS.sparsegpt.statistics, ['gram']);
  assert.equal(METHODS.sparsegpt.score, null);
  assert.throws(() => scoreMatrix('sparsegpt', W, 2, 3, null), /no score function/);
  assert.deepEqual(scoreMatrix('magnitude', W, 2, 3, null), magnitudeScores(W, 2, 3));
  assert.deepEqual(scoreMatrix('ria', W, 2, 3, SQ_NORMS, { riaA: 1 }), riaScores(W, 2, 3, SQ_NORMS, { a: 1 }));
  assert.deepEqual(scoreMatrix('crepe', W, 2, 3, SQ_NORMS, { crepe: { k: 1, gamma: 1 } }), crepeScores(W, 2, 3, SQ_NORMS, { k: 1, gamma: 1 }));
  assert.throws(() => scoreMatrix('obs' as never, W, 2, 3, null), (error: unknown) =>
    error instanceof FieldError && error.field === 'method' && error.problem === '"obs" is unknown; expected one of magnitude, wanda, sparsegpt, ria, crepe');
  assert.throws(() => scoreMatrix('toString' as never, W, 2, 3, null), FieldError);
  for (const a of [Number.NaN, -0.1, 4.5, Number.POSITIVE_INFINITY]) {
    assert.throws(() => riaScores(W, 2, 3, SQ_NORMS, { a }), (e: unknown) => e instanceof FieldError && e.field === 'riaA' && /in \[0, 4\]/.test(e.problem), String(a));
  }
  assert.deepEqual(riaScores(W, 2, 3, SQ_NORMS, { a: 4 }).length, 6);
});

test('a reused output buffer gives the same scores as a fresh one', () => {
  const weights = randomMatrix(12 * 20, 51);
  const sqNorms = randomSqNorms(20, 52);
  for (const [method, params] of [['magnitude', {}], ['wanda', {}], ['ria', {}], ['crepe', { crepe: { k: 3, gamma: 0.1 } }], ['crepe', { crepe: { k: 3, gamma: 0.1, variant: 'smooth' as const } }]] as const) {
    const out = new Float32Array(12 * 20).fill(NaN);
    const reused = scoreMatrix(method, weights, 12, 20, sqNorms, params, out);
    assert.equal(reused, out);
    assert.deepEqual(reused, scoreMatrix(method, weights, 12, 20, sqNorms, params));
  }
});

test('requiredStatistics: the method\'s statistics plus those of OWL, DSnoT and reconstruction', () => {
  const run = (method: keyof typeof METHODS, passes: { owl?: boolean; dsnot?: boolean; reconstruct?: boolean } = {}) =>
    [...requiredStatistics({ method, owl: passes.owl ? {} : null, dsnot: passes.dsnot ? {} : null, reconstruct: Boolean(passes.reconstruct) })].sort();
  assert.deepEqual(run('magnitude'), []);
  assert.deepEqual(run('magnitude', { owl: true }), ['sqnorm']);
  assert.deepEqual(run('wanda'), ['sqnorm']);
  assert.deepEqual(run('ria', { dsnot: true }), ['moments', 'sqnorm']);
  assert.deepEqual(run('crepe', { reconstruct: true }), ['gram', 'sqnorm']);
  assert.deepEqual(run('sparsegpt'), ['gram']);
  assert.deepEqual(run('sparsegpt', { owl: true }), ['gram', 'sqnorm']);
});

test('every score function refuses weights, statistics or an output buffer of another shape, naming the argument', () => {
  // W is 2×3 with 3 input norms. Unchecked, these would be plain Errors (or, for `out`, scores
  // written to a buffer of another size), and dOut NaN would score nothing.
  const refusal = (field: string, problem: string) => (e: unknown) => e instanceof FieldError && e.field === field && e.problem === problem && e.message === `${field} ${problem}`;
  const scorers: Array<[string, (weights: Float32Array, dOut: number, dIn: number, norms: Float32Array | null, out?: Float32Array) => Float32Array]> = [
    ['magnitude', (w, o, i, _n, out) => magnitudeScores(w, o, i, out)],
    ['wanda', (w, o, i, n, out) => wandaScores(w, o, i, n, out)],
    ['ria', (w, o, i, n, out) => riaScores(w, o, i, n, {}, out)],
    ['crepe', (w, o, i, n, out) => crepeScores(w, o, i, n, { k: 1, gamma: 1 }, out)],
  ];
  for (const [method, score] of scorers) {
    assert.throws(() => score(W, 3, 3, SQ_NORMS), refusal('weights', 'must be a Float32Array of dOut×dIn = 3×3 = 9 weights, got 6 entries'), method);
    assert.throws(() => score(Array.from(W) as never, 2, 3, SQ_NORMS), refusal('weights', 'must be a Float32Array of dOut×dIn = 2×3 = 6 weights, got an array [1, -2, 3, -4, 0, 6]'), method);
    assert.throws(() => score(Float64Array.from(W) as never, 2, 3, SQ_NORMS), refusal('weights', 'must be a Float32Array of dOut×dIn = 2×3 = 6 weights, got a Float64Array of 6 entries'), method);
    assert.throws(() => score(W, Number.NaN, 3, SQ_NORMS), refusal('dOut', 'must be an integer ≥ 1, got NaN'), method);
    assert.throws(() => score(W, 2, 3, SQ_NORMS, new Float32Array(5)), refusal('out', 'must be a Float32Array of dOut×dIn = 2×3 = 6 scores, got 5 entries'), method);
    if (method === 'magnitude') continue;
    assert.throws(() => score(W, 2, 3, SQ_NORMS.subarray(0, 2)), refusal('inputSqNorms', `must hold one squared input norm per input channel (dIn = 3) for ${method}, got 2 entries`), method);
    assert.throws(() => score(W, 2, 3, null), refusal('inputSqNorms', `must hold one squared input norm per input channel (dIn = 3) for ${method}, got null`), method);
  }
  // The same matrix viewed as 3×2 with 2 norms is well formed.
  assert.equal(wandaScores(W, 3, 2, SQ_NORMS.subarray(0, 2)).length, 6);
});
