/**
 * ModelSpec: everything crepe needs to know about a decoder-only transformer, independent of the
 * family it came from. `model/config.ts` builds it from a Hugging Face config.json (one small
 * adapter per family); the engine, the reference forward and the pruner only read this.
 */

import { FieldError, checkField } from '../util/errors.ts';
import { checkInteger, describeValue } from '../util/fields.ts';

export type Family = 'llama' | 'mistral' | 'qwen2' | 'qwen3' | 'phi3';
export const SUPPORTED_FAMILIES: readonly Family[] = ['llama', 'mistral', 'qwen2', 'qwen3', 'phi3'];

/** `rope_scaling` of type "llama3" (Llama 3.1+): frequency-dependent stretch of the rotary base. */
export interface Llama3RopeScaling {
  type: 'llama3';
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositionEmbeddings: number;
}

/**
 * `rope_scaling` of type "longrope" (Phi-3.5, Phi-4-mini) for windows within the original context,
 * where transformers uses the short factors: invFreq[i] / shortFactor[i], and cos and sin scaled
 * by `attentionFactor`.
 */
export interface LongRopeScaling {
  type: 'longrope';
  shortFactor: number[];
  attentionFactor: number;
}

export interface ModelSpec {
  family: Family;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  /** Grouped-query attention: numHeads is a multiple of numKvHeads. */
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: Llama3RopeScaling | LongRopeScaling | null;
  /**
   * Channels of each head that rotary embedding turns (the first ones; Phi-3's
   * partial_rotary_factor · headDim); absent means all of them.
   */
  rotaryDim?: number;
  /**
   * The longest window crepe computes as transformers does: max_position_embeddings, or less where
   * config.json limits attention or rotary further (`contextField` then names that field).
   */
  maxPositionEmbeddings: number;
  /** The config.json field that limits the context below max_position_embeddings (sliding_window, …). */
  contextField?: string;
  /** lm_head shares the token-embedding matrix (no `lm_head.weight` tensor). */
  tieWordEmbeddings: boolean;
  /** q/k/v projections carry a bias (Qwen2). */
  attentionBias: boolean;
  /** Per-head RMSNorm on q and k before rotary (Qwen3). */
  qkNorm: boolean;
  bosTokenId: number | null;
  eosTokenId: number | null;
  /** torch_dtype of the checkpoint, as written in config.json (informational). */
  torchDtype: string;
}

/** The seven linear sublayers of a decoder block, in the reference repositories' order. */
export const LINEAR_NAMES = [
  'self_attn.q_proj',
  'self_attn.k_proj',
  'self_attn.v_proj',
  'self_attn.o_proj',
  'mlp.gate_proj',
  'mlp.up_proj',
  'mlp.down_proj',
] as const;
export type LinearName = (typeof LINEAR_NAMES)[number];

/**
 * Linears that read the same input share one set of input statistics:
 * q/k/v read the attention-normed hidden state, gate/up the MLP-normed one.
 */
export type LinearInputGroup = 'qkv' | 'o' | 'gateup' | 'down';
export const LINEAR_INPUT_GROUP: Record<LinearName, LinearInputGroup> = {
  'self_attn.q_proj': 'qkv',
  'self_attn.k_proj': 'qkv',
  'self_attn.v_proj': 'qkv',
  'self_attn.o_proj': 'o',
  'mlp.gate_proj': 'gateup',
  'mlp.up_proj': 'gateup',
  'mlp.down_proj': 'down',
};

/** [d_out, d_in] of each linear, as stored (PyTorch nn.Linear layout). */
export function linearShape(spec: ModelSpec, name: LinearName): [number, number] {
  const h = spec.hiddenSize;
  const qDim = spec.numHeads * spec.headDim;
  const kvDim = spec.numKvHeads * spec.headDim;
  switch (name) {
    case 'self_attn.q_proj': return [qDim, h];
    case 'self_attn.k_proj': return [kvDim, h];
    case 'self_attn.v_proj': return [kvDim, h];
    case 'self_attn.o_proj': return [h, qDim];
    case 'mlp.gate_proj': return [spec.intermediateSize, h];
    case 'mlp.up_proj': return [spec.intermediateSize, h];
    case 'mlp.down_proj': return [h, spec.intermediateSize];
  }
}

/** Width of each linear-input group (the d_in its statistics have). */
export function inputGroupWidth(spec: ModelSpec, group: LinearInputGroup): number {
  switch (group) {
    case 'qkv': return spec.hiddenSize;
    case 'o': return spec.numHeads * spec.headDim;
    case 'gateup': return spec.hiddenSize;
    case 'down': return spec.intermediateSize;
  }
}

/**
 * Tensors of one decoder block, keyed by their name inside the block (Hugging Face naming without
 * the `model.layers.{i}.` prefix), widened to float32, row-major in their stored shape:
 *   input_layernorm.weight [h], post_attention_layernorm.weight [h],
 *   self_attn.{q,k,v,o}_proj.weight, mlp.{gate,up,down}_proj.weight,
 *   self_attn.{q,k,v}_proj.bias (attentionBias), self_attn.{q,k}_norm.weight [headDim] (qkNorm).
 */
export type BlockWeights = Record<string, Float32Array>;

/** Names (inside a block) of the tensors a block of this spec holds. */
export function blockTensorNames(spec: ModelSpec): string[] {
  const names = ['input_layernorm.weight', 'post_attention_layernorm.weight'];
  for (const linear of LINEAR_NAMES) names.push(`${linear}.weight`);
  if (spec.attentionBias) names.push('self_attn.q_proj.bias', 'self_attn.k_proj.bias', 'self_attn.v_proj.bias');
  if (spec.qkNorm) names.push('self_attn.q_norm.weight', 'self_attn.k_norm.weight');
  return names;
}

