/**
 * BlockEngine: runs the decoder-block graph for one model shape and sequence length. One session
 * serves every layer: the caller passes each layer's weights per call (no copies: ORT reads the
 * Float32Arrays in place). A run takes a batch of B sequences (B = 1 … maxBatch), which is what
 * makes small models fast: the per-run overhead is paid once per batch.
 *
 * Weights that are inputs are packed by MLAS on every run; when one weight set serves enough runs
 * (`runSequences`, `withWeights`), the engine instead gives it a session of its own that holds the
 * weights as constants, packed once (`constantWeightsPay` decides). Pre-packed products sum in
 * another order: the two forms agree to float32 rounding (≈ 1e-6 relative), not bit for bit.
 */
import type ort from 'onnxruntime-node';
import { blockWeightBytes, buildBlockGraph, buildConstantBlockGraph, type BlockGraphOptions, type StatsMode } from './block-graph.ts';
import { blockBatchSize } from './batch-size.ts';
import { createSession, floatData, floatTensor, type EngineOptions } from './session.ts';
import { mallocHugePages } from '../util/huge-pages.ts';
import {
  blockTensorNames, blockTensorShape, inputGroupWidth,
  type BlockWeights, type LinearInputGroup, type ModelSpec,
} from '../model/spec.ts';
import { rotaryDim, type RopeTables } from '../model/rope.ts';
import { invariant } from '../util/errors.ts';

/** One linear-input group's statistics for a batch of B sequences, width d = d_in. */
export interface GroupStats {
  /** Σ over each sequence's tokens of x², [B, d] row-major (one row per sequence). */
  sqSum: Float32Array;
  /** Σ over each sequence's tokens of x, [B, d] (stats 'full'). */
  sum?: Float32Array;
  /** XᵀX summed over all tokens of the batch, [d, d] row-major (stats 'full'). */
  gram?: Float32Array;
}
export type BlockStats = Record<LinearInputGroup, GroupStats>;

export interface BlockRunResult {
  /**
   * [B·seqLen, hiddenSize]; empty from a statistics engine, whose graph stops at the statistics
   * (block-graph.ts): its callers take the next layer's inputs from a plain run.
   */
  hidden: Float32Array;
  /** B. */
  sequences: number;
  stats?: BlockStats;
}

const GROUPS: readonly LinearInputGroup[] = ['qkv', 'o', 'gateup', 'down'];

/**
 * The cost model behind `constantWeightsPay`, measured with TinyLlama's layer (176 MB of float32
 * weights) at 2,048 tokens per run on a 2-core AMD EPYC VM (BENCHMARKS.md, "Weights as constants
 * of a per-layer session"): a run with the weights as inputs spends `packSecondsPerByte` per weight
 * byte packing them (≈ 11 ms of a 650 ms run); a session holding them as constants costs
 * `sessionSeconds` plus `sessionSecondsPerByte` per byte to build, create (ORT's copy of the
 * weights and their packing) and warm (its first two runs grow the arena and lay out the memory
 * pattern). Almost all of that is first touches of fresh memory, 7× cheaper in huge pages
 * (0.44 s against 3.2 s for this layer).
 */
const CONSTANT_WEIGHTS_COSTS = {
  packSecondsPerByte: 6.2e-11,
  hugePages: { sessionSeconds: 0.1, sessionSecondsPerByte: 1.9e-9 },
  smallPages: { sessionSeconds: 0.5, sessionSecondsPerByte: 1.5e-8 },
} as const;

/**
 * Whether `runs` runs of one weight set of `weightBytes` bytes are faster from a session that holds
 * the weights as constants (created for them, then released) than from the shared session that
 * takes them as inputs: when the packing the runs save exceeds the session's cost.
 */
export function constantWeightsPay(weightBytes: number, runs: number, hugePages: boolean): boolean {
  const costs = CONSTANT_WEIGHTS_COSTS;
  const session = hugePages ? costs.hugePages : costs.smallPages;
  return runs * weightBytes * costs.packSecondsPerByte > session.sessionSeconds + weightBytes * session.sessionSecondsPerByte;
}

