import { test } from 'node:test';
import assert from 'node:assert/strict';
import { satisfiesNM } from '../../src/prune/mask.ts';
import { HessianFactors, sparsegpt, sparsegptFixedMask } from '../../src/prune/sparsegpt.ts';
import { NotPositiveDefiniteError, choleskyInverseUpper, choleskyLowerInPlace } from '../../src/engine/cholesky.ts';
import { BlockEngine } from '../../src/engine/block-engine.ts';
import { embedWindows } from '../../src/engine/forward.ts';
import { ropeTables } from '../../src/model/rope.ts';
import { LINEAR_INPUT_GROUP, LINEAR_NAMES, linearShape, type BlockWeights } from '../../src/model/spec.ts';
import { collectStatistics } from '../../src/prune/calibration-stats.ts';
import { pruneLayers } from '../../src/prune/layer-loop.ts';
import { pruneSettings } from '../../src/prune/settings.ts';
import { UserError } from '../../src/util/errors.ts';
import { randomModel, smallSpec } from '../helpers/random-model.ts';
import { randomMatrix, randomNormal, seededRandom } from '../helpers/random.ts';

const D_OUT = 6;
const D_IN = 16;
const NSAMPLES = 4;
/**
 * Both paths: in process (float64 throughout) and ONNX Runtime forced on these small widths
 * (float64 Cholesky chain, float32 lazy updates between blocks, so looser tolerances).
 */
const PATHS = [
  { name: 'in process', options: { ortMinWidth: Infinity }, tolerance: 1e-5, lossTolerance: 1e-9 },
  { name: 'ORT', options: { ortMinWidth: 1 }, tolerance: 2e-5, lossTolerance: 1e-5 },
] as const;

/** gram = Σ x·xᵀ over `tokens` random inputs with channel scales, row-major [d, d]. */
function randomGram(d: number, tokens: number, seed: number, deadChannels: number[] = []): Float64Array {
  const random = seededRandom(seed);
  const scales = Array.from({ length: d }, () => 0.3 + 2 * random());
  const gram = new Float64Array(d * d);
  const x = new Float64Array(d);
  for (let t = 0; t < tokens; t++) {
    for (let j = 0; j < d; j++) x[j] = deadChannels.includes(j) ? 0 : scales[j] * randomNormal(random) + 0.2;
    for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) gram[i * d + j] += x[i] * x[j];
  }
  return gram;
}

/** Gauss–Jordan inverse of a small dense matrix (for the reference computation only). */
function invert(matrix: number[][]): number[][] {
  const n = matrix.length;
  const a = matrix.map((row, i) => [...row, ...Array.from({ length: n }, (_, j) => (i === j ? 1 : 0))]);
  for (let c = 0; c < n; c++) {
    let pivot = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(a[r][c]) > Math.abs(a[pivot][c])) pivot = r;
    [a[c], a[pivot]] = [a[pivot], a[c]];
    const p = a[c][c];
    for (let j = 0; j < 2 * n; j++) a[c][j] /= p;
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = a[r][c];
      for (let j = 0; j < 2 * n; j++) a[r][j] -= f * a[c][j];
    }
  }
  return a.map((row) => row.slice(n));
}

/**
 * SparseGPT written plainly: H = 2·gram/N with dead inputs and 1 % dampening; for each column c in
 * order, the inverse Hessian of the remaining columns c… is inverted explicitly, and every pruned
 * weight of column c is removed with the OBS update δ = −w/[H_c⁻¹]₀₀ · [H_c⁻¹]₀,·. With `fixedMask`
 * the mask is given; otherwise it is chosen at the start of each block of `blockSize` columns from
 * the current weights, w²/[H_c⁻¹]₀₀ against the value at floor(dOut·B·s).
 */
