import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseModelConfig, readModelConfig, specToConfigJson } from '../../src/model/config.ts';
import type { ModelSpec } from '../../src/model/spec.ts';
import { UserError } from '../../src/util/errors.ts';
import { tempDir } from '../helpers/temp-dir.ts';

// Config files as published on the Hugging Face Hub (fields trimmed only where irrelevant).
const TINYLLAMA = {
  architectures: ['LlamaForCausalLM'], attention_bias: false, bos_token_id: 1, eos_token_id: 2, hidden_act: 'silu',
  hidden_size: 2048, initializer_range: 0.02, intermediate_size: 5632, max_position_embeddings: 2048, model_type: 'llama',
  num_attention_heads: 32, num_hidden_layers: 22, num_key_value_heads: 4, pretraining_tp: 1, rms_norm_eps: 1e-5,
  rope_scaling: null, rope_theta: 10000.0, tie_word_embeddings: false, torch_dtype: 'bfloat16', use_cache: true, vocab_size: 32000,
};
const MISTRAL_7B = {
  architectures: ['MistralForCausalLM'], bos_token_id: 1, eos_token_id: 2, hidden_act: 'silu', hidden_size: 4096,
  initializer_range: 0.02, intermediate_size: 14336, max_position_embeddings: 32768, model_type: 'mistral',
  num_attention_heads: 32, num_hidden_layers: 32, num_key_value_heads: 8, rms_norm_eps: 1e-5, rope_theta: 10000.0,
  sliding_window: 4096, tie_word_embeddings: false, torch_dtype: 'bfloat16', use_cache: true, vocab_size: 32000,
};
const QWEN2_05B = {
  architectures: ['Qwen2ForCausalLM'], attention_dropout: 0.0, bos_token_id: 151643, eos_token_id: 151643, hidden_act: 'silu',
  hidden_size: 896, initializer_range: 0.02, intermediate_size: 4864, max_position_embeddings: 131072, max_window_layers: 24,
  model_type: 'qwen2', num_attention_heads: 14, num_hidden_layers: 24, num_key_value_heads: 2, rms_norm_eps: 1e-6,
  rope_theta: 1000000.0, sliding_window: 131072, tie_word_embeddings: true, torch_dtype: 'bfloat16', use_cache: true,
  use_sliding_window: false, vocab_size: 151936,
};
const QWEN3_06B = {
  architectures: ['Qwen3ForCausalLM'], attention_bias: false, attention_dropout: 0.0, bos_token_id: 151643, eos_token_id: 151645,
  head_dim: 128, hidden_act: 'silu', hidden_size: 1024, initializer_range: 0.02, intermediate_size: 3072,
  max_position_embeddings: 40960, max_window_layers: 28, model_type: 'qwen3', num_attention_heads: 16, num_hidden_layers: 28,
  num_key_value_heads: 8, rms_norm_eps: 1e-6, rope_scaling: null, rope_theta: 1000000, sliding_window: null,
  tie_word_embeddings: true, torch_dtype: 'bfloat16', use_cache: true, use_sliding_window: false, vocab_size: 151936,
};
const LLAMA_31_8B = {
  architectures: ['LlamaForCausalLM'], attention_bias: false, attention_dropout: 0.0, bos_token_id: 128000,
  eos_token_id: [128001, 128008, 128009], hidden_act: 'silu', hidden_size: 4096, initializer_range: 0.02,
  intermediate_size: 14336, max_position_embeddings: 131072, mlp_bias: false, model_type: 'llama', num_attention_heads: 32,
  num_hidden_layers: 32, num_key_value_heads: 8, pretraining_tp: 1, rms_norm_eps: 1e-5,
  rope_scaling: { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
  rope_theta: 500000.0, tie_word_embeddings: false, torch_dtype: 'bfloat16', use_cache: true, vocab_size: 128256,
};

const SOURCE = '/models/x/config.json';

function refusedWith(config: unknown, ...fragments: string[]): void {
  assert.throws(
    () => parseModelConfig(config, SOURCE),
    (error: unknown) => {
      assert.ok(error instanceof UserError, `expected UserError, got ${error}`);
      assert.ok(error.message.startsWith(`${SOURCE}: `), error.message);
      for (const fragment of fragments) assert.ok(error.message.includes(fragment), `"${error.message}" lacks "${fragment}"`);
      return true;
    },
  );
}

test('TinyLlama-1.1B (llama, GQA 32/4, untied)', () => {
  const expected: ModelSpec = {
    family: 'llama', hiddenSize: 2048, intermediateSize: 5632, numLayers: 22, numHeads: 32, numKvHeads: 4, headDim: 64,
    vocabSize: 32000, rmsNormEps: 1e-5, ropeTheta: 10000, ropeScaling: null, maxPositionEmbeddings: 2048,
    tieWordEmbeddings: false, attentionBias: false, qkNorm: false, bosTokenId: 1, eosTokenId: 2, torchDtype: 'bfloat16',
  };
  assert.deepEqual(parseModelConfig(TINYLLAMA, SOURCE), expected);
});

test('Mistral-7B v0.1: the context is held to the sliding window (4096 of 32768)', () => {
  const expected: ModelSpec = {
    family: 'mistral', hiddenSize: 4096, intermediateSize: 14336, numLayers: 32, numHeads: 32, numKvHeads: 8, headDim: 128,
    vocabSize: 32000, rmsNormEps: 1e-5, ropeTheta: 10000, ropeScaling: null, maxPositionEmbeddings: 4096, contextField: 'sliding_window',
    tieWordEmbeddings: false, attentionBias: false, qkNorm: false, bosTokenId: 1, eosTokenId: 2, torchDtype: 'bfloat16',
  };
  assert.deepEqual(parseModelConfig(MISTRAL_7B, SOURCE), expected);
  // v0.2 and later have no sliding window: the whole context.
  const v02 = parseModelConfig({ ...MISTRAL_7B, sliding_window: null }, SOURCE);
  assert.equal(v02.maxPositionEmbeddings, 32768);
  assert.equal(v02.contextField, undefined);
});

test('Qwen2/Qwen3: use_sliding_window true holds the context to sliding_window; false leaves it', () => {
  for (const config of [QWEN2_05B, QWEN3_06B]) {
    const sliding = parseModelConfig({ ...config, use_sliding_window: true, sliding_window: 4096 }, SOURCE);
    assert.equal(sliding.maxPositionEmbeddings, 4096);
    assert.equal(sliding.contextField, 'sliding_window');
    const full = parseModelConfig({ ...config, use_sliding_window: false, sliding_window: 4096 }, SOURCE);
    assert.equal(full.maxPositionEmbeddings, config.max_position_embeddings);
    assert.equal(full.contextField, undefined);
  }
  refusedWith({ ...QWEN2_05B, use_sliding_window: true, sliding_window: 0 }, '"sliding_window" must be a positive integer, got 0');
});

test('Qwen2-0.5B (q/k/v bias, tied embeddings, 14 heads / 2 kv heads)', () => {
  const expected: ModelSpec = {
    family: 'qwen2', hiddenSize: 896, intermediateSize: 4864, numLayers: 24, numHeads: 14, numKvHeads: 2, headDim: 64,
    vocabSize: 151936, rmsNormEps: 1e-6, ropeTheta: 1000000, ropeScaling: null, maxPositionEmbeddings: 131072,
    tieWordEmbeddings: true, attentionBias: true, qkNorm: false, bosTokenId: 151643, eosTokenId: 151643, torchDtype: 'bfloat16',
  };
  assert.deepEqual(parseModelConfig(QWEN2_05B, SOURCE), expected);
});

test('Qwen3-0.6B (q/k norm, head_dim 128 ≠ hidden/heads, tied)', () => {
  const expected: ModelSpec = {
    family: 'qwen3', hiddenSize: 1024, intermediateSize: 3072, numLayers: 28, numHeads: 16, numKvHeads: 8, headDim: 128,
    vocabSize: 151936, rmsNormEps: 1e-6, ropeTheta: 1000000, ropeScaling: null, maxPositionEmbeddings: 40960,
    tieWordEmbeddings: true, attentionBias: false, qkNorm: true, bosTokenId: 151643, eosTokenId: 151645, torchDtype: 'bfloat16',
  };
  assert.deepEqual(parseModelConfig(QWEN3_06B, SOURCE), expected);
  // Without head_dim Qwen3 uses its HF default of 128, not hidden/heads (= 64).
  const { head_dim: _headDim, ...withoutHeadDim } = QWEN3_06B;
  assert.equal(parseModelConfig(withoutHeadDim, SOURCE).headDim, 128);
});

test('Llama-3.1-8B (rope_scaling llama3; first of several eos ids)', () => {
  const spec = parseModelConfig(LLAMA_31_8B, SOURCE);
  assert.deepEqual(spec.ropeScaling, {
    type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192,
  });
  assert.equal(spec.ropeTheta, 500000);
  assert.equal(spec.eosTokenId, 128001);
  assert.equal(spec.bosTokenId, 128000);
  assert.equal(spec.headDim, 128);
  // The older spelling "type" is accepted too.
  const { rope_type: _ropeType, ...oldScaling } = LLAMA_31_8B.rope_scaling;
  assert.deepEqual(parseModelConfig({ ...LLAMA_31_8B, rope_scaling: { ...oldScaling, type: 'llama3' } }, SOURCE).ropeScaling, spec.ropeScaling);
});

test('newer transformers: rope_parameters and dtype instead of rope_theta/rope_scaling and torch_dtype', () => {
  const { rope_theta: _theta, rope_scaling: _scaling, torch_dtype: _dtype, ...rest } = LLAMA_31_8B;
  const spec = parseModelConfig({ ...rest, dtype: 'bfloat16', rope_parameters: { rope_theta: 500000, ...LLAMA_31_8B.rope_scaling } }, SOURCE);
  assert.equal(spec.ropeTheta, 500000);
  assert.equal(spec.ropeScaling?.type === 'llama3' && spec.ropeScaling.factor, 8);
  assert.equal(spec.torchDtype, 'bfloat16');
  const plain = parseModelConfig({ ...rest, rope_parameters: { rope_theta: 20000, rope_type: 'default' } }, SOURCE);
  assert.equal(plain.ropeTheta, 20000);
  assert.equal(plain.ropeScaling, null);
});

test('HF defaults for optional fields', () => {
  const minimal = { model_type: 'llama', hidden_size: 64, intermediate_size: 172, num_hidden_layers: 2, num_attention_heads: 8, vocab_size: 512 };
  const spec = parseModelConfig(minimal, SOURCE);
  assert.equal(spec.numKvHeads, 8);
  assert.equal(spec.headDim, 8);
  assert.equal(spec.rmsNormEps, 1e-6);
  assert.equal(spec.ropeTheta, 10000);
  assert.equal(spec.ropeScaling, null);
  assert.equal(spec.maxPositionEmbeddings, 2048);
  assert.equal(spec.tieWordEmbeddings, false);
  assert.equal(spec.bosTokenId, 1);
  assert.equal(spec.eosTokenId, 2);
  assert.equal(spec.torchDtype, 'float32');
  assert.equal(parseModelConfig({ ...minimal, model_type: 'mistral' }, SOURCE).maxPositionEmbeddings, 131072);
  const qwen2 = parseModelConfig({ ...minimal, model_type: 'qwen2', num_key_value_heads: null }, SOURCE);
  assert.deepEqual([qwen2.maxPositionEmbeddings, qwen2.bosTokenId, qwen2.eosTokenId, qwen2.numKvHeads], [32768, null, null, 8]);
});

test('unknown model_type is refused, naming it and the supported ones', () => {
  refusedWith({ ...TINYLLAMA, model_type: 'gpt2' }, 'model_type "gpt2" is not supported', 'llama, mistral, qwen2, qwen3');
  refusedWith({ hidden_size: 8 }, 'no "model_type"', 'llama, mistral, qwen2, qwen3');
  refusedWith([1, 2], 'expected a JSON object');
});

test('unsupported rope_scaling types are refused by name', () => {
  refusedWith({ ...TINYLLAMA, rope_scaling: { type: 'linear', factor: 2 } }, 'rope_scaling of type "linear" is not supported');
  refusedWith({ ...TINYLLAMA, rope_scaling: { rope_type: 'yarn', factor: 4 } }, '"yarn"');
  refusedWith({ ...LLAMA_31_8B, rope_scaling: { ...LLAMA_31_8B.rope_scaling, factor: undefined } }, 'missing required field "rope_scaling.factor"');
  refusedWith({ ...LLAMA_31_8B, rope_scaling: { ...LLAMA_31_8B.rope_scaling, high_freq_factor: 1 } }, '"rope_scaling.high_freq_factor" must be greater than low_freq_factor');
  refusedWith({ ...TINYLLAMA, rope_scaling: 'llama3' }, '"rope_scaling" must be null or an object');
});

test('biases crepe does not implement are refused', () => {
  refusedWith({ ...TINYLLAMA, attention_bias: true }, 'llama with "attention_bias": true', 'not supported');
  refusedWith({ ...LLAMA_31_8B, mlp_bias: true }, '"mlp_bias": true');
  refusedWith({ ...QWEN3_06B, attention_bias: true }, 'qwen3 with "attention_bias": true');
  refusedWith({ ...TINYLLAMA, hidden_act: 'gelu' }, '"hidden_act" must be "silu"', 'got "gelu"');
});

test('bad integer fields and divisibility are refused naming the field', () => {
  refusedWith({ ...TINYLLAMA, hidden_size: 0 }, '"hidden_size" must be a positive integer, got 0');
  refusedWith({ ...TINYLLAMA, num_hidden_layers: 2.5 }, '"num_hidden_layers" must be a positive integer, got 2.5');
  refusedWith({ ...TINYLLAMA, vocab_size: '32000' }, '"vocab_size" must be a positive integer, got "32000"');
  refusedWith({ ...TINYLLAMA, intermediate_size: undefined }, 'missing required field "intermediate_size"');
  refusedWith({ ...TINYLLAMA, num_key_value_heads: 5 }, '"num_key_value_heads" must be a divisor of num_attention_heads (32), got 5');
  refusedWith({ ...TINYLLAMA, hidden_size: 2050 }, '"num_attention_heads" must be a divisor of hidden_size (2050) when head_dim is not given');
  refusedWith({ ...TINYLLAMA, rms_norm_eps: -1 }, '"rms_norm_eps" must be a positive number');
  refusedWith({ ...TINYLLAMA, tie_word_embeddings: 'yes' }, '"tie_word_embeddings" must be true or false');
  refusedWith({ ...TINYLLAMA, eos_token_id: -2 }, '"eos_token_id" must be a non-negative integer token id');
  // head_dim given explicitly lifts the divisibility requirement.
  assert.equal(parseModelConfig({ ...TINYLLAMA, hidden_size: 2050, head_dim: 64 }, SOURCE).headDim, 64);
});

test('specToConfigJson round-trips every family', () => {
  const slidingQwen = { ...QWEN2_05B, use_sliding_window: true, sliding_window: 4096 };
  for (const config of [TINYLLAMA, MISTRAL_7B, QWEN2_05B, slidingQwen, QWEN3_06B, LLAMA_31_8B]) {
    const spec = parseModelConfig(config, SOURCE);
    const written = specToConfigJson(spec);
    assert.deepEqual(parseModelConfig(JSON.parse(JSON.stringify(written)), SOURCE), spec);
    assert.equal(written.model_type, config.model_type);
    assert.deepEqual(written.architectures, config.architectures);
  }
  const written = specToConfigJson(parseModelConfig(LLAMA_31_8B, SOURCE));
  assert.deepEqual(written.rope_scaling, LLAMA_31_8B.rope_scaling);
  assert.equal(written.attention_bias, false);
  assert.equal(written.head_dim, 128);
});

test('readModelConfig reads <dir>/config.json and names problems', () => {
  const dir = tempDir('crepe-config');
  assert.throws(() => readModelConfig(dir), (error: unknown) => error instanceof UserError && error.message.includes('no config.json'));
  writeFileSync(path.join(dir, 'config.json'), '{"model_type": ');
  assert.throws(() => readModelConfig(dir), (error: unknown) => error instanceof UserError && error.message.includes(`${path.join(dir, 'config.json')}: not valid JSON`));
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify(QWEN3_06B));
  assert.equal(readModelConfig(dir).family, 'qwen3');
});
