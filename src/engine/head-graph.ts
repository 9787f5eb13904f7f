/**
 * The head graph: final RMSNorm → lm_head → log-softmax → −log p(target), per token, for any
 * number of tokens (a batch of sequences laid end to end: the head works token by token).
 * Evaluation only needs the NLL, so the [tokens, vocab] logits never leave ORT; the 'logits'
 * variant exists for tests and conversion checks.
 */
import { GraphBuilder, INT64 } from './onnx-builder.ts';
import { TOKENS } from './block-graph.ts';
import type { ModelSpec } from '../model/spec.ts';

export type HeadOutput = 'nll' | 'logits';

export interface HeadGraphOptions {
  output: HeadOutput;
}

export function buildHeadGraph(spec: ModelSpec, opts: HeadGraphOptions): Uint8Array {
  const { hiddenSize: h, vocabSize: vocab } = spec;
  const g = new GraphBuilder(`head_${opts.output}`);
  const hidden = g.input('hidden', [TOKENS, h]);
  const finalNorm = g.input('norm.weight', [h]);
  const lmHead = g.input('lm_head.weight', [vocab, h]);
  if (opts.output === 'logits') {
    g.output(headLogits(g, spec, hidden, finalNorm, lmHead), 'logits', [TOKENS, vocab]);
  } else {
    g.output(headNll(g, spec, hidden, finalNorm, lmHead, g.input('targets', [TOKENS], INT64)), 'nll', [TOKENS]);
  }
  return g.toBytes();
}

/** Logits [tokens, vocab] of hidden states [tokens, hidden]. */
export function headLogits(g: GraphBuilder, spec: ModelSpec, hidden: string, finalNorm: string, lmHead: string): string {
  return g.gemm(g.rmsNorm(hidden, finalNorm, spec.rmsNormEps), lmHead, { transB: true });
}

/** −log p(targets[t] | hidden[t]) per token: [tokens]. */
export function headNll(g: GraphBuilder, spec: ModelSpec, hidden: string, finalNorm: string, lmHead: string, targets: string): string {
  const logProbs = g.logSoftmax(headLogits(g, spec, hidden, finalNorm, lmHead), -1);
  const targetLogProb = g.op('GatherElements', [logProbs, g.unsqueeze(targets, [1])], { axis: 1 });
  return g.neg(g.reshape(targetLogProb, [-1]));
}
