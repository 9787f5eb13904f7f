/**
 * PHO's proxies (ALGORITHMS.md §7.3): cheap stand-ins for perplexity, computed from the statistics
 * of ONE cached dense calibration pass, so no forward pass runs inside the search loop.
 *
 * For a candidate configuration, each linear of each layer is scored with CRePE, its mask selected
 * at the target, and one number taken from the pruned entries:
 *   gini-own     Gini index of the candidate's own scores on the pruned set (scale-free);
 *   gini-ref     Gini index of a fixed reference importance (Wanda's |W|·‖X‖) on the pruned set;
 *   pruned-mass  the share of the reference importance that the mask removes.
 * The proxy is the mean over all linears. Gini can be exact or taken on a fixed random subsample
 * of positions (the same positions for every candidate).
 */
import { LINEAR_NAMES, LINEAR_INPUT_GROUP, linearShape, type LinearName } from '../model/spec.ts';
import { ropeTables } from '../model/rope.ts';
import { BlockEngine } from '../engine/block-engine.ts';
import { embed } from '../engine/forward.ts';
import type { EngineOptions } from '../engine/session.ts';
import type { BlockSource } from '../prune/layer-loop.ts';
import { collectStatistics } from '../prune/calibration-stats.ts';
import { crepeScores, type CrepeParams } from '../prune/scores/crepe.ts';
import { wandaScores } from '../prune/scores/wanda.ts';
import { nmMask, perMatrixMask, perRowMask } from '../prune/mask.ts';
import type { PruneTarget, Selection } from '../prune/settings.ts';
import type { Progress } from '../util/progress.ts';
import { gini, subsampleIndices } from './gini.ts';

export const PROXY_NAMES = ['gini-own', 'gini-ref', 'pruned-mass'] as const;
export type ProxyName = (typeof PROXY_NAMES)[number];

export interface ProxyOptions {
  target: PruneTarget;
  selection: Selection;
  /** Positions per matrix for the Gini index; null = exact (every pruned entry). */
  giniSubsample: number | null;
  seed: number;
}

/** One linear, as the proxy needs it: weights, input statistics and the reference importance. */
interface CachedLinear {
  layer: number;
  name: LinearName;
  dOut: number;
  dIn: number;
  weight: Float32Array;
  sqNorm: Float64Array;
  reference: Float32Array;
  referenceTotal: number;
}

export interface ProxyValues {
  values: Record<ProxyName, number>;
  seconds: { score: number; select: number; gini: number };
}

export class ProxyContext {
  private constructor(readonly linears: CachedLinear[], readonly denseSeconds: number) {}

  /**
   * The one dense calibration pass: the windows go through the unpruned model, each layer's
   * linear-input statistics are kept with its weights. Memory: all linear weights (fine for the
   * models a search runs on; the statistics are small).
   */
  static async build(model: BlockSource, windows: Int32Array[], seqlen: number, engine: EngineOptions, progress?: Progress): Promise<ProxyContext> {
    const started = performance.now();
    const { spec } = model;
    const rope = ropeTables(spec, seqlen);
    const statsEngine = await BlockEngine.create(spec, seqlen, { ...engine, stats: 'sqnorm' });
    const plainEngine = await BlockEngine.create(spec, seqlen, { ...engine, stats: 'none' });
    const linears: CachedLinear[] = [];
    try {
      const embedding = model.readEmbedding();
      let hidden = windows.map((tokens) => embed(tokens, embedding, spec.hiddenSize));
      for (let layer = 0; layer < spec.numLayers; layer++) {
        const weights = model.readBlock(layer);
        const stats = await collectStatistics(spec, statsEngine, hidden, weights, rope, ['qkv', 'o', 'gateup', 'down'], false);
        for (const name of LINEAR_NAMES) {
          const [dOut, dIn] = linearShape(spec, name);
          const groupStats = stats.get(LINEAR_INPUT_GROUP[name]);
          if (!groupStats) throw new Error(`internal: no statistics for ${name}`);
          const weight = weights[`${name}.weight`];
          const reference = wandaScores(weight, dOut, dIn, groupStats.sqNorm);
          let referenceTotal = 0;
          for (let i = 0; i < reference.length; i++) referenceTotal += reference[i];
          linears.push({ layer, name, dOut, dIn, weight, sqNorm: groupStats.sqNorm, reference, referenceTotal });
        }
        if (layer + 1 < spec.numLayers) {
          hidden = await plainEngine.runSequences(hidden, weights, rope);
        }
        progress?.update(layer + 1, `dense statistics, layer ${layer}`);
      }
    } finally {
      await statsEngine.release();
      await plainEngine.release();
    }
    return new ProxyContext(linears, (performance.now() - started) / 1000);
  }

  /** Every proxy for one candidate (they share the scoring and selection, which dominate). */
  evaluate(params: CrepeParams, opts: ProxyOptions): ProxyValues {
    const seconds = { score: 0, select: 0, gini: 0 };
    const sums: Record<ProxyName, number> = { 'gini-own': 0, 'gini-ref': 0, 'pruned-mass': 0 };
    for (const linear of this.linears) {
      let t = performance.now();
      const scores = crepeScores(linear.weight, linear.dOut, linear.dIn, linear.sqNorm, params);
      seconds.score += (performance.now() - t) / 1000;
      t = performance.now();
      const mask = selectMask(scores, linear.dOut, linear.dIn, opts);
      seconds.select += (performance.now() - t) / 1000;
      t = performance.now();
      const { own, ref, mass } = prunedSetStatistics(scores, linear.reference, mask, opts);
      sums['gini-own'] += own;
      sums['gini-ref'] += ref;
      sums['pruned-mass'] += mass / linear.referenceTotal;
      seconds.gini += (performance.now() - t) / 1000;
    }
    const count = this.linears.length;
    return {
      values: { 'gini-own': sums['gini-own'] / count, 'gini-ref': sums['gini-ref'] / count, 'pruned-mass': sums['pruned-mass'] / count },
      seconds,
    };
  }
}

function selectMask(scores: Float32Array, dOut: number, dIn: number, opts: ProxyOptions): Uint8Array {
  const { target } = opts;
  if (target.kind === 'nm') return nmMask(scores, dOut, dIn, target.n, target.m);
  return opts.selection === 'per-row' ? perRowMask(scores, dOut, dIn, target.sparsity) : perMatrixMask(scores, target.sparsity);
}

/** Gini of own and reference scores over the pruned entries (all, or those at the fixed subsample positions), and the pruned reference mass. */
function prunedSetStatistics(scores: Float32Array, reference: Float32Array, mask: Uint8Array, opts: ProxyOptions): { own: number; ref: number; mass: number } {
  let mass = 0;
  for (let i = 0; i < mask.length; i++) if (mask[i]) mass += reference[i];
  const positions = opts.giniSubsample !== null && opts.giniSubsample < mask.length ? subsampleIndices(mask.length, opts.giniSubsample, opts.seed) : null;
  const count = positions ? positions.length : mask.length;
  const own = new Float64Array(count);
  const ref = new Float64Array(count);
  let picked = 0;
  for (let p = 0; p < count; p++) {
    const i = positions ? positions[p] : p;
    if (!mask[i]) continue;
    own[picked] = scores[i];
    ref[picked] = reference[i];
    picked++;
  }
  return { own: gini(own.subarray(0, picked)), ref: gini(ref.subarray(0, picked)), mass };
}
