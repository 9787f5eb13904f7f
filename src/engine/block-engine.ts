/**
 * BlockEngine: runs the decoder-block graph for one model shape and sequence length. One session
 * serves every layer: the caller passes each layer's weights per call (no copies: ORT reads the
 * Float32Arrays in place).
 */
import assert from 'node:assert/strict';
import type ort from 'onnxruntime-node';
import { buildBlockGraph, type StatsMode } from './block-graph.ts';
import { createSession, floatData, floatTensor, type EngineOptions } from './session.ts';
import {
  blockTensorNames, blockTensorShape, inputGroupWidth,
  type BlockWeights, type LinearInputGroup, type ModelSpec,
} from '../model/spec.ts';

export interface GroupStats {
  /** Σ over tokens of x², per input channel [d_in]. */
  sqSum: Float32Array;
  /** Σ over tokens of x, per input channel [d_in] (stats 'full'). */
  sum?: Float32Array;
  /** XᵀX summed over tokens, [d_in, d_in] row-major (stats 'full'). */
  gram?: Float32Array;
}
export type BlockStats = Record<LinearInputGroup, GroupStats>;

export interface RopeTables {
  cos: Float32Array;
  sin: Float32Array;
}

const GROUPS: readonly LinearInputGroup[] = ['qkv', 'o', 'gateup', 'down'];

export class BlockEngine {
  private constructor(
    private readonly spec: ModelSpec,
    readonly seqLen: number,
    readonly stats: StatsMode,
    private readonly session: ort.InferenceSession,
  ) {}

  static async create(spec: ModelSpec, seqLen: number, opts: EngineOptions & { stats: StatsMode }): Promise<BlockEngine> {
    const session = await createSession(buildBlockGraph(spec, { seqLen, stats: opts.stats }), opts);
    return new BlockEngine(spec, seqLen, opts.stats, session);
  }

  /** Runs one block on one sequence: `hidden` is [seqLen, hiddenSize] row-major. */
  async run(hidden: Float32Array, weights: BlockWeights, rope: RopeTables): Promise<{ hidden: Float32Array; stats?: BlockStats }> {
    const { spec, seqLen } = this;
    const h = spec.hiddenSize;
    assert.equal(hidden.length, seqLen * h, 'hidden must be [seqLen, hiddenSize]');
    assert.equal(rope.cos.length, seqLen * spec.headDim, 'rope tables must be [seqLen, headDim]');
    const feeds: Record<string, ort.Tensor> = {
      hidden: floatTensor(hidden, [seqLen, h]),
      cos: floatTensor(rope.cos, [seqLen, spec.headDim]),
      sin: floatTensor(rope.sin, [seqLen, spec.headDim]),
    };
    for (const name of blockTensorNames(spec)) {
      const shape = blockTensorShape(spec, name);
      const tensor = weights[name];
      assert.ok(tensor, `block weight ${name} missing`);
      assert.equal(tensor.length, shape.reduce((a, b) => a * b, 1), `block weight ${name} has the wrong size`);
      feeds[name] = floatTensor(tensor, shape);
    }
    const results = await this.session.run(feeds);
    const output = floatData(results.hidden_out, 'hidden_out');
    if (this.stats === 'none') return { hidden: output };

    const stats = {} as BlockStats;
    for (const group of GROUPS) {
      const groupStats: GroupStats = { sqSum: floatData(results[`${group}.sqsum`], `${group}.sqsum`) };
      assert.equal(groupStats.sqSum.length, inputGroupWidth(spec, group));
      if (this.stats === 'full') {
        groupStats.sum = floatData(results[`${group}.sum`], `${group}.sum`);
        groupStats.gram = floatData(results[`${group}.gram`], `${group}.gram`);
      }
      stats[group] = groupStats;
    }
    return { hidden: output, stats };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
