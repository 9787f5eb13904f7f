import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CmaEs, cmaesConstants, minimize } from '../../src/search/cmaes.ts';

const sphere = (x: Float64Array): number => x.reduce((sum, v) => sum + v * v, 0);
/** Axis-parallel ellipsoid with condition number 1e6. */
const ellipsoid = (x: Float64Array): number => x.reduce((sum, v, i) => sum + 10 ** ((6 * i) / (x.length - 1)) * v * v, 0);
const rosenbrock = (x: Float64Array): number => {
  let sum = 0;
  for (let i = 0; i < x.length - 1; i++) sum += 100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2;
  return sum;
};

test('constants match the ALGORITHMS.md §9 table for n = 2, 3, 4', () => {
  const table = [
    { n: 2, lambda: 6, mu: 3, w: [0.637043, 0.28457, 0.078387], muEff: 2.028611, cSigma: 0.446205, dSigma: 1.446205, cc: 0.624555, c1: 0.154815, cMu: 0.057859, chiN: 1.254273 },
    { n: 3, lambda: 7, mu: 3, w: [0.585645, 0.292823, 0.121532], muEff: 2.254815, cSigma: 0.414909, dSigma: 1.414909, cc: 0.558801, c1: 0.09641, cMu: 0.051243, chiN: 1.596878 },
    { n: 4, lambda: 8, mu: 4, w: [0.52993, 0.285714, 0.142857, 0.041498], muEff: 2.600179, cSigma: 0.396561, dSigma: 1.396561, cc: 0.5, c1: 0.065167, cMu: 0.051024, chiN: 1.880952 },
  ];
  const close = (actual: number, expected: number, what: string) => assert.ok(Math.abs(actual - expected) < 1e-6, `${what}: ${actual} vs ${expected}`);
  for (const row of table) {
    const c = cmaesConstants(row.n);
    assert.equal(c.lambda, row.lambda);
    assert.equal(c.mu, row.mu);
    assert.equal(c.weights.length, row.lambda);
    row.w.forEach((w, i) => close(c.weights[i], w, `n=${row.n} w${i + 1}`));
    for (let i = row.mu; i < row.lambda; i++) assert.equal(c.weights[i], 0);
    for (const key of ['muEff', 'cSigma', 'dSigma', 'cc', 'c1', 'cMu', 'chiN'] as const) close(c[key], row[key], `n=${row.n} ${key}`);
    assert.equal(c.cm, 1);
  }
});

test('active weights: positive part sums to 1, negative part to −min(α_μ⁻, α_μeff⁻, α_posdef⁻)', () => {
  const n = 4;
  const c = cmaesConstants(n, undefined, { active: true });
  const raw = Array.from({ length: c.lambda }, (_, i) => Math.log((c.lambda + 1) / 2) - Math.log(i + 1));
  const negatives = raw.slice(c.mu);
  const muEffMinus = negatives.reduce((s, w) => s + w, 0) ** 2 / negatives.reduce((s, w) => s + w * w, 0);
  const expectedNegativeSum = -Math.min(1 + c.c1 / c.cMu, 1 + (2 * muEffMinus) / (c.muEff + 2), (1 - c.c1 - c.cMu) / (n * c.cMu));
  const positiveSum = c.weights.slice(0, c.mu).reduce((s, w) => s + w, 0);
  const negativeSum = c.weights.slice(c.mu).reduce((s, w) => s + w, 0);
  assert.ok(Math.abs(positiveSum - 1) < 1e-15);
  assert.ok(Math.abs(negativeSum - expectedNegativeSum) < 1e-12);
  for (let i = 1; i < c.lambda; i++) assert.ok(c.weights[i] < c.weights[i - 1]);
  assert.deepEqual(c.weights.slice(0, c.mu), cmaesConstants(n).weights.slice(0, c.mu));
});

