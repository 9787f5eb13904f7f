/**
 * Qwen2 / Qwen2.5 (Qwen2ForCausalLM): a Llama block whose q/k/v projections always carry a bias
 * (o_proj and the MLP do not). HF defaults: max_position_embeddings 32768, no bos/eos.
 *
 * `use_sliding_window` / `sliding_window` are ignored: for windows no longer than the sliding
 * window, attention is identical to full causal attention (see mistral.ts).
 */
import type { ModelSpec } from '../spec.ts';
import { ConfigFields, decoderSpec, type HfConfig } from './common.ts';

export function qwen2Spec(config: HfConfig, source: string): ModelSpec {
  return decoderSpec(new ConfigFields(config, source), 'qwen2', { attentionBias: true, qkNorm: false }, {
    maxPositionEmbeddings: 32768,
    bosTokenId: null,
    eosTokenId: null,
  });
}
