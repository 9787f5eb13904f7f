// Expected values are CPython 3.11.7 `random.Random` outputs (ALGORITHMS.md §1.1 and a local run).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PyRandom } from '../../src/data/mt19937.ts';

test('seed(0): first five genrand_uint32 outputs (ALGORITHMS.md §1.1)', () => {
  const rng = new PyRandom(0);
  const words = Array.from({ length: 5 }, () => rng.genrandUint32());
  assert.deepEqual(words, [3626764237, 1654615998, 3255389356, 3823568514, 1806341205]);
});

test('random() after seed(0) and seed(42)', () => {
  assert.equal(new PyRandom(0).random(), 0.8444218515250481);
  assert.equal(new PyRandom(42).random(), 0.6394267984578837);
});

test('seed(0): five randint(0, 356316), the first 19-bit draw rejected', () => {
  const rng = new PyRandom(0);
  assert.deepEqual(Array.from({ length: 5 }, () => rng.randint(0, 356316)), [201979, 220500, 21225, 135746, 268055]);
});

test('multi-word seeds and negative seeds use |seed| split into 32-bit words', () => {
  const rng = new PyRandom(2n ** 40n + 5n);
  assert.equal(rng.random(), 0.5043802970418443);
  assert.deepEqual([rng.getrandbits(32), rng.getrandbits(32)], [1153647273, 2850991874]);
  assert.equal(new PyRandom(2 ** 40 + 5).random(), 0.5043802970418443);
  assert.equal(new PyRandom(2n ** 64n + 1n).random(), 0.10175875467846374);
  assert.equal(new PyRandom(-7).random(), new PyRandom(7).random());
  assert.equal(new PyRandom(7).random(), 0.32383276483316237);
});

test('getrandbits for k below, at and above 32 (little-endian words)', () => {
  const rng = new PyRandom(12345);
  assert.deepEqual(
    [1, 31, 33, 64, 100].map((k) => rng.getrandbits(k)),
    [0, 1573429661, 4338643525n, 14809938836708178893n, 1138382856001521497337215822146n],
  );
});

test('randint over more than 32 bits, a single value and negative ranges', () => {
  const rng = new PyRandom(1);
  assert.deepEqual(Array.from({ length: 3 }, () => rng.randint(0, 2 ** 40)), [140719340484, 258793550908, 1037017667747]);
  assert.deepEqual([rng.randint(5, 5), rng.randint(5, 5)], [5, 5]);
  assert.equal(rng.randint(-10, 10), -7);
});

test('the stream crosses the 624-word twist boundary correctly', () => {
  const rng = new PyRandom(3);
  const draws = Array.from({ length: 1000 }, () => rng.randint(0, 999));
  assert.deepEqual(draws.slice(-3), [407, 817, 198]);
});

test('re-seeding restarts the stream', () => {
  const rng = new PyRandom(0);
  rng.random();
  rng.seed(0);
  assert.equal(rng.genrandUint32(), 3626764237);
});
