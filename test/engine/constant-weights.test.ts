import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockEngine, ConstantBlockWeights, constantWeightsPay } from '../../src/engine/block-engine.ts';
import { blockWeightBytes } from '../../src/engine/block-graph.ts';
import { ropeTables } from '../../src/model/rope.ts';
import { LINEAR_NAMES, type BlockWeights, type ModelSpec } from '../../src/model/spec.ts';
import { collectStatistics } from '../../src/prune/calibration-stats.ts';
import { pruneLayers } from '../../src/prune/layer-loop.ts';
import { pruneSettings } from '../../src/prune/settings.ts';
import { randomModel, smallSpec } from '../helpers/random-model.ts';
import { seededRandom } from '../helpers/random.ts';
import { relativeError } from '../helpers/relative-error.ts';

const TINYLLAMA: ModelSpec = {
  ...smallSpec('llama'), hiddenSize: 2048, intermediateSize: 5632, numHeads: 32, numKvHeads: 4, headDim: 64,
  attentionBias: false, qkNorm: false,
};

test('blockWeightBytes: TinyLlama-1.1B layer', () => {
  // q, o 2048²; k, v 256·2048; gate, up, down 5632·2048; two norms of 2048: 44,044,288 floats.
  assert.equal(blockWeightBytes(TINYLLAMA), 4 * (2 * 2048 * 2048 + 2 * 256 * 2048 + 3 * 5632 * 2048 + 2 * 2048));
  assert.equal(blockWeightBytes(TINYLLAMA), 176_177_152);
});

test('constantWeightsPay: break-even runs per weight set', () => {
  const bytes = 176_177_152;
  // Saved per run 176,177,152 · 6.2e-11 = 10.92 ms. Session with huge pages 0.1 + 0.3347 = 0.4347 s:
  // break-even 39.8 runs; with 4 KiB pages 0.5 + 2.6427 = 3.1427 s: 287.7 runs.
  assert.equal(constantWeightsPay(bytes, 39, true), false);
  assert.equal(constantWeightsPay(bytes, 40, true), true);
  assert.equal(constantWeightsPay(bytes, 287, false), false);
  assert.equal(constantWeightsPay(bytes, 288, false), true);
  // One pass of 128 calibration windows of 2048 tokens (a run each) pays only with huge pages.
  assert.equal(constantWeightsPay(bytes, 128, true), true);
  assert.equal(constantWeightsPay(bytes, 128, false), false);
  assert.equal(constantWeightsPay(bytes, 0, true), false);
  // stories260K's layer, 45,440 floats = 181,760 bytes, saves 11.3 µs a run against a session of
  // 0.10035 s: break-even after 8,904.5 runs, more than a WikiText-2 evaluation's 3,183 windows.
  const stories = 4 * (2 * 64 * 64 + 2 * 32 * 64 + 3 * 172 * 64 + 2 * 64);
  assert.equal(stories, 181_760);
  assert.equal(constantWeightsPay(stories, 3183, true), false);
  assert.equal(constantWeightsPay(stories, 8904, true), false);
  assert.equal(constantWeightsPay(stories, 8905, true), true);
});

test('block weights as constants give the outputs and statistics of weights as inputs', async () => {
  const spec = smallSpec('llama');
  const seqLen = 21;
  const model = randomModel(spec, 11);
  const weights = model.readBlock(0);
  const rope = ropeTables(spec, seqLen);
  const uniform = seededRandom(4);
  const hidden = Array.from({ length: 5 }, () => Float32Array.from({ length: seqLen * spec.hiddenSize }, () => 2 * uniform() - 1));
  const engines = async (stats: 'none' | 'full') => ({
    inputs: await BlockEngine.create(spec, seqLen, { device: 'cpu', threads: 1, stats, maxBatch: 2, blockWeights: 'inputs' }),
    constants: await BlockEngine.create(spec, seqLen, { device: 'cpu', threads: 1, stats, maxBatch: 2, blockWeights: 'constants' }),
  });
  const plain = await engines('none');
  const full = await engines('full');
  try {
    assert.equal(plain.inputs.constantsFor(1000), false);
    assert.equal(plain.constants.constantsFor(1), true);
    let held: unknown;
    await plain.constants.withWeights(weights, hidden.length, async (w) => { held = w; });
    assert.ok(held instanceof ConstantBlockWeights);
    await plain.inputs.withWeights(weights, hidden.length, async (w) => { held = w; });
    assert.equal(held, weights);

    const viaInputs = await plain.inputs.runSequences(hidden, weights, rope);
    const viaConstants = await plain.constants.runSequences(hidden, weights, rope);
    assert.equal(viaConstants.length, hidden.length);
    for (let s = 0; s < hidden.length; s++) assert.ok(relativeError(viaConstants[s], viaInputs[s]) < 1e-6, `sequence ${s}`);

    const groups = ['qkv', 'o', 'gateup', 'down'] as const;
    const a = await collectStatistics(spec, full.inputs, hidden, weights, rope, [...groups], true);
    const b = await collectStatistics(spec, full.constants, hidden, weights, rope, [...groups], true);
    for (const group of groups) {
      const x = a.get(group)!;
      const y = b.get(group)!;
      assert.equal(y.nsamples, hidden.length);
      assert.ok(relativeError(y.sqNorm, x.sqNorm) < 1e-6, `${group} sqNorm`);
      assert.ok(relativeError(y.mean, x.mean) < 1e-6, `${group} mean`);
      assert.ok(relativeError(y.gram!, x.gram!) < 1e-6, `${group} gram`);
    }
  } finally {
    for (const e of [plain.inputs, plain.constants, full.inputs, full.constants]) await e.release();
  }
});

