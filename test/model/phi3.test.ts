// The phi3 family: Phi-4 / Phi-3-mini / Phi-4-mini configs read as their specs (partial rotary,
// longrope attention factor and the context held to the sliding window or original context,
// worked out by hand), rotary frequencies by hand, a fused checkpoint (qkv_proj, gate_up_proj)
// read as five linears whose forward matches the float64 reference, and a prune that selects each
// logical linear on its own and writes the fused tensors back.
import assert from 'node:assert/strict';
import { copyFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { forwardLogits } from '../../src/engine/forward.ts';
import { parseTarget, pruneModel } from '../../src/index.ts';
import { writeSafetensors, type TensorToWrite } from '../../src/io/safetensors-writer.ts';
import { ModelCheckpoint } from '../../src/model/checkpoint.ts';
import { parseModelConfig, specToConfigJson } from '../../src/model/config.ts';
import { referenceLogits } from '../../src/model/reference-forward.ts';
import { ropeInverseFrequencies, ropeTables } from '../../src/model/rope.ts';
import {
  blockTensorNames, EMBED_NAME, FINAL_NORM_NAME, fusedTensors, layerPrefix, LM_HEAD_NAME, storedBlockTensorNames, storedBlockTensorShape, type ModelSpec,
} from '../../src/model/spec.ts';
import { SafetensorsWeights } from '../../src/io/safetensors.ts';
import { atomicWriteJson } from '../../src/io/atomic.ts';
import { randomModel, smallSpec } from '../helpers/random-model.ts';
import type { ModelSource } from '../../src/model/source.ts';
import { seededRandom } from '../helpers/random.ts';
import { relativeError } from '../helpers/relative-error.ts';
import { C4_SAMPLE } from '../helpers/shared.ts';
import { scratchDir, storiesModelDir } from '../helpers/stories.ts';

// microsoft/phi-4's config.json (the fields crepe reads).
const PHI_4 = {
  architectures: ['Phi3ForCausalLM'], model_type: 'phi3', hidden_act: 'silu', hidden_size: 5120, intermediate_size: 17920,
  num_hidden_layers: 40, num_attention_heads: 40, num_key_value_heads: 10, max_position_embeddings: 16384,
  original_max_position_embeddings: 16384, rms_norm_eps: 1e-5, rope_theta: 250000, rope_scaling: null, sliding_window: null,
  tie_word_embeddings: false, vocab_size: 100352, bos_token_id: 100257, eos_token_id: 100265, torch_dtype: 'bfloat16',
};
// microsoft/Phi-4-mini-instruct: partial rotary 0.75 of head_dim 128, longrope from 4096 to 131072.
const PHI_4_MINI = {
  ...PHI_4, hidden_size: 3072, intermediate_size: 8192, num_hidden_layers: 32, num_attention_heads: 24, num_key_value_heads: 8,
  max_position_embeddings: 131072, original_max_position_embeddings: 4096, partial_rotary_factor: 0.75, rope_theta: 10000,
  rope_scaling: { type: 'longrope', short_factor: Array.from({ length: 48 }, (_, i) => 1 + i / 10), long_factor: Array(48).fill(40) },
  tie_word_embeddings: true, vocab_size: 200064,
};

describe('phi3 config', () => {
  it('Phi-4: a Llama-shaped spec with full rotary', () => {
    const spec = parseModelConfig(PHI_4, 'phi-4/config.json');
    assert.equal(spec.family, 'phi3');
    assert.equal(spec.headDim, 128);
    assert.equal(spec.rotaryDim, undefined);
    assert.equal(spec.ropeTheta, 250000);
    assert.equal(spec.maxPositionEmbeddings, 16384);
    assert.equal(spec.ropeScaling, null);
  });

  it('Phi-3-mini: the context is held to the sliding window (2047)', () => {
    const spec = parseModelConfig({ ...PHI_4, sliding_window: 2047, max_position_embeddings: 4096 }, 'c');
    assert.equal(spec.maxPositionEmbeddings, 2047);
  });

  it('Phi-4-mini: 96 of 128 channels turn; longrope short factors, attention factor √(1 + ln 32 / ln 4096) = √(17/12)', () => {
    const spec = parseModelConfig(PHI_4_MINI, 'c');
    assert.equal(spec.rotaryDim, 96);
    assert.equal(spec.maxPositionEmbeddings, 4096);
    assert.equal(spec.ropeScaling?.type, 'longrope');
    if (spec.ropeScaling?.type !== 'longrope') return;
    assert.ok(Math.abs(spec.ropeScaling.attentionFactor - Math.sqrt(17 / 12)) < 1e-15);
    assert.deepEqual(spec.ropeScaling.shortFactor, PHI_4_MINI.rope_scaling.short_factor);
    const invFreq = ropeInverseFrequencies(spec);
    assert.equal(invFreq.length, 48);
    assert.ok(Math.abs(invFreq[10] - 1 / (2 * Math.pow(10000, 20 / 96))) < 1e-18);
    // transformers 5 spells it rope_parameters.
    const { rope_scaling: scaling, rope_theta: theta, ...rest } = PHI_4_MINI;
    const v5 = parseModelConfig({ ...rest, rope_parameters: { rope_type: 'longrope', rope_theta: theta, short_factor: scaling.short_factor, long_factor: scaling.long_factor } }, 'c');
    assert.deepEqual(v5, spec);
  });

  it('refuses short factors of the wrong length, naming the field', () => {
    const bad = { ...PHI_4_MINI, rope_scaling: { ...PHI_4_MINI.rope_scaling, short_factor: [1, 2] } };
    assert.throws(() => parseModelConfig(bad, 'c.json'), /c\.json: "rope_scaling\.short_factor" must be a list of 48 positive numbers/);
  });

  it('rotary tables by hand: frequencies over the 12 turned channels, cos/sin scaled by the attention factor', () => {
    const spec = smallSpec('phi3', { ropeScaling: { type: 'longrope', shortFactor: [1, 2, 4, 1, 1, 1], attentionFactor: 1.5 } });
    const { cos, sin } = ropeTables(spec, 3);
    assert.equal(cos.length, 3 * 12);
    const angle = (2 * 1) / (4 * Math.pow(10000, 4 / 12)); // position 2, i = 2: p / (short[2] · θ^(2i/r))
    assert.ok(Math.abs(cos[2 * 12 + 2] - 1.5 * Math.cos(angle)) < 1e-6);
    assert.ok(Math.abs(sin[2 * 12 + 6 + 2] - 1.5 * Math.sin(angle)) < 1e-6);
  });
});

/** A random phi3 model saved with fused qkv_proj and gate_up_proj, with stories260K's tokenizer. */
async function writeFusedModel(spec: ModelSpec, model: ModelSource): Promise<string> {
  const dir = scratchDir('phi3');
  const stories = await storiesModelDir();
  for (const file of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(path.join(stories, file), path.join(dir, file));
  await atomicWriteJson(path.join(dir, 'config.json'), specToConfigJson(spec));
  const tensors: TensorToWrite[] = [{ name: EMBED_NAME, dtype: 'F32', shape: [spec.vocabSize, spec.hiddenSize], data: model.readEmbedding() }];
  for (let layer = 0; layer < spec.numLayers; layer++) {
    const block = model.readBlock(layer);
    for (const name of storedBlockTensorNames(spec)) {
      const parts = fusedTensors(spec).find((f) => f.stored === name)?.parts ?? [name];
      const data = new Float32Array(parts.reduce((n, p) => n + block[p].length, 0));
      parts.reduce((offset, p) => (data.set(block[p], offset), offset + block[p].length), 0);
      tensors.push({ name: layerPrefix(layer) + name, dtype: 'F32', shape: storedBlockTensorShape(spec, name), data });
    }
  }
  tensors.push({ name: FINAL_NORM_NAME, dtype: 'F32', shape: [spec.hiddenSize], data: model.readFinalNorm() });
  tensors.push({ name: LM_HEAD_NAME, dtype: 'F32', shape: [spec.vocabSize, spec.hiddenSize], data: model.readLmHead() });
  await writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
  return dir;
}

describe('phi3 checkpoint', () => {
  const spec = smallSpec('phi3', { vocabSize: 512, maxPositionEmbeddings: 512 });
  const model = randomModel(spec, 42);
  let dir = '';
  before(async () => {
    dir = await writeFusedModel(spec, model);
  });

  it('stores qkv_proj [q; k; v] and gate_up_proj [gate; up], read back as the five linears; logits match the reference', async () => {
    const weights = SafetensorsWeights.open(dir);
    assert.deepEqual(weights.info('model.layers.0.self_attn.qkv_proj.weight').shape, [64 + 2 * 32, 64]);
    assert.deepEqual(weights.info('model.layers.1.mlp.gate_up_proj.weight').shape, [2 * 96, 64]);
    assert.ok(!weights.has('model.layers.0.self_attn.q_proj.weight'));
    weights.close();
    const checkpoint = ModelCheckpoint.open(dir);
    try {
      assert.deepEqual(checkpoint.spec, { ...spec, rotaryDim: 12 });
      for (let layer = 0; layer < spec.numLayers; layer++) {
        const block = checkpoint.readBlock(layer);
        assert.deepEqual(Object.keys(block).sort(), blockTensorNames(spec).sort());
        for (const name of blockTensorNames(spec)) assert.deepEqual(block[name], model.readBlock(layer)[name], name);
        // A fused tensor is read when one of its parts is wanted, and left out when none is.
        const without = new Set(['self_attn.q_proj.weight', 'self_attn.k_proj.weight', 'self_attn.v_proj.weight', 'mlp.gate_proj.weight']);
        const part = checkpoint.readBlock(layer, without);
        assert.deepEqual(Object.keys(part).sort(), blockTensorNames(spec).filter((name) => !without.has(name)).sort());
        for (const name of Object.keys(part)) assert.deepEqual(part[name], block[name], name);
      }
      const uniform = seededRandom(5);
      const tokens = Int32Array.from({ length: 19 }, () => Math.floor(uniform() * spec.vocabSize));
      const error = relativeError(await forwardLogits(checkpoint, tokens, { device: 'cpu', threads: 1 }), referenceLogits(model, tokens));
      assert.ok(error < 1e-5, `relative error ${error}`);
    } finally {
      checkpoint.close();
    }
  });

  it('prune: each logical linear gets its own per-matrix magnitude threshold; the fused tensors are written back', async () => {
    const out = path.join(scratchDir('phi3-pruned'), 'out');
    await pruneModel({ model: dir, out, method: 'magnitude', target: parseTarget('0.5'), calib: C4_SAMPLE, nsamples: 2, seqlen: 32, threads: 1 });
    const weights = SafetensorsWeights.open(out);
    try {
      assert.ok(weights.has('model.layers.0.self_attn.qkv_proj.weight') && weights.has('model.layers.0.mlp.gate_up_proj.weight'));
      assert.ok(!weights.has('model.layers.0.self_attn.q_proj.weight'));
    } finally {
      weights.close();
    }
    const pruned = ModelCheckpoint.open(out);
    try {
      assert.equal(pruned.spec.family, 'phi3');
      for (let layer = 0; layer < spec.numLayers; layer++) {
        const before = model.readBlock(layer);
        const after = pruned.readBlock(layer);
        for (const name of ['self_attn.q_proj.weight', 'self_attn.k_proj.weight', 'self_attn.v_proj.weight', 'mlp.gate_proj.weight', 'mlp.up_proj.weight']) {
          // Magnitude's per-matrix rule over this linear alone: t = sorted |w|[floor(n/2)], every
          // |w| ≤ t is zero (floor(n/2) + 1 weights), every other weight is kept.
          const magnitudes = Array.from(before[name], Math.abs).sort((a, b) => a - b);
          const threshold = magnitudes[Math.floor(magnitudes.length / 2)];
          for (let i = 0; i < before[name].length; i++) {
            const expected = Math.abs(before[name][i]) <= threshold ? 0 : before[name][i];
            if (after[name][i] !== expected) assert.fail(`layer ${layer} ${name}[${i}]: ${after[name][i]}, expected ${expected}`);
          }
        }
        assert.deepEqual(after['input_layernorm.weight'], before['input_layernorm.weight']);
      }
    } finally {
      pruned.close();
    }
  });
});
