import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng, sampleWithoutReplacement } from '../../src/util/rng.ts';

test('same seed gives the same stream; different seeds differ', () => {
  const a = new Rng(42);
  const b = new Rng(42);
  const c = new Rng(43);
  const draws = (r: Rng) => Array.from({ length: 8 }, () => r.nextUint32());
  const fromA = draws(a);
  assert.deepEqual(fromA, draws(b));
  assert.notDeepEqual(fromA, draws(c));
  assert.notDeepEqual(draws(new Rng(2 ** 40)), draws(new Rng(0)));
  assert.throws(() => new Rng(0.5), RangeError);
});

test('uniform() lies in [0, 1) with mean ≈ 1/2 and variance ≈ 1/12', () => {
  const rng = new Rng(1);
  const n = 200_000;
  let sum = 0;
  let sumSq = 0;
  for (let i = 0; i < n; i++) {
    const u = rng.uniform();
    assert.ok(u >= 0 && u < 1);
    sum += u;
    sumSq += u * u;
  }
  const mean = sum / n;
  assert.ok(Math.abs(mean - 0.5) < 0.005);
  assert.ok(Math.abs(sumSq / n - mean * mean - 1 / 12) < 0.002);
});

test('gaussian() has mean ≈ 0, variance ≈ 1, and ≈ 68.3 % within one sigma', () => {
  const rng = new Rng(7);
  const n = 200_000;
  let sum = 0;
  let sumSq = 0;
  let withinOne = 0;
  for (let i = 0; i < n; i++) {
    const z = rng.gaussian();
    sum += z;
    sumSq += z * z;
    if (Math.abs(z) < 1) withinOne++;
  }
  assert.ok(Math.abs(sum / n) < 0.01);
  assert.ok(Math.abs(sumSq / n - 1) < 0.02);
  assert.ok(Math.abs(withinOne / n - 0.6827) < 0.005);
});

test('below(n) covers [0, n) evenly', () => {
  const rng = new Rng(3);
  const counts = new Array(7).fill(0);
  for (let i = 0; i < 70_000; i++) counts[rng.below(7)]++;
  for (const count of counts) assert.ok(Math.abs(count - 10_000) < 500, String(counts));
  assert.equal(rng.below(1), 0);
  assert.throws(() => rng.below(0), RangeError);
});

test('sampleWithoutReplacement: k distinct sorted indices, reproducible, uniform', () => {
  const picked = sampleWithoutReplacement(1000, 100, new Rng(5));
  assert.equal(picked.length, 100);
  assert.equal(new Set(picked).size, 100);
  for (let i = 1; i < picked.length; i++) assert.ok(picked[i - 1] < picked[i]);
  assert.ok(picked[picked.length - 1] < 1000);
  assert.deepEqual(picked, sampleWithoutReplacement(1000, 100, new Rng(5)));
  assert.deepEqual(Array.from(sampleWithoutReplacement(4, 4, new Rng(0))), [0, 1, 2, 3]);
  assert.equal(sampleWithoutReplacement(10, 0, new Rng(0)).length, 0);
  assert.throws(() => sampleWithoutReplacement(3, 4, new Rng(0)), RangeError);
  // Each of 10 indices is picked with probability 3/10.
  const hits = new Array(10).fill(0);
  const rng = new Rng(9);
  for (let trial = 0; trial < 20_000; trial++) for (const i of sampleWithoutReplacement(10, 3, rng)) hits[i]++;
  for (const h of hits) assert.ok(Math.abs(h - 6000) < 300, String(hits));
});
