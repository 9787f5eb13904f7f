import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockEngine } from '../../src/engine/block-engine.ts';
import { ropeTables } from '../../src/model/rope.ts';
import { referenceBlock } from '../../src/model/reference-forward.ts';
import { inputGroupWidth, type LinearInputGroup } from '../../src/model/spec.ts';
import { randomModel, smallSpec } from '../helpers/random-model.ts';
import { seededRandom } from '../helpers/random.ts';
import { relativeError } from '../helpers/relative-error.ts';

const GROUPS: LinearInputGroup[] = ['qkv', 'o', 'gateup', 'down'];

// qwen3 has q·heads = 96 ≠ hidden 64, so the 'o' group's width differs from 'qkv''s.
for (const family of ['llama', 'qwen3'] as const) {
  test(`block statistics equal Σx², Σx and XᵀX of each linear input (${family})`, async () => {
    const spec = smallSpec(family);
    const seqLen = 19;
    const model = randomModel(spec, 5);
    const uniform = seededRandom(8);
    const hidden = Float32Array.from({ length: seqLen * spec.hiddenSize }, () => 2 * uniform() - 1);
    const engine = await BlockEngine.create(spec, seqLen, { device: 'cpu', threads: 1, stats: 'full' });
    const plain = await BlockEngine.create(spec, seqLen, { device: 'cpu', threads: 1, stats: 'none' });
    const { stats } = await engine.run(hidden, model.readBlock(0), ropeTables(spec, seqLen));
    const { hidden: out } = await plain.run(hidden, model.readBlock(0), ropeTables(spec, seqLen));
    await engine.release();
    await plain.release();
    const reference = referenceBlock(spec, model.readBlock(0), Float64Array.from(hidden), seqLen);

    assert.ok(relativeError(out, reference.out) < 1e-5, 'hidden_out');
    assert.ok(stats);
    for (const group of GROUPS) {
      const width = inputGroupWidth(spec, group);
      const x = reference.linearInputs[group];
      assert.equal(x.length, seqLen * width);
      const sqSum = new Float64Array(width);
      const sum = new Float64Array(width);
      const gram = new Float64Array(width * width);
      for (let t = 0; t < seqLen; t++) {
        for (let i = 0; i < width; i++) {
          const xi = x[t * width + i];
          sqSum[i] += xi * xi;
          sum[i] += xi;
          for (let j = 0; j < width; j++) gram[i * width + j] += xi * x[t * width + j];
        }
      }
      assert.ok(relativeError(stats[group].sqSum, sqSum) < 1e-4, `${group}.sqsum`);
      assert.ok(relativeError(stats[group].sum!, sum) < 1e-4, `${group}.sum`);
      assert.ok(relativeError(stats[group].gram!, gram) < 1e-4, `${group}.gram`);
      // The gram's diagonal is Σx² again: the two outputs must agree with each other too.
      for (let i = 0; i < width; i++) assert.ok(Math.abs(stats[group].gram![i * width + i] - stats[group].sqSum[i]) <= 1e-4 * sqSum[i] + 1e-6);
    }
  });
}

test("stats 'sqnorm' returns only Σx² (no hidden states), and 'none' returns no statistics", async () => {
  const spec = smallSpec('qwen2');
  const seqLen = 7;
  const model = randomModel(spec, 3);
  const hidden = Float32Array.from({ length: seqLen * spec.hiddenSize }, (_, i) => Math.sin(i));
  const rope = ropeTables(spec, seqLen);
  const sqnorm = await BlockEngine.create(spec, seqLen, { device: 'cpu', threads: 1, stats: 'sqnorm' });
  const plain = await BlockEngine.create(spec, seqLen, { device: 'cpu', threads: 1, stats: 'none' });
  const withStats = await sqnorm.run(hidden, model.readBlock(1), rope);
  const without = await plain.run(hidden, model.readBlock(1), rope);
  await sqnorm.release();
  await plain.release();
  assert.equal(without.stats, undefined);
  assert.equal(without.hidden.length, seqLen * spec.hiddenSize);
  assert.equal(withStats.hidden.length, 0, 'the statistics graph stops before down_proj');
  for (const group of GROUPS) {
    assert.equal(withStats.stats![group].sqSum.length, inputGroupWidth(spec, group));
    assert.equal(withStats.stats![group].gram, undefined);
    assert.equal(withStats.stats![group].sum, undefined);
  }
  const reference = referenceBlock(spec, model.readBlock(1), Float64Array.from(hidden), seqLen);
  const qkvSqSum = new Float64Array(spec.hiddenSize);
  for (let t = 0; t < seqLen; t++) for (let i = 0; i < spec.hiddenSize; i++) qkvSqSum[i] += reference.linearInputs.qkv[t * spec.hiddenSize + i] ** 2;
  assert.ok(relativeError(withStats.stats!.qkv.sqSum, qkvSqSum) < 1e-4);
});
