/**
 * The end-to-end proxy calib-nll: the mean next-token NLL, on the first few calibration windows,
 * of the model pruned with the candidate's masks. The masks are those the other proxies see (the
 * candidate's CRePE scores from the dense pass's input statistics, selected with the run's
 * target), so no statistics pass runs per candidate; the pruned model runs layer by layer on the
 * windows (one decoder block in memory at a time), and its error propagates through the blocks as
 * it does in the pruned model. The per-linear proxies measure each linear's damage on its dense
 * inputs; this one measures what the damage does to the model's predictions.
 *
 * Cost per candidate: the CRePE scores and selection of every linear (as for every proxy) plus a
 * forward pass of `windows` × seqlen tokens, against a real trial's two passes over all calibration
 * windows (statistics, then pruned) plus the held-out perplexity.
 */
import { perplexity, type PerplexityResult } from '../eval/perplexity.ts';
import type { EngineOptions } from '../engine/session.ts';
import type { BlockEngine } from '../engine/block-engine.ts';
import type { HeadEngine } from '../engine/head-engine.ts';
import type { ModelSource } from '../model/source.ts';
import { LINEAR_NAMES, linearShape, type BlockWeights, type LinearName } from '../model/spec.ts';
import { applyMask, selectMask } from '../prune/mask.ts';
import { crepeScores, type CrepeParams } from '../prune/scores/crepe.ts';
import type { PruneTarget, Selection } from '../prune/settings.ts';

/** Default number of calibration windows calib-nll runs on. */
export const CALIB_NLL_WINDOWS = 8;

export interface EndToEndOptions {
  target: PruneTarget;
  selection: Selection;
}

/**
 * The model with every linear pruned by `params` from the dense input statistics `sqNorm(layer,
 * name)`: blocks are pruned when read, so a layer-major pass holds one pruned block at a time.
 */
export function prunedView(
  model: ModelSource,
  sqNorm: (layer: number, name: LinearName) => Float64Array,
  params: CrepeParams,
  options: EndToEndOptions,
): ModelSource {
  return {
    spec: model.spec,
    readEmbedding: () => model.readEmbedding(),
    readFinalNorm: () => model.readFinalNorm(),
    readLmHead: () => model.readLmHead(),
    readBlock(layer: number): BlockWeights {
      const block = { ...model.readBlock(layer) };
      for (const name of LINEAR_NAMES) {
        const [dOut, dIn] = linearShape(model.spec, name);
        const key = `${name}.weight`;
        const scores = crepeScores(block[key], dOut, dIn, sqNorm(layer, name), params);
        const mask = selectMask(scores, dOut, dIn, options.target, options.selection);
        const pruned = Float32Array.from(block[key]);
        applyMask(pruned, mask);
        block[key] = pruned;
      }
      return block;
    },
  };
}

/**
 * Perplexity of the model pruned by `params` from the dense statistics on `tokens` (whole windows
 * of `seqlen`, the first `maxChunks` when given): calib-nll is its mean NLL on calibration windows,
 * PHO's confirmation its perplexity on held-out text.
 */
export async function prunedPerplexity(
  model: ModelSource,
  sqNorm: (layer: number, name: LinearName) => Float64Array,
  params: CrepeParams,
  options: EndToEndOptions,
  tokens: Int32Array,
  text: { seqlen: number; maxChunks?: number },
  engine: EngineOptions,
  engines?: { block: BlockEngine; head: HeadEngine } | null,
): Promise<PerplexityResult> {
  return perplexity(prunedView(model, sqNorm, params, options), tokens, { ...engine, seqlen: text.seqlen, maxChunks: text.maxChunks, mode: 'layer-major', engines: engines ?? undefined });
}