for (const [name, f, start] of [['sphere', sphere, 1], ['ellipsoid (cond 1e6)', ellipsoid, 1], ['Rosenbrock', rosenbrock, 0]] as const) {
  test(`converges to f < 1e-8 on ${name} for n = 2…6 (classic and active)`, () => {
    for (const active of [false, true]) {
      for (let n = 2; n <= 6; n++) {
        const result = minimize(f, new Float64Array(n).fill(start), 0.5, { seed: n, active, maxEvaluations: 20_000 });
        assert.ok(result.value < 1e-8, `${name} n=${n} active=${active}: f=${result.value} after ${result.evaluations} (${result.stopReason})`);
        assert.notEqual(result.stopReason, 'maxEvaluations');
      }
    }
  });
}

test('Rosenbrock n = 5 with the active update, seed 14: stuck in the local minimum, escaped by an IPOP restart', () => {
  const x0 = new Float64Array(5);
  const single = minimize(rosenbrock, x0, 0.5, { seed: 14, active: true });
  assert.ok(single.value > 1, `expected the local minimum (f ≈ 3.93), got ${single.value}`);
  const restarted = minimize(rosenbrock, x0, 0.5, { seed: 14, active: true, restarts: 3 });
  assert.ok(restarted.value < 1e-8);
  assert.ok(restarted.restartsUsed >= 1);
});

test('same seed → identical trajectory; another seed → a different one', () => {
  const trajectory = (seed: number) => {
    const es = new CmaEs([1, -2, 0.5], 0.3, { seed });
    const means: number[][] = [];
    for (let g = 0; g < 30; g++) {
      es.tell(es.ask().map((x) => ({ x, value: ellipsoid(x) })));
      means.push([...es.currentMean, es.stepSize]);
    }
    return means;
  };
  assert.deepEqual(trajectory(5), trajectory(5));
  assert.notDeepEqual(trajectory(5), trajectory(6));
});

test('ask/tell: λ candidates of dimension n; best tracks the lowest value; tell checks the count', () => {
  const es = new CmaEs([0, 0], 1, { seed: 1 });
  assert.equal(es.best, null);
  const xs = es.ask();
  assert.equal(xs.length, 6);
  assert.ok(xs.every((x) => x.length === 2));
  const values = xs.map((x) => sphere(x));
  es.tell(xs.map((x, i) => ({ x, value: values[i] })));
  assert.equal(es.best!.value, Math.min(...values));
  assert.equal(es.evaluations, 6);
  assert.equal(es.generation, 1);
  assert.throws(() => es.tell(xs.slice(1).map((x) => ({ x, value: 0 }))), RangeError);
});

test('NaN values rank as worst and do not break the update', () => {
  const result = minimize((x) => (x[0] > 2 ? NaN : sphere(x)), [1, 1], 0.5, { seed: 3 });
  assert.ok(result.value < 1e-8);
});

test('stopping rules: evaluation budget, target value, flat function (tolFun)', () => {
  const budget = minimize(sphere, [1, 1, 1], 0.5, { seed: 0, maxEvaluations: 70 });
  assert.equal(budget.stopReason, 'maxEvaluations');
  assert.equal(budget.evaluations, 70); // 10 generations of λ = 7
  const target = minimize(sphere, [1, 1, 1], 0.5, { seed: 0, targetValue: 1e-3 });
  assert.equal(target.stopReason, 'targetValue');
  assert.ok(target.value <= 1e-3);
  const flat = minimize(() => 1, [0, 0], 1, { seed: 0 });
  assert.equal(flat.stopReason, 'tolFun');
  assert.equal(flat.generations, 10 + Math.ceil((30 * 2) / 6) + 1);
});

test('a step size that explodes on a linear slope stops with tolXUp', () => {
  const result = minimize((x) => x[0], [0, 0], 1, { seed: 0 });
  assert.equal(result.stopReason, 'tolXUp');
  assert.ok(result.value < -1e3);
});
