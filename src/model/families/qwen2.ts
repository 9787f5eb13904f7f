/**
 * Qwen2 / Qwen2.5 (Qwen2ForCausalLM): a Llama block whose q/k/v projections always carry a bias
 * (o_proj and the MLP do not). HF defaults: max_position_embeddings 32768, no bos/eos.
 *
 * With `use_sliding_window` true the context is held to `sliding_window`, within which attention
 * is identical to full causal attention (see mistral.ts); the published Qwen2/2.5 configs leave it
 * false.
 */
import type { ModelSpec } from '../spec.ts';
import { ConfigFields, decoderSpec, limitToQwenSlidingWindow, type HfConfig } from './common.ts';

export function qwen2Spec(config: HfConfig, source: string): ModelSpec {
  const fields = new ConfigFields(config, source);
  const spec = decoderSpec(fields, 'qwen2', { attentionBias: true, qkNorm: false }, {
    maxPositionEmbeddings: 32768,
    bosTokenId: null,
    eosTokenId: null,
  });
  limitToQwenSlidingWindow(spec, fields);
  return spec;
}
