// PHO on a tiny random model: reproducible, within budget, best = lowest objective, sign flips the goal.
import { after, before, test } from 'node:test';
import path from 'node:path';
import assert from 'node:assert/strict';
import { confirmationShortlist, confirmOnHeldOut, phoEvaluations, runPho, type PhoCandidate, type PhoOptions } from '../../src/search/pho.ts';
import { ProxyContext, PROXY_NAMES } from '../../src/search/proxy.ts';
import { cmaesConstants } from '../../src/search/cmaes.ts';
import { Rng } from '../../src/util/rng.ts';
import { randomModel, smallSpec } from '../helpers/random-model.ts';
import { scratchDir } from '../helpers/stories.ts';

const spec = smallSpec('llama', { numLayers: 1 });
const seqlen = 16;
let context: ProxyContext;

before(async () => {
  const rng = new Rng(5);
  const windows = Array.from({ length: 2 }, () => Int32Array.from({ length: seqlen }, () => rng.below(spec.vocabSize)));
  context = await ProxyContext.open(randomModel(spec, 3), windows, seqlen, { device: 'cpu', threads: 1 }, {
    cacheDir: path.join(scratchDir('pho'), 'proxy-cache'), cacheBudgetBytes: 2 ** 26, threads: 1, modelSha256: 'random-llama-3', calibrationSeed: 5, withGram: false, windows: [],
  });
});
after(() => context.close());

const options = (overrides: Partial<PhoOptions> = {}): PhoOptions => ({
  target: { kind: 'unstructured', sparsity: 0.5 },
  selection: 'per-matrix',
  giniSubsample: null,
  seed: 4,
  kSet: [1, 3],
  budgetPerK: 8,
  proxy: 'gini-ref',
  sign: 1,
  space: { searchA: false, fixedA: 0.5, variant: 'normalized' },
  sigma0: 1.5,
  ...overrides,
});

/** A candidate without its timing, for comparing runs. */
const untimed = ({ seconds: _seconds, ...rest }: PhoCandidate) => rest;

test('same seed → identical candidates; another seed → different ones', async () => {
  const a = await runPho(context, options());
  const b = await runPho(context, options());
  assert.deepEqual(b.candidates.map(untimed), a.candidates.map(untimed));
  assert.deepEqual(untimed(b.best), untimed(a.best));
  const c = await runPho(context, options({ seed: 5 }));
  assert.notDeepEqual(c.candidates.map((x) => x.params), a.candidates.map((x) => x.params));
});

test('budget: per k at least the budget and fewer than budget + λ candidates, whole generations; every one reported', async () => {
  const { lambda } = cmaesConstants(2);
  assert.equal(lambda, 6);
  const reported: PhoCandidate[] = [];
  const result = await runPho(context, options({ kSet: [1, 3, 5], budgetPerK: 8 }), (c) => reported.push(c));
  assert.deepEqual(reported, result.candidates);
  for (const k of [1, 3, 5]) {
    const ofK = result.candidates.filter((c) => c.k === k);
    assert.ok(ofK.length >= 8 && ofK.length <= 8 + lambda - 1, `k=${k}: ${ofK.length} candidates`);
    assert.equal(ofK.length % lambda, 0);
    assert.ok(ofK.every((c) => c.params.k === k));
  }
  // The window sizes are searched in the given order.
  assert.deepEqual([...new Set(result.candidates.map((c) => c.k))], [1, 3, 5]);
});

test('race: every window size runs one generation, the best `race` by their first generation continue as without racing, the others stop', async () => {
  const kSet = [1, 3, 5, 7];
  const full = await runPho(context, options({ kSet, budgetPerK: 12 }));
  const raced = await runPho(context, options({ kSet, budgetPerK: 12, race: 2 }));
  const firstOf = (k: number) => full.candidates.filter((c) => c.k === k && c.generation === 0);
  // The first generations come first, in kSet order, the same as without racing (one CMA-ES per k, seeded by k).
  assert.deepEqual(raced.candidates.slice(0, 24).map(untimed), kSet.flatMap((k) => firstOf(k).map(untimed)));
  const firstBest = kSet.map((k) => ({ k, objective: Math.min(...firstOf(k).map((c) => c.objective)) })).sort((a, b) => a.objective - b.objective);
  const kept = firstBest.slice(0, 2).map((b) => b.k);
  // The kept sizes continue, in kSet order, exactly as without racing; the others have their first generation only.
  assert.deepEqual(raced.candidates.slice(24).map(untimed), kSet.filter((k) => kept.includes(k)).flatMap((k) => full.candidates.filter((c) => c.k === k && c.generation > 0).map(untimed)));
  assert.equal(raced.candidates.length, 2 * 12 + 2 * 6);
  assert.equal(phoEvaluations(12, options().space, kSet.length, 2), raced.candidates.length);
  assert.equal(phoEvaluations(12, options().space, kSet.length), full.candidates.length);
  // Every window size keeps its best, in kSet order; the best overall is among them.
  assert.deepEqual(raced.bestPerK.map((b) => b.k), kSet);
  for (const best of raced.bestPerK) assert.equal(best.objective, Math.min(...raced.candidates.filter((c) => c.k === best.k).map((c) => c.objective)));
  // race ≥ the window sizes searched: every one continues, in the order of a search without racing.
  assert.deepEqual((await runPho(context, options({ kSet, budgetPerK: 12, race: 4 }))).candidates.map(untimed), full.candidates.map(untimed));
  await assert.rejects(runPho(context, options({ race: 0 })), /race/);
});

