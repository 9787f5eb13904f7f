/**
 * The proxy implementation that PHO used before its terms were precomputed and cached (commit
 * fa23197, src/search/proxy.ts), kept verbatim as the independent reference the restructured
 * ProxyContext is compared against: every linear held in memory, CRePE scored from the weights for
 * each candidate, masks selected in row-major layout, Gini of the reference along its argsort.
 * The output-error quadratic form is the production one (tested on its own against float64 sums).
 */
import type { LinearName, ModelSpec } from '../../src/model/spec.ts';
import { ropeTables } from '../../src/model/rope.ts';
import { BlockEngine } from '../../src/engine/block-engine.ts';
import { embed } from '../../src/engine/forward.ts';
import type { EngineOptions } from '../../src/engine/session.ts';
import type { BlockSource } from '../../src/prune/layer-loop.ts';
import { forEachDenseLayer } from '../../src/prune/calibration-stats.ts';
import { crepeScores, type CrepeParams } from '../../src/prune/scores/crepe.ts';
import { wandaScores } from '../../src/prune/scores/wanda.ts';
import { nmMask, perMatrixMask, perRowMask } from '../../src/prune/mask.ts';
import type { PruneTarget, Selection } from '../../src/prune/settings.ts';
import type { Progress } from '../../src/util/progress.ts';
import { gini, subsampleIndices } from '../../src/search/gini.ts';
import { argsortNonNegative } from '../../src/util/argsort.ts';

import { LINEAR_PROXY_NAMES, PROXY_NAMES, type ProxyName } from '../../src/search/proxy-measures.ts';
import { quadraticForm } from '../../src/search/proxy-terms.ts'; // checked against a float64 reference in proxy.test.ts

export interface ProxyOptions {
  target: PruneTarget;
  selection: Selection;
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
  /** XᵀX of the linear's input (summed over calibration tokens), when output-error is wanted. */
  gram: Float64Array | null;
  /** tr(W·XᵀX·Wᵀ): the output energy the relative error is measured against. */
  outputEnergy: number;
  /** Positions in ascending reference order: the Gini of the reference on any pruned set needs no sort. */
  referenceOrder: Uint32Array;
}

export interface ProxyValues {
  values: Record<ProxyName, number>;
  seconds: { score: number; select: number; gini: number };
}

export class ReferenceProxyContext {
  private constructor(readonly linears: CachedLinear[], readonly denseSeconds: number) {}

  /** The proxies this context can compute (output-error needs the grams). */
  get availableProxies(): ProxyName[] {
    const withGram = this.linears.every((l) => l.gram !== null);
    return LINEAR_PROXY_NAMES.filter((p) => p !== 'output-error' || withGram);
  }

  /** Bytes the grams of every layer would take (float64), to decide whether output-error is affordable. */
  static gramBytes(spec: ModelSpec): number {
    const widths = [spec.hiddenSize, spec.numHeads * spec.headDim, spec.hiddenSize, spec.intermediateSize];
    return spec.numLayers * widths.reduce((sum, d) => sum + d * d * 8, 0);
  }

  /**
   * The one dense calibration pass: the windows go through the unpruned model, each layer's
   * linear-input statistics are kept with its weights. Memory: all linear weights (fine for the
   * models a search runs on; the statistics are small).
   */
  static async build(
    model: BlockSource,
    windows: Int32Array[],
    seqlen: number,
    engine: EngineOptions,
    opts: { withGram?: boolean; progress?: Progress } = {},
  ): Promise<ReferenceProxyContext> {
    const { progress } = opts;
    const withGram = Boolean(opts.withGram);
    const started = performance.now();
    const { spec } = model;
    const rope = ropeTables(spec, seqlen);
    const statsEngine = await BlockEngine.create(spec, seqlen, { ...engine, stats: withGram ? 'full' : 'sqnorm' });
    const plainEngine = await BlockEngine.create(spec, seqlen, { ...engine, stats: 'none' });
    const linears: CachedLinear[] = [];
    try {
      const embedding = model.readEmbedding();
      const hidden = windows.map((tokens) => embed(tokens, embedding, spec.hiddenSize));
      await forEachDenseLayer(model, hidden, rope, { stats: statsEngine, plain: plainEngine }, withGram, (layer, dense) => {
        for (const { name, dOut, dIn, weight, stats } of dense) {
          const reference = wandaScores(weight, dOut, dIn, stats.sqNorm);
          let referenceTotal = 0;
          for (let i = 0; i < reference.length; i++) referenceTotal += reference[i];
          const referenceOrder = argsortNonNegative(reference);
          const gram = withGram ? stats.gram : null;
          const outputEnergy = gram ? quadraticForm(weight, null, gram, dOut, dIn) : Number.NaN;
          linears.push({ layer, name, dOut, dIn, weight, sqNorm: stats.sqNorm, reference, referenceTotal, gram, outputEnergy, referenceOrder });
        }
        progress?.update(layer + 1, `dense statistics, layer ${layer}`);
      });
    } finally {
      await statsEngine.release();
      await plainEngine.release();
    }
    return new ReferenceProxyContext(linears, (performance.now() - started) / 1000);
  }

