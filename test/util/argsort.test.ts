import { test } from 'node:test';
import assert from 'node:assert/strict';
import { argsortNonNegative } from '../../src/util/argsort.ts';

test('argsortNonNegative: ascending order, ties in index order (hand example)', () => {
  const values = Float32Array.from([3, 0, 2.5, 0, 1e-30, 70000, 2.5]);
  assert.deepEqual(Array.from(argsortNonNegative(values)), [1, 3, 4, 2, 6, 0, 5]);
});

test('argsortNonNegative agrees with a stable comparator sort on random data spanning many exponents', () => {
  let state = 12345;
  const random = () => ((state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const values = new Float32Array(5000);
  for (let i = 0; i < values.length; i++) values[i] = random() < 0.1 ? 0 : Math.fround(random() * 10 ** Math.floor(random() * 12 - 6));
  const expected = Array.from(values.keys()).sort((a, b) => values[a] - values[b] || a - b);
  assert.deepEqual(Array.from(argsortNonNegative(values)), expected);
});
