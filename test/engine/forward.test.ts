import { test } from 'node:test';
import assert from 'node:assert/strict';
import { forwardLogits, embed } from '../../src/engine/forward.ts';
import { referenceLogits } from '../../src/model/reference-forward.ts';
import { UserError } from '../../src/util/errors.ts';
import { randomModel, SMALL_SPEC_VARIANTS } from '../helpers/random-model.ts';
import { seededRandom } from '../helpers/random.ts';

function randomTokens(n: number, vocab: number, seed: number): Int32Array {
  const uniform = seededRandom(seed);
  return Int32Array.from({ length: n }, () => Math.floor(uniform() * vocab));
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

for (const [variant, spec] of Object.entries(SMALL_SPEC_VARIANTS)) {
  test(`ONNX logits match the float64 reference: ${variant}`, async () => {
    const model = randomModel(spec, 1234);
    const tokens = randomTokens(23, spec.vocabSize, 99);
    const onnxLogits = await forwardLogits(model, tokens, { device: 'cpu', threads: 1 });
    const reference = referenceLogits(model, tokens);
    assert.equal(onnxLogits.length, tokens.length * spec.vocabSize);
    // Logits must be O(1) and vary, or the comparison says nothing.
    let sumSq = 0;
    for (const v of reference) sumSq += v * v;
    const rms = Math.sqrt(sumSq / reference.length);
    assert.ok(rms > 0.3 && rms < 10, `logit rms ${rms}`);
    const diff = maxAbsDiff(onnxLogits, reference);
    assert.ok(diff < 1e-4, `max |Δlogit| = ${diff}`);
  });
}

test('ONNX logits match the reference across attention chunks (seqLen 300 > one 256-row chunk)', async () => {
  const spec = SMALL_SPEC_VARIANTS['llama (GQA)'];
  const model = randomModel(spec, 77);
  const tokens = randomTokens(300, spec.vocabSize, 5);
  const diff = maxAbsDiff(await forwardLogits(model, tokens, { device: 'cpu' }), referenceLogits(model, tokens));
  assert.ok(diff < 1e-4, `max |Δlogit| = ${diff}`);
});

test('embed gathers rows and rejects ids outside the vocabulary', () => {
  const embedding = Float32Array.from([0, 1, 10, 11, 20, 21]); // vocab 3, hidden 2
  assert.deepEqual(Array.from(embed(Int32Array.from([2, 0, 2]), embedding, 2)), [20, 21, 0, 1, 20, 21]);
  // A bug, not a user error: token ids come from the model's own tokenizer, checked before this.
  assert.throws(() => embed(Int32Array.from([3]), embedding, 2), (e: unknown) => e instanceof Error && !(e instanceof UserError) && /token id 3 outside the vocabulary \[0, 3\)/.test(e.message));
});
