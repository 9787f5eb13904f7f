import { test } from 'node:test';
import assert from 'node:assert/strict';
import { perplexity } from '../../src/eval/perplexity.ts';
import { referenceWindowNll } from '../helpers/reference-nll.ts';
import type { Family } from '../../src/model/spec.ts';
import { randomModel, smallSpec } from '../helpers/random-model.ts';
import { seededRandom } from '../helpers/random.ts';

/** Per-window mean NLL of the first `windows` windows, from the float64 reference forward. */
function referenceMeanNll(model: ReturnType<typeof randomModel>, tokens: Int32Array, seqlen: number, windows: number): number[] {
  return Array.from({ length: windows }, (_, w) => referenceWindowNll(model, tokens.subarray(w * seqlen, (w + 1) * seqlen)));
}

// seqlen 70 spans two attention chunks; 7 windows with batches of several windows leave a short last batch.
for (const family of ['llama', 'qwen2', 'qwen3'] as Family[]) {
  test(`${family}: whole-model and layer-major perplexity (weights as inputs and as constants) equal the float64 reference, window by window`, async () => {
    const spec = smallSpec(family);
    const model = randomModel(spec, 41);
    const seqlen = 70;
    const uniform = seededRandom(42);
    const tokens = Int32Array.from({ length: 7 * seqlen + 13 }, () => Math.floor(uniform() * spec.vocabSize));
    const expected = referenceMeanNll(model, tokens, seqlen, 7);
    const runs = [['whole-model', 'inputs'], ['layer-major', 'inputs'], ['layer-major', 'constants']] as const;
    for (const [mode, blockWeights] of runs) {
      const result = await perplexity(model, tokens, { device: 'cpu', threads: 1, seqlen, mode, blockWeights });
      assert.equal(result.windows, 7, mode);
      assert.equal(result.windowNll.length, 7, mode);
      result.windowNll.forEach((nll, w) => assert.ok(Math.abs(nll - expected[w]) < 1e-5, `${mode} window ${w}: ${nll} vs ${expected[w]}`));
      const meanNll = expected.reduce((a, b) => a + b, 0) / 7;
      assert.ok(Math.abs(result.ppl - Math.exp(meanNll)) / Math.exp(meanNll) < 1e-5, `${mode}: PPL ${result.ppl}`);
    }
  });
}
