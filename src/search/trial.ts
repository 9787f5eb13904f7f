/**
 * One real trial of a pruning configuration: prune the model in memory (the full sequential
 * pipeline, nothing written to disk) and measure perplexity on held-out tokens. This is what
 * hill climbing and proxy validation pay for each candidate, and what PHO avoids.
 *
 * The held-out windows go through each pruned layer as the pruning loop hands it over, so a trial
 * holds their hidden states and one pruned block, not the pruned model: the result is the
 * layer-major perplexity of the pruned model, bit for bit. A model small enough for perplexity's
 * one-graph engine, or whose pruned blocks take less memory than those hidden states (a long text),
 * is instead kept pruned in memory and measured afterwards, as perplexity() measures any model.
 */
import { blockWeightBytes } from '../engine/block-graph.ts';
import { BlockEngine } from '../engine/block-engine.ts';
import { HeadEngine } from '../engine/head-engine.ts';
import { ModelEngine } from '../engine/model-engine.ts';
import type { EngineOptions } from '../engine/session.ts';
import { perplexity, perplexityOf, windowCount, WindowPass } from '../eval/perplexity.ts';
import { withBlocks, type ModelSource } from '../model/source.ts';
import { ropeTables } from '../model/rope.ts';
import type { BlockWeights } from '../model/spec.ts';
import { pruneLayers, prunedWeightCount, type LayerReport } from '../prune/layer-loop.ts';
import type { PruneSettings } from '../prune/settings.ts';

/** Held-out text: whole windows of `seqlen` tokens, the first `maxChunks` when given. */
export interface HeldOutText {
  tokens: Int32Array;
  seqlen: number;
  maxChunks?: number;
}

export interface TrialResult {
  ppl: number;
  linearSparsity: number;
  seconds: number;
  /** Per held-out window: its mean next-token NLL (nats), in order. */
  windowNll: number[];
}

/** `onLayer` sees each pruned layer (its weights as the pruning loop hands them over) before it is measured. */
export async function pruneAndMeasure(
  model: ModelSource,
  settings: PruneSettings,
  calibration: Int32Array[],
  heldOut: HeldOutText,
  engine: EngineOptions,
  onLayer?: (layer: number, weights: BlockWeights, report: LayerReport) => Promise<void>,
): Promise<TrialResult> {
  const started = performance.now();
  const reports: LayerReport[] = [];
  const measure = await heldOutMeasure(model, heldOut, engine);
  let windowNll: number[];
  try {
    await pruneLayers({
      model, settings, windows: calibration, engine, lastLayerOutputs: false,
      onLayerDone: async (layer, weights, report) => {
        reports.push(report);
        await onLayer?.(layer, weights, report);
        await measure.onLayer(layer, weights);
      },
    });
    windowNll = await measure.finish();
  } finally {
    await measure.release();
  }
  const { pruned, total } = prunedWeightCount(reports);
  return { ppl: perplexityOf(windowNll).ppl, linearSparsity: pruned / total, seconds: (performance.now() - started) / 1000, windowNll };
}

/**
 * The held-out perplexity of a model already pruned, whose pruned blocks `blockOf` gives in layer
 * order (one at a time): what pruneAndMeasure measures of the same blocks, bit for bit, without
 * the pruning loop.
 */
export async function measurePruned(
  model: ModelSource,
  blockOf: (layer: number) => Promise<BlockWeights>,
  heldOut: HeldOutText,
  engine: EngineOptions,
): Promise<Omit<TrialResult, 'linearSparsity'>> {
  const started = performance.now();
  const measure = await heldOutMeasure(model, heldOut, engine);
  let windowNll: number[];
  try {
    for (let layer = 0; layer < model.spec.numLayers; layer++) await measure.onLayer(layer, await blockOf(layer));
    windowNll = await measure.finish();
  } finally {
    await measure.release();
  }
  return { ppl: perplexityOf(windowNll).ppl, seconds: (performance.now() - started) / 1000, windowNll };
}

/**
 * How a trial measures the pruned blocks handed to `onLayer` in layer order: the held-out windows
 * carried through each block as it comes (when the model is too large for perplexity's one-graph
 * engine and the pruned blocks take more memory than those hidden states), else the blocks kept
 * and the pruned model measured afterwards by perplexity().
 */
async function heldOutMeasure(model: ModelSource, heldOut: HeldOutText, engine: EngineOptions): Promise<{
  onLayer(layer: number, weights: BlockWeights): Promise<void>;
  finish(): Promise<number[]>;
  release(): Promise<void>;
}> {
  const { spec } = model;
  const { tokens, seqlen, maxChunks } = heldOut;
  const windows = windowCount(tokens.length, seqlen, maxChunks);
  const streams = !ModelEngine.fits(model) && WindowPass.bytes(windows, seqlen, spec.hiddenSize) <= spec.numLayers * blockWeightBytes(spec);
  if (!streams) {
    const prunedBlocks: BlockWeights[] = [];
    return {
      onLayer: async (layer, weights) => {
        prunedBlocks[layer] = weights;
      },
      finish: async () => (await perplexity(withBlocks(model, (layer) => prunedBlocks[layer]), tokens, { ...engine, seqlen, maxChunks })).windowNll,
      release: async () => {},
    };
  }
  const blockEngine = await BlockEngine.create(spec, seqlen, { ...engine, stats: 'none' });
  let headEngine: HeadEngine;
  try {
    headEngine = await HeadEngine.create(spec, seqlen, { ...engine, output: 'nll' });
  } catch (error) {
    await blockEngine.release();
    throw error;
  }
  const rope = ropeTables(spec, seqlen);
  const pass = new WindowPass(tokens, seqlen, 0, windows, model.readEmbedding(), spec.hiddenSize, blockEngine.maxBatch);
  return {
    onLayer: (_layer, weights) => pass.applyBlock(blockEngine, weights, rope),
    finish: async () => {
      const windowNll: number[] = [];
      await pass.finish(headEngine, model.readFinalNorm(), model.readLmHead(), windowNll);
      return windowNll;
    },
    release: async () => {
      await blockEngine.release();
      await headEngine.release();
    },
  };
}
