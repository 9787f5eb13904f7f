/**
 * Accumulates one linear-input group's statistics over calibration sequences, in float64 and in
 * sample order (so a resumed run sums exactly as an uninterrupted one).
 *
 * The engine returns, per batch of sequences of L tokens, Σ_t x² and Σ_t x per sequence and (for
 * SparseGPT) XᵀX summed over the batch. From these the reference repositories' statistics follow (ALGORITHMS.md §1.4, §4, §6.1):
 *   sqNorm_j   = (1/N) Σ_n Σ_t x²        Wanda/RIA `scaler_row` (‖X_j‖² / N)
 *   mean_j     = (1/N) Σ_n Σ_t x         DSnoT's m_j (L·E[x_j])
 *   variance_j = (1/N) Σ_n Var_t(x)      DSnoT's within-sequence variance
 *   gram       = Σ_n XₙᵀXₙ               SparseGPT's H = 2·gram / N
 */
import { concatSequences, type BlockEngine, type GroupStats } from '../engine/block-engine.ts';
import type { RopeTables } from '../model/rope.ts';
import type { ModelSource } from '../model/source.ts';
import {
  LINEAR_INPUT_GROUP, LINEAR_NAMES, inputGroupWidth, linearShape,
  type BlockWeights, type LinearInputGroup, type LinearName, type ModelSpec,
} from '../model/spec.ts';
import { invariant } from '../util/errors.ts';

export interface LinearInputStats {
  width: number;
  nsamples: number;
  tokensPerSample: number;
  sqNorm: Float64Array;
  mean: Float64Array;
  variance: Float64Array;
  gram: Float64Array | null;
}

export class GroupStatsAccumulator {
  private readonly sqNormSum: Float64Array;
  private readonly sumSum: Float64Array;
  private readonly varianceSum: Float64Array;
  private readonly gramSum: Float64Array | null;
  private samples = 0;
  private tokens = 0;

  constructor(readonly width: number, withGram: boolean) {
    this.sqNormSum = new Float64Array(width);
    this.sumSum = new Float64Array(width);
    this.varianceSum = new Float64Array(width);
    this.gramSum = withGram ? new Float64Array(width * width) : null;
  }

  /** One batch: `sequences` rows of Σx² (and Σx), in sample order, and the batch's summed gram. */
  add(stats: GroupStats, sequences: number, tokensPerSequence: number): void {
    const { sqSum, sum, gram } = stats;
    const width = this.width;
    for (let s = 0; s < sequences; s++) {
      const row = s * width;
      for (let j = 0; j < width; j++) {
        this.sqNormSum[j] += sqSum[row + j];
        if (sum) {
          this.sumSum[j] += sum[row + j];
          const mean = sum[row + j] / tokensPerSequence;
          this.varianceSum[j] += sqSum[row + j] / tokensPerSequence - mean * mean;
        }
      }
    }
    if (this.gramSum) {
      invariant(gram, 'gram statistics requested but not returned by the engine');
      const target = this.gramSum;
      for (let i = 0; i < target.length; i++) target[i] += gram[i];
    }
    this.samples += sequences;
    this.tokens = tokensPerSequence;
  }

  finish(): LinearInputStats {
    const n = this.samples;
    const scale = (values: Float64Array) => values.map((v) => v / n);
    return {
      width: this.width,
      nsamples: n,
      tokensPerSample: this.tokens,
      sqNorm: scale(this.sqNormSum),
      mean: scale(this.sumSum),
      variance: scale(this.varianceSum),
      gram: this.gramSum,
    };
  }
}

