/**
 * The whole model as one graph, for models small enough to hand to ONNX Runtime at once: token
 * ids → embedding rows (Gather) → every decoder block → the NLL head, with all weights and the
 * rotary tables as constants. One session run then evaluates a batch of windows end to end: no
 * per-layer runs, no hidden states copied between JavaScript and ORT, and MatMul/Gemm weights
 * pre-packed once when the session is created.
 *
 * Inputs: ids [B·seqLen] and targets [B·seqLen] (int64). Output: nll [B·seqLen].
 */
import { GraphBuilder, INT64, type ExternalData } from './onnx-builder.ts';
import { blockWeightBytes, decoderBlock, TOKENS } from './block-graph.ts';
import { headTargetLogProb } from './head-graph.ts';
import { ropeTables, rotaryDim } from '../model/rope.ts';
import { blockTensorNames, blockTensorShape, type BlockWeights, type ModelSpec } from '../model/spec.ts';

export interface ModelWeights {
  blocks: BlockWeights[];
  embedding: Float32Array;
  finalNorm: Float32Array;
  /** The embedding itself when embeddings are tied. */
  lmHead: Float32Array;
}

/** Bytes of a model's float32 weights: what a whole-model session copies into ORT (and packs). */
export function modelWeightBytes(spec: ModelSpec): number {
  const vocabRows = spec.vocabSize * spec.hiddenSize * (spec.tieWordEmbeddings ? 1 : 2);
  return spec.numLayers * blockWeightBytes(spec) + 4 * (vocabRows + spec.hiddenSize);
}

export function buildModelGraph(spec: ModelSpec, seqLen: number, weights: ModelWeights): { bytes: Uint8Array; externalData: ExternalData[] } {
  const { hiddenSize: h, vocabSize: vocab } = spec;
  const g = new GraphBuilder('model_nll');
  const ids = g.input('ids', [TOKENS], INT64);
  const targets = g.input('targets', [TOKENS], INT64);
  const tables = ropeTables(spec, seqLen);
  const r = rotaryDim(spec);
  const rope = { cos: g.weight('rope.cos', tables.cos, [seqLen, r]), sin: g.weight('rope.sin', tables.sin, [seqLen, r]) };
  const embedding = g.weight('embed_tokens.weight', weights.embedding, [vocab, h]);

  let hidden = g.op('Gather', [embedding, ids], { axis: 0 });
  weights.blocks.forEach((block, layer) => {
    const w: Record<string, string> = {};
    for (const name of blockTensorNames(spec)) w[name] = g.weight(`layers.${layer}.${name}`, block[name], blockTensorShape(spec, name));
    hidden = decoderBlock(g, spec, seqLen, hidden, w, rope).output();
  });
  const lmHead = weights.lmHead === weights.embedding ? embedding : g.weight('lm_head.weight', weights.lmHead, [vocab, h]);
  const finalNorm = g.weight('norm.weight', weights.finalNorm, [h]);
  g.output(g.neg(headTargetLogProb(g, spec, hidden, finalNorm, lmHead, targets).targetLogProb), 'nll', [TOKENS]);
  return { bytes: g.toBytes(), externalData: g.externalData() };
}
