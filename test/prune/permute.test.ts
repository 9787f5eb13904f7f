import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ascendingColumnOrder,
  permuteForNM,
  permutedNMMask,
  retainedScore,
  serpentineOrder,
} from '../../src/prune/permute.ts';
import { nmMask } from '../../src/prune/mask.ts';
import { UserError } from '../../src/util/errors.ts';
import { seededRandom } from '../helpers/random.ts';

/** Heavy-tailed positive scores, like |W|·‖X‖ with a few strong channels. */
function randomScores(dOut: number, dIn: number, seed: number): Float32Array {
  const next = seededRandom(seed);
  const channelScale = Array.from({ length: dIn }, () => Math.exp(2 * next()));
  const s = new Float32Array(dOut * dIn);
  for (let i = 0; i < dOut; i++) for (let j = 0; j < dIn; j++) s[i * dIn + j] = next() * channelScale[j];
  return s;
}

/** mask[:, permutation]: column p of the result is column permutation[p] of the input. */
function permuteMask(mask: Uint8Array, dOut: number, dIn: number, permutation: Int32Array): Uint8Array {
  const out = new Uint8Array(mask.length);
  for (let i = 0; i < dOut; i++) for (let p = 0; p < dIn; p++) out[i * dIn + p] = mask[i * dIn + permutation[p]];
  return out;
}

function assertExactlyNM(mask: Uint8Array, dOut: number, dIn: number, n: number, m: number): void {
  for (let g = 0; g < dOut * dIn; g += m) {
    let pruned = 0;
    for (let b = 0; b < m; b++) pruned += mask[g + b];
    assert.equal(pruned, n, `group at ${g} prunes ${pruned}, expected ${n}`);
  }
}

function assertIsPermutation(p: Int32Array): void {
  assert.deepEqual([...p].sort((a, b) => a - b), Array.from({ length: p.length }, (_, i) => i));
}

test('serpentine deal on dIn 8, m 4, by hand', () => {
  // One row, so the importance is the score itself. Ascending columns: 1(10) 3(20) 5(30) 7(40)
  // 0(50) 6(60) 2(70) 4(80). K = 2: Q1 = [1,3], Q2 = [5,7], Q3 = [0,6], Q4 = [2,4].
  // Group 0 = Q1[0] Q2[1] Q3[0] Q4[1] = 1 7 0 4; group 1 = Q1[1] Q2[0] Q3[1] Q4[0] = 3 5 6 2.
  const scores = Float32Array.of(50, 10, 70, 20, 80, 30, 60, 40);
  const sorted = ascendingColumnOrder(scores, 1, 8);
  assert.deepEqual([...sorted], [1, 3, 5, 7, 0, 6, 2, 4]);
  assert.deepEqual([...serpentineOrder(sorted, 4)], [1, 7, 0, 4, 3, 5, 6, 2]);

  // 2:4 retained: identity keeps 70+50 and 80+60 = 260; serpentine keeps 80+50 and 70+60 = 260.
  const result = permuteForNM(scores, 1, 8, 2, 4, { strategy: 'reallocation' });
  assert.deepEqual([...result.permutation], [1, 7, 0, 4, 3, 5, 6, 2]);
  assert.equal(result.retainedBefore, 260);
  assert.equal(result.retainedAfter, 260);
  assert.equal(result.usedIdentity, false);
  // Mask in original order: pruned are 1, 7 (group 0) and 3, 5 (group 1).
  assert.deepEqual([...result.mask], [0, 1, 0, 1, 0, 1, 0, 1]);
});

test('importance ties keep the lower column first', () => {
  // Column sums 2 3 2 1: column 3 first, then the tie 0/2 in index order, then column 1.
  const scores = Float32Array.of(1, 3, 1, 0, /* row 2 */ 1, 0, 1, 1);
  assert.deepEqual([...ascendingColumnOrder(scores, 2, 4)], [3, 0, 2, 1]);
});