/** Runs the block on every calibration sequence (in batches) and accumulates the statistics of `groups`. */
export async function collectStatistics(
  spec: ModelSpec,
  engine: BlockEngine,
  hidden: Float32Array[],
  weights: BlockWeights,
  rope: RopeTables,
  groups: LinearInputGroup[],
  withGram: boolean,
): Promise<Map<LinearInputGroup, LinearInputStats>> {
  const accumulators = new Map(groups.map((g) => [g, new GroupStatsAccumulator(inputGroupWidth(spec, g), withGram)] as const));
  const tokens = engine.seqLen;
  const size = tokens * spec.hiddenSize;
  await engine.withWeights(weights, hidden.length, async (held) => {
    for (let first = 0; first < hidden.length; first += engine.maxBatch) {
      const count = Math.min(engine.maxBatch, hidden.length - first);
      const { stats } = await engine.run(concatSequences(hidden, first, count, size), held, rope);
      invariant(stats, 'the statistics engine returned no statistics');
      for (const [group, accumulator] of accumulators) accumulator.add(stats[group], count, tokens);
    }
  });
  return new Map([...accumulators].map(([g, a]) => [g, a.finish()] as const));
}

/** One linear of a dense block with its input statistics. */
export interface DenseLinear {
  name: LinearName;
  dOut: number;
  dIn: number;
  weight: Float32Array;
  stats: LinearInputStats;
}

/**
 * One pass of the calibration windows through the DENSE model (OWL's outlier pass, PHO's cached
 * statistics): each layer's linears are handed to `visit` with their input statistics, then the
 * dense block makes the next layer's inputs (or the block `from.nextWeights` makes of it: a model
 * pruned layer by layer). `from` continues a pass: `firstLayer` with `inputs` being that layer's
 * inputs, and `onInputs` receives each next layer's inputs (to save them).
 */
export async function forEachDenseLayer(
  model: Pick<ModelSource, 'spec' | 'readBlock'>,
  inputs: Float32Array[],
  rope: RopeTables,
  engines: { stats: BlockEngine; plain: BlockEngine },
  withGram: boolean,
  visit: (layer: number, linears: DenseLinear[]) => void | Promise<void>,
  from: {
    firstLayer?: number;
    onInputs?: (layer: number, inputs: Float32Array[]) => Promise<void>;
    /** The weights that make the next layer's inputs from this layer's (default: the dense block). */
    nextWeights?: (layer: number, weights: BlockWeights, linears: DenseLinear[]) => BlockWeights;
  } = {},
): Promise<void> {
  let hidden = inputs;
  for (let layer = from.firstLayer ?? 0; layer < model.spec.numLayers; layer++) {
    hidden = await visitDenseLayer(model, layer, hidden, rope, engines, withGram, visit, from.nextWeights);
    if (layer + 1 < model.spec.numLayers) await from.onInputs?.(layer + 1, hidden);
  }
}

/**
 * forEachDenseLayer's work on one layer: its statistics and linears handed to `visit`, then the
 * next layer's inputs (none after the last layer: `hidden` itself). The layer's weights and
 * statistics (with grams, 338 MiB in float64 on TinyLlama's layers) live in this call only: held
 * by the loop itself, they stayed referenced from its suspended state while the next layer's were
 * read and collected, one layer's worth more.
 */
async function visitDenseLayer(
  model: Pick<ModelSource, 'spec' | 'readBlock'>,
  layer: number,
  hidden: Float32Array[],
  rope: RopeTables,
  engines: { stats: BlockEngine; plain: BlockEngine },
  withGram: boolean,
  visit: (layer: number, linears: DenseLinear[]) => void | Promise<void>,
  nextWeights: ((layer: number, weights: BlockWeights, linears: DenseLinear[]) => BlockWeights) | undefined,
): Promise<Float32Array[]> {
  const { spec } = model;
  const weights = model.readBlock(layer);
  const stats = await collectStatistics(spec, engines.stats, hidden, weights, rope, ['qkv', 'o', 'gateup', 'down'], withGram);
  const linears = LINEAR_NAMES.map((name) => {
    const [dOut, dIn] = linearShape(spec, name);
    const groupStats = stats.get(LINEAR_INPUT_GROUP[name]);
    invariant(groupStats, () => `no statistics for ${name}`);
    return { name, dOut, dIn, weight: weights[`${name}.weight`], stats: groupStats };
  });
  await visit(layer, linears);
  if (layer + 1 === spec.numLayers) return hidden;
  return engines.plain.runSequences(hidden, nextWeights ? nextWeights(layer, weights, linears) : weights, rope);
}
