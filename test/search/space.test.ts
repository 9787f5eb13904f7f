// The search space: (log β/α, log γ/α[, a]) with α = 1, clipped to a box.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clip, dimension, EXPONENT_RANGE, LOG_RATIO_RANGE, startParams, startPoint, toParams, type SearchSpace } from '../../src/search/space.ts';

const fixedA: SearchSpace = { searchA: false, fixedA: 0.5, variant: 'normalized' };
const searchedA: SearchSpace = { searchA: true, fixedA: 0.25, variant: 'smooth' };

test('toParams([0, 0]) is β = γ = α = 1 with the fixed a, the given k and variant, zero border', () => {
  assert.deepEqual(toParams([0, 0], 7, fixedA), { k: 7, alpha: 1, beta: 1, gamma: 1, a: 0.5, variant: 'normalized', border: 'zero' });
});

test('coordinates are log-ratios: β = e^x0, γ = e^x1', () => {
  const p = toParams([1, -2], 3, fixedA);
  assert.equal(p.beta, Math.E);
  assert.equal(p.gamma, Math.exp(-2));
  assert.equal(p.alpha, 1);
});

test('log-ratios are clipped to LOG_RATIO_RANGE = [−12, 6]', () => {
  assert.deepEqual(LOG_RATIO_RANGE, [-12, 6]);
  const p = toParams([100, -100], 1, fixedA);
  assert.equal(p.beta, Math.exp(6));
  assert.equal(p.gamma, Math.exp(-12));
  const q = toParams([-13, 6.5], 1, fixedA);
  assert.equal(q.beta, Math.exp(-12));
  assert.equal(q.gamma, Math.exp(6));
  // Just inside the box: unchanged.
  assert.equal(toParams([5.999, -11.999], 1, fixedA).beta, Math.exp(5.999));
  assert.equal(toParams([5.999, -11.999], 1, fixedA).gamma, Math.exp(-11.999));
});

test('a comes from x[2] only when searchA, clipped to EXPONENT_RANGE = [0, 1.5]', () => {
  assert.deepEqual(EXPONENT_RANGE, [0, 1.5]);
  assert.equal(toParams([0, 0, 0.7], 3, searchedA).a, 0.7);
  assert.equal(toParams([0, 0, 5], 3, searchedA).a, 1.5);
  assert.equal(toParams([0, 0, -1], 3, searchedA).a, 0);
  assert.equal(toParams([0, 0, 0.7], 3, fixedA).a, 0.5, 'x[2] is ignored when a is not searched');
  assert.equal(toParams([0, 0, 0.7], 3, searchedA).variant, 'smooth');
});

test('dimension and start point: 2-D (0, 0) or 3-D (0, 0, fixedA)', () => {
  assert.equal(dimension(fixedA), 2);
  assert.equal(dimension(searchedA), 3);
  assert.deepEqual(startPoint(fixedA), Float64Array.from([0, 0]));
  assert.deepEqual(startPoint(searchedA), Float64Array.from([0, 0, 0.25]));
});

test('startParams: the start at its own k (the default 3, or a given configuration\'s) when searched, else the nearest searched k, the smaller on a tie', () => {
  const defaultStart = { k: 3, alpha: 1, beta: 1, gamma: 1, a: 0.5, variant: 'normalized', border: 'zero' };
  assert.deepEqual(startParams(fixedA, [1, 3, 5, 7, 9]), defaultStart);
  assert.deepEqual(startParams(fixedA, [1, 9]), { ...defaultStart, k: 1 });
  assert.deepEqual(startParams(fixedA, [5, 1]), { ...defaultStart, k: 1 });
  assert.deepEqual(startParams(fixedA, [7, 9]), { ...defaultStart, k: 7 });
  const given = { k: 7, alpha: 2, beta: 2 * Math.E, gamma: 2, a: 0.75, variant: 'smooth' as const, border: 'zero' as const };
  // Ratios to α as the search's coordinates, a and the variant from the space.
  assert.deepEqual(startParams(fixedA, [1, 7], given), { ...defaultStart, k: 7, beta: Math.E });
  assert.deepEqual(startParams(fixedA, [3, 9], given), { ...defaultStart, k: 9, beta: Math.E });
});

test('clip', () => {
  assert.equal(clip(-3, [-1, 2]), -1);
  assert.equal(clip(3, [-1, 2]), 2);
  assert.equal(clip(0.5, [-1, 2]), 0.5);
});
