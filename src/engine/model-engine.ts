/**
 * ModelEngine: one session over the whole-model graph (model-graph.ts) for models small enough to
 * hand to ONNX Runtime at once. A run takes B windows of `seqLen` token ids and returns the
 * per-token NLL: the hidden states never leave ORT.
 */
import type ort from 'onnxruntime-node';
import { buildModelGraph, modelWeightBytes } from './model-graph.ts';
import { blockBatchSize } from './batch-size.ts';
import { createSession, floatData, int64Tensor, type EngineOptions } from './session.ts';
import type { ModelSource } from '../model/source.ts';
import { invariant } from '../util/errors.ts';

/**
 * Largest model (float32 weight bytes) evaluated as one graph. ORT copies and pre-packs the
 * weights when the session starts, so the model is then held twice; beyond this the layer-major
 * path (one block's weights at a time) is used, and per-run overhead is small next to the work.
 */
const WHOLE_MODEL_MAX_BYTES = 64 * 2 ** 20;

export class ModelEngine {
  private constructor(
    private readonly vocabSize: number,
    readonly seqLen: number,
    /** Windows per run its callers should use. */
    readonly maxBatch: number,
    private readonly session: ort.InferenceSession,
  ) {}

  /** Whether `model` is small enough for a whole-model session. */
  static fits(model: ModelSource): boolean {
    return modelWeightBytes(model.spec) <= WHOLE_MODEL_MAX_BYTES;
  }

  static async create(model: ModelSource, seqLen: number, opts: EngineOptions): Promise<ModelEngine> {
    const { spec } = model;
    const blocks = Array.from({ length: spec.numLayers }, (_, layer) => model.readBlock(layer));
    const graph = buildModelGraph(spec, seqLen, {
      blocks, embedding: model.readEmbedding(), finalNorm: model.readFinalNorm(), lmHead: model.readLmHead(),
    });
    // One intra-op thread unless asked otherwise: a model this small has operators too short to
    // split, and waking a second thread for each costs more than it saves (stories260K, 800
    // WikiText-2 windows on 2 cores: 2.7 s on one thread, 3.8 s on two).
    const session = await createSession(graph.bytes, { ...opts, threads: opts.threads ?? 1 }, graph.externalData);
    return new ModelEngine(spec.vocabSize, seqLen, blockBatchSize(spec, seqLen), session);
  }

  /**
   * −log p(targets[t] | ids[0 … t] of t's window) for B windows laid end to end: ids and targets
   * [B·seqLen] → [B·seqLen].
   */
  async nll(ids: Int32Array, targets: Int32Array): Promise<Float32Array> {
    const tokens = ids.length;
    invariant(tokens > 0 && tokens % this.seqLen === 0 && targets.length === tokens, 'ids and targets must be [B·seqLen]');
    const ids64 = new BigInt64Array(tokens);
    const targets64 = new BigInt64Array(tokens);
    for (let t = 0; t < tokens; t++) {
      const id = ids[t];
      invariant(id >= 0 && id < this.vocabSize, () => `token id ${id} outside the vocabulary [0, ${this.vocabSize})`);
      ids64[t] = BigInt(id);
      targets64[t] = BigInt(targets[t]);
    }
    const results = await this.session.run({ ids: int64Tensor(ids64, [tokens]), targets: int64Tensor(targets64, [tokens]) });
    return floatData(results.nll, 'nll');
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
