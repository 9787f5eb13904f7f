/**
 * Tiny random models of every supported family, for checking the ONNX engine against the
 * TypeScript reference. Weights are scaled so activations stay O(1): linear weights uniform with
 * variance 1/d_in, norm weights 1 ± 0.1, embeddings of unit variance.
 */
import {
  blockTensorNames, blockTensorShape,
  type BlockWeights, type Family, type ModelSpec,
} from '../../src/model/spec.ts';
import type { ModelSource } from '../../src/model/source.ts';
import { seededRandom } from './random.ts';

/** Values uniform with mean `mean` and standard deviation `std`. */
function uniformArray(n: number, mean: number, std: number, uniform: () => number): Float32Array {
  const halfWidth = std * Math.sqrt(3);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = mean + (2 * uniform() - 1) * halfWidth;
  return out;
}

export function randomModel(spec: ModelSpec, seed: number): ModelSource {
  const uniform = seededRandom(seed);
  const h = spec.hiddenSize;
  const blocks: BlockWeights[] = [];
  for (let layer = 0; layer < spec.numLayers; layer++) {
    const block: BlockWeights = {};
    for (const name of blockTensorNames(spec)) {
      const shape = blockTensorShape(spec, name);
      const size = shape.reduce((a, b) => a * b, 1);
      if (name.endsWith('norm.weight')) block[name] = uniformArray(size, 1, 0.1 / Math.sqrt(3), uniform);
      else if (name.endsWith('.bias')) block[name] = uniformArray(size, 0, 0.1, uniform);
      else block[name] = uniformArray(size, 0, 1 / Math.sqrt(shape[1]), uniform);
    }
    blocks.push(block);
  }
  // Tied: the embedding is also lm_head, so keep logits O(1) with std 2/√h instead of 1.
  const embedding = uniformArray(spec.vocabSize * h, 0, spec.tieWordEmbeddings ? 2 / Math.sqrt(h) : 1, uniform);
  const finalNorm = uniformArray(h, 1, 0.1 / Math.sqrt(3), uniform);
  const lmHead = spec.tieWordEmbeddings ? embedding : uniformArray(spec.vocabSize * h, 0, 1 / Math.sqrt(h), uniform);
  return {
    spec,
    readBlock: (layer) => blocks[layer],
    readEmbedding: () => embedding,
    readFinalNorm: () => finalNorm,
    readLmHead: () => lmHead,
  };
}

/** A tiny spec of `family` with that family's distinctive features switched on. */
export function smallSpec(family: Family, overrides: Partial<ModelSpec> = {}): ModelSpec {
  const base: ModelSpec = {
    family,
    hiddenSize: 64,
    intermediateSize: 96,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 16,
    vocabSize: 67,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: null,
    maxPositionEmbeddings: 256,
    tieWordEmbeddings: false,
    attentionBias: false,
    qkNorm: false,
    bosTokenId: 1,
    eosTokenId: 2,
    torchDtype: 'float32',
  };
  const familyDefaults: Record<Family, Partial<ModelSpec>> = {
    llama: {},
    mistral: { numKvHeads: 1, ropeTheta: 1e6 },
    qwen2: { attentionBias: true, tieWordEmbeddings: true, rmsNormEps: 1e-6, ropeTheta: 1e6 },
    // head_dim ≠ hidden / heads: q is 4·24 = 96 wide, o_proj maps 96 → 64.
    qwen3: { qkNorm: true, headDim: 24, tieWordEmbeddings: true, rmsNormEps: 1e-6, ropeTheta: 1e6 },
    // Partial rotary as Phi-4-mini (0.75 of head_dim): 12 of 16 channels turn, 4 pass.
    phi3: { rotaryDim: 12, eosTokenId: 32 },
  };
  return { ...base, ...familyDefaults[family], ...overrides };
}

/** Llama 3.1-style rope scaling whose three regimes all occur with headDim 16, theta 10⁴. */
export const SMALL_LLAMA3_SCALING = {
  type: 'llama3',
  factor: 8,
  lowFreqFactor: 1,
  highFreqFactor: 4,
  originalMaxPositionEmbeddings: 64,
} as const;

/** Every variant the engine must match the reference on. */
export const SMALL_SPEC_VARIANTS: Record<string, ModelSpec> = {
  'llama (GQA)': smallSpec('llama'),
  'llama (llama3 rope scaling)': smallSpec('llama', { ropeScaling: { ...SMALL_LLAMA3_SCALING } }),
  'llama (multi-head, no GQA)': smallSpec('llama', { numKvHeads: 4 }),
  'mistral (MQA)': smallSpec('mistral'),
  'qwen2 (bias, tied)': smallSpec('qwen2'),
  'qwen3 (q/k norm, head_dim ≠ h/heads, tied)': smallSpec('qwen3'),
  'phi3 (partial rotary 12 of 16)': smallSpec('phi3'),
  'phi3 (longrope short factors, attention factor)': smallSpec('phi3', {
    rotaryDim: 16,
    ropeScaling: { type: 'longrope', shortFactor: [1, 1.2, 1.5, 2, 3, 5, 8, 13], attentionFactor: 1.19 },
  }),
};
