/**
 * Mistral (MistralForCausalLM): a Llama block with grouped-query attention.
 * HF defaults: max_position_embeddings 4096·32, bos 1, eos 2.
 *
 * `sliding_window` is ignored on purpose: it only changes attention for sequences longer than the
 * window, and crepe's windows (calibration and evaluation seqlen) are at most the window (4096
 * for Mistral-7B), where sliding-window and full causal attention are identical.
 */
import type { ModelSpec } from '../spec.ts';
import { ConfigFields, decoderSpec, type HfConfig } from './common.ts';

export function mistralSpec(config: HfConfig, source: string): ModelSpec {
  return decoderSpec(new ConfigFields(config, source), 'mistral', { attentionBias: false, qkNorm: false }, {
    maxPositionEmbeddings: 4096 * 32,
    bosTokenId: 1,
    eosTokenId: 2,
  });
}
