/**
 * Llama (LlamaForCausalLM): the base decoder. Llama 1/2, TinyLlama, Llama 3 and 3.1+ (with
 * rope_scaling "llama3"), and llama2.c / GGUF imports all load through here.
 * HF defaults: max_position_embeddings 2048, bos 1, eos 2, no biases.
 */
import type { ModelSpec } from '../spec.ts';
import { ConfigFields, decoderSpec, refuseIfTrue, type HfConfig } from './common.ts';

export function llamaSpec(config: HfConfig, source: string): ModelSpec {
  const fields = new ConfigFields(config, source);
  // attention_bias adds a bias to o_proj as well as q/k/v; crepe's block has q/k/v biases only.
  refuseIfTrue(fields, 'attention_bias', 'llama', 'biases on q/k/v and o_proj');
  refuseIfTrue(fields, 'mlp_bias', 'llama', 'biases on the MLP projections');
  return decoderSpec(fields, 'llama', { attentionBias: false, qkNorm: false }, {
    maxPositionEmbeddings: 2048,
    bosTokenId: 1,
    eosTokenId: 2,
  });
}
