/**
 * How many sequences one session run takes. Small models spend most of a run in ORT's per-node
 * overhead, so they gain from many sequences per run; large models already fill the cores with
 * one sequence, and more would only add memory. The choice is a pure function of the model shape
 * and sequence length (never of the machine), so a run's batches, and with them the float32
 * order of batch-summed statistics, are the same everywhere.
 */
import type { ModelSpec } from '../model/spec.ts';
import { ATTENTION_CHUNK } from './block-graph.ts';

export interface BatchBudget {
  /** Tokens per run (B·seqLen). */
  maxTokens: number;
  /** Estimated bytes of the batch's largest live tensors. */
  maxBytes: number;
}

/**
 * Measured on stories260K's shape (2 cores, seqLen 256 and 512): a block run is fastest per
 * sequence at ~1 k tokens (beyond, attention scores fall out of cache and it slows again); the
 * head keeps gaining up to ~4 k tokens.
 */
const BLOCK_BATCH_BUDGET: BatchBudget = { maxTokens: 1024, maxBytes: 256 * 2 ** 20 };
const HEAD_BATCH_BUDGET: BatchBudget = { maxTokens: 4096, maxBytes: 256 * 2 ** 20 };

/**
 * Bytes a block run holds per sequence, roughly: the token rows of its widest tensors (hidden
 * states and norms, q/k/v before and after rotary, the attention output, gate/up/product), plus
 * one attention chunk's scores and probabilities [heads, chunk, seqLen].
 */
function blockBytesPerSequence(spec: ModelSpec, seqLen: number): number {
  const qkvWidth = (spec.numHeads + 2 * spec.numKvHeads) * spec.headDim;
  const perToken = 4 * spec.hiddenSize + 2 * qkvWidth + spec.numHeads * spec.headDim + 3 * spec.intermediateSize;
  const scores = 2 * spec.numHeads * Math.min(ATTENTION_CHUNK, seqLen) * seqLen;
  return 4 * (seqLen * perToken + scores);
}

/** Bytes a head run holds per sequence: logits and log-probabilities [seqLen, vocab]. */
function headBytesPerSequence(spec: ModelSpec, seqLen: number): number {
  return 4 * 2 * seqLen * spec.vocabSize;
}

function batchSize(bytesPerSequence: number, seqLen: number, budget: BatchBudget): number {
  return Math.max(1, Math.min(Math.floor(budget.maxTokens / seqLen), Math.floor(budget.maxBytes / bytesPerSequence)));
}

export function blockBatchSize(spec: ModelSpec, seqLen: number, budget: BatchBudget = BLOCK_BATCH_BUDGET): number {
  return batchSize(blockBytesPerSequence(spec, seqLen), seqLen, budget);
}

export function headBatchSize(spec: ModelSpec, seqLen: number, budget: BatchBudget = HEAD_BATCH_BUDGET): number {
  return batchSize(headBytesPerSequence(spec, seqLen), seqLen, budget);
}
