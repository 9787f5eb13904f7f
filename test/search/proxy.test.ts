// PHO's proxies: the O(N) Gini over a precomputed order, and each proxy of a ProxyContext on a tiny
// random model recomputed directly from its definition (RIA's mask, Wanda's reference importance,
// the input statistics of an independent calibration pass).
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { giniInOrder, PROXY_NAMES, ProxyContext, type ProxyName, type ProxyOptions } from '../../src/search/proxy.ts';
import { gini } from '../../src/search/gini.ts';
import { BlockEngine } from '../../src/engine/block-engine.ts';
import { embed } from '../../src/engine/forward.ts';
import { ropeTables } from '../../src/model/rope.ts';
import { LINEAR_INPUT_GROUP, LINEAR_NAMES, linearShape, type LinearInputGroup } from '../../src/model/spec.ts';
import { collectStatistics, type LinearInputStats } from '../../src/prune/calibration-stats.ts';
import { riaScores } from '../../src/prune/scores/ria.ts';
import { nmMask, perMatrixMask } from '../../src/prune/mask.ts';
import type { CrepeParams } from '../../src/prune/scores/crepe.ts';
import { Rng } from '../../src/util/rng.ts';
import { randomModel, smallSpec } from '../helpers/random-model.ts';

const close = (actual: number, expected: number, tol: number, what = '') =>
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: ${actual} vs ${expected} (tol ${tol})`);

const ascendingOrderOf = (values: Float32Array) =>
  Uint32Array.from(values.keys()).sort((a, b) => values[a] - values[b] || a - b);

describe('giniInOrder', () => {
  test('hand example: values 3 1 4 1 5, the second one not pruned → Gini of {1, 3, 4, 5} = 13/52', () => {
    const values = Float32Array.from([3, 1, 4, 1, 5]);
    const mask = Uint8Array.from([1, 0, 1, 1, 1]);
    // sorted 1 3 4 5, n = 4, Σ = 13: (−3·1 − 1·3 + 1·4 + 3·5) / (4·13) = 13/52.
    close(giniInOrder(values, ascendingOrderOf(values), mask), 0.25, 1e-15, 'gini');
  });

  test('empty or single pruned set, or all-zero values → 0', () => {
    const values = Float32Array.from([2, 0, 7]);
    const order = ascendingOrderOf(values);
    assert.equal(giniInOrder(values, order, Uint8Array.from([0, 0, 0])), 0);
    assert.equal(giniInOrder(values, order, Uint8Array.from([0, 0, 1])), 0);
    assert.equal(giniInOrder(new Float32Array(3), Uint32Array.from([0, 1, 2]), Uint8Array.from([1, 1, 1])), 0);
  });

  test('equals gini() of the masked values on random data (ties included)', () => {
    const rng = new Rng(11);
    for (const size of [2, 17, 1000]) {
      // Quantised values so that ties occur: the order among tied values must not matter.
      const values = Float32Array.from({ length: size }, () => Math.floor(rng.uniform() * 20) / 4);
      const order = ascendingOrderOf(values);
      for (const density of [0.1, 0.5, 1]) {
        const mask = Uint8Array.from({ length: size }, () => (rng.uniform() < density ? 1 : 0));
        const masked = Float64Array.from(values.filter((_, i) => mask[i] === 1));
        close(giniInOrder(values, order, mask), gini(masked), 1e-12, `size ${size}, density ${density}`);
      }
    }
  });
});

describe('ProxyContext on a tiny random llama (2 layers, 4 windows of 16 tokens)', () => {
  const spec = smallSpec('llama');
  const model = randomModel(spec, 7);
  const seqlen = 16;
  const rng = new Rng(3);
  const windows = Array.from({ length: 4 }, () => Int32Array.from({ length: seqlen }, () => rng.below(spec.vocabSize)));
  const engine = { device: 'cpu' as const, threads: 1 };
  const unstructured: ProxyOptions = { target: { kind: 'unstructured', sparsity: 0.5 }, selection: 'per-matrix', giniSubsample: null, seed: 0 };
  // The RIA point: α = β = 1, γ = 0, a = 0.5 (k does not matter when γ = 0).
  const riaPoint: CrepeParams = { k: 5, alpha: 1, beta: 1, gamma: 0, a: 0.5, variant: 'normalized', border: 'zero' };
  const other: CrepeParams = { k: 3, alpha: 1, beta: 0.3, gamma: 2, a: 0.8, variant: 'normalized', border: 'zero' };

  let withGram: ProxyContext;
  let withoutGram: ProxyContext;
  /** Each layer's statistics from an independent pass (the same engine, driven here by hand). */
  const layerStats: Map<LinearInputGroup, LinearInputStats>[] = [];

  before(async () => {
    withGram = await ProxyContext.build(model, windows, seqlen, engine, { withGram: true });
    withoutGram = await ProxyContext.build(model, windows, seqlen, engine);
    const rope = ropeTables(spec, seqlen);
    const statsEngine = await BlockEngine.create(spec, seqlen, { ...engine, stats: 'full' });
    const plainEngine = await BlockEngine.create(spec, seqlen, { ...engine, stats: 'none' });
    try {
      let hidden = windows.map((w) => embed(w, model.readEmbedding(), spec.hiddenSize));
      for (let layer = 0; layer < spec.numLayers; layer++) {
        layerStats.push(await collectStatistics(spec, statsEngine, hidden, model.readBlock(layer), rope, ['qkv', 'o', 'gateup', 'down'], true));
        hidden = await plainEngine.runSequences(hidden, model.readBlock(layer), rope);
      }
    } finally {
      await statsEngine.release();
      await plainEngine.release();
    }
  });

  /** Every linear of every layer with its weights and input statistics, as recomputed here. */
  function* linears() {
    for (let layer = 0; layer < spec.numLayers; layer++) {
      for (const name of LINEAR_NAMES) {
        const [dOut, dIn] = linearShape(spec, name);
        const stats = layerStats[layer].get(LINEAR_INPUT_GROUP[name])!;
        yield { layer, name, dOut, dIn, weight: model.readBlock(layer)[`${name}.weight`], sqNorm: stats.sqNorm, gram: stats.gram! };
      }
    }
  }

  test('the cached statistics are those of the dense pass; layer 0 q/k/v input norms by hand in float64', () => {
    const cached = withGram.linears;
    assert.equal(cached.length, spec.numLayers * LINEAR_NAMES.length);
    let index = 0;
    for (const l of linears()) {
      assert.equal(cached[index].layer, l.layer);
      assert.equal(cached[index].name, l.name);
      assert.deepEqual(cached[index].sqNorm, l.sqNorm, `${l.layer} ${l.name}`);
      index++;
    }
    // s_j = (1/N) Σ_windows Σ_t x_j², x = RMSNorm(embedding row) · input_layernorm.
    const h = spec.hiddenSize;
    const embedding = model.readEmbedding();
    const norm = model.readBlock(0)['input_layernorm.weight'];
    const expected = new Float64Array(h);
    for (const w of windows) {
      for (const token of w) {
        const row = embedding.subarray(token * h, (token + 1) * h);
        let meanSquare = 0;
        for (let j = 0; j < h; j++) meanSquare += row[j] * row[j];
        const scale = 1 / Math.sqrt(meanSquare / h + spec.rmsNormEps);
        for (let j = 0; j < h; j++) expected[j] += (row[j] * scale * norm[j]) ** 2 / windows.length;
      }
    }
    for (let j = 0; j < h; j++) close(cached[0].sqNorm[j], expected[j], 1e-4 * expected[j], `s_${j}`);
  });

  test('every proxy at the RIA point equals its definition on RIA masks computed directly', () => {
    const sums = Object.fromEntries(PROXY_NAMES.map((p) => [p, 0])) as Record<ProxyName, number>;
    let count = 0;
    for (const l of linears()) {
      const scores = riaScores(l.weight, l.dOut, l.dIn, l.sqNorm, { a: 0.5 });
      const mask = perMatrixMask(scores, 0.5);
      // Reference importance |W_ij|·sqrt(s_j), in float64.
      const reference = Float64Array.from(l.weight, (w, p) => Math.abs(w) * Math.sqrt(l.sqNorm[p % l.dIn]));
      let removed = 0;
      let total = 0;
      const lostPerColumn = new Float64Array(l.dIn);
      for (let p = 0; p < reference.length; p++) {
        total += reference[p];
        if (mask[p]) {
          removed += reference[p];
          lostPerColumn[p % l.dIn] += reference[p];
        }
      }
      sums['pruned-mass'] += removed / total;
      sums['gini-ref'] += gini(Float64Array.from(reference.filter((_, p) => mask[p] === 1)));
      sums['gini-own'] += gini(Float64Array.from(scores.filter((_, p) => mask[p] === 1)));
      sums['column-gini'] += gini(lostPerColumn);
      // tr(ΔW·G·ΔWᵀ) / tr(W·G·Wᵀ), ΔW = the pruned entries.
      let error = 0;
      let energy = 0;
      for (let i = 0; i < l.dOut; i++) {
        for (let a = 0; a < l.dIn; a++) {
          for (let b = 0; b < l.dIn; b++) {
            const term = l.weight[i * l.dIn + a] * l.gram[a * l.dIn + b] * l.weight[i * l.dIn + b];
            energy += term;
            if (mask[i * l.dIn + a] && mask[i * l.dIn + b]) error += term;
          }
        }
      }
      sums['output-error'] += error / energy;
      count++;
    }
    const { values } = withGram.evaluate(riaPoint, unstructured);
    for (const p of PROXY_NAMES) {
      close(values[p], sums[p] / count, 1e-6 * Math.max(1, Math.abs(sums[p] / count)), p);
      assert.ok(values[p] > 0 && values[p] < 1, `${p} = ${values[p]}`);
    }
  });

  test('pruned-mass under 2:4 equals the reference share removed by RIA’s 2:4 mask', () => {
    let expected = 0;
    let count = 0;
    for (const l of linears()) {
      const mask = nmMask(riaScores(l.weight, l.dOut, l.dIn, l.sqNorm, { a: 0.5 }), l.dOut, l.dIn, 2, 4);
      let removed = 0;
      let total = 0;
      for (let p = 0; p < mask.length; p++) {
        const r = Math.abs(l.weight[p]) * Math.sqrt(l.sqNorm[p % l.dIn]);
        total += r;
        if (mask[p]) removed += r;
      }
      expected += removed / total;
      count++;
    }
    const { values } = withoutGram.evaluate(riaPoint, { ...unstructured, target: { kind: 'nm', n: 2, m: 4 } }, ['pruned-mass']);
    close(values['pruned-mass'], expected / count, 1e-6, 'pruned-mass 2:4');
  });

  test('pruning everything: pruned-mass and output-error are exactly 1', () => {
    const { values } = withGram.evaluate(other, { ...unstructured, target: { kind: 'unstructured', sparsity: 1 } }, ['pruned-mass', 'output-error']);
    close(values['pruned-mass'], 1, 1e-12, 'pruned-mass');
    close(values['output-error'], 1, 1e-12, 'output-error');
  });

  test('only the proxies asked for are computed; the others are NaN', () => {
    const { values } = withGram.evaluate(other, unstructured, ['gini-ref']);
    const all = withGram.evaluate(other, unstructured).values;
    assert.equal(values['gini-ref'], all['gini-ref']);
    for (const p of PROXY_NAMES) if (p !== 'gini-ref') assert.ok(Number.isNaN(values[p]), `${p} = ${values[p]}`);
  });

  test('deterministic: two evaluations give identical values; the two contexts agree on shared proxies', () => {
    const first = withGram.evaluate(other, unstructured).values;
    const second = withGram.evaluate(other, unstructured).values;
    assert.deepEqual(second, first);
    const noGram = withoutGram.evaluate(other, unstructured, withoutGram.availableProxies).values;
    for (const p of withoutGram.availableProxies) assert.equal(noGram[p], first[p], p);
  });

  test('a different configuration gives a different mask and different proxies', () => {
    const ria = withGram.evaluate(riaPoint, unstructured).values;
    const changed = withGram.evaluate(other, unstructured).values;
    for (const p of PROXY_NAMES) assert.notEqual(changed[p], ria[p], p);
  });

  test('availableProxies: output-error only with grams; asking for it without grams throws', () => {
    assert.deepEqual(withGram.availableProxies, [...PROXY_NAMES]);
    assert.deepEqual(withoutGram.availableProxies, PROXY_NAMES.filter((p) => p !== 'output-error'));
    assert.ok(withoutGram.linears.every((l) => l.gram === null));
    assert.throws(() => withoutGram.evaluate(riaPoint, unstructured, ['output-error']), /output-error/);
  });

  test('gini-own on a subsample: exact when the sample covers the matrix, fixed positions per seed otherwise', () => {
    const exact = withoutGram.evaluate(other, unstructured, ['gini-own']).values['gini-own'];
    const covering = withoutGram.evaluate(other, { ...unstructured, giniSubsample: 1 << 20 }, ['gini-own']).values['gini-own'];
    assert.equal(covering, exact);
    const sampled = withoutGram.evaluate(other, { ...unstructured, giniSubsample: 500 }, ['gini-own']).values['gini-own'];
    const again = withoutGram.evaluate(other, { ...unstructured, giniSubsample: 500 }, ['gini-own']).values['gini-own'];
    assert.equal(again, sampled);
    assert.notEqual(sampled, exact);
    close(sampled, exact, 0.1, 'a 500-position sample is close to the exact Gini');
  });

  test('gramBytes: Σ over layers of the four input widths squared, 8 bytes each', () => {
    // Widths 64 (qkv), 4·16 = 64 (o), 64 (gate/up), 96 (down); 2 layers.
    assert.equal(ProxyContext.gramBytes(spec), 2 * 8 * (64 * 64 + 64 * 64 + 64 * 64 + 96 * 96));
  });
});
