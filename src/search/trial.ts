/**
 * One real trial of a pruning configuration: prune the model in memory (the full sequential
 * pipeline, nothing written to disk) and measure perplexity on held-out tokens. This is what
 * hill climbing and proxy validation pay for each candidate, and what PHO avoids.
 */
import type { BlockWeights } from '../model/spec.ts';
import type { EngineOptions } from '../engine/session.ts';
import { perplexity } from '../eval/perplexity.ts';
import type { ModelSource } from '../model/source.ts';
import { pruneLayers } from '../prune/layer-loop.ts';
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
  const prunedBlocks: BlockWeights[] = [];
  let pruned = 0;
  let total = 0;
  await pruneLayers({
    model,
    settings,
    windows: calibration,
    engine,
    onLayerDone: async (layer, weights, report) => {
      prunedBlocks[layer] = weights;
      for (const linear of report.linears) {
        pruned += linear.pruned;
        total += linear.shape[0] * linear.shape[1];
      }
    },
  });
  const prunedModel: ModelSource = {
    spec: model.spec,
    readBlock: (layer) => prunedBlocks[layer],
    readEmbedding: () => model.readEmbedding(),
    readFinalNorm: () => model.readFinalNorm(),
    readLmHead: () => model.readLmHead(),
  };
  const result = await perplexity(prunedModel, heldOut.tokens, { ...engine, seqlen: heldOut.seqlen, maxChunks: heldOut.maxChunks });
  return { ppl: result.ppl, linearSparsity: pruned / total, seconds: (performance.now() - started) / 1000, windowNll: result.windowNll };
}
