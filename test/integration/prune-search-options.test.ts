/** Options beyond the basics: --exclude, --dsnot-same-sign, --blocksize, search --proxy-from, --config, --nll-on and --proxy-statistics, the cost-aware default proxy, the hidden old spellings. */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { SafetensorsWeights } from '../../src/io/safetensors.ts';
import { satisfiesNM } from '../../src/prune/mask.ts';
import { C4_SAMPLE, WIKITEXT_TEST } from '../helpers/shared.ts';
import { scratchDir, storiesModelDir } from '../helpers/stories.ts';
import { runCli } from '../helpers/cli.ts';

let model = '';
before(async () => {
  model = await storiesModelDir();
});

const quick = ['--calib', C4_SAMPLE, '--nsamples', '2', '--seqlen', '64', '--threads', '1'];

test('--exclude leaves the named linear dense in every layer while the others follow the pattern', async () => {
  const out = path.join(scratchDir('exclude'), 'pruned');
  const result = await runCli(['prune', model, '--method', 'wanda', '--pattern', '4:8', '--exclude', 'down_proj', ...quick, '--out', out]);
  assert.equal(result.status, 0, result.stderr);
  const weights = SafetensorsWeights.open(out);
  try {
    for (let layer = 0; layer < 5; layer++) {
      const down = weights.readF32(`model.layers.${layer}.mlp.down_proj.weight`);
      assert.equal(down.filter((v) => v === 0).length, 0, `layer ${layer} down_proj should be dense`);
      assert.ok(satisfiesNM(weights.readF32(`model.layers.${layer}.mlp.up_proj.weight`), 172, 64, 4, 8));
    }
  } finally {
    weights.close();
  }
  const report = JSON.parse(readFileSync(path.join(out, 'crepe-report.json'), 'utf8'));
  assert.deepEqual(report.settings.exclude, ['mlp.down_proj']);
  const down = report.layers[0].linears.find((l: { name: string }) => l.name === 'mlp.down_proj');
  assert.equal(down.pruned, 0);
  assert.equal(down.excluded, true);
});

test('--exclude with a name that is not a block linear is refused', async () => {
  const result = await runCli(['prune', model, '--method', 'wanda', '--sparsity', '0.5', '--exclude', 'lm_head', ...quick, '--out', path.join(scratchDir('exclude-bad'), 'x')]);
  assert.equal(result.status, 2);
  assert.match(result.stderr, /^crepe: --exclude "lm_head" is not a linear of a decoder block/);
});

test('--dsnot-same-sign is recorded and keeps every row\'s count', async () => {
  const out = path.join(scratchDir('dsnot'), 'pruned');
  const result = await runCli(['prune', model, '--method', 'wanda', '--sparsity', '0.5', '--dsnot', '--dsnot-same-sign', '--dsnot-cycles', '3', ...quick, '--out', out], { progress: true });
  assert.equal(result.status, 0, result.stderr);
  // 3 cycles on rows that keep 32 weights: under a quarter, no note.
  assert.doesNotMatch(result.stderr, /DSnoT: up to/);
  const report = JSON.parse(readFileSync(path.join(out, 'crepe-report.json'), 'utf8'));
  assert.equal(report.settings.dsnot.sameSign, true);
  const weights = SafetensorsWeights.open(out);
  try {
    const q = weights.readF32('model.layers.0.self_attn.q_proj.weight');
    for (let row = 0; row < 64; row++) assert.equal(q.subarray(row * 64, row * 64 + 64).filter((v) => v === 0).length, 32);
  } finally {
    weights.close();
  }
});

test('--dsnot with its default 50 cycles on stories260K\'s 64-wide rows prints one note before the prune, naming the row and a limit that fits', async () => {
  const out = path.join(scratchDir('dsnot-note'), 'pruned');
  const result = await runCli(['prune', model, '--method', 'wanda', '--sparsity', '0.5', '--dsnot', ...quick, '--out', out], { progress: true });
  assert.equal(result.status, 0, result.stderr);
  const notes = result.stderr.split('\n').filter((line) => line.startsWith('DSnoT: up to'));
  assert.deepEqual(notes, [
    "DSnoT: up to 50 swaps per row, on rows that keep about 32 weights (self_attn.q_proj, 64 inputs): enough to rewrite most of a row's mask. "
      + "The reference's limit suits rows of thousands; --dsnot-cycles 7 or fewer (dsnot.maxCycles) keeps the swaps under a quarter of what a row keeps",
  ]);
  assert.ok(result.stderr.indexOf(notes[0]) < result.stderr.indexOf('prune wanda'));
});

