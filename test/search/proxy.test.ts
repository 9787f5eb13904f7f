// PHO's proxies: each proxy of one linear on a hand example (ties included), and each proxy of a
// ProxyContext on a tiny random model recomputed directly from its definition (RIA's mask, Wanda's
// reference importance, the input statistics of an independent calibration pass).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, renameSync, statSync } from 'node:fs';
import path from 'node:path';
import { LINEAR_PROXY_NAMES, PROXY_NAMES, ProxyContext, type ProxyName, type ProxyOptions } from '../../src/search/proxy.ts';
import { referenceWindowNll } from '../helpers/reference-nll.ts';
import type { ModelSource } from '../../src/model/source.ts';
import { crepeScores } from '../../src/prune/scores/crepe.ts';
import { candidateMask, evaluateLinear, evaluateLinearMany, maskedNaturalWeights, naturalMask, prunedNaturalWeights, Scratch } from '../../src/search/proxy-measures.ts';
import { UnitEvaluator } from '../../src/search/proxy-worker.ts';
import { buildLinearTerms, buildNaturalTerms, candidateScores, naturalScores, naturalWindowTerm, positionsOf, windowKey, windowTerm } from '../../src/search/proxy-terms.ts';
import { readManifest, readNaturalTerms, readTerms, termsFile, windowFile } from '../../src/search/proxy-cache.ts';
import { gini } from '../../src/search/gini.ts';
import { BlockEngine } from '../../src/engine/block-engine.ts';
import { embed } from '../../src/engine/forward.ts';
import { ropeTables } from '../../src/model/rope.ts';
import { LINEAR_INPUT_GROUP, LINEAR_NAMES, linearShape, type LinearInputGroup } from '../../src/model/spec.ts';
import { collectStatistics, type LinearInputStats } from '../../src/prune/calibration-stats.ts';
import { riaScores } from '../../src/prune/scores/ria.ts';
import { applyMask, nmMask, perMatrixMask, selectMask } from '../../src/prune/mask.ts';
import type { PruneTarget, Selection } from '../../src/prune/settings.ts';
import type { CrepeParams } from '../../src/prune/scores/crepe.ts';
import { Rng } from '../../src/util/rng.ts';
import { FieldError } from '../../src/util/errors.ts';
import { randomModel, smallSpec } from '../helpers/random-model.ts';
import { scratchDir } from '../helpers/stories.ts';

