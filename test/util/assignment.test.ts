import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assignmentTotal, linearSumAssignment } from '../../src/util/assignment.ts';
import { seededRandom } from '../helpers/random.ts';

/** Best total over all n! permutations (Heap's algorithm). */
function bruteForceBest(cost: Float64Array, n: number, maximize: boolean): number {
  const perm = Array.from({ length: n }, (_, i) => i);
  const total = () => perm.reduce((s, c, r) => s + cost[r * n + c], 0);
  let best = total();
  const counters = new Array<number>(n).fill(0);
  let i = 1;
  while (i < n) {
    if (counters[i] < i) {
      const j = i % 2 === 0 ? 0 : counters[i];
      [perm[j], perm[i]] = [perm[i], perm[j]];
      const t = total();
      if (maximize ? t > best : t < best) best = t;
      counters[i]++;
      i = 1;
    } else {
      counters[i] = 0;
      i++;
    }
  }
  return best;
}

function assertIsPermutation(columnOfRow: Int32Array, n: number): void {
  const seen = new Uint8Array(n);
  for (const c of columnOfRow) {
    assert.ok(c >= 0 && c < n && !seen[c], `column ${c} invalid or used twice`);
    seen[c] = 1;
  }
}

for (const maximize of [false, true]) {
  test(`200 random 6×6 cases equal brute force (${maximize ? 'maximise' : 'minimise'})`, () => {
    const next = seededRandom(maximize ? 11 : 7);
    const n = 6;
    for (let trial = 0; trial < 200; trial++) {
      const cost = new Float64Array(n * n);
      for (let k = 0; k < cost.length; k++) cost[k] = (next() - 0.3) * 100;
      const columnOfRow = linearSumAssignment(cost, n, { maximize });
      assertIsPermutation(columnOfRow, n);
      const got = assignmentTotal(cost, n, columnOfRow);
      const want = bruteForceBest(cost, n, maximize);
      assert.ok(Math.abs(got - want) <= 1e-9 * Math.max(1, Math.abs(want)), `trial ${trial}: ${got} vs ${want}`);
    }
  });
}

test('integer costs with many ties reach the brute-force optimum', () => {
  const next = seededRandom(3);
  for (const n of [2, 3, 4, 5, 6, 7]) {
    for (let trial = 0; trial < 40; trial++) {
      const cost = new Float64Array(n * n);
      for (let k = 0; k < cost.length; k++) cost[k] = Math.floor(next() * 3); // values 0, 1, 2
      for (const maximize of [false, true]) {
        const columnOfRow = linearSumAssignment(cost, n, { maximize });
        assertIsPermutation(columnOfRow, n);
        assert.equal(assignmentTotal(cost, n, columnOfRow), bruteForceBest(cost, n, maximize));
      }
    }
  }
});

test('all-equal matrix returns a valid permutation', () => {
  const n = 9;
  const columnOfRow = linearSumAssignment(new Float64Array(n * n).fill(4), n, { maximize: true });
  assertIsPermutation(columnOfRow, n);
});

test('n = 1 and n = 0', () => {
  assert.deepEqual([...linearSumAssignment(Float64Array.of(-3.5), 1)], [0]);
  assert.deepEqual([...linearSumAssignment(Float64Array.of(2), 1, { maximize: true })], [0]);
  assert.equal(linearSumAssignment(new Float64Array(0), 0).length, 0);
});

test('hand example over all six permutations', () => {
  // Totals: [0,1,2] 24, [1,0,2] 18, [0,2,1] 15, [2,1,0] 12, [2,0,1] 11, [1,2,0] 5 + 2 + 3 = 10.
  const cost = Float64Array.of(9, 5, 1, 6, 8, 2, 3, 4, 7);
  assert.deepEqual([...linearSumAssignment(cost, 3)], [1, 2, 0]);
  assert.deepEqual([...linearSumAssignment(cost, 3, { maximize: true })], [0, 1, 2]);
});

test('input matrix is not modified', () => {
  const cost = Float64Array.of(1, 2, 3, 4);
  linearSumAssignment(cost, 2, { maximize: true });
  assert.deepEqual([...cost], [1, 2, 3, 4]);
});
