// Hill climbing on a synthetic "perplexity" with a known minimum: the path is hand-traced.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runHillClimb, type HillClimbCandidate, type HillClimbOptions } from '../../src/search/hillclimb.ts';
import type { CrepeParams } from '../../src/prune/scores/crepe.ts';

const space = { searchA: false, fixedA: 0.5, variant: 'normalized' as const };

/** A bowl in the search coordinates with its minimum 10 at (log β, log γ) = (b, g). */
const bowl = (b: number, g: number) => async (p: CrepeParams) => ({ ppl: (Math.log(p.beta) - b) ** 2 + (Math.log(p.gamma) - g) ** 2 + 10 });

const coords = (c: HillClimbCandidate) => [Math.log(c.params.beta), Math.log(c.params.gamma)].map((v) => Math.round(v * 1e9) / 1e9);

test('on a grid minimum (1, −2) it follows the hand-traced path and lands exactly on β = e, γ = e^−2', async () => {
  const opts: HillClimbOptions = { kSet: [3], space, budgetPerK: 100, initialStep: 1, minStep: 0.25 };
  const result = await runHillClimb(bowl(1, -2), opts);
  // Step 1: +x0 → (1, 0) accepted; (2, 0) ✗, (0, 0) seen, (1, 1) ✗, (1, −1) accepted; (2, −1) ✗,
  // (0, −1) ✗, (1, 0) seen, (1, −2) accepted; its four neighbours ✗ → step 0.5: four ✗ → step 0.25:
  // four ✗ → step 0.125 < minStep: stop. 1 + 10 + 4 + 4 = 19 trials.
  assert.deepEqual(result.candidates.filter((c) => c.accepted).map(coords), [[0, 0], [1, 0], [1, -1], [1, -2]]);
  assert.equal(result.candidates.length, 19);
  assert.deepEqual(result.candidates.slice(0, 11).map(coords), [
    [0, 0], [1, 0], [2, 0], [1, 1], [1, -1], [2, -1], [0, -1], [1, -2], [2, -2], [0, -2], [1, -3],
  ]);
  assert.equal(result.best.params.beta, Math.E);
  assert.equal(result.best.params.gamma, Math.exp(-2));
  assert.equal(result.best.ppl, 10);
  assert.equal(result.best.params.k, 3);
  assert.equal(result.best.params.alpha, 1);
  assert.equal(result.best.params.a, 0.5);
  assert.deepEqual(result.bestPerK, [result.best]);
});

test('off the grid it stops within the step resolution of the minimum', async () => {
  const minStep = 0.25;
  const result = await runHillClimb(bowl(0.8, -2.3), { kSet: [1], space, budgetPerK: 200, initialStep: 1, minStep });
  const [b, g] = coords(result.best);
  // A grid point whose ±minStep neighbours are all worse lies within minStep/2 of a separable bowl's minimum.
  assert.ok(Math.abs(b - 0.8) <= minStep / 2 + 1e-9, `log β = ${b}`);
  assert.ok(Math.abs(g + 2.3) <= minStep / 2 + 1e-9, `log γ = ${g}`);
});

test('never measures a point twice; accepted moves strictly lower PPL; best = last accepted', async () => {
  const result = await runHillClimb(bowl(0.8, -2.3), { kSet: [1, 3], space, budgetPerK: 200, initialStep: 1, minStep: 0.125 });
  for (const k of [1, 3]) {
    const ofK = result.candidates.filter((c) => c.k === k);
    const keys = ofK.map((c) => coords(c).join(','));
    assert.equal(new Set(keys).size, keys.length, `k=${k}: a point was measured twice`);
    const accepted = ofK.filter((c) => c.accepted);
    assert.equal(accepted[0], ofK[0], 'the start point is accepted');
    for (let i = 1; i < accepted.length; i++) assert.ok(accepted[i].ppl < accepted[i - 1].ppl);
    const bestOfK = result.bestPerK.find((c) => c.k === k)!;
    assert.equal(bestOfK, accepted[accepted.length - 1]);
    assert.equal(bestOfK.ppl, Math.min(...ofK.map((c) => c.ppl)));
  }
  assert.equal(result.best.ppl, Math.min(...result.bestPerK.map((c) => c.ppl)));
});

test('stays within the trial budget per window size, and reports every trial', async () => {
  let trials = 0;
  const counted = async (p: CrepeParams) => {
    trials++;
    return bowl(1, -2)(p);
  };
  const reported: HillClimbCandidate[] = [];
  const result = await runHillClimb(counted, { kSet: [1, 3, 5], space, budgetPerK: 5, initialStep: 1, minStep: 0.25 }, (c) => reported.push(c));
  assert.equal(trials, 15);
  assert.equal(result.candidates.length, 15);
  for (const k of [1, 3, 5]) assert.equal(result.candidates.filter((c) => c.k === k).length, 5);
  assert.deepEqual(new Set(reported), new Set(result.candidates));
  // Within 5 trials: start, (1, 0) ✓, (2, 0) ✗, (1, 1) ✗, (1, −1) ✓ → best PPL 11 for each k.
  for (const best of result.bestPerK) assert.equal(best.ppl, 11);
});

test('with searchA the exponent a is climbed as a third coordinate', async () => {
  const space3 = { searchA: true, fixedA: 0.5, variant: 'normalized' as const };
  const trial = async (p: CrepeParams) => ({ ppl: Math.log(p.beta) ** 2 + Math.log(p.gamma) ** 2 + (p.a - 1) ** 2 + 1 });
  const result = await runHillClimb(trial, { kSet: [3], space: space3, budgetPerK: 100, initialStep: 0.5, minStep: 0.25 });
  assert.equal(result.best.params.a, 1);
  assert.equal(result.best.params.beta, 1);
  assert.equal(result.best.params.gamma, 1);
});

test(
  'when the minimum lies on the edge of the box, no clipped point is measured again',
  async () => {
    // PPL keeps falling as γ → 0, so the climb walks to log γ = −12 and then probes beyond the box.
    const trial = async (p: CrepeParams) => ({ ppl: Math.log(p.gamma) + 100 + Math.log(p.beta) ** 2 });
    const result = await runHillClimb(trial, { kSet: [3], space, budgetPerK: 200, initialStep: 1, minStep: 0.25 });
    assert.equal(Math.log(result.best.params.gamma), -12);
    const keys = result.candidates.map((c) => `${c.params.beta},${c.params.gamma}`);
    assert.equal(new Set(keys).size, keys.length, `${keys.length - new Set(keys).size} repeated trials`);
  },
);
