import { test } from 'node:test';
import assert from 'node:assert/strict';
import { perplexity } from '../../src/eval/perplexity.ts';
import { referenceLogits } from '../../src/model/reference-forward.ts';
import type { Family } from '../../src/model/spec.ts';
import { randomModel, smallSpec } from '../helpers/random-model.ts';
import { seededRandom } from '../helpers/random.ts';

/** Mean over windows of the window's mean −log softmax(logits)[next token], from the float64 reference forward. */
function referenceMeanNll(model: ReturnType<typeof randomModel>, tokens: Int32Array, seqlen: number, windows: number): number[] {
  const vocab = model.spec.vocabSize;
  const perWindow: number[] = [];
  for (let w = 0; w < windows; w++) {
    const window = tokens.subarray(w * seqlen, (w + 1) * seqlen);
    const logits = referenceLogits(model, window);
    let sum = 0;
    for (let t = 0; t < seqlen - 1; t++) {
      const row = logits.subarray(t * vocab, (t + 1) * vocab);
      const max = Math.max(...row);
      let total = 0;
      for (const v of row) total += Math.exp(v - max);
      sum += max + Math.log(total) - row[window[t + 1]];
    }
    perWindow.push(sum / (seqlen - 1));
  }
  return perWindow;
}

// seqlen 70 spans two attention chunks; 7 windows with batches of several windows leave a short last batch.
for (const family of ['llama', 'qwen2', 'qwen3'] as Family[]) {
  test(`${family}: whole-model and layer-major perplexity equal the float64 reference, window by window`, async () => {
    const spec = smallSpec(family);
    const model = randomModel(spec, 41);
    const seqlen = 70;
    const uniform = seededRandom(42);
    const tokens = Int32Array.from({ length: 7 * seqlen + 13 }, () => Math.floor(uniform() * spec.vocabSize));
    const expected = referenceMeanNll(model, tokens, seqlen, 7);
    for (const mode of ['whole-model', 'layer-major'] as const) {
      const result = await perplexity(model, tokens, { device: 'cpu', threads: 1, seqlen, mode });
      assert.equal(result.windows, 7, mode);
      assert.equal(result.windowNll.length, 7, mode);
      result.windowNll.forEach((nll, w) => assert.ok(Math.abs(nll - expected[w]) < 1e-5, `${mode} window ${w}: ${nll} vs ${expected[w]}`));
      const meanNll = expected.reduce((a, b) => a + b, 0) / 7;
      assert.ok(Math.abs(result.ppl - Math.exp(meanNll)) / Math.exp(meanNll) < 1e-5, `${mode}: PPL ${result.ppl}`);
    }
  });
}
