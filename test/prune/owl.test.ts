import { test } from 'node:test';
import assert from 'node:assert/strict';
import { outlierRatio, owlNMPerLayer, owlSparsities, roundHalfToEven, validateOwl } from '../../src/prune/owl.ts';
import { FieldError, UserError } from '../../src/util/errors.ts';

const namesLambda = (e: unknown) => e instanceof FieldError && e.field === 'owl.lambda';

const close = (a: number, b: number, tol = 1e-12) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

test('outlier ratio over the whole block, strictly above M × mean', () => {
  // Values 1×8, 2, 30 over two arrays: mean = (8 + 2 + 30)/10 = 4; M = 5 → threshold 20.
  // Only 30 is above it: 100 · 1/10 = 10 %.
  const block = [Float32Array.of(1, 1, 1, 1, 30), Float32Array.of(1, 1, 1, 1, 2)];
  assert.equal(outlierRatio(block, 5), 10);
  // M = 0.5 → threshold 2: 30 is above, 2 is not (strict): still 10 %.
  assert.equal(outlierRatio(block, 0.5), 10);
  // M = 0.25 → threshold 1: 30 and 2 → 20 %.
  assert.equal(outlierRatio(block, 0.25), 20);
});

test('sparsities average to the target and span exactly 2λ', () => {
  const ratios = [3.1, 0.4, 7.9, 5.5, 2.2, 0.4, 6.0, 1.7];
  for (const [target, lambda] of [[0.5, 0.08], [0.7, 0.1], [0.6, 0.02]]) {
    const s = owlSparsities(ratios, target, lambda);
    assert.equal(s.length, ratios.length);
    close(s.reduce((a, b) => a + b, 0) / s.length, target);
    close(Math.max(...s) - Math.min(...s), 2 * lambda);
    // The layer with the most outliers is pruned least, the one with the fewest most.
    assert.equal(s.indexOf(Math.min(...s)), 2);
    close(s[1], Math.max(...s));
  }
});

test('hand example: three layers', () => {
  // D = 0, 5, 10 → r = 0, 0.08, 0.16 (λ = 0.08), mean r = 0.08 → sparsity 0.58, 0.50, 0.42.
  const s = owlSparsities([0, 5, 10], 0.5, 0.08);
  close(s[0], 0.58);
  close(s[1], 0.5);
  close(s[2], 0.42);
});

test('all-equal ratios give the uniform target (the reference divides by zero)', () => {
  assert.deepEqual(owlSparsities([2.5, 2.5, 2.5], 0.6, 0.08), [0.6, 0.6, 0.6]);
  assert.deepEqual(owlNMPerLayer([1, 1], 2, 4, 2), [2, 2]);
});

test('λ outside (0, target) is refused naming owl.lambda', () => {
  for (const lambda of [0, -0.1, 0.5, 0.6, Number.NaN]) {
    assert.throws(() => owlSparsities([1, 2, 3], 0.5, lambda), namesLambda);
    assert.throws(() => validateOwl({ m: 5, lambda }, { kind: 'unstructured', sparsity: 0.5 }), namesLambda);
  }
  assert.throws(() => validateOwl({ m: 5, lambda: 0.6 }, { kind: 'unstructured', sparsity: 0.5 }), { message: 'owl.lambda must be in (0, 0.5) for sparsity 0.5, got 0.6' });
  validateOwl({ m: 5, lambda: 0.08 }, { kind: 'unstructured', sparsity: 0.5 });
  // N:M: any positive λ passes here; whether it fits shows only per layer (owlNMPerLayer).
  validateOwl({ m: 5, lambda: 6 }, { kind: 'nm', n: 2, m: 4 });
  for (const lambda of [0, -1, Number.NaN]) assert.throws(() => validateOwl({ m: 5, lambda }, { kind: 'nm', n: 2, m: 4 }), namesLambda);
  for (const m of [0, -1, Number.POSITIVE_INFINITY]) {
    assert.throws(() => validateOwl({ m, lambda: 0.08 }, { kind: 'unstructured', sparsity: 0.5 }), (e: unknown) => e instanceof FieldError && e.field === 'owl.m');
  }
});

test('a mapping that produces a sparsity ≤ 0 or ≥ 1 is refused', () => {
  // One outlier layer among ten: r = 2λ for it, 0 for the rest, mean 0.2λ; with λ = 0.25 and
  // S = 0.3 its sparsity is 0.3 − 0.45 = −0.15 although λ < S.
  const ratios = [9, 0, 0, 0, 0, 0, 0, 0, 0, 0];
  assert.throws(() => owlSparsities(ratios, 0.3, 0.25), namesLambda);
  // The mirror case: one quiet layer at S = 0.9, λ = 0.2 → 0.9 + 0.36 ≥ 1.
  assert.throws(() => owlSparsities([0, 9, 9, 9, 9, 9, 9, 9, 9, 9], 0.9, 0.2), namesLambda);
});

test('N:M per layer: hand example and the allowed range', () => {
  // D = 0, 1, 2, 3 → r = 0, 2/3, 4/3, 2 (λ = 2) → minus mean 1 → −1, −1/3, 1/3, 1 → round −1, 0, 0, 1
  // → n = 5 − r = 6, 5, 5, 4 for 5:8.
  assert.deepEqual(owlNMPerLayer([0, 1, 2, 3], 5, 8, 2), [6, 5, 5, 4]);
  // λ = 6 on 2:4 would give n = 2 ± 3: refused.
  assert.throws(() => owlNMPerLayer([0, 1, 2, 3], 2, 4, 6), namesLambda);
  assert.throws(() => owlNMPerLayer([0, 1], 2, 4, 0), UserError);
});

test('round half to even, as numpy', () => {
  assert.deepEqual([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.49, -0.51].map(roundHalfToEven), [-2, -2, 0, 0, 2, 2, 0, -1]);
});
