import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NotPositiveDefiniteError, choleskyInverseUpper, choleskyInverseUpperBlocked } from '../../src/engine/cholesky.ts';
import { randomNormal, seededRandom } from '../helpers/random.ts';
import { relativeError } from '../helpers/relative-error.ts';

/**
 * A Hessian like SparseGPT's: the gram of correlated activations (a shared low-rank part plus
 * per-channel noise with spread-out scales) over `tokens` tokens, plus 1 % dampening.
 */
function correlatedHessian(d: number, tokens: number, seed: number): Float64Array {
  const random = seededRandom(seed);
  const rank = 8;
  const mixing = Float64Array.from({ length: d * rank }, () => randomNormal(random));
  const scales = Float64Array.from({ length: d }, () => Math.exp(2 * random() - 1));
  const x = new Float64Array(d);
  const latent = new Float64Array(rank);
  const H = new Float64Array(d * d);
  for (let t = 0; t < tokens; t++) {
    for (let k = 0; k < rank; k++) latent[k] = randomNormal(random);
    for (let i = 0; i < d; i++) {
      let shared = 0;
      for (let k = 0; k < rank; k++) shared += mixing[i * rank + k] * latent[k];
      x[i] = scales[i] * (shared + 0.5 * randomNormal(random));
    }
    for (let i = 0; i < d; i++) for (let j = 0; j <= i; j++) H[i * d + j] += x[i] * x[j];
  }
  let diagonalSum = 0;
  for (let i = 0; i < d; i++) for (let j = 0; j < i; j++) H[j * d + i] = H[i * d + j];
  for (let i = 0; i < d; i++) diagonalSum += H[i * d + i];
  for (let i = 0; i < d; i++) H[i * d + i] += (0.01 * diagonalSum) / d;
  return H;
}

const D = 300; // panels of 64: four full panels and a partial one

test('blocked ORT Cholesky chain (float64 GEMMs) equals the in-process one to 1e-9 across panel boundaries', async () => {
  const H = correlatedHessian(D, 400, 1);
  const expected = choleskyInverseUpper(H, D);
  for (const panel of [64, 100, 300]) {
    const actual = await choleskyInverseUpperBlocked(Float64Array.from(H), D, { panel, minOrtWidth: 1, precision: 'float64' });
    assert.ok(relativeError(actual, expected) < 1e-9, `panel ${panel}: ${relativeError(actual, expected)}`);
    for (let i = 0; i < D; i++) for (let j = 0; j < i; j++) assert.equal(actual[i * D + j], 0, 'upper triangular');
  }
});

test('blocked ORT Cholesky chain with float32 GEMMs stays within 1e-4 (relative to the largest entry)', async () => {
  const H = correlatedHessian(D, 400, 2);
  const expected = choleskyInverseUpper(H, D);
  const actual = await choleskyInverseUpperBlocked(Float64Array.from(H), D, { panel: 64, minOrtWidth: 1, precision: 'float32' });
  const error = relativeError(actual, expected);
  assert.ok(error < 1e-4, `float32: ${error}`);
  assert.ok(error > 1e-12, 'the float32 path really ran in float32');
});

test('below the threshold the blocked entry point is the in-process path, bit for bit', async () => {
  const H = correlatedHessian(40, 60, 3);
  assert.deepEqual(await choleskyInverseUpperBlocked(Float64Array.from(H), 40), choleskyInverseUpper(H, 40));
});

test('blocked ORT Cholesky refuses a matrix that is not positive definite, naming the global pivot', async () => {
  // Identity with a 2×2 indefinite block at rows 70–71: the failure is in the second panel.
  const d = 100;
  const H = new Float64Array(d * d);
  for (let i = 0; i < d; i++) H[i * d + i] = 1;
  H[70 * d + 71] = 2;
  H[71 * d + 70] = 2;
  await assert.rejects(
    () => choleskyInverseUpperBlocked(H, d, { panel: 16, minOrtWidth: 1 }),
    // The factorization runs on the reversed matrix: rows 70–71 become 28–29.
    (error: unknown) => error instanceof NotPositiveDefiniteError && error.pivotIndex === 29,
  );
});