/**
 * A stored tensor that holds several block tensors, their rows stacked in order (Phi-3's
 * qkv_proj = [q; k; v] and gate_up_proj = [gate; up]). crepe computes and prunes the parts as the
 * separate linears they are, and writes the stacked tensor back.
 */
export interface FusedTensor {
  /** In-block name of the stored tensor. */
  stored: string;
  /** In-block names of the parts, in row order. */
  parts: string[];
}

/** The fused tensors of a family's checkpoint (none outside phi3). */
export function fusedTensors(spec: ModelSpec): FusedTensor[] {
  if (spec.family !== 'phi3') return [];
  return [
    { stored: 'self_attn.qkv_proj.weight', parts: ['self_attn.q_proj.weight', 'self_attn.k_proj.weight', 'self_attn.v_proj.weight'] },
    { stored: 'mlp.gate_up_proj.weight', parts: ['mlp.gate_proj.weight', 'mlp.up_proj.weight'] },
  ];
}

/** In-block names of the tensors a checkpoint of this spec stores (fused tensors in place of their parts). */
export function storedBlockTensorNames(spec: ModelSpec): string[] {
  const fused = fusedTensors(spec);
  const names: string[] = [];
  for (const name of blockTensorNames(spec)) {
    const group = fused.find((f) => f.parts.includes(name));
    if (!group) names.push(name);
    else if (group.parts[0] === name) names.push(group.stored);
  }
  return names;
}

/** Shape of a stored block tensor (a fused one's parts' rows added up). */
export function storedBlockTensorShape(spec: ModelSpec, name: string): number[] {
  const group = fusedTensors(spec).find((f) => f.stored === name);
  if (!group) return blockTensorShape(spec, name);
  const shapes = group.parts.map((part) => blockTensorShape(spec, part));
  return [shapes.reduce((rows, shape) => rows + shape[0], 0), shapes[0][1]];
}

/** In-block name of the stored tensor that holds block tensor `name`. */
export function storedTensorOf(spec: ModelSpec, name: string): string {
  return fusedTensors(spec).find((f) => f.parts.includes(name))?.stored ?? name;
}

/** Shape of a block tensor, by its in-block name. */
export function blockTensorShape(spec: ModelSpec, name: string): number[] {
  if (name.endsWith('layernorm.weight')) return [spec.hiddenSize];
  if (name.endsWith('_norm.weight')) return [spec.headDim];
  const linear = name.replace(/\.(weight|bias)$/, '') as LinearName;
  const shape = linearShape(spec, linear);
  return name.endsWith('.bias') ? [shape[0]] : shape;
}

export const layerPrefix = (layer: number): string => `model.layers.${layer}.`;
export const EMBED_NAME = 'model.embed_tokens.weight';
export const FINAL_NORM_NAME = 'model.norm.weight';
export const LM_HEAD_NAME = 'lm_head.weight';

/**
 * Whether a stored tensor is the weight of a decoder block's linear (a Linear module crepe prunes;
 * fused ones such as phi3's qkv_proj included), as opposed to embeddings, norms and lm_head.
 */
export function isBlockLinearWeight(name: string, shape: readonly number[]): boolean {
  return shape.length === 2 && /^model\.layers\.\d+\..*_proj\.weight$/.test(name);
}

/**
 * A window length the model can take: at least 2 tokens (position t predicts token t + 1, so a
 * one-token window has nothing to predict: its perplexity, PHO's calib-nll proxy and a
 * confirmation trial would all be NaN) and no longer than its context. Other windows are refused
 * everywhere (calibration, evaluation, search), before anything is allocated.
 */
export function checkSeqlen(field: string, seqlen: unknown, spec: ModelSpec): asserts seqlen is number {
  checkInteger(field, seqlen, 1);
  checkField(seqlen >= 2, field, `must be at least 2 tokens (a window predicts each token from the ones before it), got ${seqlen}`);
  checkField(
    seqlen <= spec.maxPositionEmbeddings,
    field,
    `${seqlen} is longer than the model's context of ${spec.maxPositionEmbeddings} tokens (${spec.contextField ?? 'max_position_embeddings'} in config.json)`,
  );
}

/** Refuses `tokens` unless it is an Int32Array of ids in the model's vocabulary (an id outside it read past the embedding). */
export function checkTokenIds(field: string, tokens: unknown, spec: ModelSpec): asserts tokens is Int32Array {
  checkField(tokens instanceof Int32Array, field, () => `must be an Int32Array of token ids, got ${describeValue(tokens)}`);
  for (let i = 0; i < tokens.length; i++) {
    if (tokens[i] < 0 || tokens[i] >= spec.vocabSize) throw new FieldError(field, `holds token id ${tokens[i]} at ${i}, outside the model's vocabulary of ${spec.vocabSize}`);
  }
}

/**
 * Refuses calibration windows unless they are a non-empty list of `seqlen` token ids each, in the
 * model's vocabulary (windows of another length would run the engines on misshapen inputs, and
 * none at all would give NaN scores).
 */
export function checkWindows(field: string, windows: unknown, seqlen: number, spec: ModelSpec): asserts windows is Int32Array[] {
  checkField(Array.isArray(windows) && windows.length > 0, field, () => `must be a non-empty list of token windows (Int32Arrays), got ${describeValue(windows)}`);
  windows.forEach((window, i) => {
    checkTokenIds(`${field}[${i}]`, window, spec);
    checkField(window.length === seqlen, `${field}[${i}]`, `holds ${window.length} tokens, not the window length ${seqlen}`);
  });
}