  /**
   * Proxies for one candidate; `which` limits the work to the proxies needed (a search needs one,
   * validation all). Scoring and selection are shared and dominate.
   */
  evaluate(params: CrepeParams, opts: ProxyOptions, which: readonly ProxyName[] = this.availableProxies): ProxyValues {
    const seconds = { score: 0, select: 0, gini: 0 };
    const sums = Object.fromEntries(PROXY_NAMES.map((p) => [p, 0])) as Record<ProxyName, number>;
    for (const linear of this.linears) {
      let t = performance.now();
      const scores = crepeScores(linear.weight, linear.dOut, linear.dIn, linear.sqNorm, params);
      seconds.score += (performance.now() - t) / 1000;
      t = performance.now();
      const mask = selectMask(scores, linear.dOut, linear.dIn, opts);
      seconds.select += (performance.now() - t) / 1000;
      t = performance.now();
      if (which.includes('gini-own')) sums['gini-own'] += giniOfPruned(scores, mask, opts);
      if (which.includes('gini-ref')) sums['gini-ref'] += giniInOrder(linear.reference, linear.referenceOrder, mask);
      if (which.includes('pruned-mass')) sums['pruned-mass'] += prunedMass(linear.reference, mask) / linear.referenceTotal;
      if (which.includes('column-gini')) sums['column-gini'] += columnGini(linear.reference, mask, linear.dOut, linear.dIn);
      if (which.includes('output-error')) {
        if (!linear.gram) throw new Error('internal: output-error needs a context built with grams');
        sums['output-error'] += quadraticForm(linear.weight, mask, linear.gram, linear.dOut, linear.dIn) / linear.outputEnergy;
      }
      seconds.gini += (performance.now() - t) / 1000;
    }
    const count = this.linears.length;
    const values = Object.fromEntries(PROXY_NAMES.map((p) => [p, which.includes(p) ? sums[p] / count : Number.NaN])) as Record<ProxyName, number>;
    return { values, seconds };
  }
}

function selectMask(scores: Float32Array, dOut: number, dIn: number, opts: ProxyOptions): Uint8Array {
  const { target } = opts;
  if (target.kind === 'nm') return nmMask(scores, dOut, dIn, target.n, target.m);
  return opts.selection === 'per-row' ? perRowMask(scores, dOut, dIn, target.sparsity) : perMatrixMask(scores, target.sparsity);
}

function prunedMass(reference: Float32Array, mask: Uint8Array): number {
  let mass = 0;
  for (let i = 0; i < mask.length; i++) if (mask[i]) mass += reference[i];
  return mass;
}

/** Gini of the candidate's own scores over the pruned entries (all of them, or those at the fixed subsample positions). */
function giniOfPruned(scores: Float32Array, mask: Uint8Array, opts: ProxyOptions): number {
  const positions = opts.giniSubsample !== null && opts.giniSubsample < mask.length ? subsampleIndices(mask.length, opts.giniSubsample, opts.seed) : null;
  const count = positions ? positions.length : mask.length;
  const pruned = new Float64Array(count);
  let picked = 0;
  for (let p = 0; p < count; p++) {
    const i = positions ? positions[p] : p;
    if (mask[i]) pruned[picked++] = scores[i];
  }
  return gini(pruned.subarray(0, picked));
}

/**
 * Gini index of `values` over the masked positions, walking a precomputed ascending order:
 * G = Σᵢ (2i − n − 1)·sᵢ / (n·Σ s) with i the 1-based rank among the n pruned values. O(N), no sort.
 */
export function giniInOrder(values: Float32Array, ascending: Uint32Array, mask: Uint8Array): number {
  let n = 0;
  let total = 0;
  let rankWeighted = 0;
  for (let p = 0; p < ascending.length; p++) {
    const i = ascending[p];
    if (!mask[i]) continue;
    n++;
    total += values[i];
    rankWeighted += n * values[i];
  }
  if (n <= 1 || total === 0) return 0;
  return (2 * rankWeighted - (n + 1) * total) / (n * total);
}

/** Gini index over input channels of the reference importance each channel loses to the mask. */
function columnGini(reference: Float32Array, mask: Uint8Array, dOut: number, dIn: number): number {
  const lost = new Float64Array(dIn);
  for (let i = 0; i < dOut; i++) {
    const row = i * dIn;
    for (let j = 0; j < dIn; j++) if (mask[row + j]) lost[j] += reference[row + j];
  }
  return gini(lost);
}

