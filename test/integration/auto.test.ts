// `prune --method crepe --auto` end to end on stories260K: a deliberately bad candidate injected
// beside PHO's is not chosen, the choice is no worse than the RIA point or the target's shipped
// default on the confirmation windows, and those windows overlap no statistics window.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { CrepeParams } from '../../src/prune/scores/crepe.ts';
import { pruneModel } from '../../src/workflows/prune.ts';
import { loadCrepeConfig } from '../../src/search/crepe-config.ts';
import { C4_SAMPLE, REPO_ROOT } from '../helpers/shared.ts';
import { scratchDir, storiesModelDir } from '../helpers/stories.ts';

const BAD: CrepeParams = { k: 9, alpha: 1, beta: 0.01, gamma: 50, a: 0.5, variant: 'normalized', border: 'zero' };

describe('prune --auto on stories260K', () => {
  let model: string;
  before(async () => {
    model = await storiesModelDir();
  });

  test('a deliberately bad extra candidate is not chosen; the choice is no worse than the RIA point or the shipped default; the report records it all', async () => {
    const out = path.join(scratchDir('auto'), 'pruned');
    const result = await pruneModel({
      model, out, method: 'crepe', target: { kind: 'unstructured', sparsity: 0.5 }, calib: C4_SAMPLE, nsamples: 4, seqlen: 64, seed: 1,
      auto: { budget: 4, kSet: [1, 3], confirm: 2, windows: 4, extraCandidates: [BAD] }, threads: 1,
    });
    const auto = result.auto!;
    assert.deepEqual(auto.candidates.map((c) => c.source.replace(/\d+$/, 'K')), ['ria-point', 'default configs/crepe-50.json', 'pho k=K', 'pho k=K', 'given']);
    const shipped = loadCrepeConfig(path.join(REPO_ROOT, 'configs/crepe-50.json'));
    assert.deepEqual(auto.candidates[1].params, { k: shipped.k, alpha: shipped.alpha, beta: shipped.beta, gamma: shipped.gamma, a: shipped.a, variant: shipped.variant, border: shipped.border });
    assert.notEqual(auto.chosen.source, 'given');
    const ria = auto.candidates[0].confirmationPpl;
    assert.ok(auto.chosen.confirmationPpl <= Math.min(ria, auto.candidates[1].confirmationPpl));
    assert.ok(auto.candidates[4].confirmationPpl > ria, `the bad candidate measured ${auto.candidates[4].confirmationPpl} ≤ RIA ${ria}`);
    // stories260K's 226,560 linear weights × a dozen candidates are far below the bound: all rows.
    assert.equal(auto.pho.rows, 1);
    // PHO searched k, β and γ with the shipped default's exponent and variant.
    assert.deepEqual([auto.pho.a, auto.pho.variant], [shipped.a, shipped.variant]);
    for (const c of auto.candidates.filter((c) => c.source.startsWith('pho'))) assert.deepEqual([c.params.a, c.params.variant], [shipped.a, shipped.variant]);
    assert.equal(auto.confirmation.windows, 4);
    for (const [doc, start] of auto.confirmation.draws) {
      assert.ok(!auto.confirmation.statisticsDraws.some(([d, s]) => d === doc && Math.abs(s - start) < 64));
    }
    assert.ok(auto.seconds.total >= auto.seconds.pho + auto.seconds.confirmation - 1e-6);
    assert.equal(result.crepeConfig?.source, 'auto');
    assert.deepEqual(
      { k: result.settings.crepe!.k, beta: result.settings.crepe!.beta, gamma: result.settings.crepe!.gamma },
      { k: auto.chosen.params.k, beta: auto.chosen.params.beta, gamma: auto.chosen.params.gamma },
    );
    assert.ok(!existsSync(`${out}.crepe-auto-cache`));
    // Written from the chosen candidate's confirmation masks: the model a plain prune with its parameters writes, byte for byte.
    assert.equal(auto.outputFromMasks, true);
    assert.ok(!existsSync(`${out}.crepe-auto-masks`));
    const plainOut = path.join(scratchDir('auto-plain'), 'pruned');
    const plain = await pruneModel({
      model, out: plainOut, method: 'crepe', target: { kind: 'unstructured', sparsity: 0.5 }, calib: C4_SAMPLE, nsamples: 4, seqlen: 64, seed: 1,
      crepe: { k: auto.chosen.params.k, alpha: auto.chosen.params.alpha, beta: auto.chosen.params.beta, gamma: auto.chosen.params.gamma, a: auto.chosen.params.a, variant: auto.chosen.params.variant }, threads: 1,
    });
    assert.deepEqual(plain.settings, result.settings);
    const sha = (dir: string) => createHash('sha256').update(readFileSync(path.join(dir, 'model.safetensors'))).digest('hex');
    assert.equal(sha(out), sha(plainOut));
    assert.deepEqual(result.layers.map((l) => l.linears.map((x) => x.pruned)), plain.layers.map((l) => l.linears.map((x) => x.pruned)));
  });
});