function naiveSparseGpt(
  weights: Float32Array, dOut: number, dIn: number, gram: Float64Array, nsamples: number,
  choice: { fixedMask: Uint8Array } | { sparsity: number; blockSize: number },
): { weights: number[][]; mask: Uint8Array; loss: number } {
  const W = Array.from({ length: dOut }, (_, i) => Array.from(weights.subarray(i * dIn, (i + 1) * dIn)));
  const H = Array.from({ length: dIn }, (_, i) => Array.from({ length: dIn }, (_, j) => (2 * gram[i * dIn + j]) / nsamples));
  for (let j = 0; j < dIn; j++) {
    if (H[j][j] === 0) {
      H[j][j] = 1;
      for (const row of W) row[j] = 0;
    }
  }
  const damp = (0.01 * H.reduce((sum, row, j) => sum + row[j], 0)) / dIn;
  for (let j = 0; j < dIn; j++) H[j][j] += damp;
  const remainingInverse = (c: number): number[][] => invert(H.slice(c).map((row) => row.slice(c)));

  const mask = 'fixedMask' in choice ? choice.fixedMask : new Uint8Array(dOut * dIn);
  let loss = 0;
  for (let c = 0; c < dIn; c++) {
    if ('sparsity' in choice && c % choice.blockSize === 0) {
      const end = Math.min(dIn, c + choice.blockSize);
      const saliency: { value: number; p: number }[] = [];
      for (let i = 0; i < dOut; i++) {
        for (let col = c; col < end; col++) saliency.push({ value: Math.fround(W[i][col] ** 2 / remainingInverse(col)[0][0]), p: i * dIn + col });
      }
      const threshold = saliency.map((s) => s.value).sort((a, b) => a - b)[Math.floor(saliency.length * choice.sparsity)];
      for (const s of saliency) if (s.value <= threshold) mask[s.p] = 1;
    }
    const inverse = remainingInverse(c);
    for (let i = 0; i < dOut; i++) {
      if (!mask[i * dIn + c]) continue;
      const w = W[i][c];
      loss += (w * w) / inverse[0][0] / 2;
      for (let t = c; t < dIn; t++) W[i][t] -= (w / inverse[0][0]) * inverse[0][t - c];
      W[i][c] = 0;
    }
  }
  return { weights: W, mask, loss };
}

function assertWeightsClose(actual: Float32Array, expected: number[][], tolerance = 1e-5): void {
  const dIn = expected[0].length;
  for (let i = 0; i < expected.length; i++) {
    for (let j = 0; j < dIn; j++) {
      const a = actual[i * dIn + j];
      const e = expected[i][j];
      assert.ok(Math.abs(a - e) <= tolerance * (1 + Math.abs(e)), `W[${i}, ${j}] = ${a}, expected ${e}`);
    }
  }
}

test('choleskyInverseUpper: U is upper triangular with a positive diagonal and UᵀU = H⁻¹', () => {
  for (const d of [1, 5, 64, 131]) {
    const H = randomGram(d, d + 10, d);
    for (let j = 0; j < d; j++) H[j * d + j] += 0.1;
    const copy = Float64Array.from(H);
    const U = choleskyInverseUpper(H, d);
    assert.deepEqual(H, copy, 'input untouched');
    let worst = 0;
    for (let i = 0; i < d; i++) {
      assert.ok(U[i * d + i] > 0);
      for (let j = 0; j < i; j++) assert.equal(U[i * d + j], 0);
    }
    // (UᵀU)·H = I
    const UtU = new Float64Array(d * d);
    for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) {
      let sum = 0;
      for (let k = 0; k <= Math.min(i, j); k++) sum += U[k * d + i] * U[k * d + j];
      UtU[i * d + j] = sum;
    }
    for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) {
      let sum = 0;
      for (let k = 0; k < d; k++) sum += UtU[i * d + k] * H[k * d + j];
      worst = Math.max(worst, Math.abs(sum - (i === j ? 1 : 0)));
    }
    assert.ok(worst < 1e-9, `d=${d}: |UᵀU·H − I| = ${worst}`);
  }
});

test('Cholesky refuses a matrix that is not positive definite', () => {
  const H = Float64Array.from([1, 2, 2, 1]);
  assert.throws(() => choleskyLowerInPlace(H, 2), NotPositiveDefiniteError);
});

test('fixed mask: the blocked update (B = 4, B = 16) equals the unblocked OBS computation', async () => {
  const weights = randomMatrix(D_OUT * D_IN, 1);
  const gram = randomGram(D_IN, 40, 2);
  const mask = new Uint8Array(D_OUT * D_IN);
  const random = seededRandom(3);
  for (let p = 0; p < mask.length; p++) mask[p] = random() < 0.5 ? 1 : 0;
  const expected = naiveSparseGpt(weights, D_OUT, D_IN, gram, NSAMPLES, { fixedMask: mask });
  for (const path of PATHS) for (const blockSize of [4, 16, 5]) {
    const result = await sparsegptFixedMask(Float32Array.from(weights), D_OUT, D_IN, gram, NSAMPLES, mask, { blockSize, ...path.options });
    assertWeightsClose(result.weight, expected.weights, path.tolerance);
    assert.ok(Math.abs(result.loss - expected.loss) <= path.lossTolerance * expected.loss, `${path.name}: loss ${result.loss} vs ${expected.loss}`);
    for (let p = 0; p < mask.length; p++) if (mask[p]) assert.equal(result.weight[p], 0);
    assert.equal(result.percdamp, 0.01);
  }
});