test("constant weights run only on the engine that made them", async () => {
  const spec = smallSpec('llama');
  const seqLen = 5;
  const weights = randomModel(spec, 2).readBlock(0);
  const rope = ropeTables(spec, seqLen);
  const hidden = new Float32Array(seqLen * spec.hiddenSize).fill(0.5);
  const one = await BlockEngine.create(spec, seqLen, { device: 'cpu', threads: 1, stats: 'none', blockWeights: 'constants' });
  const other = await BlockEngine.create(spec, seqLen, { device: 'cpu', threads: 1, stats: 'none', blockWeights: 'constants' });
  try {
    await one.withWeights(weights, 1, async (held) => {
      await assert.rejects(other.run(hidden, held, rope), /belong to the engine that made them/);
      const { hidden: out } = await one.run(hidden, held, rope);
      assert.equal(out.length, hidden.length);
    });
  } finally {
    await one.release();
    await other.release();
  }
});

test('the layer loop prunes alike with the weights as constants and as inputs (Wanda, SparseGPT true-sequential)', async () => {
  const spec = { ...smallSpec('llama'), numLayers: 2 };
  const model = randomModel(spec, 21);
  const seqLen = 16;
  const uniform = seededRandom(9);
  const windows = Array.from({ length: 6 }, () => Int32Array.from({ length: seqLen }, () => Math.floor(uniform() * spec.vocabSize)));
  const calibration = { file: 'synthetic', sha256: '', nsamples: windows.length, seqlen: seqLen, seed: 0 };
  const cases = [
    pruneSettings({ method: 'wanda', target: { kind: 'unstructured', sparsity: 0.5 }, calibration }),
    pruneSettings({ method: 'sparsegpt', target: { kind: 'unstructured', sparsity: 0.5 }, calibration, trueSequential: true }),
  ];
  for (const settings of cases) {
    const prune = async (blockWeights: 'inputs' | 'constants') => {
      const layers: { weights: BlockWeights; hidden: Float32Array[] }[] = [];
      await pruneLayers({
        model, settings, windows, engine: { device: 'cpu', threads: 1, blockWeights },
        onLayerDone: async (_layer, weights, _report, hidden) => { layers.push({ weights: { ...weights }, hidden }); },
      });
      return layers;
    };
    const inputs = await prune('inputs');
    const constants = await prune('constants');
    for (let layer = 0; layer < spec.numLayers; layer++) {
      for (const name of LINEAR_NAMES) {
        const a = inputs[layer].weights[`${name}.weight`];
        const b = constants[layer].weights[`${name}.weight`];
        let sameMask = 0;
        for (let i = 0; i < a.length; i++) if ((a[i] === 0) === (b[i] === 0)) sameMask++;
        assert.equal(sameMask, a.length, `${settings.method} layer ${layer} ${name}: masks`);
        assert.ok(relativeError(b, a) < 1e-5, `${settings.method} layer ${layer} ${name}: weights`);
      }
      for (let s = 0; s < windows.length; s++) assert.ok(relativeError(constants[layer].hidden[s], inputs[layer].hidden[s]) < 1e-5, `layer ${layer} output ${s}`);
    }
  }
});
