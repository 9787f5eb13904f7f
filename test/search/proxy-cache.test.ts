// The restructured proxy (terms cached on disk, evaluated on worker threads) against the in-memory
// implementation it replaced (test/helpers/proxy-reference.ts) on a random model and on stories260K;
// the cache's reuse after an interrupted build, and its refusal of corrupt or mismatched files.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { ProxyContext, LINEAR_PROXY_NAMES, type ProxyContextOptions, type ProxyName, type ProxyOptions } from '../../src/search/proxy.ts';
import { ByteLru, termsFile, windowFile } from '../../src/search/proxy-cache.ts';
import { assignUnits } from '../../src/search/proxy-worker.ts';
import type { CrepeParams } from '../../src/prune/scores/crepe.ts';
import type { BlockSource } from '../../src/prune/layer-loop.ts';
import { ModelCheckpoint } from '../../src/model/checkpoint.ts';
import { TextTokenizer } from '../../src/model/tokenizer.ts';
import { sampleCalibrationFile } from '../../src/data/calibration.ts';
import { FieldError, UserError } from '../../src/util/errors.ts';
import { Rng } from '../../src/util/rng.ts';
import { ReferenceProxyContext } from '../helpers/proxy-reference.ts';
import { slowBuildInputs } from '../helpers/proxy-build-inputs.ts';
import { randomModel, smallSpec } from '../helpers/random-model.ts';
import { C4_SAMPLE, REPO_ROOT } from '../helpers/shared.ts';
import { scratchDir, storiesModelDir } from '../helpers/stories.ts';

const engine = { device: 'cpu' as const, threads: 1 };

/** Configurations covering every scoring path: γ = 0 (RIA's point), normalized and smooth terms, a smooth exponent without a stored term, border 'mean'. */
const CONFIGURATIONS: CrepeParams[] = [
  { k: 5, alpha: 1, beta: 1, gamma: 0, a: 0.5, variant: 'normalized', border: 'zero' },
  { k: 3, alpha: 1, beta: 0.3, gamma: 2, a: 0.8, variant: 'normalized', border: 'zero' },
  { k: 1, alpha: 1, beta: 4, gamma: 0.05, a: 0.5, variant: 'normalized', border: 'zero' },
  { k: 5, alpha: 1, beta: Math.exp(-3), gamma: Math.exp(2), a: 0.5, variant: 'normalized', border: 'zero' },
  { k: 3, alpha: 1, beta: 2, gamma: 0.4, a: 0.5, variant: 'smooth', border: 'zero' },
  { k: 3, alpha: 1, beta: 2, gamma: 0.4, a: 1.1, variant: 'smooth', border: 'zero' },
  { k: 3, alpha: 1, beta: 0.7, gamma: 1.5, a: 0.5, variant: 'normalized', border: 'mean' },
];

/** Selection rules: one threshold per matrix (scored in reference order), per row and 2:4 (through the row-major layout). */
const SELECTIONS: ProxyOptions[] = [
  { target: { kind: 'unstructured', sparsity: 0.5 }, selection: 'per-matrix', giniSubsample: null, seed: 0 },
  { target: { kind: 'unstructured', sparsity: 0.7 }, selection: 'per-matrix', giniSubsample: 300, seed: 4 },
  { target: { kind: 'unstructured', sparsity: 0.6 }, selection: 'per-row', giniSubsample: null, seed: 0 },
  { target: { kind: 'nm', n: 2, m: 4 }, selection: 'per-matrix', giniSubsample: null, seed: 0 },
];

const WALK_PROXIES: ProxyName[] = ['gini-ref', 'pruned-mass'];

const WINDOWS_BUILT = [
  { k: 1, variant: 'normalized' as const, a: null },
  { k: 3, variant: 'normalized' as const, a: null },
  { k: 3, variant: 'smooth' as const, a: 0.5 },
];

function cacheOptions(dir: string, overrides: Partial<ProxyContextOptions> = {}): ProxyContextOptions {
  return { cacheDir: dir, cacheBudgetBytes: 2 ** 26, threads: 1, modelSha256: 'model-under-test', calibrationSeed: 0, withGram: true, windows: WINDOWS_BUILT, ...overrides };
}

/**
 * Every proxy of every configuration and selection, new against the reference: bit for bit when
 * the neighbourhood terms are kept in float64; in float32 (the default), within 1e-6 relative.
 * Why not exact in float32: a score with γ > 0 can then differ from crepeScores' by one float32
 * ulp, which moves gini-own by ~1e-9 and can swap the few entries tied with the threshold within
 * that ulp. With γ = 0 the neighbourhood term is unused and float32 is exact too.
 */