test('adaptive mask: per-block selection and updates equal the unblocked computation', async () => {
  const weights = randomMatrix(D_OUT * D_IN, 4);
  const gram = randomGram(D_IN, 40, 5);
  for (const path of PATHS) for (const [blockSize, sparsity] of [[4, 0.5], [16, 0.5], [8, 0.3]] as const) {
    const expected = naiveSparseGpt(weights, D_OUT, D_IN, gram, NSAMPLES, { sparsity, blockSize });
    const result = await sparsegpt(Float32Array.from(weights), D_OUT, D_IN, gram, NSAMPLES, { target: { kind: 'unstructured', sparsity }, blockSize, ...path.options });
    assert.deepEqual(result.mask, expected.mask, `${path.name} B=${blockSize}`);
    assertWeightsClose(result.weight, expected.weights, path.tolerance);
    assert.ok(Math.abs(result.loss - expected.loss) <= path.lossTolerance * expected.loss);
    // Each block prunes floor(dOut·B·s) + 1 entries (no ties among random saliencies).
    let pruned = 0;
    for (const v of result.mask) pruned += v;
    assert.equal(pruned, (D_IN / blockSize) * (Math.floor(D_OUT * blockSize * sparsity) + 1));
  }
});

test('N:M: exactly n zeros in every group of m, pruned on the updated weights', async () => {
  const weights = randomMatrix(D_OUT * D_IN, 6);
  const gram = randomGram(D_IN, 40, 7);
  for (const path of PATHS) for (const [n, m] of [[2, 4], [4, 8]] as const) {
    const result = await sparsegpt(Float32Array.from(weights), D_OUT, D_IN, gram, NSAMPLES, { target: { kind: 'nm', n, m }, blockSize: 8, ...path.options });
    assert.ok(satisfiesNM(result.weight, D_OUT, D_IN, n, m));
    for (let g = 0; g < result.mask.length; g += m) assert.equal(result.mask.subarray(g, g + m).reduce((a, b) => a + b, 0), n);
    for (let p = 0; p < result.mask.length; p++) assert.equal(result.weight[p] === 0, result.mask[p] === 1);
    // The same mask given as a fixed mask reproduces the same weights.
    const fixed = await sparsegptFixedMask(Float32Array.from(weights), D_OUT, D_IN, gram, NSAMPLES, result.mask, { blockSize: 8, ...path.options });
    assertWeightsClose(fixed.weight, Array.from({ length: D_OUT }, (_, i) => Array.from(result.weight.subarray(i * D_IN, (i + 1) * D_IN))), 1e-6);
  }
});

test('dead inputs (zero Hessian diagonal) have their weight columns zeroed', async () => {
  const weights = randomMatrix(D_OUT * D_IN, 8);
  const gram = randomGram(D_IN, 40, 9, [3, 10]);
  for (const path of PATHS) {
    const result = await sparsegpt(Float32Array.from(weights), D_OUT, D_IN, gram, NSAMPLES, { target: { kind: 'unstructured', sparsity: 0.25 }, blockSize: 8, ...path.options });
    for (let i = 0; i < D_OUT; i++) {
      assert.equal(result.weight[i * D_IN + 3], 0);
      assert.equal(result.weight[i * D_IN + 10], 0);
    }
    assert.ok(result.timings.factorizationMs >= 0 && result.timings.updateMs >= 0);
  }
});

