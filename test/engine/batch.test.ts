import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockEngine, concatSequences } from '../../src/engine/block-engine.ts';
import { HeadEngine } from '../../src/engine/head-engine.ts';
import { blockBatchSize, headBatchSize } from '../../src/engine/batch-size.ts';
import { ATTENTION_CHUNK } from '../../src/engine/block-graph.ts';
import { ropeTables } from '../../src/model/rope.ts';
import { inputGroupWidth, type LinearInputGroup, type ModelSpec } from '../../src/model/spec.ts';
import { TINYLLAMA_SHAPE } from '../../bench/engine.ts';
import { randomModel, smallSpec } from '../helpers/random-model.ts';
import { seededRandom } from '../helpers/random.ts';
import { relativeError } from '../helpers/relative-error.ts';

const GROUPS: LinearInputGroup[] = ['qkv', 'o', 'gateup', 'down'];

function randomSequences(count: number, size: number, seed: number): Float32Array[] {
  const uniform = seededRandom(seed);
  return Array.from({ length: count }, () => Float32Array.from({ length: size }, () => 2 * uniform() - 1));
}

// seqLen 70 > one attention chunk: each sequence of the batch runs two chunks, and a leak of
// attention across sequences (or positions not restarting at 0) would show in every output.
test('a batch of B sequences equals B single runs: hidden, per-sequence Σx² and Σx, gram = Σ of grams', async () => {
  assert.ok(ATTENTION_CHUNK < 70);
  const spec = smallSpec('llama');
  const seqLen = 70;
  const B = 3;
  const weights = randomModel(spec, 11).readBlock(0);
  const rope = ropeTables(spec, seqLen);
  const sequences = randomSequences(B, seqLen * spec.hiddenSize, 12);
  const engine = await BlockEngine.create(spec, seqLen, { device: 'cpu', threads: 1, stats: 'full' });
  const plain = await BlockEngine.create(spec, seqLen, { device: 'cpu', threads: 1, stats: 'none' });
  const batch = concatSequences(sequences, 0, B, seqLen * spec.hiddenSize);
  const batched = await engine.run(batch, weights, rope);
  const batchedHidden = (await plain.run(batch, weights, rope)).hidden;
  const singles = [];
  const singleHidden = [];
  for (const sequence of sequences) {
    singles.push(await engine.run(sequence, weights, rope));
    singleHidden.push((await plain.run(sequence, weights, rope)).hidden);
  }
  await engine.release();
  await plain.release();

  assert.equal(batched.sequences, B);
  assert.equal(batched.hidden.length, 0, 'a statistics engine returns no hidden states');
  const size = seqLen * spec.hiddenSize;
  for (let s = 0; s < B; s++) {
    assert.ok(relativeError(batchedHidden.subarray(s * size, (s + 1) * size), singleHidden[s]) < 1e-5, `hidden of sequence ${s}`);
  }
  for (const group of GROUPS) {
    const width = inputGroupWidth(spec, group);
    const stats = batched.stats![group];
    assert.equal(stats.sqSum.length, B * width);
    assert.equal(stats.sum!.length, B * width);
    assert.equal(stats.gram!.length, width * width);
    const gramSum = new Float64Array(width * width);
    for (let s = 0; s < B; s++) {
      const single = singles[s].stats![group];
      assert.ok(relativeError(stats.sqSum.subarray(s * width, (s + 1) * width), single.sqSum) < 1e-5, `${group}.sqsum row ${s}`);
      assert.ok(relativeError(stats.sum!.subarray(s * width, (s + 1) * width), single.sum!) < 1e-5, `${group}.sum row ${s}`);
      for (let i = 0; i < gramSum.length; i++) gramSum[i] += single.gram![i];
    }
    assert.ok(relativeError(stats.gram!, gramSum) < 1e-5, `${group}.gram`);
  }
});

