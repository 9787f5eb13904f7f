// The package's types as a caller names them: the arguments and callbacks of the exported
// functions (a settings input, a hill climb's options and candidates, a search space, progress
// units) are exported from the package's entry, so a program can declare them before the call.
// This file does not compile where one of them is missing (`npm run typecheck`).
import assert from 'node:assert/strict';
import { it } from 'node:test';
import {
  parseTarget, pruneSettings, runHillClimb, type CacheReport, type CrepeParams, type HillClimbCandidate, type HillClimbOptions, type LinearReport,
  type OwlSettings, type ProgressEvent, type ProgressUnits, type PruneResult, type PruneSettingsInput, type SearchSpace, type ProxyContext,
} from '../../src/index.ts';

it('a caller declares a settings input, a search space and hill-climbing options by their exported names', async () => {
  const input: PruneSettingsInput = {
    method: 'crepe', target: parseTarget('0.5'), crepe: { k: 3, alpha: 1, beta: 2, gamma: 0.5 },
    calibration: { file: 'c4.jsonl', sha256: '', nsamples: 8, seqlen: 64, seed: 0 },
  };
  assert.deepEqual(pruneSettings(input).crepe, { k: 3, alpha: 1, beta: 2, gamma: 0.5, a: 0.5, variant: 'normalized', border: 'zero' });

  // A "perplexity" with its minimum at log β/α = 1, log γ/α = −1: the climb's first steps reach it.
  const space: SearchSpace = { searchA: false, fixedA: 0.5, variant: 'normalized' };
  const options: HillClimbOptions = { kSet: [3], space, budgetPerK: 8, initialStep: 1, minStep: 1 };
  const trial = async (p: CrepeParams) => ({ ppl: 10 + (Math.log(p.beta / p.alpha) - 1) ** 2 + (Math.log(p.gamma / p.alpha) + 1) ** 2 });
  const seen: HillClimbCandidate[] = [];
  const result = await runHillClimb(trial, options, (c) => seen.push(c));
  assert.ok(Math.abs(Math.log(result.best.params.beta) - 1) < 1e-12 && Math.abs(Math.log(result.best.params.gamma) + 1) < 1e-12, JSON.stringify(result.best.params));
  assert.equal(result.best.ppl, 10);
  assert.equal(seen.length, result.candidates.length);

  const units: ProgressUnits = { name: 'layers' };
  const event: ProgressEvent = { kind: 'start', stage: 'prune', done: 0, total: 5, units };
  assert.equal(event.units?.name, 'layers');
});

it('a caller names the sub-types of a prune\'s result and of a proxy context: a linear\'s report, OWL\'s settings, a proxy context\'s cache report', () => {
  // Each declared by name must be the type the result holds (assignable both ways).
  type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
  const linear: Same<LinearReport, PruneResult['layers'][number]['linears'][number]> = true;
  const owl: Same<OwlSettings, NonNullable<PruneResult['settings']['owl']>> = true;
  const cache: Same<CacheReport, ProxyContext['cache']> = true;
  assert.deepEqual([linear, owl, cache], [true, true, true]);
});