test('search --proxy-from takes the proxy with the largest |Spearman ρ| and that ρ\'s sign; --config sets the start and k', async () => {
  const dir = scratchDir('proxy-from');
  const validation = path.join(dir, 'validation.json');
  writeFileSync(validation, JSON.stringify({
    correlations: [
      { proxy: 'gini-ref', spearman: { estimate: 0.4 } },
      { proxy: 'pruned-mass', spearman: { estimate: -0.7 } },
    ],
  }));
  const start = path.join(dir, 'start.json');
  writeFileSync(start, JSON.stringify({ k: 5, alpha: 2, beta: 2 * Math.exp(3), gamma: 2 }));
  const out = path.join(dir, 'search');
  const result = await runCli(['search', model, ...quick, '--sparsity', '0.5', '--proxy-from', validation, '--config', start, '--budget', '6', '--out', out]);
  assert.equal(result.status, 0, result.stderr);
  const config = JSON.parse(readFileSync(path.join(out, 'crepe-config.json'), 'utf8'));
  assert.equal(config.provenance.proxy, 'pruned-mass');
  assert.equal(config.provenance.proxySign, -1);
  assert.deepEqual(config.provenance.kSet, [5]);
  assert.equal(config.k, 5);
  const log = JSON.parse(readFileSync(path.join(out, 'search-log.json'), 'utf8'));
  // The start point (log β/α = 3, not the default 0) is the centre of CMA-ES's first generation (σ₀ = 1.5, 6 samples).
  const meanLogBeta = log.candidates.slice(0, 6).reduce((s: number, c: { params: { beta: number } }) => s + Math.log(c.params.beta), 0) / 6;
  assert.ok(meanLogBeta > 1.5 && meanLogBeta < 4.5, `first generation centred near log β/α = 3, got ${meanLogBeta}`);
});

test('--blocksize beyond every layer\'s width is one block per layer: the same model as --blocksize 172 (the widest input)', async () => {
  const sha = async (blocksize: string): Promise<string> => {
    const out = path.join(scratchDir(`blocksize-${blocksize.length}`), 'pruned');
    const result = await runCli(['prune', model, '--method', 'sparsegpt', '--sparsity', '0.5', '--blocksize', blocksize, ...quick, '--out', out]);
    assert.equal(result.status, 0, result.stderr);
    return createHash('sha256').update(readFileSync(path.join(out, 'model.safetensors'))).digest('hex');
  };
  assert.equal(await sha('9007199254740991'), await sha('172'));
});

test('old flag spellings still work as hidden aliases: eval --ppl, search --k/--a/--variant/--heldout*', async () => {
  const viaNew = await runCli(['eval', model, '--eval-ppl', WIKITEXT_TEST, '--seqlen', '64', '--max-chunks', '3', '--json']);
  const viaOld = await runCli(['eval', model, '--ppl', WIKITEXT_TEST, '--eval-seqlen', '64', '--eval-max-chunks', '3', '--json']);
  assert.equal(viaNew.status, 0, viaNew.stderr);
  assert.equal(viaOld.status, 0, viaOld.stderr);
  const ppl = (run: { stdout: string }) => (JSON.parse(run.stdout) as { ppl: number; windows: number; seqlen: number });
  assert.deepEqual({ ...ppl(viaOld), seconds: 0 }, { ...ppl(viaNew), seconds: 0 });
  assert.equal(ppl(viaNew).windows, 3);

  const out = path.join(scratchDir('aliases'), 'search');
  const result = await runCli(['search', model, ...quick, '--sparsity', '0.5', '--k', '3', '--a', '0.75', '--variant', 'smooth', '--budget', '6',
    '--confirm', '1', '--heldout', WIKITEXT_TEST, '--heldout-seqlen', '32', '--heldout-max-chunks', '2', '--out', out]);
  assert.equal(result.status, 0, result.stderr);
  const config = JSON.parse(readFileSync(path.join(out, 'crepe-config.json'), 'utf8'));
  assert.equal(config.k, 3);
  assert.equal(config.a, 0.75);
  assert.equal(config.variant, 'smooth');
  assert.equal(config.provenance.heldout, WIKITEXT_TEST);
  // One PHO candidate confirmed, and the start configuration unless PHO's candidate is the start.
  const sources = config.provenance.confirmations.map((c: { source: string }) => c.source);
  assert.ok(JSON.stringify(sources) === '["pho","start"]' || JSON.stringify(sources) === '["pho"]', JSON.stringify(sources));
  const help = await runCli(['search', '--help']);
  for (const old of ['--k ', '--a ', '--variant', '--heldout']) assert.ok(!help.stdout.includes(old), `${old} is hidden from --help`);
});