async function compareWithReference(reference: ReferenceProxyContext, context: ProxyContext, exact: boolean): Promise<number> {
  let worst = 0;
  for (const params of CONFIGURATIONS) {
    for (const options of SELECTIONS) {
      const expected = reference.evaluate(params, options).values;
      const actual = (await context.evaluate(params, options)).values;
      for (const name of LINEAR_PROXY_NAMES) {
        const what = `${name} ${JSON.stringify(params)} ${JSON.stringify(options.target)} ${options.selection}`;
        if (exact || params.gamma === 0) {
          assert.equal(actual[name], expected[name], what);
        } else {
          const relative = Math.abs(actual[name] - expected[name]) / Math.abs(expected[name]);
          assert.ok(relative <= 1e-6, `${what}: ${actual[name]} vs ${expected[name]}`);
          worst = Math.max(worst, relative);
        }
      }
      // Asked alone, the walk's proxies of a per-matrix mask come from one fused pass: the same
      // pruned entries, their sums added in another order (within 1e-12 relative).
      const walkOnly = (await context.evaluate(params, options, WALK_PROXIES)).values;
      for (const name of WALK_PROXIES) {
        const relative = Math.abs(walkOnly[name] - expected[name]) / Math.abs(expected[name]);
        assert.ok(relative <= (exact || params.gamma === 0 ? 1e-12 : 1e-6), `${name} alone ${JSON.stringify(params)} ${options.selection}: ${walkOnly[name]} vs ${expected[name]}`);
      }
    }
  }
  return worst;
}

describe('old and new proxy implementations agree', () => {
  test('random llama (4 layers): every proxy, path and selection; float64 terms bit for bit on 1 and 3 threads; float32 (2 threads) within 1e-6', async () => {
    const spec = smallSpec('llama', { numLayers: 4 });
    const model = randomModel(spec, 7);
    const rng = new Rng(3);
    const windows = Array.from({ length: 4 }, () => Int32Array.from({ length: 16 }, () => rng.below(spec.vocabSize)));
    const reference = await ReferenceProxyContext.build(model, windows, 16, engine, { withGram: true });
    const root = scratchDir('proxy-compare');
    for (const threads of [1, 3]) {
      // Each builds its own cache: with 3 threads the dense pass's files are written by 3 evaluators at once.
      const context = await ProxyContext.open(model, windows, 16, engine, cacheOptions(path.join(root, `f64-t${threads}`), { threads, windowPrecision: 'float64' }));
      try {
        assert.equal(context.threads, threads);
        assert.equal(context.cache.layersBuilt, 4);
        await compareWithReference(reference, context, true);
      } finally {
        await context.close();
      }
    }
    // The same files, byte for byte, whichever thread built them (the manifest records times).
    const files = (dir: string) => readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile() && e.name !== 'manifest.json')
      .map((e) => path.relative(dir, path.join(e.parentPath, e.name))).sort();
    const built = files(path.join(root, 'f64-t1'));
    assert.ok(built.length >= 4 * 7, `${built.length} files`);
    assert.deepEqual(files(path.join(root, 'f64-t3')), built);
    for (const file of built) assert.ok(readFileSync(path.join(root, 'f64-t1', file)).equals(readFileSync(path.join(root, 'f64-t3', file))), file);
    const context = await ProxyContext.open(model, windows, 16, engine, cacheOptions(path.join(root, 'f32'), { threads: 2 }));
    try {
      await compareWithReference(reference, context, false);
    } finally {
      await context.close();
    }
  });

  test('stories260K (5 layers, 8 C4 windows of 64 tokens): float64 terms bit for bit, float32 within 1e-6', async () => {
    const modelDir = await storiesModelDir();
    const model = ModelCheckpoint.open(modelDir);
    try {
      const tokenizer = TextTokenizer.load(modelDir);
      const { windows } = sampleCalibrationFile(C4_SAMPLE, (text) => tokenizer.encode(text, { bos: true }), { nsamples: 8, seqlen: 64, seed: 0 });
      const reference = await ReferenceProxyContext.build(model, windows, 64, engine, { withGram: true });
      const root = scratchDir('proxy-stories');
      for (const precision of ['float64', 'float32'] as const) {
        const context = await ProxyContext.open(model, windows, 64, engine, cacheOptions(path.join(root, precision), { windowPrecision: precision }));
        try {
          await compareWithReference(reference, context, precision === 'float64');
        } finally {
          await context.close();
        }
      }
    } finally {
      model.close();
    }
  });
});

/**
 * A batch (evaluateMany: each linear read once for all candidates) against the same candidates
 * evaluated one by one: every value identical bit for bit (Object.is), for every selection, all
 * proxies and the walk-only ones, candidates of several scoring paths and window keys mixed.
 */
