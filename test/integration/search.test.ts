// `crepe search` end to end on stories260K (converted here), kept small: 4 calibration windows of
// 64 tokens, two window sizes, a dozen proxy evaluations each, 3 validation points on 2 held-out windows.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseCrepeConfig } from '../../src/search/crepe-config.ts';
import { LINEAR_PROXY_NAMES, PROXY_NAMES } from '../../src/search/proxy.ts';
import { C4_SAMPLE, PTB_VALID } from '../helpers/shared.ts';
import { scratchDir, storiesModelDir } from '../helpers/stories.ts';
import { runCli } from '../helpers/cli.ts';
import { heldCalibrationWindows } from '../helpers/held-calibration.ts';
import { ModelCheckpoint } from '../../src/model/checkpoint.ts';
import { modelEncoder } from '../../src/workflows/common.ts';
import { sampleCalibrationFile } from '../../src/data/calibration.ts';
import { concatWindows, confirmationWindows } from '../../src/search/auto.ts';
import { pruneAndMeasure } from '../../src/search/trial.ts';
import { pruneSettings } from '../../src/prune/settings.ts';

const SMALL = ['--calib', C4_SAMPLE, '--nsamples', '4', '--seqlen', '64', '--sparsity', '0.5', '--crepe-k', '1,3', '--threads', '1'];

const readJson = (file: string): Record<string, unknown> => JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;

