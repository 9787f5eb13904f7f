/**
 * The per-window mean next-token NLL of a model from the float64 reference forward
 * (model/reference-forward.ts): the independent value perplexity-based code is checked against.
 */
import { referenceLogits } from '../../src/model/reference-forward.ts';
import type { ModelSource } from '../../src/model/source.ts';

/** Mean over the window's positions t < seqlen − 1 of −log softmax(logits_t)[window[t + 1]]. */
export function referenceWindowNll(model: ModelSource, window: Int32Array): number {
  const vocab = model.spec.vocabSize;
  const logits = referenceLogits(model, window);
  let sum = 0;
  for (let t = 0; t < window.length - 1; t++) {
    const row = logits.subarray(t * vocab, (t + 1) * vocab);
    const max = Math.max(...row);
    let total = 0;
    for (const v of row) total += Math.exp(v - max);
    sum += max + Math.log(total) - row[window[t + 1]];
  }
  return sum / (window.length - 1);
}
