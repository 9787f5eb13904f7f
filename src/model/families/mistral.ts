/**
 * Mistral (MistralForCausalLM): a Llama block with grouped-query attention.
 * HF defaults: max_position_embeddings 4096·32, bos 1, eos 2.
 *
 * `sliding_window` (Mistral-7B v0.1: 4096; null from v0.2 on) only changes attention for
 * sequences longer than the window, so crepe's windows (calibration, evaluation, zero-shot) are
 * held to it: within it sliding-window and full causal attention are identical.
 */
import type { ModelSpec } from '../spec.ts';
import { ConfigFields, decoderSpec, limitToSlidingWindow, type HfConfig } from './common.ts';

export function mistralSpec(config: HfConfig, source: string): ModelSpec {
  const fields = new ConfigFields(config, source);
  const spec = decoderSpec(fields, 'mistral', { attentionBias: false, qkNorm: false }, {
    maxPositionEmbeddings: 4096 * 32,
    bosTokenId: 1,
    eosTokenId: 2,
  });
  limitToSlidingWindow(spec, fields);
  return spec;
}