async function compareBatchWithSingles(context: ProxyContext): Promise<void> {
  for (const options of [...SELECTIONS, { ...SELECTIONS[0], rows: 0.5 }]) {
    for (const which of [context.availableProxies, WALK_PROXIES]) {
      const singles = [];
      for (const params of CONFIGURATIONS) singles.push((await context.evaluate(params, options, which)).values);
      const batch = (await context.evaluateMany(CONFIGURATIONS, options, which)).map((e) => e.values);
      assert.equal(batch.length, CONFIGURATIONS.length);
      for (const [i, values] of batch.entries()) {
        for (const name of which) {
          assert.ok(Number.isFinite(values[name]), `${name} is computed`);
          assert.ok(Object.is(values[name], singles[i][name]), `${name} ${JSON.stringify(CONFIGURATIONS[i])} ${JSON.stringify(options)}: batch ${values[name]} vs single ${singles[i][name]}`);
        }
      }
    }
  }
}

describe('a batch of candidates equals its candidates evaluated one by one', () => {
  test('random llama (4 layers): 1 and 3 threads, in-memory budget and none, all rows and a row subset', async () => {
    const spec = smallSpec('llama', { numLayers: 4 });
    const model = randomModel(spec, 7);
    const rng = new Rng(3);
    const windows = Array.from({ length: 4 }, () => Int32Array.from({ length: 16 }, () => rng.below(spec.vocabSize)));
    const root = scratchDir('proxy-batch');
    for (const [threads, budget] of [[1, 2 ** 26], [3, 0]] as const) {
      const context = await ProxyContext.open(model, windows, 16, engine, cacheOptions(path.join(root, `t${threads}`), { threads, cacheBudgetBytes: budget }));
      try {
        await compareBatchWithSingles(context);
      } finally {
        await context.close();
      }
    }
  });

  test('stories260K (5 layers, 8 C4 windows of 64 tokens), 2 threads', async () => {
    const modelDir = await storiesModelDir();
    const model = ModelCheckpoint.open(modelDir);
    try {
      const tokenizer = TextTokenizer.load(modelDir);
      const { windows } = sampleCalibrationFile(C4_SAMPLE, (text) => tokenizer.encode(text, { bos: true }), { nsamples: 8, seqlen: 64, seed: 0 });
      const context = await ProxyContext.open(model, windows, 64, engine, cacheOptions(scratchDir('proxy-batch-stories'), { threads: 2, withGram: false }));
      try {
        await compareBatchWithSingles(context);
      } finally {
        await context.close();
      }
    } finally {
      model.close();
    }
  });
});