test('objective = sign · proxy; best per k and overall = lowest objective; other proxies not computed', async () => {
  const result = await runPho(context, options());
  for (const c of result.candidates) {
    assert.equal(c.objective, c.proxies['gini-ref']);
    for (const p of PROXY_NAMES) if (p !== 'gini-ref') assert.ok(Number.isNaN(c.proxies[p]));
    assert.ok(c.seconds >= 0);
  }
  assert.equal(result.bestPerK.length, 2);
  for (const best of result.bestPerK) {
    const ofK = result.candidates.filter((c) => c.k === best.k);
    assert.equal(best.objective, Math.min(...ofK.map((c) => c.objective)));
    assert.ok(ofK.includes(best));
  }
  assert.equal(result.best.objective, Math.min(...result.candidates.map((c) => c.objective)));
  // A candidate's proxy is what the context gives for its parameters.
  const again = (await context.evaluate(result.best.params, options(), ['gini-ref'])).values['gini-ref'];
  assert.equal(again, result.best.proxies['gini-ref']);
  assert.ok(result.seconds.total >= result.seconds.score + result.seconds.select + result.seconds.gini - 1e-9);
});

test('sign −1 maximises the proxy; the first generation samples the same points either way', async () => {
  const minimised = await runPho(context, options({ kSet: [3] }));
  const maximised = await runPho(context, options({ kSet: [3], sign: -1 }));
  for (const c of maximised.candidates) assert.equal(c.objective, -c.proxies['gini-ref']);
  assert.equal(maximised.best.proxies['gini-ref'], Math.max(...maximised.candidates.map((c) => c.proxies['gini-ref'])));
  const firstGeneration = (r: typeof minimised) => r.candidates.filter((c) => c.generation === 0).map((c) => c.params);
  assert.equal(firstGeneration(minimised).length, 6);
  assert.deepEqual(firstGeneration(maximised), firstGeneration(minimised));
  assert.ok(maximised.best.proxies['gini-ref'] > minimised.best.proxies['gini-ref']);
});

test('parameters stay in the search space: α = 1, fixed a, variant, zero border', async () => {
  const result = await runPho(context, options({ space: { searchA: false, fixedA: 0.7, variant: 'smooth' } }));
  for (const { params } of result.candidates) {
    assert.equal(params.alpha, 1);
    assert.equal(params.a, 0.7);
    assert.equal(params.variant, 'smooth');
    assert.equal(params.border, 'zero');
    assert.ok(params.beta >= Math.exp(-12) && params.beta <= Math.exp(6));
    assert.ok(params.gamma >= Math.exp(-12) && params.gamma <= Math.exp(6));
  }
});

