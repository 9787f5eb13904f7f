// The prune a proxy context's dense pass makes to take its statistics (statisticsFrom) is a real
// trial's prune of that configuration: the context hands out its pruned blocks, and their held-out
// perplexity (measurePruned) equals a separate pruneAndMeasure of the same settings bit for bit, on
// a model measured by one graph and on one whose held-out windows stream through the layers. Any
// other prune (another configuration, target, selection, setting, window set or engine) and a
// context that did not build the cache itself get no blocks. A search whose start configuration is
// confirmed measures that prune, and its log equals that of the same search confirming by a new prune.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { ModelEngine } from '../../src/engine/model-engine.ts';
import type { ModelSource } from '../../src/model/source.ts';
import { LINEAR_NAMES, type BlockWeights, type ModelSpec } from '../../src/model/spec.ts';
import { pruneLayers } from '../../src/prune/layer-loop.ts';
import type { CrepeParams } from '../../src/prune/scores/crepe.ts';
import { pruneSettings, type PruneSettings } from '../../src/prune/settings.ts';
import { ProxyContext, type ProxyContextOptions } from '../../src/search/proxy.ts';
import { measurePruned, pruneAndMeasure } from '../../src/search/trial.ts';
import { Rng } from '../../src/util/rng.ts';
import { parseTarget, searchCoefficients, type ProgressEvent } from '../../src/index.ts';
import { randomModel, smallSpec } from '../helpers/random-model.ts';
import { C4_SAMPLE, PTB_VALID } from '../helpers/shared.ts';
import { scratchDir, storiesModelDir } from '../helpers/stories.ts';

const engine = { device: 'cpu' as const, threads: 1 };
const seqlen = 16;
const START: CrepeParams = { k: 3, alpha: 1, beta: 1, gamma: 1, a: 0.5, variant: 'normalized', border: 'zero' };
const target = { kind: 'unstructured' as const, sparsity: 0.5 };
const calibration = { file: 'random', sha256: '', nsamples: 3, seqlen, seed: 0 };
const settingsOf = (crepe: CrepeParams, more: Partial<Parameters<typeof pruneSettings>[0]> = {}): PruneSettings =>
  pruneSettings({ method: 'crepe', target, selection: 'per-matrix', crepe, calibration, ...more });

/** `model` with every read a copy: the pruning loop prunes the arrays it reads in place. */
function copying(model: ModelSource): ModelSource {
  return { ...model, readBlock: (layer) => Object.fromEntries(Object.entries(model.readBlock(layer)).map(([k, v]) => [k, v.slice()])) };
}

function setup(spec: ModelSpec) {
  const model = copying(randomModel(spec, 5));
  const rng = new Rng(9);
  const windows = Array.from({ length: 3 }, () => Int32Array.from({ length: seqlen }, () => rng.below(spec.vocabSize)));
  const heldOut = { tokens: Int32Array.from({ length: 4 * seqlen + 5 }, () => rng.below(spec.vocabSize)), seqlen, maxChunks: 3 };
  const options = (dir: string, more: Partial<ProxyContextOptions> = {}): ProxyContextOptions => ({
    cacheDir: dir, cacheBudgetBytes: 2 ** 26, threads: 2, modelSha256: `random-${spec.hiddenSize}`, calibrationSeed: 0, withGram: false, windows: [],
    statisticsFrom: { params: START, target, selection: 'per-matrix' }, ...more,
  });
  return { model, windows, heldOut, options };
}

async function prunedBlocks(model: ModelSource, settings: PruneSettings, windows: Int32Array[]): Promise<BlockWeights[]> {
  const blocks: BlockWeights[] = [];
  await pruneLayers({ model, settings, windows, engine, onLayerDone: async (layer, weights) => { blocks[layer] = weights; } });
  return blocks;
}

