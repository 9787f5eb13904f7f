/**
 * config.json ↔ ModelSpec. Reading dispatches on `model_type` to one small adapter per family
 * (families/*.ts); anything else is refused by name. Writing produces the Hugging Face
 * config.json of a spec (the converter uses it for llama2.c / GGUF imports).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { UserError } from '../util/errors.ts';
import { checkModelDirectory, readInputJson } from '../io/input-file.ts';
import { isHfConfig, type HfConfig } from './families/common.ts';
import { llamaSpec } from './families/llama.ts';
import { mistralSpec } from './families/mistral.ts';
import { qwen2Spec } from './families/qwen2.ts';
import { qwen3Spec } from './families/qwen3.ts';
import { phi3Spec } from './families/phi3.ts';
import { SUPPORTED_FAMILIES, type Family, type ModelSpec } from './spec.ts';

const ADAPTERS: Record<Family, (config: HfConfig, source: string) => ModelSpec> = {
  llama: llamaSpec,
  mistral: mistralSpec,
  qwen2: qwen2Spec,
  qwen3: qwen3Spec,
  phi3: phi3Spec,
};

const ARCHITECTURES: Record<Family, string> = {
  llama: 'LlamaForCausalLM',
  mistral: 'MistralForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
  qwen3: 'Qwen3ForCausalLM',
  phi3: 'Phi3ForCausalLM',
};

function isFamily(value: unknown): value is Family {
  return typeof value === 'string' && (SUPPORTED_FAMILIES as readonly string[]).includes(value);
}

/** Builds the ModelSpec of a parsed config.json; `source` names it in error messages. */
export function parseModelConfig(json: unknown, source: string): ModelSpec {
  if (!isHfConfig(json)) throw new UserError(`${source}: expected a JSON object`);
  const modelType = json.model_type;
  const supported = SUPPORTED_FAMILIES.join(', ');
  if (modelType === undefined) throw new UserError(`${source}: no "model_type" field (supported: ${supported})`);
  if (!isFamily(modelType)) {
    throw new UserError(`${source}: model_type ${JSON.stringify(modelType)} is not supported (supported: ${supported})`);
  }
  return ADAPTERS[modelType](json, source);
}

/** Reads and parses `<dir>/config.json`. */
export function readModelConfig(dir: string): ModelSpec {
  checkModelDirectory(dir);
  const configPath = path.join(dir, 'config.json');
  if (!existsSync(configPath)) throw new UserError(`${dir}: no config.json (expected a Hugging Face model directory)`);
  return parseModelConfig(readInputJson(configPath, 'json'), configPath);
}

/** The Hugging Face config.json describing `spec`; parseModelConfig of it gives `spec` back. */
export function specToConfigJson(spec: ModelSpec): Record<string, unknown> {
  // Each family's block structure is fixed; a spec outside it has no config.json.
  const expected = { llama: [false, false], mistral: [false, false], qwen2: [true, false], qwen3: [false, true], phi3: [false, false] }[spec.family];
  assert.ok(spec.ropeScaling?.type !== 'longrope', 'a longrope spec has no config.json (its long factors are not kept)');
  assert.deepEqual([spec.attentionBias, spec.qkNorm], expected, `a ${spec.family} spec with attentionBias=${spec.attentionBias}, qkNorm=${spec.qkNorm}`);

  // A context held to the sliding window is written as a window of that length.
  const slidingWindow = spec.contextField === 'sliding_window' ? spec.maxPositionEmbeddings : null;
  const config: Record<string, unknown> = {
    architectures: [ARCHITECTURES[spec.family]],
    model_type: spec.family,
    hidden_size: spec.hiddenSize,
    intermediate_size: spec.intermediateSize,
    num_hidden_layers: spec.numLayers,
    num_attention_heads: spec.numHeads,
    num_key_value_heads: spec.numKvHeads,
    head_dim: spec.headDim,
    vocab_size: spec.vocabSize,
    hidden_act: 'silu',
    max_position_embeddings: spec.maxPositionEmbeddings,
    rms_norm_eps: spec.rmsNormEps,
    rope_theta: spec.ropeTheta,
    rope_scaling: spec.ropeScaling?.type === 'llama3'
      ? {
          rope_type: 'llama3',
          factor: spec.ropeScaling.factor,
          low_freq_factor: spec.ropeScaling.lowFreqFactor,
          high_freq_factor: spec.ropeScaling.highFreqFactor,
          original_max_position_embeddings: spec.ropeScaling.originalMaxPositionEmbeddings,
        }
      : null,
    tie_word_embeddings: spec.tieWordEmbeddings,
    bos_token_id: spec.bosTokenId,
    eos_token_id: spec.eosTokenId,
    torch_dtype: spec.torchDtype,
    initializer_range: 0.02,
    attention_dropout: 0.0,
    use_cache: true,
  };
  switch (spec.family) {
    case 'llama':
      Object.assign(config, { attention_bias: false, mlp_bias: false, pretraining_tp: 1 });
      break;
    case 'mistral':
      Object.assign(config, { sliding_window: slidingWindow });
      break;
    case 'qwen2':
      Object.assign(config, { use_sliding_window: slidingWindow !== null, sliding_window: slidingWindow, max_window_layers: slidingWindow === null ? spec.numLayers : 0 });
      break;
    case 'phi3':
      Object.assign(config, {
        partial_rotary_factor: (spec.rotaryDim ?? spec.headDim) / spec.headDim,
        original_max_position_embeddings: spec.maxPositionEmbeddings,
        sliding_window: slidingWindow,
      });
      break;
    case 'qwen3':
      Object.assign(config, { attention_bias: false, use_sliding_window: slidingWindow !== null, sliding_window: slidingWindow, max_window_layers: slidingWindow === null ? spec.numLayers : 0 });
      break;
  }
  return config;
}
