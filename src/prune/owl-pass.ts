/**
 * OWL's first pass (ALGORITHMS.md §5): the calibration data goes through the DENSE model; each
 * block's Wanda scores give its outlier ratio D_ℓ, and the ratios map to per-layer targets whose
 * mean is the requested sparsity (or per-layer n for N:M).
 */
import type { BlockEngine } from '../engine/block-engine.ts';
import type { BlockSource } from './layer-loop.ts';
import { LINEAR_NAMES, LINEAR_INPUT_GROUP, linearShape } from '../model/spec.ts';
import type { Progress } from '../util/progress.ts';
import { outlierRatio, owlSparsities, owlNMPerLayer } from './owl.ts';
import { collectStatistics } from './calibration-stats.ts';
import { wandaScores } from './scores/wanda.ts';
import type { PruneSettings, PruneTarget } from './settings.ts';

export async function owlLayerTargets(
  model: BlockSource,
  layer0Inputs: Float32Array[],
  rope: { cos: Float32Array; sin: Float32Array },
  statsEngine: BlockEngine,
  plainEngine: BlockEngine,
  settings: PruneSettings,
  progress?: Progress,
): Promise<PruneTarget[]> {
  const owl = settings.owl;
  if (!owl) throw new Error('internal: owlLayerTargets without OWL settings');
  const { spec } = model;
  let hidden: Float32Array[] = layer0Inputs;
  const ratios: number[] = [];
  for (let layer = 0; layer < spec.numLayers; layer++) {
    const weights = model.readBlock(layer);
    const stats = await collectStatistics(spec, statsEngine, hidden, weights, rope, ['qkv', 'o', 'gateup', 'down'], false);
    const blockScores = LINEAR_NAMES.map((name) => {
      const [dOut, dIn] = linearShape(spec, name);
      const groupStats = stats.get(LINEAR_INPUT_GROUP[name]);
      if (!groupStats) throw new Error(`internal: no statistics for ${name}`);
      return wandaScores(weights[`${name}.weight`], dOut, dIn, groupStats.sqNorm);
    });
    ratios.push(outlierRatio(blockScores, owl.m));
    hidden = await plainEngine.runSequences(hidden, weights, rope);
    progress?.log(`OWL: layer ${layer} outlier ratio ${ratios[layer].toFixed(3)}%`);
  }
  const target = settings.target;
  if (target.kind === 'nm') {
    return owlNMPerLayer(ratios, target.n, target.m, owl.lambda).map((n) => ({ kind: 'nm', n, m: target.m }));
  }
  return owlSparsities(ratios, target.sparsity, owl.lambda).map((sparsity) => ({ kind: 'unstructured', sparsity }));
}
