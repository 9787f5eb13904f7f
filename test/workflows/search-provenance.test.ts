// What a search's outputs carry for a researcher who reproduces it: the crepe version, the sha256 of
// every input (calibration file and windows, held-out text, each weight file), the held-out window
// and window count, the start configuration, searchA, sigma0 and giniSubsample; and PHO's progress,
// whose total is the evaluations CMA-ES makes (whole generations), not the budget asked for.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { FieldError, parseTarget, pruneModel, searchCoefficients, type ProgressEvent } from '../../src/index.ts';
import { phoEvaluationsPerK } from '../../src/search/pho.ts';
import { C4_SAMPLE, PTB_VALID, REPO_ROOT } from '../helpers/shared.ts';
import { scratchDir, storiesModelDir } from '../helpers/stories.ts';

const sha256 = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');
const readJson = (file: string): Record<string, unknown> => JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
const version = (readJson(path.join(REPO_ROOT, 'package.json')) as { version: string }).version;

let model = '';
before(async () => {
  model = await storiesModelDir();
});

describe('a search as a researcher reproduces it', () => {
  it('phoEvaluationsPerK: the budget rounded up to whole generations (λ = 6, 7 with a)', () => {
    const space = { searchA: false, fixedA: 0.5, variant: 'normalized' as const };
    assert.deepEqual([1, 6, 7, 12, 13, 60].map((b) => phoEvaluationsPerK(b, space)), [6, 6, 12, 12, 18, 60]);
    assert.deepEqual([1, 7, 8, 60].map((b) => phoEvaluationsPerK(b, { ...space, searchA: true })), [7, 7, 14, 63]);
  });

  it('PHO: progress counts the evaluations made; the provenance names every input and option', async () => {
    const parent = scratchDir('search-provenance');
    const start = path.join(parent, 'start.json');
    writeFileSync(start, JSON.stringify({ k: 3, alpha: 2, beta: 1, gamma: 0.5, a: 0.5 }));
    const events: ProgressEvent[] = [];
    const out = path.join(parent, 'found');
    const result = await searchCoefficients({
      model, out, target: parseTarget('0.5'), calib: C4_SAMPLE, nsamples: 2, seqlen: 64, threads: 1,
      budget: 1, kSet: [1, 3], proxy: 'gini-ref', searchA: true, crepeConfig: start,
      confirm: 1, evalText: PTB_VALID, evalSeqlen: 32, evalMaxChunks: 2,
      onProgress: (event) => events.push(event),
    });
    assert.equal(result.kind, 'pho');

    // 2 window sizes × one generation of 7 (three coordinates): 14 candidates, as the progress says.
    const pho = events.filter((e) => e.stage.startsWith('PHO'));
    const log = readJson(path.join(out, 'search-log.json')) as { candidates: unknown[] };
    assert.equal(log.candidates.length, 14);
    assert.ok(pho.every((e) => e.total === 14 && e.done <= e.total), JSON.stringify(pho.map((e) => [e.kind, e.done, e.total])));
    assert.deepEqual(pho.filter((e) => e.kind === 'update').map((e) => e.done), Array.from({ length: 14 }, (_, i) => i + 1));

    const config = readJson(path.join(out, 'crepe-config.json'));
    const provenance = config.provenance as Record<string, unknown>;
    assert.equal(provenance.crepeVersion, version);
    const weights = sha256(path.join(model, 'model.safetensors'));
    assert.equal(provenance.modelSha256, weights);
    assert.deepEqual(provenance.modelFilesSha256, { 'model.safetensors': weights });
    const calibration = provenance.calibration as Record<string, unknown>;
    assert.equal(calibration.sha256, sha256(C4_SAMPLE));
    assert.deepEqual({ ...calibration, sha256: undefined, windowsSha256: undefined }, { file: C4_SAMPLE, sha256: undefined, nsamples: 2, seqlen: 64, seed: 0, windowsSha256: undefined });
    // The windows the proxy cache was keyed on.
    const manifest = readJson(path.join(`${out}.proxy-cache`, 'manifest.json')) as { identity: { calibration: { windowsSha256: string } } };
    assert.equal(calibration.windowsSha256, manifest.identity.calibration.windowsSha256);
    assert.equal(provenance.heldout, PTB_VALID);
    assert.deepEqual(provenance.heldoutText, { textSha256: sha256(PTB_VALID), seqlen: 32, maxChunks: 2 });
    assert.deepEqual(provenance.start, { file: start, k: 3, alpha: 2, beta: 1, gamma: 0.5, a: 0.5, variant: 'normalized', border: 'zero' });
    assert.equal(provenance.searchA, true);
    assert.equal(provenance.sigma0, 1.5);
    assert.equal(provenance.giniSubsample, 65536);
    assert.equal(provenance.budgetPerK, 1);
    assert.equal(provenance.evaluations, 14);
  });

  it('hill climbing: the held-out window it measured on, no start configuration', async () => {
    const out = path.join(scratchDir('search-provenance-hc'), 'found');
    await searchCoefficients({
      model, out, strategy: 'hillclimb', target: parseTarget('2:4'), calib: C4_SAMPLE, nsamples: 2, seqlen: 64, threads: 1,
      budget: 1, kSet: [3], evalText: PTB_VALID, evalMaxChunks: 1,
    });
    const provenance = readJson(path.join(out, 'crepe-config.json')).provenance as Record<string, unknown>;
    assert.deepEqual(provenance.heldoutText, { textSha256: sha256(PTB_VALID), seqlen: 64, maxChunks: 1 });
    assert.equal(provenance.start, null);
    assert.equal(provenance.searchA, false);
    assert.equal(provenance.crepeVersion, version);
  });

  it('validation: the result\'s subsample is typed (it was `unknown`), and validation.json carries the provenance', async () => {
    const out = path.join(scratchDir('search-provenance-validate'), 'validation');
    const result = await searchCoefficients({
      model, out, validate: 3, kSet: [3], proxyRows: 0.5, target: parseTarget('0.5'), calib: C4_SAMPLE, nsamples: 2, seqlen: 64, threads: 1,
      evalText: PTB_VALID, evalMaxChunks: 1,
    });
    assert.equal(result.kind, 'validation');
    if (result.kind !== 'validation') return;
    const subsample: { rows: number; proxies: Array<{ proxy: string; spearmanWithFull: number }> } | null = result.subsample;
    assert.equal(subsample?.rows, 0.5);
    assert.ok(subsample.proxies.length > 0 && subsample.proxies.every((p) => p.spearmanWithFull >= -1 && p.spearmanWithFull <= 1));
    const provenance = readJson(path.join(out, 'validation.json')).provenance as Record<string, unknown>;
    assert.deepEqual(provenance.heldoutText, { textSha256: sha256(PTB_VALID), seqlen: 64, maxChunks: 1 });
    assert.equal(provenance.crepeVersion, version);
  });

  it('a start configuration\'s a and variant are searched from, not replaced by the defaults; its border "mean" is refused (the candidates pad with zeros)', async () => {
    const parent = scratchDir('search-start-config');
    const start = path.join(parent, 'start.json');
    writeFileSync(start, JSON.stringify({ k: 3, alpha: 1, beta: 2, gamma: 0.5, a: 0.8, variant: 'smooth' }));
    const request = {
      model, target: parseTarget('0.5'), calib: C4_SAMPLE, nsamples: 2, seqlen: 64, threads: 1,
      strategy: 'hillclimb' as const, budget: 1, crepeConfig: start, evalText: PTB_VALID, evalMaxChunks: 1,
    };
    // One trial: the start itself, as the file gives it (a had become 0.5 and the variant normalized).
    const result = await searchCoefficients({ ...request, out: path.join(parent, 'found') });
    assert.equal(result.kind, 'hillclimb');
    if (result.kind !== 'hillclimb') return;
    const { format, provenance, ...found } = result.config;
    assert.deepEqual(found, { k: 3, alpha: 1, beta: 2, gamma: 0.5, a: 0.8, variant: 'smooth', border: 'zero' });
    // Given explicitly, the request's own a and variant still win.
    const overridden = await searchCoefficients({ ...request, out: path.join(parent, 'overridden'), crepe: { a: 0.5, variant: 'normalized' } });
    assert.ok(overridden.kind === 'hillclimb' && overridden.config.a === 0.5 && overridden.config.variant === 'normalized');

    const mean = path.join(parent, 'mean.json');
    writeFileSync(mean, JSON.stringify({ k: 3, alpha: 1, beta: 2, gamma: 0.5, border: 'mean' }));
    await assert.rejects(searchCoefficients({ ...request, out: path.join(parent, 'refused'), crepeConfig: mean }),
      (error: Error) => error instanceof FieldError && error.field === 'crepeConfig' && error.problem.startsWith(`${mean}: border "mean" cannot be searched`));
  });

  it('an onProgress that throws when a stage starts stops the search with the proxy cache closed: no lock left, no worker keeping the process alive', async () => {
    const parent = scratchDir('search-throwing-progress');
    for (const stage of ['dense statistics', 'PHO', 'validate']) {
      const out = path.join(parent, stage.replace(/ /g, '-'));
      const onProgress = (event: ProgressEvent) => {
        if (event.stage.startsWith(stage) && event.kind !== 'note') throw new Error(`display failed at ${event.stage} ${event.kind}`);
      };
      const validate = stage === 'validate' ? { validate: 3, evalText: PTB_VALID, evalMaxChunks: 1 } : { budget: 1 };
      await assert.rejects(
        searchCoefficients({ model, out, target: parseTarget('0.5'), calib: C4_SAMPLE, nsamples: 2, seqlen: 64, threads: 1, kSet: [3], proxy: stage === 'validate' ? undefined : 'gini-ref', ...validate, onProgress }),
        { message: new RegExp(`^display failed at ${stage}`) },
      );
      // The cache stays for the next run (it is complete after the dense pass), its lock and the output's do not.
      assert.deepEqual(readdirSync(parent).filter((name) => name.startsWith(path.basename(out))).sort(), stage === 'dense statistics' ? [] : [`${path.basename(out)}.proxy-cache`], stage);
    }
  });

  it('a window size larger than a linear of the model is refused before the dense pass (PHO had written a k = 63 configuration that no prune of the model accepts)', async () => {
    const parent = scratchDir('search-k-too-large');
    const out = path.join(parent, 'found');
    await assert.rejects(
      searchCoefficients({ model, out, target: parseTarget('0.5'), calib: C4_SAMPLE, nsamples: 2, seqlen: 64, threads: 1, budget: 1, kSet: [3, 63], proxy: 'gini-ref' }),
      (error: Error) => error instanceof FieldError && error.field === 'kSet' && error.problem === '63 is larger than the smallest pruned matrix dimension of this model (32)',
    );
    assert.deepEqual(readdirSync(parent), []);
    // A start configuration at such a k, its k searched by default.
    const start = path.join(scratchDir('search-k-too-large-start'), 'start.json');
    writeFileSync(start, JSON.stringify({ k: 33, alpha: 1, beta: 1, gamma: 1 }));
    await assert.rejects(
      searchCoefficients({ model, out, target: parseTarget('0.5'), calib: C4_SAMPLE, nsamples: 2, seqlen: 64, threads: 1, budget: 1, crepeConfig: start }),
      (error: Error) => !(error instanceof FieldError) && error.message === `${start}: k 33 is larger than the smallest pruned matrix dimension of this model (32)`,
    );
    // prune's auto: refused before its search (it had searched for 13 s, then refused the chosen k as crepe.k).
    await assert.rejects(
      pruneModel({ model, out, method: 'crepe', target: parseTarget('0.5'), calib: C4_SAMPLE, nsamples: 2, seqlen: 64, threads: 1, auto: { budget: 1, kSet: [3, 63] } }),
      (error: Error) => error instanceof FieldError && error.field === 'auto.kSet' && error.problem === '63 is larger than the smallest pruned matrix dimension of this model (32)',
    );
    assert.deepEqual(readdirSync(parent), []);
  });
});