test('confirmationShortlist and confirmOnHeldOut: the best candidate of each of the N best window sizes gets one real trial, in objective order, then the start unless shortlisted', async () => {
  const candidate = (k: number, objective: number) => ({
    k, generation: 0, objective, seconds: 0,
    params: { k, alpha: 1, beta: 1, gamma: 1, a: 0.5, variant: 'normalized' as const, border: 'zero' as const },
    proxies: { 'gini-own': 0, 'gini-ref': objective, 'pruned-mass': 0, 'column-gini': 0, 'output-error': 0, 'calib-nll': 0 },
  });
  const bestPerK = [candidate(1, 0.3), candidate(3, 0.1), candidate(5, 0.2)];
  const result = { best: bestPerK[1], bestPerK, candidates: bestPerK, seconds: { total: 0, score: 0, select: 0, gini: 0, forward: 0 } };
  // What the search workflow does: a progress stage whose total is the shortlist's length, one
  // update per trial; the updates must end exactly at the total.
  const confirm = async (start?: typeof bestPerK[0]['params']) => {
    const shortlist = confirmationShortlist(result, 2, start);
    const total = shortlist.length;
    const measuredKs: number[] = [];
    const updates: number[] = [];
    const confirmations = await confirmOnHeldOut(shortlist, async (params) => {
      measuredKs.push(params.k);
      return { ppl: 100 + params.k, seconds: 0 };
    }, (_c, i) => updates.push(i + 1));
    return { total, measuredKs, updates, confirmations };
  };
  const plain = await confirm();
  assert.deepEqual(plain.measuredKs, [3, 5]);
  assert.deepEqual(plain.confirmations.map((c) => [c.source, c.params.k, c.objective, c.ppl]), [['pho', 3, 0.1, 103], ['pho', 5, 0.2, 105]]);
  assert.equal(plain.total, 2);
  assert.deepEqual(plain.updates, [1, 2]);
  // The start configuration is confirmed after them (objective NaN), unless it is one of them.
  const withStart = await confirm({ ...bestPerK[0].params, k: 7, beta: 2 });
  assert.deepEqual(withStart.confirmations.map((c) => [c.source, c.params.k, c.ppl]), [['pho', 3, 103], ['pho', 5, 105], ['start', 7, 107]]);
  assert.ok(Number.isNaN(withStart.confirmations[2].objective));
  assert.equal(withStart.total, 3);
  assert.deepEqual(withStart.updates, [1, 2, 3]);
  // Start shortlisted: two trials, and a total of two (not three).
  const startShortlisted = await confirm(bestPerK[1].params);
  assert.deepEqual(startShortlisted.confirmations.map((c) => [c.source, c.params.k]), [['pho', 3], ['pho', 5]]);
  assert.deepEqual(startShortlisted.measuredKs, [3, 5]);
  assert.equal(startShortlisted.total, 2);
  assert.deepEqual(startShortlisted.updates, [1, 2]);
  // Fewer window sizes than asked for: all of them, then the start.
  assert.deepEqual(confirmationShortlist(result, 9, { ...bestPerK[0].params, k: 7 }).map((c) => [c.source, c.params.k]), [['pho', 3], ['pho', 5], ['pho', 1], ['start', 7]]);
});

// An unknown proxy made every objective NaN and a sign of 0 every objective 0: the search then
// returned its start point as the best, without a word.
test('options a caller got wrong are refused naming them, before any candidate', async () => {
  const refuses = async (overrides: Record<string, unknown>, field: string, problem: RegExp) => {
    let reported = 0;
    await assert.rejects(runPho(context, options(overrides as Partial<PhoOptions>), () => reported++), { name: 'FieldError', field, problem }, field);
    assert.equal(reported, 0);
  };
  await refuses({ proxy: 'gini' }, 'proxy', /^"gini" is unknown; expected one of gini-own, gini-ref, /);
  await refuses({ sign: 0 }, 'sign', /^must be 1 or -1, got 0$/);
  await refuses({ sigma0: Number.NaN }, 'sigma0', /^must be a number in \(0, 18\], got NaN$/);
  await refuses({ budgetPerK: '8' }, 'budgetPerK', /got "8"$/);
  await refuses({ kSet: [2] }, 'kSet', /^expects odd window sizes in \[1, 63\], got 2$/);
  await refuses({ budget: 8 }, 'budget', /^is not a field of the request; did you mean budgetPerK\?$/);
});

// Its evaluator threads are gone after close(): a request to them was never answered (a hang).
test('a closed ProxyContext refuses to evaluate instead of waiting for ever; close() twice is harmless', async () => {
  const rng = new Rng(6);
  const windows = Array.from({ length: 2 }, () => Int32Array.from({ length: seqlen }, () => rng.below(spec.vocabSize)));
  const closing = await ProxyContext.open(randomModel(spec, 3), windows, seqlen, { device: 'cpu', threads: 1 }, {
    cacheDir: path.join(scratchDir('pho-closed'), 'proxy-cache'), cacheBudgetBytes: 2 ** 26, threads: 2, modelSha256: 'random-llama-3', calibrationSeed: 6, withGram: false, windows: [],
  });
  await closing.close();
  await closing.close();
  await assert.rejects(runPho(closing, options()), { name: 'UserError', message: /this ProxyContext is closed/ });
});
