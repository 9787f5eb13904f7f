import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HeadEngine } from '../../src/engine/head-engine.ts';
import { referenceHeadLogits } from '../../src/model/reference-forward.ts';
import { randomModel, smallSpec } from '../helpers/random-model.ts';
import { seededRandom } from '../helpers/random.ts';

test('head NLL equals −log softmax(reference logits)[target]; logits match the reference', async () => {
  const spec = smallSpec('llama');
  const seqLen = 11;
  const model = randomModel(spec, 21);
  const uniform = seededRandom(4);
  const hidden = Float32Array.from({ length: seqLen * spec.hiddenSize }, () => 4 * uniform() - 2);
  const targets = Int32Array.from({ length: seqLen }, () => Math.floor(uniform() * spec.vocabSize));
  targets[0] = 0;
  targets[1] = spec.vocabSize - 1; // both ends of the vocabulary

  const head = await HeadEngine.create(spec, seqLen, { device: 'cpu', threads: 1 });
  const nll = await head.nll(hidden, model.readFinalNorm(), model.readLmHead(), targets);
  const nll64 = await head.nll(hidden, model.readFinalNorm(), model.readLmHead(), BigInt64Array.from(targets, BigInt));
  const logits = await head.logits(hidden, model.readFinalNorm(), model.readLmHead());
  await head.release();

  const reference = referenceHeadLogits(spec, Float64Array.from(hidden), model.readFinalNorm(), model.readLmHead(), seqLen);
  assert.equal(nll.length, seqLen);
  assert.deepEqual(Array.from(nll64), Array.from(nll));
  for (let t = 0; t < seqLen; t++) {
    const row = reference.subarray(t * spec.vocabSize, (t + 1) * spec.vocabSize);
    const max = Math.max(...row);
    let total = 0;
    for (const v of row) total += Math.exp(v - max);
    const expectedNll = max + Math.log(total) - row[targets[t]];
    assert.ok(Math.abs(nll[t] - expectedNll) < 1e-5, `t=${t}: ${nll[t]} vs ${expectedNll}`);
    for (let v = 0; v < spec.vocabSize; v++) {
      assert.ok(Math.abs(logits[t * spec.vocabSize + v] - row[v]) < 1e-5);
    }
  }
});
