import { test } from 'node:test';
import assert from 'node:assert/strict';
import { symmetricEigen } from '../../src/util/linalg-small.ts';
import { Rng } from '../../src/util/rng.ts';

test('2×2 [[2, 1], [1, 2]]: eigenvalues 1 and 3 with (1, −1)/√2 and (1, 1)/√2', () => {
  const { values, vectors } = symmetricEigen(Float64Array.from([2, 1, 1, 2]), 2);
  assert.ok(Math.abs(values[0] - 1) < 1e-15 && Math.abs(values[1] - 3) < 1e-15);
  const h = Math.SQRT1_2;
  // Column 0 ∝ (1, −1), column 1 ∝ (1, 1); the sign of each column is arbitrary.
  assert.ok(Math.abs(Math.abs(vectors[0]) - h) < 1e-15 && Math.abs(vectors[0] + vectors[2]) < 1e-15);
  assert.ok(Math.abs(Math.abs(vectors[1]) - h) < 1e-15 && Math.abs(vectors[1] - vectors[3]) < 1e-15);
});

test('a diagonal matrix is returned sorted with permuted unit vectors', () => {
  const { values, vectors } = symmetricEigen(Float64Array.from([5, 0, 0, 0, -1, 0, 0, 0, 2]), 3);
  assert.deepEqual(Array.from(values), [-1, 2, 5]);
  assert.deepEqual(Array.from(vectors), [0, 0, 1, 1, 0, 0, 0, 1, 0]);
});

test('random symmetric 8×8: A = V diag(λ) Vᵀ and VᵀV = I to 1e-12', () => {
  const n = 8;
  const rng = new Rng(11);
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = i; j < n; j++) a[i * n + j] = a[j * n + i] = rng.gaussian();
  const { values, vectors } = symmetricEigen(a, n);
  for (let k = 1; k < n; k++) assert.ok(values[k - 1] <= values[k]);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let reconstructed = 0;
      let gram = 0;
      for (let k = 0; k < n; k++) {
        reconstructed += vectors[i * n + k] * values[k] * vectors[j * n + k];
        gram += vectors[k * n + i] * vectors[k * n + j];
      }
      assert.ok(Math.abs(reconstructed - a[i * n + j]) < 1e-12);
      assert.ok(Math.abs(gram - (i === j ? 1 : 0)) < 1e-12);
    }
  }
});

test('ill-conditioned covariance (eigenvalues 1e-8 … 1e8) keeps relative accuracy of the large ones', () => {
  const n = 3;
  // Rotate diag(1e-8, 1, 1e8) by a fixed orthogonal matrix.
  const c = Math.cos(0.3);
  const s = Math.sin(0.3);
  const q = [c, -s, 0, s * 0.6, c * 0.6, -0.8, s * 0.8, c * 0.8, 0.6];
  const d = [1e-8, 1, 1e8];
  const a = new Float64Array(9);
  for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 3; k++) a[i * 3 + j] += q[i * 3 + k] * d[k] * q[j * 3 + k];
  const { values } = symmetricEigen(a, n);
  assert.ok(Math.abs(values[2] / 1e8 - 1) < 1e-12);
  assert.ok(Math.abs(values[1] - 1) < 1e-7);
  assert.ok(Math.abs(values[0]) < 1e-7);
});