test('search --nll-on heldout: calib-nll on --eval-ppl\'s first windows, the same number a dense confirmation on them measures; refused without --eval-ppl or for another proxy', async () => {
  const out = path.join(scratchDir('nll-on'), 'search');
  const heldout = ['--eval-ppl', WIKITEXT_TEST, '--eval-seqlen', '64'];
  const result = await runCli(['search', model, '--sparsity', '0.5', '--proxy', 'calib-nll', '--nll-on', 'heldout', '--nll-windows', '3', '--crepe-k', '3', '--budget', '4',
    '--confirm', '1', '--confirm-statistics', 'dense', '--confirm-windows', '3', ...heldout, ...quick, '--out', out]);
  assert.equal(result.status, 0, result.stderr);
  const config = JSON.parse(readFileSync(path.join(out, 'crepe-config.json'), 'utf8'));
  assert.equal(config.provenance.nllOn, 'heldout');
  assert.equal(config.provenance.nllWindows, 3);
  const log = JSON.parse(readFileSync(path.join(out, 'search-log.json'), 'utf8'));
  // The best candidate's calib-nll is the mean NLL of the same pruned model on the same 3 windows: log of its confirmation PPL.
  const confirmed = config.provenance.confirmations.find((c: { source: string }) => c.source === 'pho');
  const best = log.bestPerK[0];
  assert.equal(confirmed.beta, best.params.beta);
  assert.ok(Math.abs(Math.log(confirmed.heldoutPpl) - best.objective) < 1e-9, `${Math.log(confirmed.heldoutPpl)} vs ${best.objective}`);

  const refused = await runCli(['search', model, '--sparsity', '0.5', '--proxy', 'calib-nll', '--nll-on', 'heldout', '--budget', '2', ...quick, '--out', path.join(scratchDir('nll-on-bad'), 'x')]);
  assert.equal(refused.status, 2);
  assert.match(refused.stderr, /^crepe: --nll-on heldout needs --eval-ppl \(calib-nll is then measured on its first windows\)$/m);
  const otherProxy = await runCli(['search', model, '--sparsity', '0.5', '--proxy', 'gini-ref', '--nll-on', 'heldout', '--budget', '2', ...heldout, ...quick, '--out', path.join(scratchDir('nll-on-bad'), 'y')]);
  assert.equal(otherProxy.status, 2);
  assert.match(otherProxy.stderr, /^crepe: --nll-on applies to the calib-nll proxy only \(this search's proxy is gini-ref\)/);
});

/** The proxy notes of a 50 % search on stories260K (k = 3, 8 × 64 calibration) up to the first, where it is stopped before its dense pass. */
async function firstProxyNote(scratch: string, overrides: { budget: number; proxy?: 'gini-ref' }): Promise<string[]> {
  const { searchCoefficients } = await import('../../src/workflows/search.ts');
  const notes: string[] = [];
  const request = {
    model, out: path.join(scratchDir(scratch), 'x'), target: { kind: 'unstructured' as const, sparsity: 0.5 }, kSet: [3], ...overrides,
    calib: C4_SAMPLE, nsamples: 8, seqlen: 64, threads: 1,
    onProgress: (event: { kind: string; stage: string; detail?: string }) => {
      if (event.kind !== 'note' || event.stage !== 'proxy') return;
      notes.push(event.detail ?? '');
      throw new Error('stopped after the note');
    },
  };
  await assert.rejects(searchCoefficients(request), /stopped after the note/);
  return notes;
}

test('search without --proxy: where calib-nll\'s forward passes would cost the search more than 1e14 FLOPs, pruned-mass, with a note saying why', async () => {
  // stories260K costs 2 · 259,328 weights (linears and head) · 8 windows · 64 tokens ≈ 2.66e8 FLOPs per candidate: 400,000 candidates pass the bound.
  const notes = await firstProxyNote('default-proxy', { budget: 400_000 });
  assert.equal(notes.length, 1);
  assert.match(notes[0], /^proxy pruned-mass: 50 % validation: pruned-mass Spearman ρ \+0\.60 .*; calib-nll \(50 % validation: calib-nll .*\) would spend 106 TFLOP on forward passes in this search, more than the 100 TFLOP a default may \(--proxy calib-nll to use it anyway\)$/);
});

test('search with a per-linear proxy: where all rows would visit more than 2e11 weights, a one-digit fraction of them, with a note; --proxy-rows given is recorded, its cache holds that subset alone; refused for calib-nll', async () => {
  // stories260K's linears: 5 × (2 · 64·64 + 2 · 32·64 + 3 · 172·64) = 226,560 weights; 10⁶ candidates visit 2.27e11 → 0.88 → 0.8.
  const notes = await firstProxyNote('default-rows', { budget: 1_000_000, proxy: 'gini-ref' });
  assert.deepEqual(notes, ['proxy rows 0.8: gini-ref on a fixed random 80 % of each linear\'s rows; all rows would visit 2.3e11 weights in this search, more than the 2e11 a default may (--proxy-rows 1 for all rows)']);

  const out = path.join(scratchDir('default-rows'), 'given');
  const result = await runCli(['search', model, '--sparsity', '0.5', '--proxy', 'pruned-mass', '--proxy-rows', '0.5', '--crepe-k', '3', '--budget', '3', ...quick, '--out', out]);
  assert.equal(result.status, 0, result.stderr);
  const { provenance } = JSON.parse(readFileSync(path.join(out, 'crepe-config.json'), 'utf8'));
  assert.equal(provenance.proxyRows, 0.5);
  assert.equal(provenance.proxyRowsSource, 'given (proxyRows)');
  // Nothing in this search needs whole matrices: its cache holds the subset's files alone.
  assert.deepEqual(readdirSync(`${out}.proxy-cache`).sort(), ['manifest.json', 'rows-0.5-seed0']);
  assert.deepEqual(JSON.parse(readFileSync(path.join(out, 'search-log.json'), 'utf8')).proxyCache.rowsOnly, { fraction: 0.5, seed: 0 });
  const refused = await runCli(['search', model, '--sparsity', '0.5', '--proxy', 'calib-nll', '--proxy-rows', '0.5', '--budget', '2', ...quick, '--out', path.join(scratchDir('default-rows'), 'y')]);
  assert.equal(refused.status, 2);
  assert.match(refused.stderr, /^crepe: --proxy-rows applies to the per-linear proxies only \(calib-nll prunes every row of every linear\)$/m);
});

test('search --proxy-statistics start: the proxies prune with the statistics of the model the start configuration prunes, recorded in the provenance; refused by hill climbing', async () => {
  const out = path.join(scratchDir('proxy-statistics'), 'search');
  const result = await runCli(['search', model, '--sparsity', '0.5', '--proxy', 'gini-ref', '--proxy-statistics', 'start', '--crepe-k', '3,5', '--budget', '3', ...quick, '--out', out]);
  assert.equal(result.status, 0, result.stderr);
  const config = JSON.parse(readFileSync(path.join(out, 'crepe-config.json'), 'utf8'));
  assert.deepEqual(config.provenance.proxyStatistics, { from: { k: 3, alpha: 1, beta: 1, gamma: 1, a: 0.5, variant: 'normalized', border: 'zero' } });
  const dense = path.join(scratchDir('proxy-statistics'), 'dense');
  assert.equal((await runCli(['search', model, '--sparsity', '0.5', '--proxy', 'gini-ref', '--crepe-k', '3,5', '--budget', '3', ...quick, '--out', dense])).status, 0);
  assert.equal(JSON.parse(readFileSync(path.join(dense, 'crepe-config.json'), 'utf8')).provenance.proxyStatistics, 'dense');
  const refused = await runCli(['search', model, '--strategy', 'hillclimb', '--sparsity', '0.5', '--proxy-statistics', 'start', '--eval-ppl', WIKITEXT_TEST, ...quick, '--out', path.join(scratchDir('proxy-statistics'), 'x')]);
  assert.equal(refused.status, 2);
  assert.match(refused.stderr, /^crepe: --proxy-statistics applies to PHO and --validate only \(hill climbing measures each trial for real\)$/m);
});