test('a Hessian that is not positive definite: SparseGPT stops with a clear error; reconstruction retries with percdamp 0.1', async () => {
  // H = gram (nsamples 2): diag mean 0.49 → 1 % dampening leaves −0.0151, 10 % leaves +0.029.
  const gram = Float64Array.from([1, 0, 0, -0.02]);
  const weights = Float32Array.from([1, 2, 3, 4]);
  await assert.rejects(
    () => sparsegpt(Float32Array.from(weights), 2, 2, gram, 2, { target: { kind: 'unstructured', sparsity: 0.5 }, layerName: 'layer 3 self_attn.q_proj' }),
    (error: unknown) => error instanceof UserError && /layer 3 self_attn\.q_proj: SparseGPT cannot factor.*percdamp=0\.01/.test(error.message),
  );
  const result = await sparsegptFixedMask(Float32Array.from(weights), 2, 2, gram, 2, Uint8Array.from([0, 1, 0, 1]));
  assert.equal(result.percdamp, 0.1);
  assert.equal(result.weight[1], 0);
  // A cache keeps no failed factorization: the retry, and a later linear of the same gram, succeed.
  const factors = new HessianFactors();
  for (let linear = 0; linear < 2; linear++) {
    const cached = await sparsegptFixedMask(Float32Array.from(weights), 2, 2, gram, 2, Uint8Array.from([0, 1, 0, 1]), { factors });
    assert.equal(cached.percdamp, 0.1);
    assert.deepEqual(cached.weight, result.weight);
  }
  await assert.rejects(() => sparsegptFixedMask(Float32Array.from(weights), 2, 2, Float64Array.from([1, 0, 0, -1]), 2, new Uint8Array(4)), UserError);
});

test('linears that share a gram (q/k/v) and a HessianFactors reuse one factorization and get the same result as with their own copy', async () => {
  const dIn = 24;
  const gram = randomGram(dIn, 64, 11, [5]);
  const first = randomMatrix(6 * dIn, 12);
  const second = randomMatrix(8 * dIn, 13);
  const opts = { target: { kind: 'unstructured' as const, sparsity: 0.5 }, blockSize: 8 };
  for (const path of PATHS) {
    const factors = new HessianFactors();
    const shared1 = await sparsegpt(first.slice(), 6, dIn, gram, 4, { ...opts, ...path.options, factors });
    const shared2 = await sparsegpt(second.slice(), 8, dIn, gram, 4, { ...opts, ...path.options, factors });
    const own2 = await sparsegpt(second.slice(), 8, dIn, gram.slice(), 4, { ...opts, ...path.options });
    assert.deepEqual(shared2.weight, own2.weight, path.name);
    assert.deepEqual(shared2.mask, own2.mask, path.name);
    // The dead input's column is zeroed in every linear, not only in the one that built the factor.
    for (let i = 0; i < 8; i++) assert.equal(shared2.weight[i * dIn + 5], 0);
    assert.ok(shared1.loss > 0);
    // The second linear took the first one's U: with the array's values changed in between (which
    // a caller must not do while the cache lives), it still prunes as with the original gram.
    gram.set(randomGram(dIn, 64, 14, [5]));
    const stale = await sparsegpt(second.slice(), 8, dIn, gram, 4, { ...opts, ...path.options, factors });
    gram.set(randomGram(dIn, 64, 11, [5]));
    assert.deepEqual(stale.weight, own2.weight, `${path.name}: the cached factor`);
  }
});

test('a gram array refilled with the next layer\'s statistics (a reused buffer) gets that layer\'s factor from a new HessianFactors', async () => {
  // As a layer loop that refilled one gram buffer per layer would: each layer makes its own
  // cache. The two layers' grams differ enough that the first layer's U prunes the second wrong.
  const dIn = 24;
  const dOut = 8;
  const layers = [{ gram: randomGram(dIn, 64, 31, [2]), weight: randomMatrix(dOut * dIn, 32) }, { gram: randomGram(dIn, 64, 33, [7]), weight: randomMatrix(dOut * dIn, 34) }];
  const opts = { target: { kind: 'unstructured' as const, sparsity: 0.5 }, blockSize: 8 };
  for (const path of PATHS) {
    const buffer = new Float64Array(dIn * dIn);
    const runWide = new HessianFactors();
    for (const [layer, { gram, weight }] of layers.entries()) {
      buffer.set(gram);
      const reused = await sparsegpt(Float32Array.from(weight), dOut, dIn, buffer, 4, { ...opts, ...path.options, factors: new HessianFactors() });
      const independent = await sparsegpt(Float32Array.from(weight), dOut, dIn, gram.slice(), 4, { ...opts, ...path.options });
      assert.deepEqual(reused.weight, independent.weight, `${path.name} layer ${layer}`);
      assert.deepEqual(reused.mask, independent.mask, `${path.name} layer ${layer}`);
      // One cache kept across the refill would hand layer 1 the factor of layer 0's gram.
      const fromRunWide = await sparsegpt(Float32Array.from(weight), dOut, dIn, buffer, 4, { ...opts, ...path.options, factors: runWide });
      if (layer === 0) assert.deepEqual(fromRunWide.weight, independent.weight);
      else assert.notDeepEqual(fromRunWide.weight, independent.weight, `${path.name}: the stale factor must change the result`);
    }
  }
});