test('runSequences: batches of maxBatch (with a short last batch) give what single runs give, in order', async () => {
  const spec = smallSpec('qwen3'); // q/k norm, and a head dim ≠ hidden/heads
  const seqLen = 9;
  const weights = randomModel(spec, 5).readBlock(1);
  const rope = ropeTables(spec, seqLen);
  const sequences = randomSequences(5, seqLen * spec.hiddenSize, 6);
  const engine = await BlockEngine.create(spec, seqLen, { device: 'cpu', threads: 1, stats: 'none', maxBatch: 2 });
  const outputs = await engine.runSequences(sequences, weights, rope);
  const singles = [];
  for (const sequence of sequences) singles.push(await engine.run(sequence, weights, rope));
  await engine.release();

  assert.equal(outputs.length, 5);
  for (let s = 0; s < 5; s++) {
    assert.equal(outputs[s].length, seqLen * spec.hiddenSize);
    assert.ok(relativeError(outputs[s], singles[s].hidden) < 1e-5, `sequence ${s}`);
  }
});

test('head NLL of B sequences at once equals B single-sequence NLLs', async () => {
  const spec = smallSpec('llama');
  const seqLen = 13;
  const B = 4;
  const model = randomModel(spec, 31);
  const uniform = seededRandom(32);
  const hidden = randomSequences(B, seqLen * spec.hiddenSize, 33);
  const targets = Int32Array.from({ length: B * seqLen }, () => Math.floor(uniform() * spec.vocabSize));
  const head = await HeadEngine.create(spec, seqLen, { device: 'cpu', threads: 1 });
  const batched = await head.nll(concatSequences(hidden, 0, B, seqLen * spec.hiddenSize), model.readFinalNorm(), model.readLmHead(), targets);
  assert.equal(batched.length, B * seqLen);
  for (let s = 0; s < B; s++) {
    const single = await head.nll(hidden[s], model.readFinalNorm(), model.readLmHead(), targets.subarray(s * seqLen, (s + 1) * seqLen));
    assert.ok(relativeError(batched.subarray(s * seqLen, (s + 1) * seqLen), single) < 1e-5, `sequence ${s}`);
  }
  await assert.rejects(head.nll(hidden[0], model.readFinalNorm(), model.readLmHead(), targets), /targets/);
  await head.release();
});

test('batch sizes: many short sequences for a tiny model, one long sequence for a 1B model', () => {
  const stories260K: ModelSpec = smallSpec('llama', {
    hiddenSize: 64, intermediateSize: 172, numHeads: 8, numKvHeads: 4, headDim: 8, vocabSize: 512,
  });
  // Token caps: 1024 per block run, 4096 per head run.
  assert.equal(blockBatchSize(stories260K, 256), 4);
  assert.equal(blockBatchSize(stories260K, 512), 2);
  assert.equal(headBatchSize(stories260K, 512), 8);
  // TinyLlama at 2048 tokens: one sequence is past the memory budget already, and never 0.
  assert.equal(blockBatchSize(TINYLLAMA_SHAPE, 2048), 1);
  assert.equal(headBatchSize(TINYLLAMA_SHAPE, 2048), 1);
  assert.equal(blockBatchSize(stories260K, 256, { maxTokens: 100_000, maxBytes: 1 }), 1);
});

test('concatSequences: consecutive views of one buffer come back as a view, other sequences are copied', () => {
  const size = 6;
  const buffer = Float32Array.from({ length: 4 * size }, (_, i) => i);
  const views = [0, 1, 2, 3].map((s) => buffer.subarray(s * size, (s + 1) * size));
  const joined = concatSequences(views, 1, 2, size);
  assert.equal(joined.buffer, buffer.buffer, 'no copy');
  assert.deepEqual(Array.from(joined), Array.from(buffer.subarray(size, 3 * size)));
  const scattered = [views[2], views[0]];
  const copied = concatSequences(scattered, 0, 2, size);
  assert.notEqual(copied.buffer, buffer.buffer);
  assert.deepEqual(Array.from(copied), [...Array.from(views[2]), ...Array.from(views[0])]);
});
