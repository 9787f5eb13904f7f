/**
 * Qwen3 (Qwen3ForCausalLM): a Llama block with a per-head RMSNorm on q and k before rotary, and
 * an explicit head_dim (HF default 128) that need not equal hidden_size / num_attention_heads.
 * HF defaults: max_position_embeddings 32768, no bos/eos, attention_bias false. A sliding window
 * (`use_sliding_window` true) holds the context as for Qwen2.
 */
import type { ModelSpec } from '../spec.ts';
import { ConfigFields, decoderSpec, limitToQwenSlidingWindow, refuseIfTrue, type HfConfig } from './common.ts';

export function qwen3Spec(config: HfConfig, source: string): ModelSpec {
  const fields = new ConfigFields(config, source);
  refuseIfTrue(fields, 'attention_bias', 'qwen3', 'biases on q/k/v and o_proj');
  const spec = decoderSpec(fields, 'qwen3', { attentionBias: false, qkNorm: true }, {
    maxPositionEmbeddings: 32768,
    bosTokenId: null,
    eosTokenId: null,
    headDim: 128,
  });
  limitToQwenSlidingWindow(spec, fields);
  return spec;
}