test('the layer loop (2 layers, q/k/v and gate/up sharing a gram) prunes as SparseGPT on each layer\'s own statistics, one linear at a time', async () => {
  const spec = { ...smallSpec('llama'), numLayers: 2 };
  const model = randomModel(spec, 41);
  const dense = Array.from({ length: spec.numLayers }, (_, layer) => Object.fromEntries(Object.entries(model.readBlock(layer)).map(([k, v]) => [k, v.slice()])));
  const seqLen = 16;
  const uniform = seededRandom(42);
  const windows = Array.from({ length: 6 }, () => Int32Array.from({ length: seqLen }, () => Math.floor(uniform() * spec.vocabSize)));
  const target = { kind: 'unstructured' as const, sparsity: 0.5 };
  const settings = pruneSettings({ method: 'sparsegpt', target, sparsegpt: { blockSize: 16 }, calibration: { file: 'synthetic', sha256: '', nsamples: windows.length, seqlen: seqLen, seed: 0 } });
  const engine = { device: 'cpu' as const, threads: 1 };
  const inputs = [embedWindows(model, windows)];
  const pruned: BlockWeights[] = [];
  await pruneLayers({
    model, settings, windows, engine,
    onLayerDone: async (_layer, weights, _report, hidden) => {
      pruned.push(Object.fromEntries(Object.entries(weights).map(([k, v]) => [k, v.slice()])));
      inputs.push(hidden);
    },
  });
  const statsEngine = await BlockEngine.create(spec, seqLen, { ...engine, stats: 'full' });
  try {
    for (let layer = 0; layer < spec.numLayers; layer++) {
      const stats = await collectStatistics(spec, statsEngine, inputs[layer], dense[layer], ropeTables(spec, seqLen), ['qkv', 'o', 'gateup', 'down'], true);
      for (const name of LINEAR_NAMES) {
        const [dOut, dIn] = linearShape(spec, name);
        const own = stats.get(LINEAR_INPUT_GROUP[name]);
        assert.ok(own?.gram);
        const expected = await sparsegpt(dense[layer][`${name}.weight`].slice(), dOut, dIn, own.gram.slice(), own.nsamples, { target, blockSize: 16, engine });
        assert.deepEqual(pruned[layer][`${name}.weight`], expected.weight, `layer ${layer} ${name}`);
      }
    }
  } finally {
    await statsEngine.release();
  }
});

test('the ORT path runs on the engine it is given: one thread gives the same result, a bad thread count reaches the session', async () => {
  const weights = randomMatrix(D_OUT * D_IN, 21);
  const gram = randomGram(D_IN, 40, 22);
  const options = { target: { kind: 'unstructured' as const, sparsity: 0.5 }, blockSize: 8, ortMinWidth: 1 };
  const defaultEngine = await sparsegpt(Float32Array.from(weights), D_OUT, D_IN, gram, NSAMPLES, options);
  const oneThread = await sparsegpt(Float32Array.from(weights), D_OUT, D_IN, gram, NSAMPLES, { ...options, engine: { device: 'cpu', threads: 1 } });
  assert.deepEqual(oneThread.mask, defaultEngine.mask);
  for (let p = 0; p < weights.length; p++) assert.ok(Math.abs(oneThread.weight[p] - defaultEngine.weight[p]) <= 1e-6, `weight ${p}`);
  // The options reach ONNX Runtime's session: a thread count it cannot use is refused there.
  await assert.rejects(
    () => sparsegpt(Float32Array.from(weights), D_OUT, D_IN, gram, NSAMPLES, { ...options, engine: { device: 'cpu', threads: 0 } }),
    (e: unknown) => e instanceof UserError && /threads must be a positive integer, got 0/.test(e.message),
  );
});