/**
 * One weight set held as constants by a session of its own (`BlockEngine.withWeights`): pass it
 * to `run` in place of the weights. ORT copied the weights when the session started, so later
 * changes to the arrays do not reach it.
 */
export class ConstantBlockWeights {
  constructor(readonly engine: BlockEngine, readonly session: ort.InferenceSession) {}
}

export class BlockEngine {
  private constructor(
    private readonly spec: ModelSpec,
    readonly seqLen: number,
    readonly stats: StatsMode,
    /** Sequences per run that `runSequences` uses. */
    readonly maxBatch: number,
    private readonly session: ort.InferenceSession,
    /** Packed rows (see BlockGraphOptions.packed): per-token rope tables and a mask per run. */
    readonly packed: boolean,
    private readonly opts: EngineOptions,
  ) {}

  /** `maxBatch` defaults to `blockBatchSize(spec, seqLen)`. */
  static async create(spec: ModelSpec, seqLen: number, opts: EngineOptions & { stats: StatsMode; maxBatch?: number; packed?: boolean }): Promise<BlockEngine> {
    const maxBatch = opts.maxBatch ?? blockBatchSize(spec, seqLen);
    invariant(Number.isInteger(maxBatch) && maxBatch >= 1, 'maxBatch must be a positive integer');
    const packed = Boolean(opts.packed);
    const session = await createSession(buildBlockGraph(spec, { seqLen, stats: opts.stats, packed }), opts);
    return new BlockEngine(spec, seqLen, opts.stats, maxBatch, session, packed, opts);
  }

  private get graphOptions(): BlockGraphOptions {
    return { seqLen: this.seqLen, stats: this.stats, packed: this.packed };
  }

  /**
   * Whether `sequences` sequences run with one weight set (in runs of `maxBatch`) take the weights
   * as constants of a session of their own: EngineOptions.blockWeights, or by default
   * `constantWeightsPay` (CPU only: the cost model was measured there).
   */
  constantsFor(sequences: number): boolean {
    const choice = this.opts.blockWeights ?? 'auto';
    if (choice !== 'auto') return choice === 'constants';
    if (this.opts.device !== 'cpu') return false;
    return constantWeightsPay(blockWeightBytes(this.spec), Math.ceil(sequences / this.maxBatch), mallocHugePages());
  }

  /**
   * Calls `fn` with `weights` in the form that suits `sequences` sequences' worth of runs
   * (`constantsFor`): the weights themselves, or a session holding them as constants, released
   * when `fn` settles. The weights must not change while `fn` runs.
   */
  async withWeights<T>(weights: BlockWeights, sequences: number, fn: (weights: BlockWeights | ConstantBlockWeights) => Promise<T>): Promise<T> {
    if (!this.constantsFor(sequences)) return fn(weights);
    const graph = buildConstantBlockGraph(this.spec, this.graphOptions, weights);
    const session = await createSession(graph.bytes, this.opts, graph.externalData);
    try {
      return await fn(new ConstantBlockWeights(this, session));
    } finally {
      await session.release();
    }
  }

