// A real trial (prune + held-out perplexity) measures the pruned model without holding it: the
// held-out windows go through each pruned layer as the pruning loop hands it over. Against the
// pruned blocks collected from the same loop and measured afterwards by perplexity().
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blockWeightBytes } from '../../src/engine/block-graph.ts';
import { ModelEngine } from '../../src/engine/model-engine.ts';
import { perplexity, WindowPass } from '../../src/eval/perplexity.ts';
import type { ModelSource } from '../../src/model/source.ts';
import { LINEAR_NAMES, type BlockWeights, type ModelSpec } from '../../src/model/spec.ts';
import { pruneLayers } from '../../src/prune/layer-loop.ts';
import { pruneSettings } from '../../src/prune/settings.ts';
import { pruneAndMeasure } from '../../src/search/trial.ts';
import { Rng } from '../../src/util/rng.ts';
import { randomModel, smallSpec } from '../helpers/random-model.ts';

const engine = { device: 'cpu' as const, threads: 1 };
const seqlen = 16;

async function compare(spec: ModelSpec, mode: 'layer-major' | undefined): Promise<void> {
  const model = randomModel(spec, 5);
  const rng = new Rng(9);
  const windows = Array.from({ length: 3 }, () => Int32Array.from({ length: seqlen }, () => rng.below(spec.vocabSize)));
  const tokens = Int32Array.from({ length: 4 * seqlen + 5 }, () => rng.below(spec.vocabSize));
  const settings = pruneSettings({ method: 'ria', target: { kind: 'unstructured', sparsity: 0.5 }, calibration: { file: 'random', sha256: '', nsamples: 3, seqlen, seed: 0 } });
  const blocks: BlockWeights[] = [];
  await pruneLayers({ model, settings, windows, engine, onLayerDone: async (layer, weights) => { blocks[layer] = weights; } });
  const pruned: ModelSource = { ...model, readBlock: (layer) => blocks[layer] };
  const expected = await perplexity(pruned, tokens, { ...engine, seqlen, maxChunks: 3, mode });
  const trial = await pruneAndMeasure(model, settings, windows, { tokens, seqlen, maxChunks: 3 }, engine);
  assert.deepEqual(trial.windowNll, expected.windowNll);
  assert.equal(trial.ppl, expected.ppl);
  // The sparsity the loop reports: the zeros of the pruned linears (per-matrix RIA prunes ties at the threshold too).
  let zeros = 0;
  let total = 0;
  for (const block of blocks) {
    for (const name of LINEAR_NAMES) {
      const weight = block[`${name}.weight`];
      zeros += weight.filter((w) => w === 0).length;
      total += weight.length;
    }
  }
  assert.equal(trial.linearSparsity, zeros / total);
  assert.ok(trial.linearSparsity >= 0.5 && trial.linearSparsity < 0.501, String(trial.linearSparsity));
}

test('a model above the one-graph bound: the held-out windows stream through the pruned layers, equal bit for bit to the layer-major perplexity of the pruned model', async () => {
  const spec = smallSpec('llama', { hiddenSize: 512, intermediateSize: 2048, numLayers: 4, numHeads: 8, numKvHeads: 4, headDim: 64, vocabSize: 4096 });
  // The conditions under which the trial streams: too large for one graph, hidden states smaller than the pruned blocks.
  assert.ok(!ModelEngine.fits({ spec } as ModelSource));
  assert.ok(WindowPass.bytes(3, seqlen, spec.hiddenSize) <= spec.numLayers * blockWeightBytes(spec));
  await compare(spec, 'layer-major');
});

test('a model small enough for one graph is kept pruned and measured as perplexity() measures it', async () => {
  const spec = smallSpec('llama');
  assert.ok(ModelEngine.fits({ spec } as ModelSource));
  await compare(spec, undefined);
});

test('lastLayerOutputs false (what a trial asks): the same pruned layers and reports, no outputs of the last layer', async () => {
  const spec = smallSpec('llama');
  const rng = new Rng(4);
  const windows = Array.from({ length: 2 }, () => Int32Array.from({ length: seqlen }, () => rng.below(spec.vocabSize)));
  const settings = pruneSettings({ method: 'wanda', target: { kind: 'unstructured', sparsity: 0.5 }, calibration: { file: 'random', sha256: '', nsamples: 2, seqlen, seed: 0 } });
  const run = async (lastLayerOutputs: boolean | undefined) => {
    const model = randomModel(spec, 6);
    const done: { layer: number; weights: BlockWeights; hidden: number }[] = [];
    const reports = await pruneLayers({
      model, settings, windows, engine, lastLayerOutputs,
      onLayerDone: async (layer, weights, _report, hidden) => { done.push({ layer, weights, hidden: hidden.length }); },
    });
    return { done, linears: reports.map((r) => r.linears.map((l) => [l.name, l.pruned])) };
  };
  const full = await run(undefined);
  const trial = await run(false);
  assert.deepEqual(full.done.map((d) => d.hidden), [2, 2]);
  assert.deepEqual(trial.done.map((d) => d.hidden), [2, 0]);
  assert.deepEqual(trial.done.map((d) => d.weights), full.done.map((d) => d.weights));
  assert.deepEqual(trial.linears, full.linears);
});
