import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GroupStatsAccumulator, collectStatistics, forEachDenseLayer } from '../../src/prune/calibration-stats.ts';
import { BlockEngine } from '../../src/engine/block-engine.ts';
import { embedWindows } from '../../src/engine/forward.ts';
import { ropeTables } from '../../src/model/rope.ts';
import { LINEAR_INPUT_GROUP, LINEAR_NAMES, linearShape, type BlockWeights } from '../../src/model/spec.ts';
import { randomModel, smallSpec } from '../helpers/random-model.ts';
import { seededRandom } from '../helpers/random.ts';

test('a batch of per-sequence rows accumulates exactly as the sequences one by one; the batch gram is added once', () => {
  const width = 2;
  const tokens = 4;
  // Three sequences: Σx² and Σx per channel.
  const sqSum = [[4, 9], [1, 16], [8, 2]];
  const sum = [[2, -3], [1, 4], [0, 2]];
  const gramOf = (s: number) => [sqSum[s][0], s + 1, s + 1, sqSum[s][1]];

  const oneByOne = new GroupStatsAccumulator(width, true);
  for (let s = 0; s < 3; s++) {
    oneByOne.add({ sqSum: Float32Array.from(sqSum[s]), sum: Float32Array.from(sum[s]), gram: Float32Array.from(gramOf(s)) }, 1, tokens);
  }
  const batched = new GroupStatsAccumulator(width, true);
  const batchGram = gramOf(0).map((_, i) => gramOf(0)[i] + gramOf(1)[i] + gramOf(2)[i]);
  batched.add({ sqSum: Float32Array.from(sqSum.flat()), sum: Float32Array.from(sum.flat()), gram: Float32Array.from(batchGram) }, 3, tokens);

  const a = oneByOne.finish();
  const b = batched.finish();
  assert.deepEqual(b, a);
  assert.equal(b.nsamples, 3);
  assert.equal(b.tokensPerSample, tokens);
  assert.deepEqual(Array.from(b.sqNorm), [13 / 3, 27 / 3]);
  assert.deepEqual(Array.from(b.mean), [1, 1]);
  // Per-sequence variance Σx²/L − (Σx/L)², averaged: channel 0: (1 − 0.25 + 0.25 − 0.0625 + 2 − 0) / 3.
  assert.ok(Math.abs(b.variance[0] - (0.75 + 0.1875 + 2) / 3) < 1e-12);
  assert.deepEqual(Array.from(b.gram!), [13, 6, 6, 27]);
});

test('the dense pass hands each layer its own weights and the statistics of the inputs the blocks before it made; a continued pass and a pass through other weights follow the same rule', async () => {
  const spec = { ...smallSpec('llama'), numLayers: 3 };
  const model = randomModel(spec, 51);
  const seqLen = 8;
  const uniform = seededRandom(52);
  const windows = Array.from({ length: 3 }, () => Int32Array.from({ length: seqLen }, () => Math.floor(uniform() * spec.vocabSize)));
  const rope = ropeTables(spec, seqLen);
  const engine = { device: 'cpu' as const, threads: 1 };
  const engines = { stats: await BlockEngine.create(spec, seqLen, { ...engine, stats: 'full' }), plain: await BlockEngine.create(spec, seqLen, { ...engine, stats: 'none' }) };
  // The next layer's inputs through a block whose o_proj is halved, as a pruned block would make them.
  const halvedO = (_layer: number, weights: BlockWeights): BlockWeights => ({ ...weights, 'self_attn.o_proj.weight': weights['self_attn.o_proj.weight'].map((w) => w / 2) });
  try {
    for (const nextWeights of [undefined, halvedO]) {
      // Independently: each layer's inputs by the plain engine from the previous layer's, its statistics collected on them.
      const inputs = [embedWindows(model, windows)];
      for (let layer = 1; layer < spec.numLayers; layer++) {
        const block = model.readBlock(layer - 1);
        inputs.push(await engines.plain.runSequences(inputs[layer - 1], nextWeights ? nextWeights(layer - 1, block) : block, rope));
      }
      for (const firstLayer of [0, 1]) {
        const visited: number[] = [];
        const saved: number[] = [];
        await forEachDenseLayer(model, inputs[firstLayer], rope, engines, true, async (layer, linears) => {
          visited.push(layer);
          const expected = await collectStatistics(spec, engines.stats, inputs[layer], model.readBlock(layer), rope, ['qkv', 'o', 'gateup', 'down'], true);
          assert.deepEqual(linears.map((l) => l.name), [...LINEAR_NAMES]);
          for (const { name, dOut, dIn, weight, stats } of linears) {
            assert.deepEqual([dOut, dIn], linearShape(spec, name));
            assert.deepEqual(weight, model.readBlock(layer)[`${name}.weight`], `layer ${layer} ${name}`);
            assert.deepEqual(stats, expected.get(LINEAR_INPUT_GROUP[name]), `layer ${layer} ${name}`);
            assert.ok(stats.gram);
          }
        }, {
          firstLayer,
          nextWeights,
          onInputs: async (layer, hidden) => {
            saved.push(layer);
            assert.deepEqual(hidden, inputs[layer], `inputs of layer ${layer}`);
          },
        });
        assert.deepEqual(visited, [0, 1, 2].slice(firstLayer));
        // No inputs are made after the last layer.
        assert.deepEqual(saved, [1, 2].slice(firstLayer));
      }
    }
  } finally {
    await engines.stats.release();
    await engines.plain.release();
  }
});