describe('crepe search on stories260K', () => {
  let model: string;
  before(async () => {
    model = await storiesModelDir();
  });

  test('PHO: exit 0, a parseable crepe-config.json with provenance, a search log of every candidate', async () => {
    const out = path.join(scratchDir('pho'), 'found');
    const result = await runCli(['search', model, ...SMALL, '--budget', '12', '--out', out, '--json']);
    assert.equal(result.status, 0, result.stderr);
    const printed = JSON.parse(result.stdout) as { kind: string; out: string };
    assert.equal(printed.kind, 'pho');
    assert.equal(printed.out, out);
    assert.deepEqual(readdirSync(out).sort(), ['.crepe-output', 'crepe-config.json', 'search-log.json']);

    const configFile = path.join(out, 'crepe-config.json');
    const config = parseCrepeConfig(readJson(configFile), configFile);
    assert.ok([1, 3].includes(config.k));
    assert.equal(config.alpha, 1);
    assert.equal(config.a, 0.5);
    const provenance = config.provenance!;
    assert.equal(provenance.strategy, 'pho');
    // The default proxy for 50 % unstructured is the one validated best there (src/search/proxy-defaults.ts).
    assert.equal(provenance.proxy, 'calib-nll');
    assert.equal(provenance.proxySign, 1);
    assert.match(String(provenance.proxySignSource), /^default: 50 % validation: calib-nll/);
    assert.deepEqual(provenance.kSet, [1, 3]);
    assert.equal(provenance.budgetPerK, 12);
    assert.equal(provenance.model, model);
    assert.match(String(provenance.modelSha256), /^[0-9a-f]{64}$/);
    const calibration = provenance.calibration as { sha256: string; windowsSha256: string };
    assert.deepEqual(calibration, { file: C4_SAMPLE, sha256: calibration.sha256, nsamples: 4, seqlen: 64, seed: 0, windowsSha256: calibration.windowsSha256 });
    assert.match(calibration.sha256, /^[0-9a-f]{64}$/);
    assert.deepEqual(provenance.target, { kind: 'unstructured', sparsity: 0.5 });

    const log = readJson(path.join(out, 'search-log.json')) as {
      strategy: string;
      candidates: Array<{ k: number; params: { k: number; beta: number; gamma: number }; proxies: Record<string, number | null>; objective: number; seconds: number }>;
      bestPerK: Array<{ k: number; objective: number }>;
    };
    assert.equal(log.strategy, 'pho');
    // λ = 6 for two coordinates: two generations of 6 reach the budget of 12 for each k.
    assert.equal(log.candidates.length, provenance.evaluations);
    assert.equal(log.candidates.filter((c) => c.k === 1).length, 12);
    assert.equal(log.candidates.filter((c) => c.k === 3).length, 12);
    for (const c of log.candidates) {
      assert.equal(typeof c.proxies['calib-nll'], 'number');
      assert.equal(c.objective, c.proxies['calib-nll']);
      assert.ok(c.seconds >= 0);
    }
    // The configuration written is the candidate with the lowest objective.
    const best = log.candidates.reduce((a, b) => (b.objective < a.objective ? b : a));
    assert.equal(config.k, best.k);
    assert.equal(config.beta, best.params.beta);
    assert.equal(config.gamma, best.params.gamma);
    assert.equal(provenance.proxyValue, best.proxies['calib-nll']);
    assert.deepEqual(log.bestPerK.map((b) => b.k), [1, 3]);
  });

  test('--validate 3 --proxy-rows 0.5: validation.json with correlations for every available proxy, the row subset\'s fidelity, one SVG per proxy', async () => {
    const out = path.join(scratchDir('validate'), 'validation');
    const result = await runCli(['search', model, ...SMALL, '--validate', '3', '--proxy-rows', '0.5', '--eval-ppl', PTB_VALID, '--eval-max-chunks', '2', '--out', out, '--json']);
    assert.equal(result.status, 0, result.stderr);
    assert.equal((JSON.parse(result.stdout) as { kind: string }).kind, 'validation');
    // stories260K's grams are small, so output-error is available too: all five proxies.
    const expectedFiles = ['.crepe-output', 'validation.json', ...PROXY_NAMES.map((p) => `proxy-${p}.svg`)].sort();
    assert.deepEqual(readdirSync(out).sort(), expectedFiles);

    const validation = readJson(path.join(out, 'validation.json')) as {
      points: Array<{ params: { k: number }; proxies: Record<string, number>; subsampledProxies: Record<string, number>; ppl: number }>;
      correlations: Array<{ proxy: string; spearman: { estimate: number }; pearson: { estimate: number }; sign: number }>;
      subsample: { rows: number; proxies: Array<{ proxy: string; spearmanWithFull: number; spearman: { estimate: number } }> };
      proxyCache: { dir: string; layersBuilt: number; numLayers: number };
      peakRssBytes: number;
    };
    assert.equal(validation.subsample.rows, 0.5);
    // The row subset applies to the per-linear proxies only (calib-nll runs the whole model).
    assert.deepEqual(validation.subsample.proxies.map((p) => p.proxy), [...LINEAR_PROXY_NAMES]);
    for (const p of validation.subsample.proxies) {
      const full = validation.points.map((point) => point.proxies[p.proxy]);
      const sub = validation.points.map((point) => point.subsampledProxies[p.proxy]);
      assert.notDeepEqual(sub, full, p.proxy);
      assert.ok([-1, -0.5, 0.5, 1].some((v) => Math.abs(p.spearmanWithFull - v) < 1e-12), `${p.proxy}: ρ(sub, full) = ${p.spearmanWithFull}`);
    }
    assert.deepEqual(validation.proxyCache, { ...validation.proxyCache, dir: `${out}.proxy-cache`, layersBuilt: 5, numLayers: 5 });
    assert.ok(validation.peakRssBytes > 1e7);
    assert.equal(validation.points.length, 3);
    for (const p of validation.points) {
      assert.ok([1, 3].includes(p.params.k));
      assert.ok(Number.isFinite(p.ppl) && p.ppl > 1, `PPL ${p.ppl}`);
      for (const name of PROXY_NAMES) assert.equal(typeof p.proxies[name], 'number', name);
    }
    assert.deepEqual(validation.correlations.map((c) => c.proxy), [...PROXY_NAMES]);
    for (const c of validation.correlations) {
      // Three points: Spearman is one of −1, −0.5, 0.5, 1 (no ties expected).
      assert.ok([-1, -0.5, 0.5, 1].some((v) => Math.abs(c.spearman.estimate - v) < 1e-12), `${c.proxy}: ρ = ${c.spearman.estimate}`);
      assert.ok(Math.abs(c.pearson.estimate) <= 1 + 1e-12);
      assert.equal(c.sign, c.spearman.estimate >= 0 ? 1 : -1);
    }
    for (const name of PROXY_NAMES) {
      const svg = readFileSync(path.join(out, `proxy-${name}.svg`), 'utf8');
      assert.ok(svg.startsWith('<svg'));
      assert.equal((svg.match(/<circle /g) ?? []).length, 3);
      assert.ok(!svg.includes('NaN'), `${name}.svg has NaN`);
    }
  });

  test('the search result is unchanged by the cached, threaded proxy: best configurations recorded with the in-memory implementation (commit fa23197)', async () => {
    const calib = ['--calib', C4_SAMPLE];
    const cases = [
      // 50 % per matrix, gini-ref, k ∈ {1, 3}, 12 candidates each, one thread.
      { args: [...calib, '--nsamples', '4', '--seqlen', '64', '--sparsity', '0.5', '--crepe-k', '1,3', '--threads', '1', '--budget', '12', '--proxy', 'gini-ref'],
        best: { k: 1, beta: 1.2448118991777875, gamma: 0.02820127620904844, a: 0.5 }, proxyValue: 0.36118518939268346 },
      // a searched too, exact Gini, seed 7, two evaluator threads.
      { args: [...calib, '--nsamples', '8', '--seqlen', '128', '--sparsity', '0.5', '--crepe-k', '1,3,5', '--threads', '2', '--budget', '24', '--seed', '7', '--search-a', '--gini-subsample', 'exact', '--proxy', 'gini-ref'],
        best: { k: 3, beta: 2.57756249392858, gamma: 0.023841199669306992, a: 0.7374561589780236 }, proxyValue: 0.35796569782225196 },
      // 2:4 with the pruned-mass proxy.
      { args: [...calib, '--nsamples', '8', '--seqlen', '128', '--pattern', '2:4', '--crepe-k', '3,5', '--threads', '1', '--budget', '18', '--seed', '3', '--proxy', 'pruned-mass'],
        best: { k: 3, beta: 0.8106946769219612, gamma: 0.08508951393907899, a: 0.5 }, proxyValue: 0.25011471360204046 },
    ];
    for (const { args, best, proxyValue } of cases) {
      const out = path.join(scratchDir('unchanged'), 'found');
      const result = await runCli(['search', model, ...args, '--out', out, '--json']);
      assert.equal(result.status, 0, result.stderr);
      const config = readJson(path.join(out, 'crepe-config.json')) as { k: number; beta: number; gamma: number; a: number; provenance: { proxyValue: number } };
      assert.deepEqual({ k: config.k, beta: config.beta, gamma: config.gamma, a: config.a }, best, args.join(' '));
      // The proxy's arithmetic is compared bit for bit in test/search/proxy-cache.test.ts; here its inputs, the dense
      // pass's statistics, come from the float32 block graph, whose operators (fused rotary, residual in the Gemm)
      // move them in the last bits since the value was recorded: 1e-9 relative.
      assert.ok(Math.abs(config.provenance.proxyValue - proxyValue) <= 1e-8 * proxyValue, `${config.provenance.proxyValue} vs ${proxyValue}`);
    }
  });

  test('--proxy-cache shared by a search and a validation; refused (exit 2, one line naming it) for other calibration settings', async () => {
    const parent = scratchDir('shared-cache');
    const cache = path.join(parent, 'cache');
    const first = await runCli(['search', model, ...SMALL, '--budget', '6', '--proxy-cache', cache, '--out', path.join(parent, 'a'), '--json']);
    assert.equal(first.status, 0, first.stderr);
    assert.ok((JSON.parse(first.stdout) as { denseSeconds: number }).denseSeconds > 0);
    const second = await runCli(['search', model, ...SMALL, '--validate', '3', '--eval-ppl', PTB_VALID, '--eval-max-chunks', '1', '--proxy-cache', cache, '--out', path.join(parent, 'b'), '--json'], { progress: true });
    assert.equal(second.status, 0, second.stderr);
    assert.equal((JSON.parse(second.stdout) as { denseSeconds: number }).denseSeconds, 0);
    assert.match(second.stderr, new RegExp(`reusing the proxy cache ${cache}`));
    // A search on the complete cache spends no time on the dense pass and still records what it cost.
    const third = await runCli(['search', model, ...SMALL, '--budget', '6', '--proxy-cache', cache, '--out', path.join(parent, 'e')]);
    assert.equal(third.status, 0, third.stderr);
    type Timing = { provenance: { denseStatisticsSeconds: number; cacheTermsSeconds: number } };
    const built = (JSON.parse(readFileSync(path.join(parent, 'a', 'crepe-config.json'), 'utf8')) as Timing).provenance;
    const reused = (JSON.parse(readFileSync(path.join(parent, 'e', 'crepe-config.json'), 'utf8')) as Timing).provenance;
    assert.ok(built.denseStatisticsSeconds > 0);
    // The terms' part of the build, without its forward passes: a part of the whole build of the run that built it all.
    assert.ok(built.cacheTermsSeconds > 0 && built.cacheTermsSeconds < built.denseStatisticsSeconds, JSON.stringify(built));
    assert.equal((built as Record<string, unknown>).densePassSeconds, undefined, 'the old name read as the whole dense pass');
    assert.equal(reused.denseStatisticsSeconds, 0);
    assert.equal(reused.cacheTermsSeconds, built.cacheTermsSeconds);

    const other = SMALL.map((arg, i) => (SMALL[i - 1] === '--nsamples' ? '5' : arg));
    const refused = await runCli(['search', model, ...other, '--budget', '6', '--proxy-cache', cache, '--out', path.join(parent, 'c')]);
    assert.equal(refused.status, 2, refused.stderr);
    const lines = refused.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, refused.stderr);
    assert.match(lines[0], new RegExp(`^crepe: proxy cache ${cache}: it was built from other inputs \\(calibration\\.nsamples is 4 there, 5 here\\)`));
    assert.ok(!existsSync(path.join(parent, 'c')));

    const inside = await runCli(['search', model, ...SMALL, '--proxy-cache', path.join(parent, 'd', 'cache'), '--out', path.join(parent, 'd')]);
    assert.equal(inside.status, 2, inside.stderr);
    assert.match(inside.stderr, /^crepe: --proxy-cache \S+\/d\/cache is inside the output directory \S+\/d, which is replaced when the search ends; name a directory outside it\n$/);
    assert.ok(!existsSync(path.join(parent, 'd')));
  });

  test('--confirm-on calibration: confirmed on held-out calibration windows (no --eval-ppl), their PPL that of a real prune on exactly those windows', async () => {
    const out = path.join(scratchDir('confirm-calibration'), 'found');
    const args = ['search', model, ...SMALL, '--budget', '6', '--confirm', '2', '--confirm-on', 'calibration', '--confirm-windows', '3', '--confirm-statistics', 'sequential', '--out', out];
    const result = await runCli(args);
    assert.equal(result.status, 0, result.stderr);
    const config = readJson(path.join(out, 'crepe-config.json')) as Record<string, number> & {
      provenance: { strategy: string; confirmations: Array<{ source: string; k: number; beta: number; gamma: number; heldoutPpl: number }>; confirmation: { on: string; statistics: string; windows: number; draws: Array<[number, number]> } };
    };
    const { confirmation, confirmations } = config.provenance;
    assert.equal(config.provenance.strategy, 'pho+confirm');
    assert.equal(confirmation.on, 'calibration');
    assert.equal(confirmation.statistics, 'sequential');
    assert.equal(confirmation.windows, 3);
    // The draw continued past the 4 statistics windows (same seed), overlapping none of them.
    const spec = ModelCheckpoint.open(model);
    const encode = modelEncoder(model, spec.spec);
    const continued = sampleCalibrationFile(C4_SAMPLE, (text) => encode(text, C4_SAMPLE), { nsamples: 4 + 4 * 3, seqlen: 64, seed: 0, hiddenSize: spec.spec.hiddenSize });
    const held = confirmationWindows(continued, 4, 3, 64);
    assert.deepEqual(confirmation.draws, held.draws);
    for (const [doc, start] of held.draws) {
      assert.ok(continued.draws.slice(0, 4).every(([d, s]) => d !== doc || Math.abs(s - start) >= 64), `held-out window ${doc}:${start} overlaps a statistics window`);
    }
    // Two PHO candidates and the start configuration; the chosen one has the lowest confirmation PPL.
    assert.deepEqual(confirmations.map((c) => c.source), ['pho', 'pho', 'start']);
    const lowest = confirmations.reduce((a, b) => (b.heldoutPpl < a.heldoutPpl ? b : a));
    assert.deepEqual([config.k, config.beta, config.gamma], [lowest.k, lowest.beta, lowest.gamma]);
    // Each confirmation PPL is a real sequential prune measured on those 3 windows.
    try {
      for (const c of confirmations) {
        const params = { k: c.k, alpha: 1, beta: c.beta, gamma: c.gamma, a: 0.5, variant: 'normalized' as const, border: 'zero' as const };
        const settings = pruneSettings({ method: 'crepe', target: { kind: 'unstructured', sparsity: 0.5 }, selection: 'per-matrix', crepe: params, calibration: { file: C4_SAMPLE, sha256: '', nsamples: 4, seqlen: 64, seed: 0 } });
        const measured = await pruneAndMeasure(spec, settings, continued.windows.slice(0, 4), { tokens: concatWindows(held.windows), seqlen: 64, maxChunks: 3 }, { device: 'cpu', threads: 1 });
        assert.ok(Math.abs(measured.ppl - c.heldoutPpl) <= 1e-9 * c.heldoutPpl, `k=${c.k}: ${measured.ppl} vs ${c.heldoutPpl}`);
      }
    } finally {
      spec.close();
    }
    // Unknown values are refused with one line.
    const refused = await runCli(['search', model, ...SMALL, '--confirm', '1', '--confirm-on', 'ptb', '--out', path.join(scratchDir('confirm-on-bad'), 'x')]);
    assert.equal(refused.status, 2, refused.stderr);
    assert.match(refused.stderr, /^crepe: .*--confirm-on.*ptb/);
  });

  test('confirmation windows a text cannot supply: --confirm-windows refused naming how many it holds (both texts); the calibration default takes those with a note', async () => {
    const dir = scratchDir('confirm-short');
    const short = path.join(dir, 'short.txt');
    writeFileSync(short, readFileSync(PTB_VALID, 'utf8').slice(0, 4000));
    const args = (calib: string) => ['search', model, '--calib', calib, '--nsamples', '4', '--seqlen', '64', '--sparsity', '0.5', '--crepe-k', '1', '--threads', '1', '--budget', '6', '--confirm', '1'];
    const held = heldCalibrationWindows(model, short, { nsamples: 4, count: 32, seqlen: 64 });
    assert.ok(held > 0 && held < 32, `${held} windows`);
    const refused = await runCli([...args(short), '--confirm-on', 'calibration', '--confirm-windows', '32', '--out', path.join(dir, 'a')]);
    assert.equal(refused.status, 2, refused.stderr);
    assert.equal(refused.stderr, `crepe: --confirm-windows 32 is more than the calibration text yields: ${held} windows of 64 tokens beyond the 4 statistics windows (overlapping none of them)\n`);
    assert.deepEqual(readdirSync(dir), ['short.txt']);
    // Defaulted: those windows, said.
    const defaulted = await runCli([...args(short), '--confirm-on', 'calibration', '--out', path.join(dir, 'b')], { progress: true });
    assert.equal(defaulted.status, 0, defaulted.stderr);
    assert.ok(defaulted.stderr.includes(`confirmation on ${held} held-out calibration windows, fewer than the default 32: the calibration text yields ${held} windows of 64 tokens`), defaulted.stderr);
    const provenance = readJson(path.join(dir, 'b', 'crepe-config.json')).provenance as { confirmation: { windows: number; draws: unknown[] } };
    assert.equal(provenance.confirmation.windows, held);
    assert.equal(provenance.confirmation.draws.length, held);
    // The held-out text had been measured on the windows it holds, silently: its 2340 tokens make 4 windows of 512 (or --eval-max-chunks).
    const heldOut = [[['--confirm-windows', '5'], '5 is more than the held-out text holds: 4 windows of 512 tokens'], [['--eval-max-chunks', '2', '--confirm-windows', '3'], '3 is more than the held-out text holds: 2 windows of 512 tokens (--eval-max-chunks 2)']] as const;
    for (const [extra, problem] of heldOut) {
      const result = await runCli([...args(C4_SAMPLE), '--eval-ppl', short, '--eval-seqlen', '512', ...extra, '--out', path.join(dir, 'c')]);
      assert.equal(result.status, 2, result.stderr);
      assert.equal(result.stderr, `crepe: --confirm-windows ${problem}\n`);
    }
    assert.deepEqual(readdirSync(dir).sort(), ['b', 'b.proxy-cache', 'short.txt']);
  });

  test('--strategy hillclimb without --eval-ppl: exit 2, one "crepe:" line, nothing written', async () => {
    const parent = scratchDir('hillclimb');
    const out = path.join(parent, 'out');
    const result = await runCli(['search', model, ...SMALL, '--strategy', 'hillclimb', '--out', out]);
    assert.equal(result.status, 2, result.stderr);
    assert.equal(result.stdout, '');
    const lines = result.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, result.stderr);
    assert.match(lines[0], /^crepe: --eval-ppl is needed/);
    assert.ok(!existsSync(out));
    assert.deepEqual(readdirSync(parent), []);
  });
});
