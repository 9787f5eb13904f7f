// The packed block graph: one row holding a tree of tokens — a shared prefix and two branches
// after it, each at its own rotary positions, each attending to its ancestors only — must give, at
// every token, the hidden state that a plain causal run of that token's own sequence gives. The row
// is longer than one attention chunk, so the chunked mask slicing is exercised too; the second row
// of the batch is a plain causal sequence (mask lower-triangular, positions 0…n−1).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockEngine } from '../../src/engine/block-engine.ts';
import { ATTENTION_CHUNK, MASKED } from '../../src/engine/block-graph.ts';
import { ropeTables } from '../../src/model/rope.ts';
import { randomModel, smallSpec } from '../helpers/random-model.ts';
import { seededRandom } from '../helpers/random.ts';
import { relativeError } from '../helpers/relative-error.ts';

test('a packed tree row equals causal runs of each of its sequences', async () => {
  const spec = smallSpec('llama');
  const h = spec.hiddenSize;
  const d = spec.headDim;
  const weights = randomModel(spec, 3).readBlock(0);
  const uniform = seededRandom(4);
  const vector = (): Float32Array => Float32Array.from({ length: h }, () => 2 * uniform() - 1);
  // Prefix of 50 tokens, branch A of 30 tokens, branch B of 20: row of 100 (> one chunk), padded to 112.
  const prefix = Array.from({ length: 50 }, vector);
  const branchA = Array.from({ length: 30 }, vector);
  const branchB = Array.from({ length: 20 }, vector);
  assert.ok(ATTENTION_CHUNK < 100);
  const L = 112;
  const rows = 2;
  const sequenceA = [...prefix, ...branchA];
  const sequenceB = [...prefix, ...branchB];

  // Row 0: prefix, A, B, padding. Parents: chain within prefix and each branch; branch starts hang off the prefix end.
  const parents: number[] = [];
  const positions: number[] = [];
  for (let i = 0; i < 50; i++) { parents.push(i - 1); positions.push(i); }
  for (let i = 0; i < 30; i++) { parents.push(i === 0 ? 49 : 50 + i - 1); positions.push(50 + i); }
  for (let i = 0; i < 20; i++) { parents.push(i === 0 ? 49 : 80 + i - 1); positions.push(50 + i); }
  const hidden = new Float32Array(rows * L * h);
  [...prefix, ...branchA, ...branchB].forEach((v, i) => hidden.set(v, i * h));
  sequenceA.forEach((v, i) => hidden.set(v, (L + i) * h)); // row 1: plain sequence A
  const table = ropeTables(spec, L);
  const cos = new Float32Array(rows * L * d);
  const sin = new Float32Array(rows * L * d);
  const mask = new Float32Array(rows * L * L).fill(MASKED);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < L; i++) {
      const tree = r === 0 && i < 100;
      const position = tree ? positions[i] : r === 1 && i < 80 ? i : 0;
      cos.set(table.cos.subarray(position * d, (position + 1) * d), (r * L + i) * d);
      sin.set(table.sin.subarray(position * d, (position + 1) * d), (r * L + i) * d);
      if (tree) for (let j = i; j >= 0; j = parents[j]) mask[(r * L + i) * L + j] = 0;
      else if (r === 1 && i < 80) for (let j = 0; j <= i; j++) mask[(r * L + i) * L + j] = 0;
      else mask[(r * L + i) * L + i] = 0;
    }
  }
  const packed = await BlockEngine.create(spec, L, { device: 'cpu', threads: 1, stats: 'none', packed: true });
  const out = (await packed.run(hidden, weights, { cos, sin }, mask)).hidden;
  await assert.rejects(packed.run(hidden, weights, { cos, sin }), /needs a mask/);
  await packed.release();

  const causalRun = async (sequence: Float32Array[]): Promise<Float32Array> => {
    const engine = await BlockEngine.create(spec, sequence.length, { device: 'cpu', threads: 1, stats: 'none' });
    const input = new Float32Array(sequence.length * h);
    sequence.forEach((v, i) => input.set(v, i * h));
    const result = (await engine.run(input, weights, ropeTables(spec, sequence.length))).hidden;
    await engine.release();
    return result;
  };
  const wantA = await causalRun(sequenceA);
  const wantB = await causalRun(sequenceB);
  assert.ok(relativeError(out.subarray(0, 80 * h), wantA) < 1e-5, 'prefix and branch A');
  assert.ok(relativeError(out.subarray(80 * h, 100 * h), wantB.subarray(50 * h)) < 1e-5, 'branch B');
  assert.ok(relativeError(out.subarray(L * h, (L + 80) * h), wantA) < 1e-5, 'row 1: plain causal sequence');
});
