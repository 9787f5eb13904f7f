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

export interface TrialResult {
  ppl: number;
  linearSparsity: number;
  seconds: number;
  /** Per held-out window: its mean next-token NLL (nats), in order. */
  windowNll: number[];
}

export async function pruneAndMeasure(
  model: ModelSource,
  settings: PruneSettings,
  calibration: Int32Array[],
  heldOut: { tokens: Int32Array; seqlen: number; maxChunks?: number },
  engine: EngineOptions,
): Promise<TrialResult> {
  const started = performance.now();
  const { spec } = model;
  const reports: LayerReport[] = [];
  const collect = (report: LayerReport): void => {
    reports.push(report);
  };
  const windows = windowCount(heldOut.tokens.length, heldOut.seqlen, heldOut.maxChunks);
  const streams = !ModelEngine.fits(model) && WindowPass.bytes(windows, heldOut.seqlen, spec.hiddenSize) <= spec.numLayers * blockWeightBytes(spec);
  let windowNll: number[];
  if (streams) {
    windowNll = await pruneStreaming(model, settings, calibration, heldOut.tokens, heldOut.seqlen, windows, engine, collect);
  } else {
    const prunedBlocks: BlockWeights[] = [];
    await pruneLayers({ model, settings, windows: calibration, engine, onLayerDone: async (layer, weights, report) => { prunedBlocks[layer] = weights; collect(report); } });
    windowNll = (await perplexity(withBlocks(model, (layer) => prunedBlocks[layer]), heldOut.tokens, { ...engine, seqlen: heldOut.seqlen, maxChunks: heldOut.maxChunks })).windowNll;
  }
  const { pruned, total } = prunedWeightCount(reports);
  return { ppl: perplexityOf(windowNll).ppl, linearSparsity: pruned / total, seconds: (performance.now() - started) / 1000, windowNll };
}

/** The pruning loop with the held-out windows carried through each pruned layer as it is handed over; their per-window NLL. */
async function pruneStreaming(
  model: ModelSource, settings: PruneSettings, calibration: Int32Array[], tokens: Int32Array, seqlen: number, windows: number, engine: EngineOptions,
  collect: (report: LayerReport) => void,
): Promise<number[]> {
  const { spec } = model;
  const blockEngine = await BlockEngine.create(spec, seqlen, { ...engine, stats: 'none' });
  const headEngine = await HeadEngine.create(spec, seqlen, { ...engine, output: 'nll' });
  try {
    const rope = ropeTables(spec, seqlen);
    const pass = new WindowPass(tokens, seqlen, 0, windows, model.readEmbedding(), spec.hiddenSize, blockEngine.maxBatch);
    await pruneLayers({
      model, settings, windows: calibration, engine,
      onLayerDone: async (_layer, weights, report) => {
        collect(report);
        await pass.applyBlock(blockEngine, weights, rope);
      },
    });
    const windowNll: number[] = [];
    await pass.finish(headEngine, model.readFinalNorm(), model.readLmHead(), windowNll);
    return windowNll;
  } finally {
    await blockEngine.release();
    await headEngine.release();
  }
}
