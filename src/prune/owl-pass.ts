/**
 * OWL's first pass (ALGORITHMS.md §5): the calibration data goes through the DENSE model; each
 * block's Wanda scores give its outlier ratio D_ℓ, and the ratios map to per-layer targets whose
 * mean is the requested sparsity (or per-layer n for N:M).
 */
import type { BlockEngine } from '../engine/block-engine.ts';
import type { BlockSource } from '../model/source.ts';
import type { RopeTables } from '../model/rope.ts';
import type { Progress } from '../util/progress.ts';
import { outlierRatio, owlSparsities, owlNMPerLayer } from './owl.ts';
import { forEachDenseLayer } from './calibration-stats.ts';
import { wandaScores } from './scores/wanda.ts';
import type { PruneSettings, PruneTarget } from './settings.ts';
import { invariant } from '../util/errors.ts';

export async function owlLayerTargets(
  model: BlockSource,
  layer0Inputs: Float32Array[],
  rope: RopeTables,
  statsEngine: BlockEngine,
  plainEngine: BlockEngine,
  settings: PruneSettings,
  progress?: Progress,
): Promise<PruneTarget[]> {
  const owl = settings.owl;
  invariant(owl, 'owlLayerTargets without OWL settings');
  const ratios: number[] = [];
  await forEachDenseLayer(model, layer0Inputs, rope, { stats: statsEngine, plain: plainEngine }, false, (layer, linears) => {
    ratios.push(outlierRatio(linears.map((l) => wandaScores(l.weight, l.dOut, l.dIn, l.stats.sqNorm)), owl.m));
    progress?.log(`OWL: layer ${layer} outlier ratio ${ratios[layer].toFixed(3)}%`);
  });
  const target = settings.target;
  if (target.kind === 'nm') {
    return owlNMPerLayer(ratios, target.n, target.m, owl.lambda).map((n) => ({ kind: 'nm', n, m: target.m }));
  }
  return owlSparsities(ratios, target.sparsity, owl.lambda).map((sparsity) => ({ kind: 'unstructured', sparsity }));
}