describe('proxy cache directory', () => {
  const spec = smallSpec('llama', { numLayers: 4 });
  const model = randomModel(spec, 11);
  const rng = new Rng(8);
  const windows = Array.from({ length: 3 }, () => Int32Array.from({ length: 16 }, () => rng.below(spec.vocabSize)));
  const params: CrepeParams = { k: 3, alpha: 1, beta: 0.5, gamma: 1.2, a: 0.5, variant: 'normalized', border: 'zero' };
  const options: ProxyOptions = { target: { kind: 'unstructured', sparsity: 0.5 }, selection: 'per-matrix', giniSubsample: null, seed: 0 };
  const root = scratchDir('proxy-cache');
  let fresh: Record<ProxyName, number>;
  let freshDir: string;

  before(async () => {
    freshDir = path.join(root, 'fresh');
    const context = await ProxyContext.open(model, windows, 16, engine, cacheOptions(freshDir));
    try {
      assert.equal(context.cache.layersBuilt, 4);
      fresh = (await context.evaluate(params, options)).values;
    } finally {
      await context.close();
    }
  });

  const valuesFrom = async (dir: string, overrides: Partial<ProxyContextOptions> = {}) => {
    const context = await ProxyContext.open(model, windows, 16, engine, cacheOptions(dir, overrides));
    try {
      return { values: (await context.evaluate(params, options)).values, cache: context.cache };
    } finally {
      await context.close();
    }
  };

  test('one context per cache at a time: a second open is refused naming the holder; close() releases the lock, also after a failed open', async () => {
    const lockFile = `${freshDir}.crepe-lock`;
    const first = await ProxyContext.open(model, windows, 16, engine, cacheOptions(freshDir));
    try {
      assert.ok(existsSync(lockFile));
      await assert.rejects(ProxyContext.open(model, windows, 16, engine, cacheOptions(freshDir)), (error: unknown) =>
        error instanceof UserError && error.message.includes(`${freshDir} is in use by`) && error.message.includes(`crepe process ${process.pid}`) && error.message.includes(lockFile));
    } finally {
      await first.close();
    }
    assert.ok(!existsSync(lockFile));
    await first.close(); // a second close does nothing
    // A refused open (other inputs) leaves no lock behind, and the cache opens again afterwards.
    await assert.rejects(ProxyContext.open(model, windows, 16, engine, cacheOptions(freshDir, { calibrationSeed: 9 })), UserError);
    assert.ok(!existsSync(lockFile));
    const again = await ProxyContext.open(model, windows, 16, engine, cacheOptions(freshDir));
    await again.close();
    assert.ok(!existsSync(lockFile));
  });

  test('a complete cache is reused as it is: no layer recomputed, same values; manifest records the inputs', async () => {
    const { values, cache } = await valuesFrom(freshDir);
    assert.equal(cache.layersBuilt, 0);
    assert.equal(cache.denseSeconds, 0);
    assert.deepEqual(values, fresh);
    const manifest = JSON.parse(readFileSync(path.join(freshDir, 'manifest.json'), 'utf8'));
    assert.equal(manifest.complete, true);
    assert.equal(manifest.identity.modelSha256, 'model-under-test');
    assert.deepEqual(manifest.identity.calibration, { nsamples: 3, seqlen: 16, seed: 0, windowsSha256: manifest.identity.calibration.windowsSha256 });
    assert.match(manifest.identity.calibration.windowsSha256, /^[0-9a-f]{64}$/);
    assert.equal(manifest.identity.format, 'crepe-proxy-cache/2');
    assert.ok(!existsSync(path.join(freshDir, 'hidden.bin')), 'the saved activations are removed once the build is complete');
    // A new window size is added to the cache and recorded.
    const context = await ProxyContext.open(model, windows, 16, engine, cacheOptions(freshDir));
    try {
      await context.evaluate({ ...params, k: 7 }, options);
    } finally {
      await context.close();
    }
    const updated = JSON.parse(readFileSync(path.join(freshDir, 'manifest.json'), 'utf8'));
    assert.deepEqual(updated.windows.at(-1), { k: 7, variant: 'normalized', a: null });
    assert.ok(existsSync(windowFile(freshDir, { layer: 3, name: 'mlp.down_proj' }, { k: 7, variant: 'normalized', a: null })));
  });

  /** The model, failing when layer 2 is read: a build interrupted after two layers. */
  const failing: BlockSource = {
    spec,
    readEmbedding: () => model.readEmbedding(),
    readBlock: (layer) => {
      if (layer === 2) throw new Error('simulated crash while reading layer 2');
      return model.readBlock(layer);
    },
  };

  test('an interrupted build continues at the first unfinished layer and ends with the same values', async () => {
    const dir = path.join(root, 'interrupted');
    await assert.rejects(ProxyContext.open(failing, windows, 16, engine, cacheOptions(dir)), /simulated crash/);
    const manifest = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
    assert.equal(manifest.complete, false);
    assert.equal(manifest.layersDone, 2);
    assert.ok(existsSync(path.join(dir, 'hidden.bin')), 'the activations entering layer 2 are saved');
    const { values, cache } = await valuesFrom(dir);
    assert.equal(cache.layersBuilt, 2, 'layers 2 and 3 only');
    assert.deepEqual(values, fresh);
  });

  test('statistics of a pruned model: an interrupted build continues from the saved inputs of its layer, or starts over without them, and ends with the same values', async () => {
    const statisticsFrom = { params: { k: 3, alpha: 1, beta: 1, gamma: 1, a: 0.5, variant: 'normalized' as const, border: 'zero' as const }, target: { kind: 'unstructured' as const, sparsity: 0.5 }, selection: 'per-matrix' as const };
    const whole = await valuesFrom(path.join(root, 'pruned-statistics'), { statisticsFrom });
    assert.equal(whole.cache.layersBuilt, 4);
    assert.notDeepEqual(whole.values, fresh);
    for (const [label, keepInputs, rebuilt] of [['continued', true, 2], ['started over', false, 4]] as const) {
      const dir = path.join(root, `pruned-statistics-${label.replace(' ', '-')}`);
      await assert.rejects(ProxyContext.open(failing, windows, 16, engine, cacheOptions(dir, { statisticsFrom })), /simulated crash/);
      if (!keepInputs) rmSync(path.join(dir, 'hidden.bin'));
      const { values, cache } = await valuesFrom(dir, { statisticsFrom });
      assert.equal(cache.layersBuilt, rebuilt, label);
      assert.deepEqual(values, whole.values, label);
    }
  });

  test('kill -9 during the build: the restart reuses the finished layers and ends with the same values', async () => {
    const dir = path.join(root, 'killed');
    const open = async (cacheDir: string) => {
      const inputs = slowBuildInputs(cacheDir, 0);
      const context = await ProxyContext.open(inputs.model, inputs.windows, inputs.seqlen, engine, inputs.options);
      try {
        return { values: (await context.evaluate(params, options)).values, cache: context.cache };
      } finally {
        await context.close();
      }
    };
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'test/helpers/proxy-build-child.ts'), dir], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk) => { stderr += chunk; });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    // Each layer takes at least 400 ms in the child: kill it once two layers are on disk.
    const manifestPath = path.join(dir, 'manifest.json');
    const started = Date.now();
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      const done = existsSync(manifestPath) ? (JSON.parse(readFileSync(manifestPath, 'utf8')) as { layersDone: number }).layersDone : 0;
      if (done >= 2) break;
      assert.ok(Date.now() - started < 120_000 && child.exitCode === null, `the child did not build two layers: ${stderr}`);
    }
    child.kill('SIGKILL');
    assert.equal(await exited, 'SIGKILL');
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
    assert.equal(manifest.complete, false);
    const { values, cache } = await open(dir);
    assert.ok(cache.layersBuilt >= 1 && cache.layersBuilt <= 6 - manifest.layersDone, `rebuilt ${cache.layersBuilt} layers after ${manifest.layersDone} were done`);
    const uninterrupted = await open(path.join(root, 'uninterrupted'));
    assert.equal(uninterrupted.cache.layersBuilt, 6);
    assert.deepEqual(values, uninterrupted.values);
  });

  test('a corrupt file is refused with a message naming the cache directory, never used', async () => {
    const dir = path.join(root, 'corrupt');
    await valuesFrom(dir);
    const file = termsFile(dir, { layer: 1, name: 'self_attn.v_proj' });
    const fd = openSync(file, 'r+');
    writeSync(fd, Buffer.from([0x5a]), 0, 1, statSync(file).size - 20);
    closeSync(fd);
    await assert.rejects(valuesFrom(dir), (error: Error) => {
      assert.ok(error instanceof UserError, String(error));
      assert.match(error.message, new RegExp(`^proxy cache ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: layer-00001\\.self_attn\\.v_proj\\.terms\\.bin is corrupt \\(checksum`));
      assert.match(error.message, /remove the directory/);
      return true;
    });
  });

  test('a truncated file, a corrupt manifest, a directory that is not a cache: each refused, naming the directory', async () => {
    const dir = path.join(root, 'truncated');
    await valuesFrom(dir);
    const window = windowFile(dir, { layer: 0, name: 'mlp.up_proj' }, { k: 3, variant: 'normalized', a: null });
    truncateSync(window, statSync(window).size - 8);
    await assert.rejects(valuesFrom(dir), (error: Error) => error instanceof UserError && error.message.includes(`proxy cache ${dir}: `) && /truncated/.test(error.message));

    const broken = path.join(root, 'broken-manifest');
    await valuesFrom(broken);
    writeFileSync(path.join(broken, 'manifest.json'), '{"identity": ');
    await assert.rejects(valuesFrom(broken), (error: Error) => error instanceof UserError && error.message.includes(`proxy cache ${broken}: manifest.json is corrupt`));

    const other = path.join(root, 'not-a-cache');
    mkdirSync(other);
    writeFileSync(path.join(other, 'notes.txt'), 'mine');
    await assert.rejects(valuesFrom(other), (error: Error) => error instanceof FieldError && error.field === 'proxyCache' && error.problem.startsWith(`${other}: the directory exists and is not a proxy cache`));
    assert.deepEqual(readdirSync(other), ['notes.txt']);
  });

  test('a cache built from another model or other calibration windows is refused, naming the directory and the difference', async () => {
    await assert.rejects(valuesFrom(freshDir, { modelSha256: 'another-model' }), (error: Error) =>
      error instanceof UserError && error.message.startsWith(`proxy cache ${freshDir}: it was built from other inputs (modelSha256 is "model-under-test" there, "another-model" here)`));
    const otherWindows = windows.map((w) => w.map((t) => (t + 1) % spec.vocabSize));
    await assert.rejects(ProxyContext.open(model, otherWindows, 16, engine, cacheOptions(freshDir)), (error: Error) =>
      error instanceof UserError && error.message.includes(`proxy cache ${freshDir}: it was built from other inputs (calibration.windowsSha256`));
    await assert.rejects(valuesFrom(freshDir, { withGram: false }), /grams is true there, false here/);
    // Statistics of a pruned model are other statistics.
    const statisticsFrom = { params: { k: 3, alpha: 1, beta: 1, gamma: 0, a: 0.5, variant: 'normalized' as const, border: 'zero' as const }, target: { kind: 'unstructured' as const, sparsity: 0.5 }, selection: 'per-matrix' as const };
    await assert.rejects(valuesFrom(freshDir, { statisticsFrom }), (error: Error) =>
      error instanceof UserError && error.message.includes(`proxy cache ${freshDir}: it was built from other inputs (statisticsFrom`));
    // The same weights under another config.json (rms_norm_eps): other activations, other terms.
    const otherConfig = { ...model, spec: { ...model.spec, rmsNormEps: 1e-2 } };
    await assert.rejects(ProxyContext.open(otherConfig, windows, 16, engine, cacheOptions(freshDir)), (error: Error) =>
      error instanceof UserError && error.message.startsWith(`proxy cache ${freshDir}: it was built from other inputs (spec.rmsNormEps is 0.00001 there, 0.01 here)`));
  });

  test('--proxy-rows: a fixed row subset per linear, stored once; all rows = the full proxy', async () => {
    const full = await ProxyContext.open(model, windows, 16, engine, cacheOptions(freshDir, { threads: 2 }));
    try {
      assert.deepEqual((await full.evaluate(params, { ...options, rows: 1 })).values, fresh);
      const half = (await full.evaluate(params, { ...options, rows: 0.5 })).values;
      const again = (await full.evaluate(params, { ...options, rows: 0.5 })).values;
      assert.deepEqual(again, half);
      for (const name of LINEAR_PROXY_NAMES) {
        assert.notEqual(half[name], fresh[name], name);
        assert.ok(half[name] > 0 && half[name] < 1, `${name}: ${half[name]}`);
      }
      // Half of the 64–96 rows of each linear: the mask-level proxies stay close (column-gini, a
      // Gini over columns of sums over fewer rows, is noisier).
      for (const name of ['gini-ref', 'pruned-mass', 'gini-own'] as const) {
        assert.ok(Math.abs(half[name] - fresh[name]) < 0.1 * fresh[name], `${name}: ${half[name]} vs ${fresh[name]}`);
      }
      assert.ok(existsSync(termsFile(freshDir, { layer: 3, name: 'mlp.gate_proj' }, { fraction: 0.5, seed: 0 })));
    } finally {
      await full.close();
    }
  });

  test('rowsOnly: the cache holds one row subset\'s files alone, the proxies of that subset of a cache of all rows bit for bit; work it cannot do is refused', async () => {
    const dir = path.join(root, 'rows-only');
    const half = { fraction: 0.5, seed: 0 };
    const onHalf = { ...options, rows: 0.5 };
    const linear = [...LINEAR_PROXY_NAMES];
    let values: Record<ProxyName, number>;
    const context = await ProxyContext.open(model, windows, 16, engine, cacheOptions(dir, { rowsOnly: half, threads: 2 }));
    try {
      assert.equal(context.cache.layersBuilt, 4);
      assert.deepEqual(context.cache.rowsOnly, half);
      values = (await context.evaluate(params, onHalf, linear)).values;
      assert.ok(!context.availableProxies.includes('calib-nll'));
      await assert.rejects(context.evaluate(params, options, ['gini-ref']), (error: Error) =>
        error instanceof FieldError && error.message.includes(`cache ${dir} holds only the row subset rows-0.5-seed0; asked for all rows`));
      await assert.rejects(context.evaluate(params, { ...options, rows: 0.25 }, ['gini-ref']), /holds only the row subset rows-0\.5-seed0; asked for rows-0\.25-seed0/);
      await assert.rejects(context.prunedPerplexity(params, onHalf, windows[0], { seqlen: 16 }), /a pruned perplexity needs every row of every linear/);
      // k = 5 was not built: its neighbourhoods span rows the cache does not hold.
      await assert.rejects(context.evaluate({ ...params, k: 5 }, onHalf, ['gini-ref']), (error: Error) =>
        error instanceof UserError && error.message.startsWith(`proxy cache ${dir}: it holds only the row subset rows-0.5-seed0, built with the neighbourhood terms of other window sizes than k = 5`));
    } finally {
      await context.close();
    }
    // On disk: the manifest and the subset's folder (each linear's terms and built neighbourhood terms), no whole-matrix files.
    assert.deepEqual(readdirSync(dir).sort(), ['manifest.json', 'rows-0.5-seed0']);
    assert.equal(readdirSync(path.join(dir, 'rows-0.5-seed0')).length, 4 * 7 * (1 + WINDOWS_BUILT.length));
    // A cache of all rows gives the same values for that subset, and serves a run that declares it.
    const full = await ProxyContext.open(model, windows, 16, engine, cacheOptions(freshDir, { rowsOnly: half }));
    try {
      assert.equal(full.cache.layersBuilt, 0);
      assert.equal(full.cache.rowsOnly, null);
      assert.deepEqual((await full.evaluate(params, onHalf, linear)).values, values);
    } finally {
      await full.close();
    }
    // Reopened: for all rows or another subset, refused naming the subset; for the same subset, reused.
    await assert.rejects(valuesFrom(dir), (error: Error) => error instanceof UserError
      && error.message.startsWith(`proxy cache ${dir}: it holds only the row subset rows-0.5-seed0, built for a search on those rows; this run needs all rows`));
    await assert.rejects(valuesFrom(dir, { rowsOnly: { fraction: 0.25, seed: 0 } }), /this run is on rows-0\.25-seed0/);
    const again = await ProxyContext.open(model, windows, 16, engine, cacheOptions(dir, { rowsOnly: half }));
    try {
      assert.equal(again.cache.layersBuilt, 0);
      assert.deepEqual((await again.evaluate(params, onHalf, linear)).values, values);
    } finally {
      await again.close();
    }
  });

  test('rowsOnly: an interrupted build continues at the first layer without the subset\'s files, with the same values', async () => {
    const dir = path.join(root, 'rows-only-interrupted');
    const half = { fraction: 0.5, seed: 0 };
    const onHalf = { ...options, rows: 0.5 };
    await assert.rejects(ProxyContext.open(failing, windows, 16, engine, cacheOptions(dir, { rowsOnly: half })), /simulated crash/);
    assert.equal(JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')).layersDone, 2);
    const subsetValues = async (cacheDir: string) => {
      const context = await ProxyContext.open(model, windows, 16, engine, cacheOptions(cacheDir, { rowsOnly: half }));
      try {
        return { values: (await context.evaluate(params, onHalf, [...LINEAR_PROXY_NAMES])).values, layersBuilt: context.cache.layersBuilt };
      } finally {
        await context.close();
      }
    };
    const continued = await subsetValues(dir);
    assert.equal(continued.layersBuilt, 2, 'layers 2 and 3 only');
    assert.deepEqual(continued.values, (await subsetValues(freshDir)).values);
  });

  test('natural layout (proxies: [calib-nll]): an interrupted build continues at the first unfinished layer; the calib-nll of the position layout, with any budget; a corrupt file refused', async () => {
    const dir = path.join(root, 'natural-interrupted');
    const natural = { proxies: ['calib-nll'] as ProxyName[] };
    await assert.rejects(ProxyContext.open(failing, windows, 16, engine, cacheOptions(dir, natural)), /simulated crash/);
    const manifest = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
    assert.equal(manifest.layout, 'natural');
    assert.equal(manifest.layersDone, 2);
    assert.ok(existsSync(path.join(dir, 'natural', 'layer-00001.mlp.down_proj.terms.bin')));
    assert.ok(!existsSync(path.join(dir, 'layer-00001.mlp.down_proj.terms.bin')), 'no position-layout file');
    const nllFrom = async (overrides: Partial<ProxyContextOptions>) => {
      const context = await ProxyContext.open(model, windows, 16, engine, cacheOptions(dir, { ...natural, ...overrides }));
      try {
        return { nll: (await context.evaluate(params, options, ['calib-nll'])).values['calib-nll'], layersBuilt: context.cache.layersBuilt };
      } finally {
        await context.close();
      }
    };
    const continued = await nllFrom({});
    assert.equal(continued.layersBuilt, 2, 'layers 2 and 3 only');
    assert.equal(continued.nll, fresh['calib-nll']);
    assert.equal((await nllFrom({ cacheBudgetBytes: 0, threads: 1 })).nll, fresh['calib-nll'], 'every file read for every layer');
    const file = path.join(dir, 'natural', 'layer-00002.self_attn.q_proj.terms.bin');
    const bytes = readFileSync(file);
    bytes[bytes.length - 3] ^= 0xff;
    writeFileSync(file, bytes);
    await assert.rejects(nllFrom({ cacheBudgetBytes: 0 }), (error: Error) => error instanceof UserError
      && error.message.startsWith(`proxy cache ${dir}: natural/layer-00002.self_attn.q_proj.terms.bin is corrupt`));
  });

  test('natural layout converted by a run that may ask for any proxy: the files of a position build byte for byte (grams included), the same values', async () => {
    const dir = path.join(root, 'natural-converted');
    const built = await ProxyContext.open(model, windows, 16, engine, cacheOptions(dir, { proxies: ['calib-nll'], threads: 2 }));
    await built.close();
    assert.ok(existsSync(path.join(dir, 'natural', 'layer-00003.mlp.down_proj.gram.bin')));
    const { values, cache } = await valuesFrom(dir, { threads: 2 });
    assert.equal(cache.layersBuilt, 0);
    assert.deepEqual(values, fresh);
    assert.ok(!existsSync(path.join(dir, 'natural')));
    const files = readdirSync(dir).filter((name) => name.endsWith('.bin'));
    assert.equal(files.length, 4 * 7 * (1 + WINDOWS_BUILT.length));
    for (const name of files) assert.ok(readFileSync(path.join(dir, name)).equals(readFileSync(path.join(freshDir, name))), name);
  });

  test('a memory budget of 0 (every linear read from disk for every candidate) gives the same values', async () => {
    assert.deepEqual((await valuesFrom(freshDir, { cacheBudgetBytes: 0, threads: 2 })).values, fresh);
  });
});