test('serpentine worse than the identity → the identity is kept (worked example)', () => {
  // Column sums 17 10 4 10 12 11 13 15 → ascending 2 1 3 5 4 6 7 0 → groups [2,5,4,0] [1,3,6,7].
  // Serpentine keeps 8+8, 7+7 (row 0) and 9+5, 8+8 (row 1) = 60; identity keeps 15+15+17+14 = 61.
  const scores = Float32Array.of(8, 2, 1, 7, 8, 6, 7, 7, 9, 8, 3, 3, 4, 5, 6, 8);
  const result = permuteForNM(scores, 2, 8, 2, 4, { strategy: 'reallocation' });
  assert.equal(result.retainedReallocation, 60);
  assert.equal(result.retainedBefore, 61);
  assert.equal(result.usedIdentity, true);
  assert.deepEqual([...result.permutation], [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.deepEqual([...result.mask], [...nmMask(scores, 2, 8, 2, 4)]);
  assert.equal(result.retainedAfter, 61);
});

test('random layers: pattern holds in permuted order, retained never drops, LSA ≥ reallocation', () => {
  const cases: Array<[number, number, number, number, number]> = [
    // dOut, dIn, n, m, blocks
    [16, 32, 2, 4, 1],
    [8, 64, 2, 4, 2],
    [24, 48, 4, 8, 1],
    [5, 40, 1, 4, 2],
    [12, 36, 3, 4, 3],
  ];
  let seed = 100;
  for (const [dOut, dIn, n, m, blocks] of cases) {
    for (let trial = 0; trial < 4; trial++) {
      const scores = randomScores(dOut, dIn, seed++);
      const plain = permuteForNM(scores, dOut, dIn, n, m, { strategy: 'reallocation' });
      const lsa = permuteForNM(scores, dOut, dIn, n, m, { strategy: 'lsa', blocks });
      for (const result of [plain, lsa]) {
        assertIsPermutation(result.permutation);
        assertExactlyNM(permuteMask(result.mask, dOut, dIn, result.permutation), dOut, dIn, n, m);
        assert.ok(result.retainedAfter >= result.retainedBefore);
        assert.equal(retainedScore(scores, result.mask), result.retainedAfter);
        assert.equal(result.retainedBefore, retainedScore(scores, nmMask(scores, dOut, dIn, n, m)));
      }
      assert.ok(lsa.retainedAfter >= plain.retainedAfter, `LSA ${lsa.retainedAfter} < reallocation ${plain.retainedAfter}`);
    }
  }
});

test('after LSA the last slot is optimally assigned (brute force over its 4! reassignments)', () => {
  const dOut = 6, dIn = 16, n = 2, m = 4, groups = 4;
  for (let seed = 1; seed <= 10; seed++) {
    const scores = randomScores(dOut, dIn, 900 + seed);
    const result = permuteForNM(scores, dOut, dIn, n, m, { strategy: 'lsa' });
    const slot = m - 1;
    let best = -Infinity;
    for (const order of permutationsOf([0, 1, 2, 3])) {
      const candidate = Int32Array.from(result.permutation);
      for (let g = 0; g < groups; g++) candidate[g * m + slot] = result.permutation[order[g] * m + slot];
      best = Math.max(best, retainedScore(scores, permutedNMMask(scores, dOut, dIn, n, m, candidate)));
    }
    assert.ok(result.retainedAfter >= best - 1e-9 * best, `seed ${seed}: ${result.retainedAfter} < ${best}`);
  }
});

test('LSA improves on a case where the serpentine deal is not optimal', () => {
  let improved = 0;
  for (let seed = 1; seed <= 20; seed++) {
    const scores = randomScores(8, 32, 300 + seed);
    const plain = permuteForNM(scores, 8, 32, 2, 4, { strategy: 'reallocation' });
    const lsa = permuteForNM(scores, 8, 32, 2, 4, { strategy: 'lsa' });
    if (lsa.retainedAfter > plain.retainedAfter + 1e-9) improved++;
  }
  assert.ok(improved >= 10, `LSA improved only ${improved} of 20 random layers`);
});

test('bad options are user errors', () => {
  const scores = new Float32Array(4 * 16).fill(1);
  assert.throws(() => permuteForNM(scores, 4, 16, 2, 4, { strategy: 'lsa', blocks: 3 }), UserError);
  assert.throws(() => permuteForNM(scores, 4, 16, 2, 4, { strategy: 'lsa', blocks: 0 }), { name: 'FieldError', field: 'permute.blocks' });
  assert.throws(() => permuteForNM(new Float32Array(4 * 10), 4, 10, 2, 4, { strategy: 'reallocation' }), UserError);
  assert.throws(() => permuteForNM(scores, 4, 16, 4, 4, { strategy: 'reallocation' }), UserError);
});

function* permutationsOf(items: number[]): Generator<number[]> {
  if (items.length <= 1) {
    yield items;
    return;
  }
  for (let i = 0; i < items.length; i++) {
    const rest = [...items.slice(0, i), ...items.slice(i + 1)];
    for (const tail of permutationsOf(rest)) yield [items[i], ...tail];
  }
}