describe('the dense pass\'s own prune, measured as a trial', () => {
  const cases: [string, ModelSpec, boolean][] = [
    ['a model measured by one graph (grams kept: the statistics engine computes more)', smallSpec('llama'), true],
    ['a model whose held-out windows stream through the pruned layers', smallSpec('llama', { hiddenSize: 512, intermediateSize: 2048, numLayers: 4, numHeads: 8, numKvHeads: 4, headDim: 64, vocabSize: 4096 }), false],
  ];
  for (const [label, spec, withGram] of cases) {
    test(label, async () => {
      assert.equal(ModelEngine.fits({ spec } as ModelSource), withGram);
      const { model, windows, heldOut, options } = setup(spec);
      const dir = path.join(scratchDir('statistics-prune'), 'cache');
      const context = await ProxyContext.open(model, windows, seqlen, engine, options(dir, { withGram }));
      try {
        const settings = settingsOf(START);
        const blockOf = context.statisticsPrune(settings, windows, engine);
        assert.ok(blockOf, 'the start configuration\'s prune is the dense pass\'s');
        // The blocks themselves, against the pruning loop's (and pruned at all: about half of each linear is zero).
        const expected = await prunedBlocks(model, settings, windows);
        for (let layer = 0; layer < spec.numLayers; layer++) {
          const block = await blockOf(layer);
          for (const name of Object.keys(expected[layer])) assert.deepEqual(block[name], expected[layer][name], `layer ${layer} ${name}`);
          for (const name of LINEAR_NAMES) {
            const zeros = block[`${name}.weight`].filter((w) => w === 0).length / block[`${name}.weight`].length;
            assert.ok(zeros >= 0.5 && zeros < 0.51, `layer ${layer} ${name}: ${zeros}`);
          }
        }
        const reused = await measurePruned(model, blockOf, heldOut, engine);
        const trial = await pruneAndMeasure(model, settings, windows, heldOut, engine);
        assert.deepEqual(reused.windowNll, trial.windowNll);
        assert.equal(reused.ppl, trial.ppl);
        assert.equal(reused.windowNll.length, 3);

        // Any other prune gets no blocks.
        const other = { ...START, beta: 2 };
        assert.equal(context.statisticsPrune(settingsOf(other), windows, engine), null, 'another configuration');
        assert.equal(context.statisticsPrune(settingsOf({ ...START, k: 1 }), windows, engine), null, 'another window size');
        assert.equal(context.statisticsPrune(settingsOf(START, { target: { kind: 'unstructured', sparsity: 0.6 } }), windows, engine), null, 'another target');
        assert.equal(context.statisticsPrune(settingsOf(START, { selection: 'per-row' }), windows, engine), null, 'another selection');
        assert.equal(context.statisticsPrune(settingsOf(START, { trueSequential: true }), windows, engine), null, 'true-sequential');
        assert.equal(context.statisticsPrune(settingsOf(START, { exclude: ['mlp.down_proj'] }), windows, engine), null, 'a linear left dense');
        assert.equal(context.statisticsPrune(settingsOf(START, { calibration: { ...calibration, nsamples: 2 } }), windows.slice(0, 2), engine), null, 'other windows');
        assert.equal(context.statisticsPrune(settings, [windows[1], windows[0], windows[2]], engine), null, 'the windows in another order');
        assert.equal(context.statisticsPrune(settings, windows, { ...engine, threads: 2 }), null, 'other engine options');
      } finally {
        await context.close();
      }
      assert.ok(!existsSync(path.join(dir, 'statistics-masks')), 'the masks go with the context');
      // A complete cache reused by a later context: its statistics were taken by another process, whose prune this one did not see.
      const reusedCache = await ProxyContext.open(model, windows, seqlen, engine, options(dir, { withGram }));
      try {
        assert.equal(reusedCache.cache.layersBuilt, 0);
        assert.equal(reusedCache.statisticsPrune(settingsOf(START), windows, engine), null);
      } finally {
        await reusedCache.close();
      }
    });
  }

  test('statistics of the dense model: no prune to hand out', async () => {
    const spec = smallSpec('llama');
    const { model, windows, options } = setup(spec);
    const context = await ProxyContext.open(model, windows, seqlen, engine, options(path.join(scratchDir('statistics-prune'), 'dense'), { statisticsFrom: undefined }));
    try {
      assert.equal(context.statisticsPrune(settingsOf(START), windows, engine), null);
    } finally {
      await context.close();
    }
  });
});

test('a search with the start\'s statistics: the start\'s sequential confirmation, at its own k whatever k is best, measures the dense pass\'s prune, and the search is that of one that prunes again', async () => {
  const model = await storiesModelDir();
  const parent = scratchDir('statistics-prune-search');
  const request = {
    model, target: parseTarget('0.5'), calib: C4_SAMPLE, nsamples: 4, seqlen: 64, threads: 1,
    budget: 1, kSet: [3, 9], proxy: 'calib-nll' as const, nllWindows: 2, proxyStatistics: 'start' as const,
    confirm: 1, confirmStatistics: 'sequential' as const, evalText: PTB_VALID, evalSeqlen: 32, evalMaxChunks: 3,
  };
  const events: ProgressEvent[] = [];
  const first = path.join(parent, 'first');
  await searchCoefficients({ ...request, out: first, onProgress: (event) => events.push(event) });
  // The same search on the first one's complete cache: its dense pass is not run, so every confirmation prunes.
  const second = path.join(parent, 'second');
  await searchCoefficients({ ...request, out: second, proxyCache: `${first}.proxy-cache` });
  type Log = { confirmations: { source: string; params: { k: number }; ppl: number; seconds: number; prune?: string }[]; candidates: { seconds: number }[]; bestPerK: { seconds: number }[] };
  const read = (dir: string): Log => JSON.parse(readFileSync(path.join(dir, 'search-log.json'), 'utf8')) as Log;
  const [reused, pruned] = [read(first), read(second)];
  assert.deepEqual(reused.confirmations.map((c) => [c.source, c.prune]), [['pho', undefined], ['start', 'dense pass']]);
  // PHO's best is k = 9 here; the start is confirmed at its own k = 3, the dense pass's prune.
  assert.deepEqual(reused.confirmations.map((c) => c.params.k), [9, 3]);
  assert.deepEqual(pruned.confirmations.map((c) => [c.source, c.prune]), [['pho', undefined], ['start', undefined]]);
  const timeless = (log: Log) => ({
    confirmations: log.confirmations.map(({ seconds, prune, ...c }) => c),
    candidates: log.candidates.map(({ seconds, ...c }) => c),
    bestPerK: log.bestPerK.map(({ seconds, ...c }) => c),
  });
  assert.deepEqual(timeless(reused), timeless(pruned));
  assert.ok(Number.isFinite(reused.confirmations[1].ppl));
  const config = (dir: string) => { const { provenance, ...params } = JSON.parse(readFileSync(path.join(dir, 'crepe-config.json'), 'utf8')); return params; };
  assert.deepEqual(config(first), config(second));
  // The progress says which confirmation measured the dense pass's prune.
  const confirms = events.filter((e) => e.stage.startsWith('confirm') && e.kind === 'update').map((e) => e.detail);
  assert.equal(confirms.length, 2);
  assert.ok(!confirms[0]?.includes('dense pass') && confirms[1]?.endsWith('(the dense pass\'s prune)'), JSON.stringify(confirms));
});