const close = (actual: number, expected: number, tol: number, what = '') =>
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: ${actual} vs ${expected} (tol ${tol})`);

const RIA_POINT: CrepeParams = { k: 3, alpha: 1, beta: 1, gamma: 0, a: 0.5, variant: 'normalized', border: 'zero' };

describe('the proxies of one linear, by hand', () => {
  // One row W = [3, −1, 4, 1, 5], s = 1: reference importance = |W|. RIA at a = 0.5: each column
  // sum is |W_j| itself, so S_j = 1 + |W_j|/14 and the order follows |W|. At 60 % per matrix the
  // threshold is the 4th smallest score (index floor(5·0.6) = 3): the entries 1, 1, 3, 4 are pruned.
  const { terms } = buildLinearTerms(Float32Array.from([3, -1, 4, 1, 5]), 1, 5, new Float64Array(5).fill(1), null);
  const options: ProxyOptions = { target: { kind: 'unstructured', sparsity: 0.6 }, selection: 'per-matrix', giniSubsample: null, seed: 0 };
  const { values } = evaluateLinear(terms, { kind: 'terms', window: null }, RIA_POINT, options, ['gini-own', 'gini-ref', 'pruned-mass', 'column-gini'], new Scratch());

  test('positions in ascending reference order, ties by index; weights stored exactly as float16', () => {
    assert.deepEqual([...terms.col], [1, 3, 0, 2, 4]);
    assert.deepEqual([...terms.row], [0, 0, 0, 0, 0]);
    assert.ok(terms.weightF16 && !terms.weightF32);
    assert.equal(terms.referenceTotal, 14);
  });

  test('gini-ref: pruned {1, 1, 3, 4}: (−3·1 − 1·1 + 1·3 + 3·4) / (4·9) = 11/36', () => {
    close(values['gini-ref']!, 11 / 36, 1e-15, 'gini-ref');
  });

  test('pruned-mass 9/14; column-gini of the lost mass per column (3, 1, 4, 1, 0) = 20/45', () => {
    close(values['pruned-mass']!, 9 / 14, 1e-15, 'pruned-mass');
    close(values['column-gini']!, 20 / 45, 1e-15, 'column-gini');
  });

  test('gini-own: the pruned scores 15/14, 15/14, 17/14, 18/14 → 11/260 (float32 scores)', () => {
    close(values['gini-own']!, 11 / 260, 1e-7, 'gini-own');
  });
});

describe('gini-ref and pruned-mass asked alone: the per-matrix walk in one pass', () => {
  // 400 × 1000 weights: above the 65536-position sample that brackets the threshold. Against the
  // general path (scores stored, threshold selected, mask walked), asked together with gini-own.
  const dOut = 400;
  const dIn = 1000;
  const rng = new Rng(11);
  const sqNorm = Float64Array.from({ length: dIn }, () => 0.5 + rng.uniform());
  const cases: [string, Float32Array, Float64Array][] = [
    ['continuous weights', Float32Array.from({ length: dOut * dIn }, () => rng.uniform() - 0.5), sqNorm],
    ['seven distinct weights (ties at the threshold)', Float32Array.from({ length: dOut * dIn }, () => (rng.below(7) - 3) / 8), new Float64Array(dIn).fill(1)],
    ['every score equal (the bracket overflows: general path)', new Float32Array(dOut * dIn).fill(0.25), new Float64Array(dIn).fill(1)],
  ];
  const window = Float32Array.from({ length: dOut * dIn }, () => rng.uniform());
  const params: CrepeParams[] = [RIA_POINT, { k: 3, alpha: 1, beta: 0.3, gamma: 2, a: 0.8, variant: 'normalized', border: 'zero' }];
  for (const [label, weight, norms] of cases) {
    test(label, () => {
      const { terms } = buildLinearTerms(weight, dOut, dIn, norms, null);
      for (const point of params) {
        for (const sparsity of [0, 0.3, 0.5, 0.9, 1]) {
          const options: ProxyOptions = { target: { kind: 'unstructured', sparsity }, selection: 'per-matrix', giniSubsample: null, seed: 0 };
          const source = { kind: 'terms' as const, window: point.gamma > 0 ? window : null };
          const alone = evaluateLinear(terms, source, point, options, ['gini-ref', 'pruned-mass'], new Scratch()).values;
          const general = evaluateLinear(terms, source, point, options, ['gini-ref', 'pruned-mass', 'gini-own'], new Scratch()).values;
          for (const name of ['gini-ref', 'pruned-mass'] as const) {
            const what = `${name} at ${sparsity}, γ = ${point.gamma}`;
            if (label.startsWith('every')) assert.equal(alone[name], general[name], what);
            else close(alone[name]!, general[name]!, 1e-12 * Math.abs(general[name]!), what);
          }
        }
      }
    });
  }
});

describe('candidates walked together in one pass (evaluateLinearMany) equal each walked alone, bit for bit', () => {
  // 400 × 1000 weights: ≈ 100 chunks of the multi-candidate pass, its walk carried from chunk to
  // chunk; float16-exact weights (stored as float16 bits) and float32 weights; candidates with
  // γ = 0, normalized and smooth terms, two exponents a, two sparsities, and a general-path one mixed in.
  const dOut = 400;
  const dIn = 1000;
  const rng = new Rng(12);
  const sqNorm = Float64Array.from({ length: dIn }, () => 0.5 + rng.uniform());
  const normalizedWindow = Float32Array.from({ length: dOut * dIn }, () => rng.uniform());
  const smoothWindow = Float32Array.from({ length: dOut * dIn }, () => rng.uniform());
  const candidates: [CrepeParams, number][] = [
    [RIA_POINT, 0.5],
    [{ k: 3, alpha: 1, beta: 0.3, gamma: 2, a: 0.8, variant: 'normalized', border: 'zero' }, 0.5],
    [{ k: 3, alpha: 1, beta: 4, gamma: 0.05, a: 0.5, variant: 'normalized', border: 'zero' }, 0.7],
    [{ k: 3, alpha: 1, beta: 2, gamma: 0.4, a: 0.5, variant: 'smooth', border: 'zero' }, 0.5],
    [{ k: 3, alpha: 1, beta: 0.7, gamma: 1.5, a: 0.8, variant: 'normalized', border: 'zero' }, 0.3],
  ];
  const cases: [string, Float32Array][] = [
    ['float16 weights', Float32Array.from({ length: dOut * dIn }, () => (rng.below(2001) - 1000) / 1024)],
    ['float32 weights', Float32Array.from({ length: dOut * dIn }, () => rng.uniform() - 0.5)],
  ];
  for (const [label, weight] of cases) {
    test(label, () => {
      const { terms } = buildLinearTerms(weight, dOut, dIn, sqNorm, null);
      assert.equal(terms.weightF16 !== null, label.startsWith('float16'));
      const requests = candidates.map(([params, sparsity], i) => ({
        source: { kind: 'terms' as const, window: params.gamma === 0 ? null : params.variant === 'smooth' ? smoothWindow : normalizedWindow },
        params,
        options: { target: { kind: 'unstructured' as const, sparsity }, selection: 'per-matrix' as const, giniSubsample: null, seed: 0 },
        // The last candidate asks for gini-own too: the general path, next to the walked ones.
        which: i === candidates.length - 1 ? (['gini-ref', 'pruned-mass', 'gini-own'] as const) : (['gini-ref', 'pruned-mass'] as const),
      }));
      const together = evaluateLinearMany(terms, requests, new Scratch());
      for (const [i, { source, params, options, which }] of requests.entries()) {
        const alone = evaluateLinear(terms, source, params, options, which, new Scratch()).values;
        for (const name of which) {
          assert.ok(Number.isFinite(alone[name]), `${name} is computed`);
          assert.ok(Object.is(together[i].values[name], alone[name]), `${label} ${name} ${JSON.stringify(params)}: together ${together[i].values[name]} vs alone ${alone[name]}`);
        }
      }
    });
  }
});

describe('candidateMask: the mask crepe prune selects, from the terms', () => {
  // With the neighbourhood term kept in float64 the scores are crepeScores' bit for bit
  // (proxy-terms.ts), so the mask in the natural layout equals selectMask(crepeScores(…)) exactly,
  // for every selection; float16-exact and float32 weights; normalized and smooth terms, γ = 0.
  const dOut = 48;
  const dIn = 64;
  const rng = new Rng(13);
  const sqNorm = Float64Array.from({ length: dIn }, () => 0.5 + rng.uniform());
  const weights: [string, Float32Array][] = [
    ['float16 weights', Float32Array.from({ length: dOut * dIn }, () => (rng.below(2001) - 1000) / 1024)],
    ['float32 weights', Float32Array.from({ length: dOut * dIn }, () => rng.uniform() - 0.5)],
  ];
  const params: CrepeParams[] = [
    RIA_POINT,
    { k: 3, alpha: 1, beta: 0.3, gamma: 2, a: 0.8, variant: 'normalized', border: 'zero' },
    { k: 5, alpha: 1, beta: 2, gamma: 0.4, a: 0.5, variant: 'smooth', border: 'zero' },
  ];
  const targets: [PruneTarget, Selection][] = [
    [{ kind: 'unstructured', sparsity: 0.5 }, 'per-matrix'],
    [{ kind: 'unstructured', sparsity: 0.7 }, 'per-row'],
    [{ kind: 'nm', n: 2, m: 4 }, 'per-matrix'],
  ];
  for (const [label, weight] of weights) {
    test(label, () => {
      const { terms, order, setup } = buildLinearTerms(weight, dOut, dIn, sqNorm, null);
      const positionOf = positionsOf(order);
      for (const point of params) {
        const window = point.gamma === 0 ? null : windowTerm(weight, setup, sqNorm, windowKey(point), positionOf, 'float64');
        const scores = crepeScores(weight, dOut, dIn, sqNorm, point);
        for (const [target, selection] of targets) {
          const options: ProxyOptions = { target, selection, giniSubsample: null, seed: 0 };
          const mask = candidateMask(terms, { kind: 'terms', window }, point, options, new Scratch());
          const expected = selectMask(scores, dOut, dIn, target, selection);
          assert.equal(mask.length, dOut * dIn);
          assert.ok(Buffer.from(mask).equals(Buffer.from(expected)), `${label} ${JSON.stringify(point)} ${JSON.stringify(target)} ${selection}`);
        }
      }
    });
  }
});

describe('naturalMask: the natural layout\'s mask is candidateMask\'s from the position layout, bit for bit', () => {
  // Both layouts hold the same weights, 1/R, 1/C, s and neighbourhood values (float32 here, the
  // default, as well as float64); only the order differs. Ties at a per-matrix threshold are kept
  // in both (markAtMost), so the sets agree whatever the order.
  const dOut = 40;
  const dIn = 96;
  const rng = new Rng(29);
  const sqNorm = Float64Array.from({ length: dIn }, (_, j) => (j % 17 === 0 ? 0 : 0.2 + 2 * rng.uniform()));
  const weights: [string, Float32Array][] = [
    // Few distinct values: many ties at every threshold.
    ['float16 weights with ties and zeros', Float32Array.from({ length: dOut * dIn }, () => (rng.below(41) - 20) / 16)],
    ['float32 weights', Float32Array.from({ length: dOut * dIn }, () => rng.uniform() - 0.5)],
  ];
  const params: CrepeParams[] = [
    RIA_POINT,
    { k: 3, alpha: 0.7, beta: 1.4, gamma: 0, a: 0.3, variant: 'smooth', border: 'zero' },
    { k: 3, alpha: 1, beta: 0.3, gamma: 2, a: 0.8, variant: 'normalized', border: 'zero' },
    { k: 5, alpha: 1, beta: 2, gamma: 0.4, a: 0.5, variant: 'smooth', border: 'zero' },
  ];
  const targets: [PruneTarget, Selection][] = [
    [{ kind: 'unstructured', sparsity: 0.5 }, 'per-matrix'],
    [{ kind: 'unstructured', sparsity: 0.37 }, 'per-matrix'],
    [{ kind: 'unstructured', sparsity: 0.7 }, 'per-row'],
    [{ kind: 'nm', n: 2, m: 4 }, 'per-matrix'],
    [{ kind: 'unstructured', sparsity: 0 }, 'per-matrix'],
    [{ kind: 'unstructured', sparsity: 1 }, 'per-matrix'],
  ];
  for (const [label, weight] of weights) {
    test(label, () => {
      const { terms, order, setup } = buildLinearTerms(weight, dOut, dIn, sqNorm, null);
      const positionOf = positionsOf(order);
      const natural = buildNaturalTerms(weight, dOut, dIn, sqNorm);
      assert.equal(natural.terms.weightF16 !== null, terms.weightF16 !== null, 'the same storage');
      assert.deepEqual(natural.terms.inverseRowSums, terms.inverseRowSums);
      assert.deepEqual(natural.terms.inverseColSums, terms.inverseColSums);
      const scratch = new Scratch();
      let compared = 0;
      for (const precision of ['float32', 'float64'] as const) {
        for (const point of params) {
          const key = windowKey(point);
          const position = point.gamma === 0 ? null : windowTerm(weight, setup, sqNorm, key, positionOf, precision);
          const rowMajor = point.gamma === 0 ? null : windowTerm(weight, natural.setup, sqNorm, key, null, precision);
          if (rowMajor) {
            // The same values, in the other order; and the same when computed later from the stored terms.
            assert.ok(rowMajor.every((v, index) => Object.is(v, position![positionOf[index]])), `${label} window ${JSON.stringify(key)}`);
            assert.deepEqual(naturalWindowTerm(natural.terms, key, precision), rowMajor);
            // Into an array used before (the build reuses one): every entry written, the same values.
            const reused = (precision === 'float64' ? new Float64Array(weight.length) : new Float32Array(weight.length)).fill(Number.NaN);
            assert.equal(windowTerm(weight, setup, sqNorm, key, positionOf, precision, reused), reused);
            assert.deepEqual(reused, position);
            assert.throws(() => windowTerm(weight, setup, sqNorm, key, positionOf, precision, new Float32Array(weight.length - 1)), /internal/);
          }
          // The scores themselves, not only the masks they select: row-major, each the position layout's bit for bit.
          const byPosition = candidateScores(terms, position, point, new Float32Array(weight.length));
          const rowMajorScores = naturalScores(natural.terms, rowMajor, point, new Float32Array(weight.length).fill(Number.NaN));
          assert.ok(rowMajorScores.every((v, index) => Object.is(v, byPosition[positionOf[index]])), `${label} ${precision} scores ${JSON.stringify(point)}`);
          for (const [target, selection] of targets) {
            const options: ProxyOptions = { target, selection, giniSubsample: null, seed: 0 };
            const what = `${label} ${precision} ${JSON.stringify(point)} ${JSON.stringify(target)} ${selection}`;
            const expected = candidateMask(terms, { kind: 'terms', window: position }, point, options, new Scratch());
            const mask = naturalMask(natural.terms, { kind: 'terms', window: rowMajor }, point, options, scratch);
            assert.ok(Buffer.from(mask).equals(Buffer.from(expected)), what);
            // The pruned weights the evaluators hand back: applyMask on the weights, bit for bit, every entry of the (reused) array written.
            const masked = weight.slice();
            applyMask(masked, mask);
            const out = new Float32Array(weight.length).fill(Number.NaN);
            assert.equal(maskedNaturalWeights(natural.terms, mask, out), out);
            assert.ok(Buffer.from(out.buffer).equals(Buffer.from(masked.buffer)), `pruned weights ${what}`);
            // The same weights without a mask array (a per-matrix threshold) or through one (the other targets).
            const pruned = new Float32Array(weight.length).fill(Number.NaN);
            assert.equal(prunedNaturalWeights(natural.terms, { kind: 'terms', window: rowMajor }, point, options, scratch, pruned), pruned);
            assert.ok(Buffer.from(pruned.buffer).equals(Buffer.from(masked.buffer)), `prunedNaturalWeights ${what}`);
            // crepeScores on the stored weights (a border the terms do not cover): candidateMask's direct source.
            const mean: CrepeParams = { ...point, border: 'mean' };
            const direct = naturalMask(natural.terms, { kind: 'direct' }, mean, options, scratch);
            assert.ok(Buffer.from(direct).equals(Buffer.from(candidateMask(terms, { kind: 'direct', base: terms }, mean, options, new Scratch()))), `direct ${what}`);
            compared++;
          }
        }
      }
      assert.equal(compared, 2 * params.length * targets.length);
    });
  }
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
  let withGramDir: string;
  /** Each layer's statistics from an independent pass (the same engine, driven here by hand). */
  const layerStats: Map<LinearInputGroup, LinearInputStats>[] = [];
  const open = (dir: string, gram: boolean) => ProxyContext.open(model, windows, seqlen, engine, {
    cacheDir: dir, cacheBudgetBytes: 2 ** 26, threads: 1, modelSha256: 'random-llama-7', calibrationSeed: 3, withGram: gram, windows: [],
  });

  before(async () => {
    withGramDir = path.join(scratchDir('proxy'), 'with-gram');
    withGram = await open(withGramDir, true);
    withoutGram = await open(path.join(scratchDir('proxy'), 'without-gram'), false);
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
  after(async () => {
    await withGram.close();
    await withoutGram.close();
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
    const cached = [...linears()].map((l) => readTerms(termsFile(withGramDir, l), withGramDir, true, l));
    assert.equal(cached.length, spec.numLayers * LINEAR_NAMES.length);
    let index = 0;
    for (const l of linears()) {
      assert.deepEqual(cached[index].sqNorm, l.sqNorm, `${l.layer} ${l.name}`);
      assert.deepEqual(cached[index].gram, l.gram, `${l.layer} ${l.name}`);
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

  test('every proxy at the RIA point equals its definition on RIA masks computed directly', async () => {
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
    const { values } = await withGram.evaluate(riaPoint, unstructured);
    for (const p of LINEAR_PROXY_NAMES) {
      close(values[p], sums[p] / count, 1e-6 * Math.max(1, Math.abs(sums[p] / count)), p);
      assert.ok(values[p] > 0 && values[p] < 1, `${p} = ${values[p]}`);
    }
  });

  test('pruned-mass under 2:4 equals the reference share removed by RIA’s 2:4 mask', async () => {
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
    const { values } = await withoutGram.evaluate(riaPoint, { ...unstructured, target: { kind: 'nm', n: 2, m: 4 } }, ['pruned-mass']);
    close(values['pruned-mass'], expected / count, 1e-6, 'pruned-mass 2:4');
  });

  /**
   * Mean next-token NLL over `windows` of the model whose linears are pruned by `maskOf`, from the
   * float64 reference forward (model/reference-forward.ts), the masks applied by hand.
   */
  function referenceNll(maskOf: (l: ReturnType<typeof linears> extends Iterable<infer L> ? L : never) => Uint8Array, evalWindows: Int32Array[]): number[] {
    const blocks = Array.from({ length: spec.numLayers }, (_, layer) => ({ ...model.readBlock(layer) }));
    for (const l of linears()) {
      const mask = maskOf(l);
      blocks[l.layer][`${l.name}.weight`] = Float32Array.from(l.weight, (w, p) => (mask[p] ? 0 : w));
    }
    const pruned: ModelSource = { ...model, spec, readBlock: (layer) => blocks[layer], readEmbedding: () => model.readEmbedding(), readFinalNorm: () => model.readFinalNorm(), readLmHead: () => model.readLmHead() };
    return evalWindows.map((window) => referenceWindowNll(pruned, window));
  }
  const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;

  test('calib-nll at the RIA point: the float64 NLL, on the first calibration windows, of the model pruned by RIA masks from the dense statistics', async () => {
    // The context runs calib-nll on min(4, CALIB_NLL_WINDOWS) = 4 windows: all of them here.
    for (const target of [{ kind: 'unstructured', sparsity: 0.5 }, { kind: 'nm', n: 2, m: 4 }] as const) {
      const expected = mean(referenceNll((l) => {
        const scores = riaScores(l.weight, l.dOut, l.dIn, l.sqNorm, { a: 0.5 });
        return target.kind === 'nm' ? nmMask(scores, l.dOut, l.dIn, 2, 4) : perMatrixMask(scores, 0.5);
      }, windows));
      const { values, seconds } = await withoutGram.evaluate(riaPoint, { ...unstructured, target }, ['calib-nll']);
      close(values['calib-nll'], expected, 1e-4 * expected, `calib-nll ${target.kind}`);
      assert.ok(seconds.forward > 0);
      for (const p of LINEAR_PROXY_NAMES) assert.ok(Number.isNaN(values[p]), p);
    }
  });

  test('calib-nll of another configuration, and at sparsity 0 the dense model\'s NLL; prunedPerplexity on other text', async () => {
    const expected = mean(referenceNll((l) => perMatrixMask(crepeScores(l.weight, l.dOut, l.dIn, l.sqNorm, other), 0.5), windows));
    const { values } = await withGram.evaluate(other, unstructured, ['calib-nll', 'pruned-mass']);
    close(values['calib-nll'], expected, 1e-4 * expected, 'calib-nll');
    const dense = mean(referenceNll((l) => new Uint8Array(l.weight.length), windows));
    const atZero = (await withGram.evaluate(other, { ...unstructured, target: { kind: 'unstructured', sparsity: 0 } }, ['calib-nll'])).values['calib-nll'];
    close(atZero, dense, 1e-4 * dense, 'calib-nll at sparsity 0');
    assert.ok(values['calib-nll'] > atZero, `pruning half the weights raises the NLL: ${values['calib-nll']} vs ${atZero}`);
    // The confirmation's perplexity: the same pruned model on two other windows (the first one only with maxChunks 1).
    const text = Array.from({ length: 2 }, () => Int32Array.from({ length: seqlen }, () => rng.below(spec.vocabSize)));
    const perWindow = referenceNll((l) => perMatrixMask(crepeScores(l.weight, l.dOut, l.dIn, l.sqNorm, other), 0.5), text);
    const tokens = new Int32Array([...text[0], ...text[1]]);
    const both = await withGram.prunedPerplexity(other, unstructured, tokens, { seqlen });
    close(Math.log(both.ppl), mean(perWindow), 1e-4 * mean(perWindow), 'log PPL, two windows');
    const first = await withGram.prunedPerplexity(other, unstructured, tokens, { seqlen, maxChunks: 1 });
    close(Math.log(first.ppl), perWindow[0], 1e-4 * perWindow[0], 'log PPL, first window');
  });

  test('calib-nll with a memory budget that holds layer 0\'s terms only: the reference NLL, bit for bit the value of a budget holding all and of none; the next pass reads layer 1 alone', async () => {
    const dir = path.join(scratchDir('proxy'), 'nll-budget');
    const openWith = (cacheBudgetBytes: number) => ProxyContext.open(model, windows, seqlen, engine, {
      cacheDir: dir, cacheBudgetBytes, threads: 1, modelSha256: 'random-llama-7', calibrationSeed: 3, withGram: false, windows: [windowKey(other)],
    });
    const nllOf = async (context: ProxyContext) => (await context.evaluate(other, unstructured, ['calib-nll'])).values['calib-nll'];
    const valueWith = async (budget: number) => {
      const context = await openWith(budget);
      try {
        return await nllOf(context);
      } finally {
        await context.close();
      }
    };
    const all = await valueWith(2 ** 26);
    const expected = mean(referenceNll((l) => perMatrixMask(crepeScores(l.weight, l.dOut, l.dIn, l.sqNorm, other), 0.5), windows));
    close(all, expected, 1e-4 * expected, 'calib-nll');
    assert.equal(await valueWith(0), all, 'every file read for every layer');
    // Layer 0's files (their headers included): its terms fit, layer 1's do not (each linear is larger than the headers).
    const layer0 = LINEAR_NAMES.flatMap((name) => [termsFile(dir, { layer: 0, name }), windowFile(dir, { layer: 0, name }, windowKey(other))]);
    const partial = await openWith(layer0.reduce((sum, file) => sum + statSync(file).size, 0));
    try {
      assert.equal(await nllOf(partial), all, 'first pass');
      // The layers of a pass are one round of the evaluators' LRU: layer 1 did not evict layer 0,
      // so the next pass finds layer 0 in memory (its files moved away) and reads layer 1 again.
      for (const file of layer0) renameSync(file, `${file}.away`);
      try {
        assert.equal(await nllOf(partial), all, 'second pass, layer 0 from memory');
      } finally {
        for (const file of layer0) renameSync(`${file}.away`, file);
      }
    } finally {
      await partial.close();
    }
  });

  test('nllText: calib-nll on the first nllWindows windows of another text (as --nll-on heldout gives it)', async () => {
    const text = Array.from({ length: 3 }, () => Int32Array.from({ length: seqlen }, () => rng.below(spec.vocabSize)));
    const expected = mean(referenceNll((l) => perMatrixMask(crepeScores(l.weight, l.dOut, l.dIn, l.sqNorm, other), 0.5), text.slice(0, 2)));
    const onText = await ProxyContext.open(model, windows, seqlen, engine, {
      cacheDir: path.join(scratchDir('proxy'), 'nll-text'), cacheBudgetBytes: 2 ** 26, threads: 2, modelSha256: 'random-llama-7', calibrationSeed: 3, withGram: false, windows: [],
      nllWindows: 2, nllText: { tokens: new Int32Array(text.flatMap((w) => [...w])), seqlen },
    });
    try {
      const { values } = await onText.evaluate(other, unstructured, ['calib-nll']);
      close(values['calib-nll'], expected, 1e-4 * expected, 'calib-nll on the text');
      // Not the calibration windows' value.
      const onCalibration = (await withGram.evaluate(other, unstructured, ['calib-nll'])).values['calib-nll'];
      assert.ok(Math.abs(values['calib-nll'] - onCalibration) > 1e-3, `${values['calib-nll']} vs ${onCalibration}`);
    } finally {
      await onText.close();
    }
    const refusal = (field: string) => (e: unknown) => e instanceof FieldError && e.field === field;
    const badText = (nllText: unknown) => ProxyContext.open(model, windows, seqlen, engine, {
      cacheDir: path.join(scratchDir('proxy'), 'nll-text-bad'), cacheBudgetBytes: 2 ** 26, threads: 1, modelSha256: 'random-llama-7', calibrationSeed: 3, withGram: false, windows: [], nllText: nllText as never,
    });
    await assert.rejects(badText({ tokens: Int32Array.of(1, 2, 3), seqlen }), refusal('opts.nllText.tokens'));
    await assert.rejects(badText({ tokens: new Int32Array(seqlen).fill(spec.vocabSize), seqlen }), refusal('opts.nllText.tokens'));
    await assert.rejects(badText({ tokens: new Int32Array(seqlen), seqlen, windows: 2 }), refusal('opts.nllText.windows'));
  });

  test('statisticsFrom: each layer\'s statistics on the inputs the layers before it make once pruned by the configuration (here RIA at 50 %)', async () => {
    const dir = path.join(scratchDir('proxy'), 'pruned-statistics');
    const pruned = await ProxyContext.open(model, windows, seqlen, engine, {
      cacheDir: dir, cacheBudgetBytes: 2 ** 26, threads: 2, modelSha256: 'random-llama-7', calibrationSeed: 3, withGram: false, windows: [],
      statisticsFrom: { params: riaPoint, target: unstructured.target, selection: 'per-matrix' },
    });
    await pruned.close();
    // Layer 0 sees the embeddings either way; layer 1 the output of layer 0 pruned by RIA's masks from layer 0's statistics.
    const rope = ropeTables(spec, seqlen);
    const statsEngine = await BlockEngine.create(spec, seqlen, { ...engine, stats: 'full' });
    const plainEngine = await BlockEngine.create(spec, seqlen, { ...engine, stats: 'none' });
    try {
      const block0 = { ...model.readBlock(0) };
      for (const l of [...linears()].filter((x) => x.layer === 0)) {
        const mask = perMatrixMask(riaScores(l.weight, l.dOut, l.dIn, l.sqNorm, { a: 0.5 }), 0.5);
        block0[`${l.name}.weight`] = Float32Array.from(l.weight, (w, p) => (mask[p] ? 0 : w));
      }
      const hidden = await plainEngine.runSequences(windows.map((w) => embed(w, model.readEmbedding(), spec.hiddenSize)), block0, rope);
      const expected = await collectStatistics(spec, statsEngine, hidden, model.readBlock(1), rope, ['qkv', 'o', 'gateup', 'down'], false);
      let differs = false;
      for (const l of linears()) {
        const cached = readTerms(termsFile(dir, l), dir, true, l).sqNorm;
        const want = l.layer === 0 ? l.sqNorm : expected.get(LINEAR_INPUT_GROUP[l.name])!.sqNorm;
        assert.deepEqual(cached, want, `${l.layer} ${l.name}`);
        if (l.layer === 1) differs ||= cached.some((v, j) => v !== l.sqNorm[j]);
      }
      assert.ok(differs, 'layer 1 statistics differ from the dense ones');
    } finally {
      await statsEngine.release();
      await plainEngine.release();
    }
  });

  test('pruning everything: pruned-mass and output-error are exactly 1', async () => {
    const { values } = await withGram.evaluate(other, { ...unstructured, target: { kind: 'unstructured', sparsity: 1 } }, ['pruned-mass', 'output-error']);
    close(values['pruned-mass'], 1, 1e-12, 'pruned-mass');
    close(values['output-error'], 1, 1e-12, 'output-error');
  });

  test('only the proxies asked for are computed; the others are NaN', async () => {
    const { values } = await withGram.evaluate(other, unstructured, ['gini-ref']);
    const all = (await withGram.evaluate(other, unstructured)).values;
    assert.equal(values['gini-ref'], all['gini-ref']);
    for (const p of PROXY_NAMES) if (p !== 'gini-ref') assert.ok(Number.isNaN(values[p]), `${p} = ${values[p]}`);
  });

  test('deterministic: two evaluations give identical values; the two contexts agree on shared proxies', async () => {
    const first = (await withGram.evaluate(other, unstructured)).values;
    const second = (await withGram.evaluate(other, unstructured)).values;
    assert.deepEqual(second, first);
    const noGram = (await withoutGram.evaluate(other, unstructured, withoutGram.availableProxies)).values;
    for (const p of withoutGram.availableProxies) assert.equal(noGram[p], first[p], p);
  });

  test('a different configuration gives a different mask and different proxies', async () => {
    const ria = (await withGram.evaluate(riaPoint, unstructured)).values;
    const changed = (await withGram.evaluate(other, unstructured)).values;
    for (const p of PROXY_NAMES) assert.notEqual(changed[p], ria[p], p);
  });

  test('availableProxies: output-error only with grams; asking for it without grams throws', async () => {
    assert.deepEqual(withGram.availableProxies, [...PROXY_NAMES]);
    assert.deepEqual(withoutGram.availableProxies, PROXY_NAMES.filter((p) => p !== 'output-error'));
    const refusal = (field: string, problem: string) => (e: unknown) => e instanceof FieldError && e.field === field && e.problem === problem;
    await assert.rejects(withoutGram.evaluate(riaPoint, unstructured, ['output-error']),
      refusal('which[0]', 'output-error is not available in this context (it needs the grams: open the context with withGram); available: gini-own, gini-ref, pruned-mass, column-gini, calib-nll'));
    // Unchecked, an unknown name would be an internal error, a name as text a TypeError.
    await assert.rejects(withGram.evaluate(riaPoint, unstructured, ['gini-ref', 'gini' as never]),
      refusal('which[1]', '"gini" is unknown; expected one of gini-own, gini-ref, pruned-mass, column-gini, output-error, calib-nll'));
    // Unchecked, an even window size would be prepared and recorded in the cache's manifest.
    await assert.rejects(withGram.evaluate({ ...riaPoint, k: 2, gamma: 1 }, unstructured, ['gini-ref']), refusal('params.k', '(the neighbourhood window size) must be an odd integer in [1, 63], got 2'));
    await assert.rejects(withGram.evaluateMany([riaPoint, { ...riaPoint, gama: 1 } as never], unstructured, ['gini-ref']), refusal('paramsList[1].gama', 'is not a field of paramsList[1]; did you mean paramsList[1].gamma?'));
    await assert.rejects(withGram.prunedPerplexity({ ...riaPoint, alpha: -1 }, unstructured, Int32Array.of(1, 2, 3), { seqlen: 2 }), refusal('params.alpha', 'must be a finite number ≥ 0, got -1'));
    await assert.rejects(withGram.prunedPerplexity(riaPoint, { ...unstructured, seed: -1 }, Int32Array.of(1, 2, 3), { seqlen: 2 }), refusal('seed', 'must be an integer ≥ 0, got -1'));
    await assert.rejects(withGram.evaluateMany([riaPoint], unstructured, 'gini-ref' as never),
      refusal('which', 'must list proxy names (some of gini-own, gini-ref, pruned-mass, column-gini, output-error, calib-nll), got "gini-ref"'));
  });

  test('gini-own on a subsample: exact when the sample covers the matrix, fixed positions per seed otherwise', async () => {
    const exact = (await withoutGram.evaluate(other, unstructured, ['gini-own'])).values['gini-own'];
    const covering = (await withoutGram.evaluate(other, { ...unstructured, giniSubsample: 1 << 20 }, ['gini-own'])).values['gini-own'];
    assert.equal(covering, exact);
    const sampled = (await withoutGram.evaluate(other, { ...unstructured, giniSubsample: 500 }, ['gini-own'])).values['gini-own'];
    const again = (await withoutGram.evaluate(other, { ...unstructured, giniSubsample: 500 }, ['gini-own'])).values['gini-own'];
    assert.equal(again, sampled);
    assert.notEqual(sampled, exact);
    close(sampled, exact, 0.1, 'a 500-position sample is close to the exact Gini');
  });

  test('proxies: [calib-nll]: a new cache in the natural layout gives the position layout\'s calib-nll and pruned perplexities bit for bit; it serves no per-linear proxy until a run that may ask for one converts it', async () => {
    const dir = path.join(scratchDir('proxy'), 'natural');
    const smooth: CrepeParams = { k: 5, alpha: 0.6, beta: 1.7, gamma: 0.8, a: 0.5, variant: 'smooth', border: 'zero' };
    const options = (cacheDir: string, proxies?: ProxyName[]) => ({
      cacheDir, cacheBudgetBytes: 2 ** 26, threads: 2, modelSha256: 'random-llama-7', calibrationSeed: 3, withGram: false, windows: [windowKey(other)], ...(proxies ? { proxies } : {}),
    });
    const natural = await ProxyContext.open(model, windows, seqlen, engine, options(dir, ['calib-nll']));
    const positionDir = path.join(scratchDir('proxy'), 'natural-position');
    const position = await ProxyContext.open(model, windows, seqlen, engine, options(positionDir));
    try {
      assert.equal(readManifest(dir)!.layout, 'natural');
      assert.equal(readManifest(positionDir)!.layout, undefined);
      assert.deepEqual(natural.availableProxies, ['calib-nll']);
      const l = [...linears()][0];
      const stored = readNaturalTerms(termsFile(dir, l, null, 'natural'), dir, true, l);
      assert.deepEqual(stored.sqNorm, readTerms(termsFile(positionDir, l), positionDir, true, l).sqNorm);
      const text = Int32Array.from({ length: 2 * seqlen }, () => rng.below(spec.vocabSize));
      // k = 3 prepared with the cache; k = 5 smooth and k = 7 added on demand; the RIA point (γ = 0); a border read through crepeScores.
      const points = [other, riaPoint, smooth, { ...other, k: 7 }, { ...other, border: 'mean' as const }];
      const targets: ProxyOptions[] = [unstructured, { ...unstructured, selection: 'per-row' }, { ...unstructured, target: { kind: 'nm', n: 2, m: 4 } }];
      for (const point of points) {
        for (const opts of targets) {
          const what = `${JSON.stringify(point)} ${JSON.stringify(opts.target)} ${opts.selection}`;
          const nll = (await natural.evaluate(point, opts, ['calib-nll'])).values['calib-nll'];
          assert.equal(nll, (await position.evaluate(point, opts, ['calib-nll'])).values['calib-nll'], what);
          assert.ok(Number.isFinite(nll), what);
        }
        const ppl = (await natural.prunedPerplexity(point, unstructured, text, { seqlen })).ppl;
        assert.equal(ppl, (await position.prunedPerplexity(point, unstructured, text, { seqlen })).ppl, JSON.stringify(point));
      }
      // What the evaluators hand back: from the natural layout each linear's weights, those of
      // readBlock pruned by applyMask with the position layout's mask, bit for bit; the arrays of
      // each request handed back with the next one are filled again.
      const units = [...linears()].map(({ layer, name, dOut, dIn }, index) => ({ index, layer, name, dOut, dIn }));
      const evaluator = (cacheDir: string, layout: 'natural' | 'position') => new UnitEvaluator({ dir: cacheDir, units, budgetBytes: 2 ** 26, windowPrecision: 'float32', rowsOnly: null, layout });
      const [naturalEvaluator, positionEvaluator] = [evaluator(dir, 'natural'), evaluator(positionDir, 'position')];
      let spare: Float32Array[] = [];
      let reused = 0;
      for (const [point, source] of [[other, 'terms'], [{ ...other, k: 7 }, 'terms'], [riaPoint, 'terms'], [smooth, 'direct'], [{ ...other, border: 'mean' }, 'direct']] as const) {
        for (const opts of targets) {
          const request = { params: point, options: opts, source, units: units.map((u) => u.index), newRound: true };
          const pruned = await naturalEvaluator.prune(request, spare);
          reused += pruned.filter((p) => 'weight' in p && spare.includes(p.weight)).length;
          const masks = await positionEvaluator.prune(request);
          for (const unit of units) {
            const what = `${unit.layer} ${unit.name} ${JSON.stringify(point)} ${JSON.stringify(opts.target)} ${opts.selection}`;
            const weight = pruned[unit.index];
            const mask = masks[unit.index];
            assert.ok('weight' in weight && 'mask' in mask && weight.unit === unit.index && mask.unit === unit.index, what);
            const expected = model.readBlock(unit.layer)[`${unit.name}.weight`].slice();
            applyMask(expected, mask.mask);
            assert.ok(Buffer.from(weight.weight.buffer).equals(Buffer.from(expected.buffer)), what);
          }
          // Handed back dirty: the next request must write every entry.
          spare = pruned.flatMap((p) => ('weight' in p ? [p.weight] : []));
          for (const array of spare) array.fill(Number.NaN);
        }
      }
      assert.ok(reused >= units.length, `${reused} arrays reused`);
      const expected = mean(referenceNll((x) => perMatrixMask(crepeScores(x.weight, x.dOut, x.dIn, x.sqNorm, other), 0.5), windows));
      close((await natural.evaluate(other, unstructured, ['calib-nll'])).values['calib-nll'], expected, 1e-4 * expected, 'calib-nll against the float64 reference');
      await assert.rejects(natural.evaluate(other, unstructured, ['gini-ref']), (e: unknown) => e instanceof FieldError && e.field === 'which[0]'
        && e.problem === `gini-ref is not available in this context (the cache ${dir} holds its terms in the natural layout, which serves calib-nll alone); available: calib-nll`);
    } finally {
      await natural.close();
      await position.close();
    }
    // Reopened for calib-nll, each cache is reused as it is.
    for (const cacheDir of [dir, positionDir]) {
      const again = await ProxyContext.open(model, windows, seqlen, engine, options(cacheDir, ['calib-nll']));
      try {
        assert.equal(again.cache.layersBuilt, 0);
        assert.deepEqual(again.availableProxies, cacheDir === dir ? ['calib-nll'] : withoutGram.availableProxies);
      } finally {
        await again.close();
      }
    }
    // Opened for any proxy, the natural cache is converted: the position files a position build wrote, byte for byte.
    const converted = await ProxyContext.open(model, windows, seqlen, engine, options(dir, ['calib-nll', 'gini-ref']));
    const reference = await ProxyContext.open(model, windows, seqlen, engine, options(positionDir));
    try {
      assert.equal(converted.cache.layersBuilt, 0);
      assert.equal(readManifest(dir)!.layout, undefined);
      assert.ok(!existsSync(path.join(dir, 'natural')), 'natural/ removed');
      assert.deepEqual(readManifest(dir)!.windows, readManifest(positionDir)!.windows);
      assert.equal(readManifest(dir)!.windows.length, 2, 'k = 3 and the k = 7 added on demand');
      for (const x of linears()) {
        const files = (root: string) => [termsFile(root, x), ...readManifest(root)!.windows.map((key) => windowFile(root, x, key))];
        files(dir).forEach((file, i) => assert.ok(readFileSync(file).equals(readFileSync(files(positionDir)[i])), file));
      }
      assert.deepEqual(converted.availableProxies, withoutGram.availableProxies);
      const all = (await converted.evaluate(other, unstructured, converted.availableProxies)).values;
      assert.deepEqual(all, (await reference.evaluate(other, unstructured, reference.availableProxies)).values);
    } finally {
      await converted.close();
      await reference.close();
    }
    await assert.rejects(ProxyContext.open(model, windows, seqlen, engine, { ...options(dir, ['calib-nll']), proxies: ['gini'] as never }),
      (e: unknown) => e instanceof FieldError && e.field === 'opts.proxies[0]');
  });

  test('gramBytes: Σ over layers of the four input widths squared, 8 bytes each', () => {
    // Widths 64 (qkv), 4·16 = 64 (o), 64 (gate/up), 96 (down); 2 layers.
    assert.equal(ProxyContext.gramBytes(spec), 2 * 8 * (64 * 64 + 64 * 64 + 64 * 64 + 96 * 96));
  });
});
