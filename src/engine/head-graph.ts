/**
 * The head graph: final RMSNorm → lm_head → log-softmax → −log p(target), per token, for any
 * number of tokens (a batch of sequences laid end to end: the head works token by token).
 * Evaluation only needs the NLL, so the [tokens, vocab] logits never leave ORT; the 'logits'
 * variant exists for tests and conversion checks. The 'target' variant serves log-likelihood
 * scoring: log p(target) and whether the target is the argmax of the log-probabilities (ArgMax
 * keeps the first of tied maxima, as torch.argmax does), as 0/1.
 */
import { FLOAT, GraphBuilder, INT64 } from './onnx-builder.ts';
import { TOKENS } from './block-graph.ts';
import type { ModelSpec } from '../model/spec.ts';

export type HeadOutput = 'nll' | 'logits' | 'target';

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
    const targets = g.input('targets', [TOKENS], INT64);
    const { logProbs, targetLogProb } = headTargetLogProb(g, spec, hidden, finalNorm, lmHead, targets);
    if (opts.output === 'nll') {
      g.output(g.neg(targetLogProb), 'nll', [TOKENS]);
    } else {
      g.output(targetLogProb, 'logprob', [TOKENS]);
      const argmax = g.op('ArgMax', [logProbs], { axis: 1, keepdims: 0, select_last_index: 0 });
      g.output(g.op('Cast', [g.op('Equal', [argmax, targets])], { to: FLOAT }), 'greedy', [TOKENS]);
    }
  }
  return g.toBytes();
}

/** Logits [tokens, vocab] of hidden states [tokens, hidden]. */
function headLogits(g: GraphBuilder, spec: ModelSpec, hidden: string, finalNorm: string, lmHead: string): string {
  return g.gemm(g.rmsNorm(hidden, finalNorm, spec.rmsNormEps), lmHead, { transB: true });
}

/** The log-probabilities [tokens, vocab] and log p(targets[t] | hidden[t]) per token [tokens]. */
export function headTargetLogProb(
  g: GraphBuilder, spec: ModelSpec, hidden: string, finalNorm: string, lmHead: string, targets: string,
): { logProbs: string; targetLogProb: string } {
  const logProbs = g.logSoftmax(headLogits(g, spec, hidden, finalNorm, lmHead), -1);
  const targetLogProb = g.reshape(g.op('GatherElements', [logProbs, g.unsqueeze(targets, [1])], { axis: 1 }), [-1]);
  return { logProbs, targetLogProb };
}