describe('proxy evaluation helpers', () => {
  test('ByteLru: a cyclic scan keeps the entries that fit and reads the rest; a new round evicts the oldest', () => {
    const lru = new ByteLru<string>(30);
    const reads: string[] = [];
    const touch = (key: string) => {
      if (lru.get(key) === undefined) {
        reads.push(key);
        lru.set(key, key, 10);
      }
    };
    for (let round = 0; round < 3; round++) {
      lru.nextRound();
      for (const key of ['a', 'b', 'c', 'd', 'e']) touch(key);
    }
    // Round 1 reads all five and keeps a, b, c; later rounds hit a, b, c and read d, e again.
    assert.deepEqual(reads, ['a', 'b', 'c', 'd', 'e', 'd', 'e', 'd', 'e']);
    // A new round: f evicts the least recently used (a), then a evicts b.
    lru.nextRound();
    touch('f');
    touch('a');
    assert.equal(lru.bytes, 30);
    assert.deepEqual(reads.slice(-2), ['f', 'a']);
    assert.equal(lru.get('b'), undefined);
    assert.equal(lru.get('c'), 'c');
    lru.set('huge', 'x', 31);
    assert.equal(lru.get('huge'), undefined);
  });

  test('ByteLru: each value evicted to make room goes to onEvict, never one of the current round', () => {
    const evicted: string[] = [];
    const lru = new ByteLru<string>(30, (value) => evicted.push(value));
    lru.nextRound();
    for (const key of ['a', 'b', 'c']) lru.set(key, key.toUpperCase(), 10);
    // Full with entries of this round: d is not kept and nothing is evicted.
    assert.equal(lru.set('d', 'D', 10), false);
    assert.deepEqual(evicted, []);
    lru.nextRound();
    assert.equal(lru.get('b'), 'B');
    // The oldest entries of earlier rounds make room (a, then c); b was used in this round and stays.
    assert.equal(lru.set('e', 'E', 20), true);
    assert.deepEqual(evicted, ['A', 'C']);
    assert.ok(lru.holds('B') && lru.holds('E') && !lru.holds('A'));
    assert.equal(lru.bytes, 30);
  });

  test('ByteLru: a value kept under two keys goes to onEvict only when the second is evicted too', () => {
    const shared = { name: 'shared' };
    const evicted: object[] = [];
    const lru = new ByteLru<object>(20, (value) => evicted.push(value));
    lru.nextRound();
    lru.set('full', shared, 10);
    lru.set('subset', shared, 10);
    lru.nextRound();
    lru.set('x', { name: 'x' }, 10);
    assert.deepEqual(evicted, [], 'the subset key still holds it');
    lru.set('y', { name: 'y' }, 10);
    assert.deepEqual(evicted, [shared]);
  });

  test('assignUnits: largest first to the least-loaded thread, each group in unit order', () => {
    const unit = (index: number, size: number) => ({ index, layer: 0, name: 'mlp.up_proj' as const, dOut: size, dIn: 1 });
    const groups = assignUnits([unit(0, 5), unit(1, 9), unit(2, 4), unit(3, 4), unit(4, 3)], 2);
    // Sizes 5 9 4 4 3: 9 → first, 5 → second, 4 → second (5 < 9), 4 → first (9 = 9), 3 → second.
    assert.deepEqual(groups.map((g) => g.map((u) => u.index)), [[1, 3], [0, 2, 4]]);
    assert.equal(assignUnits([unit(0, 1)], 4).length, 1);
    // Layer by layer: a TinyLlama-like layer (sizes 4 1 1 4 11 11 11, in units of 0.5 M weights) twice on 2 threads.
    const sizes = [4, 1, 1, 4, 11, 11, 11];
    const layered = [0, 1].flatMap((layer) => sizes.map((size, i) => ({ index: layer * 7 + i, layer, name: 'mlp.up_proj' as const, dOut: size, dIn: 1 })));
    const split = assignUnits(layered, 2);
    // Layer 0: 11 → A, 11 → B, 11 → A, 4 → B, 4 → B, 1 → B, 1 → B (A 22, B 21); layer 1 from there: 11 → B, 11 → A, 11 → B
    // (A 33, B 43), then 4, 4, 1, 1 → A.
    assert.deepEqual(split.map((g) => g.map((u) => u.index)), [[4, 6, 7, 8, 9, 10, 12], [0, 1, 2, 3, 5, 11, 13]]);
    const perLayer = (g: readonly { layer: number; dOut: number }[], layer: number) => g.filter((u) => u.layer === layer).reduce((sum, u) => sum + u.dOut, 0);
    assert.deepEqual(split.map((g) => [perLayer(g, 0), perLayer(g, 1)]), [[22, 21], [21, 22]]);
  });
});