  /**
   * Runs one block on B sequences: `hidden` is [B·seqLen, hiddenSize] row-major, B ≥ 1. Packed
   * engines take rope tables per token ([B·seqLen, headDim]) and the additive `mask` [B, seqLen, seqLen].
   */
  async run(hidden: Float32Array, weights: BlockWeights | ConstantBlockWeights, rope: RopeTables, mask?: Float32Array): Promise<BlockRunResult> {
    const { spec, seqLen } = this;
    const h = spec.hiddenSize;
    const sequences = hidden.length / (seqLen * h);
    invariant(Number.isInteger(sequences) && sequences >= 1, 'hidden must be [B·seqLen, hiddenSize]');
    const r = rotaryDim(spec);
    const ropeRows = this.packed ? sequences * seqLen : seqLen;
    invariant(rope.cos.length === ropeRows * r, () => `rope tables must be [${this.packed ? 'B·seqLen' : 'seqLen'}, rotaryDim]`);
    const feeds: Record<string, ort.Tensor> = {
      hidden: floatTensor(hidden, [sequences * seqLen, h]),
      cos: floatTensor(rope.cos, [ropeRows, r]),
      sin: floatTensor(rope.sin, [ropeRows, r]),
    };
    if (this.packed) {
      invariant(mask && mask.length === sequences * seqLen * seqLen, 'a packed run needs a mask [B, seqLen, seqLen]');
      feeds.attention_mask = floatTensor(mask, [sequences, seqLen, seqLen]);
    }
    let session = this.session;
    if (weights instanceof ConstantBlockWeights) {
      invariant(weights.engine === this, 'constant block weights belong to the engine that made them');
      session = weights.session;
    } else {
      for (const name of blockTensorNames(spec)) {
        const shape = blockTensorShape(spec, name);
        const tensor = weights[name];
        invariant(tensor, () => `block weight ${name} missing`);
        invariant(tensor.length === shape.reduce((a, b) => a * b, 1), () => `block weight ${name} has the wrong size`);
        feeds[name] = floatTensor(tensor, shape);
      }
    }
    const results = await session.run(feeds);
    if (this.stats === 'none') return { hidden: floatData(results.hidden_out, 'hidden_out'), sequences };

    const stats = {} as BlockStats;
    for (const group of GROUPS) {
      const width = inputGroupWidth(spec, group);
      const groupStats: GroupStats = { sqSum: floatData(results[`${group}.sqsum`], `${group}.sqsum`) };
      invariant(groupStats.sqSum.length === sequences * width, () => `${group} statistics have ${groupStats.sqSum.length} entries, expected ${sequences * width}`);
      if (this.stats === 'full') {
        groupStats.sum = floatData(results[`${group}.sum`], `${group}.sum`);
        groupStats.gram = floatData(results[`${group}.gram`], `${group}.gram`);
      }
      stats[group] = groupStats;
    }
    return { hidden: new Float32Array(0), sequences, stats };
  }

  /**
   * Runs the block on every sequence of `hidden` (one [seqLen, hiddenSize] array each), in order,
   * `maxBatch` sequences per run, with the weights in the form `withWeights` picks; returns the
   * outputs as one array per sequence: views into each run's output, laid end to end, so the next
   * block takes them as its batch without a copy.
   */
  async runSequences(hidden: readonly Float32Array[], weights: BlockWeights, rope: RopeTables): Promise<Float32Array[]> {
    invariant(this.stats === 'none', 'runSequences needs a plain engine (stats none): statistics engines return no hidden states');
    const size = this.seqLen * this.spec.hiddenSize;
    return this.withWeights(weights, hidden.length, async (held) => {
      const outputs: Float32Array[] = [];
      for (let first = 0; first < hidden.length; first += this.maxBatch) {
        const count = Math.min(this.maxBatch, hidden.length - first);
        const result = await this.run(concatSequences(hidden, first, count, size), held, rope);
        for (let s = 0; s < count; s++) outputs.push(result.hidden.subarray(s * size, (s + 1) * size));
      }
      return outputs;
    });
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/**
 * sequences[first … first+count) laid end to end: a view when they already lie so in one buffer
 * (the outputs of `runSequences`, or a single sequence), else a new array.
 */
export function concatSequences(sequences: readonly Float32Array[], first: number, count: number, size: number): Float32Array {
  for (let s = first; s < first + count; s++) invariant(sequences[s].length === size, 'every sequence must be [seqLen, hiddenSize]');
  const head = sequences[first];
  let contiguous = true;
  for (let s = 1; s < count && contiguous; s++) {
    const next = sequences[first + s];
    contiguous = next.buffer === head.buffer && next.byteOffset === head.byteOffset + s * size * 4;
  }
  if (contiguous) return new Float32Array(head.buffer, head.byteOffset, count * size);
  const batch = new Float32Array(count * size);
  for (let s = 0; s < count; s++) batch.set(sequences[first + s], s * size);
  return batch;
}
