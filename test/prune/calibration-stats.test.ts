import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GroupStatsAccumulator } from '../../src/prune/calibration-stats.ts';

test('a batch of per-sequence rows accumulates exactly as the sequences one by one; the batch gram is added once', () => {
  const width = 2;
  const tokens = 4;
  // Three sequences: Σx² and Σx per channel.
  const sqSum = [[4, 9], [1, 16], [8, 2]];
  const sum = [[2, -3], [1, 4], [0, 2]];
  const gramOf = (s: number) => [sqSum[s][0], s + 1, s + 1, sqSum[s][1]];

  const oneByOne = new GroupStatsAccumulator(width, true);
  for (let s = 0; s < 3; s++) {
    oneByOne.add({ sqSum: Float32Array.from(sqSum[s]), sum: Float32Array.from(sum[s]), gram: Float32Array.from(gramOf(s)) }, 1, tokens);
  }
  const batched = new GroupStatsAccumulator(width, true);
  const batchGram = gramOf(0).map((_, i) => gramOf(0)[i] + gramOf(1)[i] + gramOf(2)[i]);
  batched.add({ sqSum: Float32Array.from(sqSum.flat()), sum: Float32Array.from(sum.flat()), gram: Float32Array.from(batchGram) }, 3, tokens);

  const a = oneByOne.finish();
  const b = batched.finish();
  assert.deepEqual(b, a);
  assert.equal(b.nsamples, 3);
  assert.equal(b.tokensPerSample, tokens);
  assert.deepEqual(Array.from(b.sqNorm), [13 / 3, 27 / 3]);
  assert.deepEqual(Array.from(b.mean), [1, 1]);
  // Per-sequence variance Σx²/L − (Σx/L)², averaged: channel 0: (1 − 0.25 + 0.25 − 0.0625 + 2 − 0) / 3.
  assert.ok(Math.abs(b.variance[0] - (0.75 + 0.1875 + 2) / 3) < 1e-12);
  assert.deepEqual(Array.from(b.gram!), [13, 6, 6, 27]);
});
