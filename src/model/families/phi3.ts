/**
 * Phi-3 / Phi-3.5 / Phi-4 (Phi3ForCausalLM, model_type "phi3"): a Llama block whose checkpoint
 * stores q/k/v as one `self_attn.qkv_proj` ([q; k; v] rows) and gate/up as one `mlp.gate_up_proj`
 * ([gate; up] rows). crepe splits them on read into the five linears (each pruned on its own, as
 * for Llama) and stacks them again on write (spec.ts: fusedTensors).
 *
 * - `partial_rotary_factor` (Phi-4-mini: 0.75): rotary turns the first ⌊f·head_dim⌋ channels of
 *   each head, with frequencies base^(−2i/r) over those r channels; the rest pass unchanged.
 * - `rope_scaling` "longrope" (legacy name "su"; Phi-3.5, Phi-4-mini): for windows within
 *   original_max_position_embeddings transformers uses the short factors and scales cos/sin by
 *   attention_factor (default √(1 + ln(max/original) / ln(original))). Longer windows would switch
 *   to the long factors, so crepe's windows are held within the original context.
 * - `sliding_window` (Phi-3-mini: 2047): key j is visible to query i when i − j < window, so a
 *   window no longer than it is plain causal attention; crepe's windows are held to it.
 * HF defaults: max_position_embeddings 4096, bos 1, eos 32000, no biases, rms_norm_eps 1e-5.
 */
import type { LongRopeScaling, ModelSpec } from '../spec.ts';
import { ConfigFields, decoderSpec, isHfConfig, limitContext, limitToSlidingWindow, type HfConfig } from './common.ts';

const LONGROPE_TYPES = new Set(['longrope', 'su']);

/** The rope scaling object of a phi3 config (rope_scaling, or transformers 5's rope_parameters), if it is longrope. */
function longRopeObject(config: HfConfig): { field: string; value: HfConfig } | null {
  for (const field of ['rope_scaling', 'rope_parameters']) {
    const value = config[field];
    if (!isHfConfig(value)) continue;
    const type = value.rope_type ?? value.type;
    if (typeof type === 'string' && LONGROPE_TYPES.has(type)) return { field, value };
  }
  return null;
}

export function phi3Spec(config: HfConfig, source: string): ModelSpec {
  const fields = new ConfigFields(config, source);
  const longRope = longRopeObject(config);
  // The Llama-style fields, read with longrope taken out (decoderSpec knows llama3 scaling only).
  const plain: HfConfig = { ...config, rope_scaling: null };
  if (longRope?.field === 'rope_parameters') plain.rope_parameters = { rope_theta: longRope.value.rope_theta ?? config.rope_theta };
  const spec = decoderSpec(new ConfigFields(plain, source), 'phi3', { attentionBias: false, qkNorm: false }, {
    maxPositionEmbeddings: 4096,
    bosTokenId: 1,
    eosTokenId: 32000,
  });

  const ropeFields = longRope?.field === 'rope_parameters' ? new ConfigFields(longRope.value, source, 'rope_parameters.') : fields;
  const factor = ropeFields.has('partial_rotary_factor') ? ropeFields.positiveNumber('partial_rotary_factor') : fields.positiveNumber('partial_rotary_factor', 1);
  if (factor > 1) fields.fail('partial_rotary_factor', 'at most 1');
  const rotaryDim = Math.floor(spec.headDim * factor);
  if (rotaryDim < 2 || rotaryDim % 2 !== 0) {
    fields.fail('partial_rotary_factor', `a fraction of head_dim (${spec.headDim}) that gives an even number of rotary channels`);
  }
  if (rotaryDim !== spec.headDim) spec.rotaryDim = rotaryDim;

  let original: number | null = null;
  if (longRope) {
    const scaling = new ConfigFields(longRope.value, source, `${longRope.field}.`);
    original = scaling.has('original_max_position_embeddings')
      ? scaling.positiveInt('original_max_position_embeddings')
      : fields.positiveInt('original_max_position_embeddings', spec.maxPositionEmbeddings);
    const shortFactor = longRope.value.short_factor;
    if (!Array.isArray(shortFactor) || shortFactor.length !== rotaryDim / 2 || !shortFactor.every((f) => typeof f === 'number' && Number.isFinite(f) && f > 0)) {
      scaling.fail('short_factor', `a list of ${rotaryDim / 2} positive numbers (one per rotary frequency)`);
    }
    const ratio = spec.maxPositionEmbeddings / original;
    const attentionFactor = scaling.has('attention_factor')
      ? scaling.positiveNumber('attention_factor')
      : ratio <= 1 ? 1 : Math.sqrt(1 + Math.log(ratio) / Math.log(original));
    const ropeScaling: LongRopeScaling = { type: 'longrope', shortFactor: [...(shortFactor as number[])], attentionFactor };
    spec.ropeScaling = ropeScaling;
  }
  // The longest window crepe computes exactly as transformers does (see above), limited only now:
  // the attention factor comes from max_position_embeddings itself.
  limitToSlidingWindow(spec, fields);
  if (original !== null) limitContext(spec, original, 'original_max_position_embeddings');
  return spec;
}
