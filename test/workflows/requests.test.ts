// Requests as JavaScript callers build them, not only as the command line's parser does: wrong
// types, misspelt fields, null, non-boolean flags, callbacks that are no functions or that throw,
// and arguments of the building blocks. Each is refused naming its field before any work, and
// nothing is left behind.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import {
  FieldError, ModelCheckpoint, ProxyContext, TextTokenizer, UserError, bitmaskCompress, convertModel, defaultCrepeConfigFor, documentMetrics, evaluatePerplexity,
  evaluateTasks, hubSettings, inspectModel, parseTarget, parseTaskList, perplexity, planLoglikelihoods, pruneLayers, pruneModel, pruneSettings, riaScores,
  runHillClimb, runPho, sampleCalibrationFile, scoreLoglikelihoods, scoreMatrix, searchCoefficients, selectMask, windowsSha256, writeCheckpoint, type PruneRequest,
  RIA_POINT, bitmaskDecompress, chooseByConfirmation, encodeRequest, formatZeroShotTable, meanWithStderr, parseHubId, resolveModelArgument, sampleC4Windows,
  sampleTextWindows, withSparsityConfig,
} from '../../src/index.ts';
import { C4_SAMPLE, STORIES_BIN, TASK_DIR, WIKITEXT_TEST } from '../helpers/shared.ts';
import { scratchDir, storiesModelDir } from '../helpers/stories.ts';

let model = '';
before(async () => {
  model = await storiesModelDir();
});

const prune = (out: string, extra: Record<string, unknown> = {}): PruneRequest => ({
  model, out, method: 'wanda', target: parseTarget('0.5'), calib: C4_SAMPLE, nsamples: 2, seqlen: 64, threads: 1, ...extra,
} as PruneRequest);
const search = (out: string, extra: Record<string, unknown> = {}) =>
  searchCoefficients({ model, out, target: parseTarget('0.5'), calib: C4_SAMPLE, nsamples: 2, seqlen: 64, threads: 1, ...extra } as never);
const evaluate = (extra: Record<string, unknown>) => evaluatePerplexity({ model, text: WIKITEXT_TEST, seqlen: 64, maxChunks: 2, threads: 1, ...extra } as never);

/** What a call throws (synchronously or as a rejection). */
async function thrown(run: () => unknown): Promise<unknown> {
  try {
    await run();
  } catch (error) {
    return error;
  }
  return assert.fail('expected a refusal');
}

/** Runs each case and asserts a FieldError naming its field, with a problem matching its pattern. */
async function assertRefusals(cases: Array<[string, () => unknown, string, RegExp]>): Promise<void> {
  for (const [what, run, field, problem] of cases) {
    const error = await thrown(run);
    assert.ok(error instanceof FieldError, `${what}: expected a FieldError, got ${String(error)}`);
    assert.equal(error.field, field, what);
    assert.match(error.problem, problem, what);
  }
}

describe('library requests from JavaScript', () => {
  it('wrong types, unknown fields, null and non-boolean flags: a FieldError naming the field, nothing written', async () => {
    const parent = scratchDir('requests');
    const out = path.join(parent, 'out');
    const cases: Array<[string, () => unknown, string, RegExp]> = [
      ['misspelt prune field', () => pruneModel(prune(out, { nsample: 4 })), 'nsample', /^is not a field of the request; did you mean nsamples\?$/],
      ['misspelt eval field', () => evaluate({ maxchunks: 2 }), 'maxchunks', /did you mean maxChunks\?$/],
      ['misspelt search field', () => search(out, { budjet: 2 }), 'budjet', /did you mean budget\?$/],
      ['misspelt inspect field', () => inspectModel({ model, patern: '2:4' } as never), 'patern', /did you mean pattern\?$/],
      ['misspelt convert field', () => convertModel({ input: STORIES_BIN, out, tokenzier: 'tok512.bin' } as never), 'tokenzier', /did you mean tokenizer\?$/],
      ['misspelt zero-shot field', () => evaluateTasks({ model, tasks: 'rte', taskDir: TASK_DIR, limt: 2 } as never), 'limt', /did you mean limit\?$/],
      ['unknown field far from any', () => evaluate({ colour: 'red' }), 'colour', /^is not a field of the request; expected some of .*maxChunks/],
      ['misspelt nested field', () => pruneModel(prune(out, { owl: { lamda: 0.1 } })), 'owl.lamda', /did you mean owl\.lambda\?$/],
      ['misspelt CRePE override', () => pruneModel(prune(out, { method: 'crepe', crepe: { gama: 1 } })), 'crepe.gama', /did you mean crepe\.gamma\?$/],
      ['misspelt auto option', () => pruneModel(prune(out, { method: 'crepe', auto: { budgt: 3 } })), 'auto.budgt', /did you mean auto\.budget\?$/],
      ['misspelt search crepe field', () => search(out, { crepe: { A: 0.3 } }), 'crepe.A', /did you mean crepe\.a\?$/],
      ['extra target field', () => pruneModel(prune(out, { target: { kind: 'unstructured', sparsity: 0.5, n: 2 } })), 'target.n', /expected some of kind, sparsity$/],
      ['string number', () => evaluate({ seqlen: '64' }), 'seqlen', /^must be an integer ≥ 1, got "64"$/],
      ['NaN', () => pruneModel(prune(out, { nsamples: Number.NaN })), 'nsamples', /got NaN$/],
      ['Infinity', () => evaluate({ seqlen: Number.POSITIVE_INFINITY }), 'seqlen', /got Infinity$/],
      ['null for an optional number', () => evaluate({ seqlen: null }), 'seqlen', /^must be given or left out, not null$/],
      ['null target', () => pruneModel(prune(out, { target: null })), 'target', /not null$/],
      ['target as text', () => search(out, { target: '0.5' }), 'target', /parseTarget reads "0\.5" and "2:4"\), got "0\.5"$/],
      ['string flag', () => pruneModel(prune(out, { overwrite: 'yes' })), 'overwrite', /^must be true or false, got "yes"$/],
      ['string flag (resume)', () => pruneModel(prune(out, { resume: 'false' })), 'resume', /got "false"$/],
      ['string flag (convert)', () => convertModel({ input: STORIES_BIN, out, overwrite: 'yes' } as never), 'overwrite', /got "yes"$/],
      ['string flag (search)', () => search(out, { searchA: 'yes' }), 'searchA', /got "yes"$/],
      ['pass switched on by true', () => pruneModel(prune(out, { owl: true })), 'owl', /^must be an object with some of the fields m, lambda, got true$/],
      ['auto as text', () => pruneModel(prune(out, { method: 'crepe', auto: 'yes' })), 'auto', /^must be true, false or an object of options, got "yes"$/],
      ['auto option of the wrong type', () => pruneModel(prune(out, { method: 'crepe', auto: { budget: '3' } })), 'auto.budget', /got "3"$/],
      ['auto with a searched coefficient given', () => pruneModel(prune(out, { method: 'crepe', auto: true, crepe: { beta: 2 } })), 'crepe.beta', /^is what auto searches \(k, β and γ, with α = 1\): give it or auto, not both$/],
      ['exclude as text', () => pruneModel(prune(out, { exclude: 'down_proj' })), 'exclude', /^must be a list of linear names, got "down_proj"$/],
      ['command of the wrong type', () => pruneModel(prune(out, { command: 5 })), 'command', /^must be a non-empty string, got 5$/],
      ['proxy cache of the wrong type', () => search(out, { proxyCache: 5 }), 'proxyCache', /^must name a directory$/],
      ['NaN shard size', () => pruneModel(prune(out, { maxShardSize: Number.NaN })), 'maxShardSize', /got NaN$/],
      ['task directory that does not exist', () => evaluateTasks({ model, tasks: 'rte', taskDir: path.join(parent, 'tasks') }), 'taskDir', /tasks: no such directory \(expected the directory of the task files/],
      ['tasks of the wrong type', () => evaluateTasks({ model, tasks: 5, taskDir: TASK_DIR } as never), 'tasks', /comma-separated or as a list, got 5$/],
      ['onProgress not a function', () => pruneModel(prune(out, { onProgress: 'log' })), 'onProgress', /^must be a function, got "log"$/],
      ['signal not an AbortSignal', () => evaluate({ signal: { aborted: true } }), 'signal', /^must be an AbortSignal, got an object$/],
    ];
    await assertRefusals(cases);
    assert.deepEqual(readdirSync(parent), []);
  });

  it('a request that is not an object is a UserError, not a TypeError', async () => {
    const workflows = [convertModel, evaluatePerplexity, evaluateTasks, inspectModel, pruneModel, searchCoefficients] as Array<(request: never) => Promise<unknown>>;
    for (const workflow of workflows) {
      for (const request of [null, undefined, 'model', []]) {
        const error = await thrown(() => workflow(request as never));
        assert.ok(error instanceof UserError && !(error instanceof FieldError), `${workflow.name}(${String(request)}): ${String(error)}`);
        assert.match(error.message, /^a request must be an object, got (null|undefined|"model"|an array \[\])$/);
      }
    }
  });

  it('proxyFrom: a validation.json whose correlations are not proxy entries is a FieldError naming the file (null had been a TypeError)', async () => {
    const parent = scratchDir('proxy-from');
    const cases: Array<[unknown, RegExp]> = [
      [[null], /correlations\[0\] is not a proxy's entry \(an object with "proxy" and "spearman"\.estimate\), got null/],
      [[{ proxy: 'gini-ref', spearman: { estimate: 0.5 } }, 3], /correlations\[1\] is not a proxy's entry .*, got 3$/],
      [[{ proxy: 'gini-ref', spearman: { estimate: null } }], /correlations\[0\] is not a proxy's entry/],
      [[{ proxy: 'gini-ref', spearman: { estimate: 0.2 } }, { proxy: 'gini-new', spearman: { estimate: 0.9 } }], /unknown proxy "gini-new"/],
    ];
    for (const [i, [correlations, problem]] of cases.entries()) {
      const file = path.join(parent, `validation-${i}.json`);
      writeFileSync(file, JSON.stringify({ correlations }));
      const error = await thrown(() => search(path.join(parent, 'out'), { proxyFrom: file }));
      assert.ok(error instanceof FieldError && error.field === 'proxyFrom', `${JSON.stringify(correlations)}: ${String(error)}`);
      assert.ok(error.problem.startsWith(`${file}: `), error.problem);
      assert.match(error.problem, problem);
    }
    assert.deepEqual(readdirSync(parent).filter((name) => !name.endsWith('.json')), []);
  });

  it('validate refuses the options of a search it would ignore (budget, race, sigma0, confirm, proxy, its sign and source, hill climbing)', async () => {
    const parent = scratchDir('validate-ignored');
    const out = path.join(parent, 'validation');
    const validate = (extra: Record<string, unknown>) => () => search(out, { validate: 5, evalText: WIKITEXT_TEST, ...extra });
    const ignored = /^applies to a search, not to validate \(which measures every proxy on random configurations\)$/;
    await assertRefusals([
      ['budget', validate({ budget: 30 }), 'budget', ignored],
      ['race', validate({ race: 2 }), 'race', ignored],
      ['sigma0', validate({ sigma0: 0.5 }), 'sigma0', ignored],
      ['confirm', validate({ confirm: 2 }), 'confirm', ignored],
      ['proxy', validate({ proxy: 'gini-ref' }), 'proxy', ignored],
      ['proxySign', validate({ proxySign: -1 }), 'proxySign', ignored],
      ['proxyFrom', validate({ proxyFrom: WIKITEXT_TEST }), 'proxyFrom', ignored],
      ['strategy', validate({ strategy: 'hillclimb' }), 'strategy', /^hillclimb does not combine with validate/],
    ]);
    assert.deepEqual(readdirSync(parent), []);
  });

  it('auto.extraCandidates are checked before the search, naming the candidate (they were refused as candidates[i] after it)', async () => {
    const parent = scratchDir('auto-extra');
    const out = path.join(parent, 'pruned');
    const auto = (extraCandidates: unknown[]) => () => pruneModel(prune(out, { method: 'crepe', auto: { budget: 1, kSet: [3], windows: 2, extraCandidates } }));
    await assertRefusals([
      ['NaN', auto([{ k: 3, alpha: 1, beta: Number.NaN, gamma: 1 }]), 'auto.extraCandidates[0].beta', /^must be a finite number ≥ 0, got NaN$/],
      ['even k', auto([{ k: 3, alpha: 1, beta: 1, gamma: 1 }, { k: 4, alpha: 1, beta: 1, gamma: 1 }]), 'auto.extraCandidates[1].k', /must be an odd integer in \[1, 63\], got 4$/],
      ['null', auto([null]), 'auto.extraCandidates[0]', /^must be an object with some of the fields k, alpha/],
      ['unknown field', auto([{ k: 3, alpha: 1, beta: 1, gamma: 1, note: 1 }]), 'auto.extraCandidates[0].note', /^is not a field of auto\.extraCandidates\[0\]/],
      ['k too large', auto([{ k: 63, alpha: 1, beta: 1, gamma: 1 }]), 'auto.extraCandidates[0].k', /^63 is larger than the smallest pruned matrix dimension of this model \(32\)$/],
    ]);
    assert.deepEqual(readdirSync(parent), []);
  });

  it('an already aborted signal stops convert, inspect and zero-shot before any work', async () => {
    const parent = scratchDir('aborted-early');
    const controller = new AbortController();
    controller.abort();
    const { signal } = controller;
    await assert.rejects(convertModel({ input: STORIES_BIN, out: path.join(parent, 'out'), signal }), { name: 'AbortError' });
    await assert.rejects(inspectModel({ model, signal }), { name: 'AbortError' });
    await assert.rejects(evaluateTasks({ model, tasks: 'rte', taskDir: TASK_DIR, limit: 1, signal }), { name: 'AbortError' });
    assert.deepEqual(readdirSync(parent), []);
  });

  it('an onProgress that throws stops a fresh prune with nothing left: no output, work directory or lock', async () => {
    for (const kind of ['update', 'done'] as const) {
      const parent = scratchDir(`throwing-${kind}`);
      const out = path.join(parent, 'pruned');
      const onProgress = (event: { kind: string; stage: string }) => {
        if (event.kind === kind && event.stage.startsWith('prune')) throw new Error(`display failed at ${kind}`);
      };
      await assert.rejects(pruneModel(prune(out, { onProgress })), { message: `display failed at ${kind}` });
      assert.deepEqual(readdirSync(parent), [], kind);
      assert.ok(!existsSync(`${out}.crepe-lock`));
    }
  });

  it('building blocks refuse a caller\'s bad arguments naming them, where they gave nonsense or a TypeError', async () => {
    const checkpoint = ModelCheckpoint.open(model);
    const tokenizer = TextTokenizer.load(model);
    const tokens = tokenizer.encode('Once upon a time there was a little girl who liked to play in the park with her dog.');
    const weights = new Float32Array([1, -2, 3, -4, 5, -6, 7, -8]);
    const norms = new Float32Array([1, 1, 1, 1]);
    const encode = (text: string) => tokenizer.encode(text);
    const half = { kind: 'unstructured', sparsity: 0.5 } as const;
    const plan = (window: number) => planLoglikelihoods([[{ context: Int32Array.of(1, 2), continuation: Int32Array.of(3) }]], { window });
    try {
      const cases: Array<[string, () => unknown, string, RegExp]> = [
        // Windows past the context ran positions the model never saw: PPL 1.8e11, no error.
        ['perplexity window past the context', () => perplexity(checkpoint, new Int32Array(2048).fill(5), { seqlen: 1024, threads: 1, device: 'cpu' }), 'seqlen', /1024 is longer than the model's context of 512 tokens/],
        ['perplexity one-token window (PPL NaN)', () => perplexity(checkpoint, tokens, { seqlen: 1, threads: 1, device: 'cpu' }), 'seqlen', /at least 2 tokens/],
        ['perplexity seqlen as text', () => perplexity(checkpoint, tokens, { seqlen: '8', threads: 1, device: 'cpu' } as never), 'seqlen', /got "8"$/],
        ['perplexity maxChunks 0', () => perplexity(checkpoint, tokens, { seqlen: 8, maxChunks: 0, threads: 1, device: 'cpu' }), 'maxChunks', /integer ≥ 1, got 0$/],
        ['perplexity token id outside the vocabulary', () => perplexity(checkpoint, new Int32Array(16).fill(600), { seqlen: 8, threads: 1, device: 'cpu' }), 'tokens', /token id 600 at 0, outside the model's vocabulary of 512$/],
        ['perplexity plain array', () => perplexity(checkpoint, [1, 2, 3] as never, { seqlen: 2, threads: 1, device: 'cpu' }), 'tokens', /must be an Int32Array of token ids, got an array \[1, 2, 3\]$/],
        // An unknown device ran on the CPU, a misspelt maxChunks measured every window.
        ['perplexity unknown device', () => perplexity(checkpoint, tokens, { seqlen: 8, threads: 1, device: 'gpu' } as never), 'device', /^must be "cpu" or "cuda", got "gpu"$/],
        ['perplexity misspelt option', () => perplexity(checkpoint, tokens, { seqlen: 8, maxchunks: 1, device: 'cpu' } as never), 'maxchunks', /did you mean maxChunks\?$/],
        ['perplexity unknown mode', () => perplexity(checkpoint, tokens, { seqlen: 8, mode: 'whole', device: 'cpu' } as never), 'mode', /got "whole"$/],
        ['perplexity unknown block-weights form', () => perplexity(checkpoint, tokens, { seqlen: 8, blockWeights: 'packed', device: 'cpu' } as never), 'blockWeights', /^must be one of auto, inputs, constants, got "packed"$/],
        // A NaN budget made the layer-major groups NaN windows long: no window measured, PPL NaN.
        ['perplexity NaN activation budget', () => perplexity(checkpoint, tokens, { seqlen: 8, mode: 'layer-major', activationBudgetBytes: Number.NaN, device: 'cpu' }), 'activationBudgetBytes', /^must be an integer ≥ 1, got NaN$/],
        ['perplexity progress without its methods', () => perplexity(checkpoint, tokens, { seqlen: 8, progress: 5, device: 'cpu' } as never), 'progress', /^must be an object with update, log and done functions, got 5$/],
        ['perplexity of no model (a TypeError)', () => perplexity({} as never, tokens, { seqlen: 8, device: 'cpu' }), 'model', /^must be a model such as a ModelCheckpoint \(spec, readBlock, readEmbedding, readFinalNorm, readLmHead\), got an object$/],
        // A NaN budget put every row in one group, whatever its memory.
        ['scoreLoglikelihoods NaN activation budget', () => scoreLoglikelihoods(checkpoint, plan(512), { device: 'cpu', activationBudgetBytes: Number.NaN }), 'activationBudgetBytes', /^must be an integer ≥ 1, got NaN$/],
        ['scoreLoglikelihoods window past the context', () => scoreLoglikelihoods(checkpoint, plan(1024), { device: 'cpu' }), 'plan.window', /^1024 is longer than the model's context of 512 tokens/],
        ['scoreLoglikelihoods token outside the vocabulary', () => scoreLoglikelihoods(checkpoint, planLoglikelihoods([[{ context: Int32Array.of(1, 700), continuation: Int32Array.of(3) }]], { window: 64 }), { device: 'cpu' }), 'plan.rows[0].tokens', /^holds token id 700 at 1, outside the model's vocabulary of 512$/],
        ['scoreLoglikelihoods continuation outside the vocabulary', () => scoreLoglikelihoods(checkpoint, planLoglikelihoods([[{ context: Int32Array.of(1, 2), continuation: Int32Array.of(600) }]], { window: 64 }), { device: 'cpu' }), 'plan.rows[0].targets', /^holds token id 600 at 0, outside the model's vocabulary of 512$/],
        ['scoreLoglikelihoods plan not a plan', () => scoreLoglikelihoods(checkpoint, { window: 64 } as never, { device: 'cpu' }), 'plan', /^must be a plan from planLoglikelihoods, got an object$/],
        // An unknown rule fell to per-matrix without a word.
        ['selectMask unknown selection', () => selectMask(weights, 2, 4, half, 'per-column' as never), 'selection', /per-row, per-matrix, got "per-column"$/],
        ['selectMask sparsity NaN', () => selectMask(weights, 2, 4, { kind: 'unstructured', sparsity: Number.NaN }, 'per-row'), 'target', /\[0, 1\], got NaN$/],
        ['selectMask N:M width', () => selectMask(weights, 2, 4, { kind: 'nm', n: 2, m: 3 }, 'per-row'), 'target', /2:3 needs an input width divisible by 3, got 4$/],
        // riaA misspelt as a was scored with the default exponent.
        ['scoreMatrix unknown parameter', () => scoreMatrix('ria', weights, 2, 4, norms, { a: 1 } as never), 'params.a', /expected some of riaA, crepe$/],
        ['scoreMatrix sparsegpt', () => scoreMatrix('sparsegpt', weights, 2, 4, norms), 'method', /no score function/],
        ['sampleCalibrationFile misspelt option', () => sampleCalibrationFile(C4_SAMPLE, encode, { nsamples: 2, seqlen: 16, seed: 0, nsample: 4 } as never), 'nsample', /did you mean nsamples\?$/],
        ['sampleCalibrationFile encode not a function', () => sampleCalibrationFile(C4_SAMPLE, 5 as never, { nsamples: 2, seqlen: 16, seed: 0 }), 'encode', /must be a function/],
        // 5 was encoded as an empty text: BOS alone.
        ['TextTokenizer.encode of a number', () => tokenizer.encode(5 as never), 'text', /^must be a string, got 5$/],
        ['TextTokenizer.load of a number', () => TextTokenizer.load(5 as never), 'dir', /must name a model directory, got 5$/],
        // Unchecked, a number would decode to "" without a word, a layer or token id out of range would be an internal error.
        ['TextTokenizer.decode of a number', () => tokenizer.decode(5 as never), 'ids', /^must be a list of token ids \(an array or Int32Array\), got 5$/],
        ['ModelCheckpoint.readBlock past the last layer', () => checkpoint.readBlock(5), 'layer', /^must be an integer in \[0, 4\], got 5$/],
        ['ModelCheckpoint.readEmbeddingRows outside the vocabulary', () => checkpoint.readEmbeddingRows(Int32Array.of(1, 600)), 'ids', /^holds token id 600 at 1, outside the model's vocabulary of 512$/],
      ];
      await assertRefusals(cases);
      const options = await thrown(() => sampleCalibrationFile(C4_SAMPLE, encode, null as never));
      assert.ok(options instanceof UserError && options.message === 'a request must be an object, got null');
      // Well formed, the same call works: per row, the two lowest scores (−2, −4 and −6, −8) are pruned.
      assert.deepEqual(Array.from(selectMask(weights, 2, 4, half, 'per-row')), [0, 1, 0, 1, 0, 1, 0, 1]);
    } finally {
      checkpoint.close();
    }
  });
});

describe('the layer loop, the searches, the proxy context and the checkpoint writer from JavaScript', () => {
  it('pruneLayers refuses a bad request naming the field before any work (were TypeErrors, misshapen windows, a hang on a long seqlen)', async () => {
    const checkpoint = ModelCheckpoint.open(model);
    const { spec } = checkpoint;
    const calibration = { file: C4_SAMPLE, sha256: '', nsamples: 2, seqlen: 16, seed: 0 };
    const settings = pruneSettings({ method: 'wanda', target: parseTarget('0.5'), selection: 'per-row', calibration });
    const window = Int32Array.from({ length: 16 }, (_, i) => (i * 37) % spec.vocabSize);
    const layersDone: number[] = [];
    const request = { model: checkpoint, settings, windows: [window, window], engine: { device: 'cpu', threads: 1 }, onLayerDone: async (layer: number) => { layersDone.push(layer); } };
    const run = (extra: Record<string, unknown>) => () => pruneLayers({ ...request, ...extra } as never);
    try {
      await assertRefusals([
        ['misspelt optional callback (stored weights left unrounded)', run({ roundweight: () => {} }), 'roundweight', /did you mean roundWeight\?$/],
        ['no onLayerDone', run({ onLayerDone: undefined }), 'onLayerDone', /^must be a function, got undefined$/],
        ['hand-built settings missing fields', run({ settings: { method: 'wanda', target: parseTarget('0.5') } }), 'settings.selection', /is missing/],
        ['settings pruneSettings refuses', run({ settings: { ...settings, owl: { m: 5, lambda: 7 } } }), 'settings.owl.lambda', /got 7$/],
        ['seqlen past the context', run({ settings: { ...settings, calibration: { ...calibration, seqlen: 100000 } } }), 'settings.calibration.seqlen', /longer than the model's context of 512/],
        ['no windows (NaN scores)', run({ windows: [] }), 'windows', /non-empty list/],
        ['window of another length', run({ windows: [window, window.subarray(0, 8)] }), 'windows[1]', /^holds 8 tokens, not the window length 16$/],
        ['token id outside the vocabulary', run({ windows: [new Int32Array(16).fill(600)] }), 'windows[0]', /token id 600 at 0, outside the model's vocabulary of 512$/],
        ['unknown device (ran on the CPU)', run({ engine: { device: 'gpu' } }), 'engine.device', /got "gpu"$/],
        ['no model', run({ model: {} }), 'model', /must be a model such as a ModelCheckpoint/],
        ['start past the last layer', run({ start: { firstLayer: 9, hidden: [], layerTargets: [] } }), 'start.firstLayer', /in \[0, 5\], got 9$/],
        ['progress without its methods', run({ progress: 5 }), 'progress', /update, log and done functions, got 5$/],
      ]);
      assert.deepEqual(layersDone, []);
      // Well formed, the same request prunes every layer: per row, exactly half of each linear.
      const reports = await pruneLayers(request as never);
      assert.deepEqual(layersDone, [0, 1, 2, 3, 4]);
      for (const linear of reports.flatMap((report) => report.linears)) assert.equal(linear.pruned, (linear.shape[0] * linear.shape[1]) / 2, linear.name);
    } finally {
      checkpoint.close();
    }
  });

  it('runHillClimb and runPho refuse bad options naming them before the first trial (minStep 0 never stopped, NaN returned the start)', async () => {
    const space = { searchA: false, fixedA: 0.5, variant: 'normalized' };
    const trials: number[] = [];
    const trial = async (params: { beta: number }) => {
      trials.push(params.beta);
      return { ppl: (Math.log(params.beta) - 1) ** 2 + 10 };
    };
    const hill = { kSet: [3], space, budgetPerK: 20, initialStep: 1, minStep: 0.25 };
    const climb = (extra: Record<string, unknown>, run: unknown = trial) => () => runHillClimb(run as never, { ...hill, ...extra } as never);
    const pho = { target: parseTarget('0.5'), selection: 'per-matrix', giniSubsample: null, seed: 1, kSet: [3], budgetPerK: 8, proxy: 'gini-ref', sign: 1, space, sigma0: 1.5 };
    const search = (extra: Record<string, unknown>) => () => runPho(null as never, { ...pho, ...extra } as never);
    await assertRefusals([
      ['misspelt option', climb({ budget: 3 }), 'budget', /did you mean budgetPerK\?$/],
      ['no window size (crashed at the end)', climb({ kSet: [] }), 'kSet', /at least one window size/],
      ['even window size', climb({ kSet: [2] }), 'kSet', /odd window sizes/],
      ['NaN budget', climb({ budgetPerK: Number.NaN }), 'budgetPerK', /got NaN$/],
      ['negative step', climb({ initialStep: -1 }), 'initialStep', /^must be a number in \(0, 18\], got -1$/],
      ['minStep 0', climb({ minStep: 0 }), 'minStep', /^must be a number in \(0, 1\], got 0$/],
      ['space flag as text', climb({ space: { ...space, searchA: 'yes' } }), 'space.searchA', /got "yes"$/],
      ['space without its exponent', climb({ space: { searchA: false, variant: 'normalized' } }), 'space.fixedA', /got undefined$/],
      ['unknown variant', climb({ space: { ...space, variant: 'smoothed' } }), 'space.variant', /got "smoothed"$/],
      ['start with alpha 0', climb({ start: { k: 3, alpha: 0, beta: 1, gamma: 1, a: 0.5, variant: 'normalized', border: 'zero' } }), 'start.alpha', /must be positive/],
      ['trial not a function', climb({}, 5), 'trial', /must be a function from CRePE parameters/],
      ['trial resolving to NaN', climb({}, async () => ({ ppl: Number.NaN })), 'trial', /^must resolve to \{ ppl: number \}, got ppl NaN$/],
      ['onCandidate not a function', () => runHillClimb(trial, hill as never, 5 as never), 'onCandidate', /must be a function, got 5$/],
      ['PHO space variant', search({ space: { ...space, variant: 'smoothed' } }), 'space.variant', /got "smoothed"$/],
      ['PHO unknown selection', search({ selection: 'per-column' }), 'selection', /got "per-column"$/],
      ['PHO rows 0 (NaN proxies)', search({ rows: 0 }), 'rows', /^must be a number in \(0, 1\], got 0$/],
      ['PHO start misspelt', search({ start: { gama: 1 } }), 'start.gama', /did you mean start\.gamma\?$/],
      ['PHO without a context (a TypeError)', search({}), 'context', /^must be an open ProxyContext, got null$/],
    ]);
    assert.deepEqual(trials, [], 'no refused call ran a trial');
  });

  it('ProxyContext.open refuses bad arguments before the cache is touched (a missing modelSha256 keyed the cache on nothing)', async () => {
    const checkpoint = ModelCheckpoint.open(model);
    const parent = scratchDir('proxy-open');
    const window = Int32Array.from({ length: 16 }, (_, i) => i);
    const options = { cacheDir: path.join(parent, 'cache'), cacheBudgetBytes: 2 ** 20, threads: 1, modelSha256: 'stories', calibrationSeed: 0, withGram: false, windows: [] };
    const open = (extra: Record<string, unknown>, seqlen = 16, windows = [window]) => () => ProxyContext.open(checkpoint, windows, seqlen, { device: 'cpu', threads: 1 }, { ...options, ...extra } as never);
    try {
      await assertRefusals([
        ['misspelt option', open({ cacheBudget: 5 }), 'opts.cacheBudget', /did you mean opts\.cacheBudgetBytes\?$/],
        ['no modelSha256', open({ modelSha256: undefined }), 'opts.modelSha256', /got undefined$/],
        ['NaN threads (crashed)', open({ threads: Number.NaN }), 'opts.threads', /got NaN$/],
        ['negative cache budget', open({ cacheBudgetBytes: -1 }), 'opts.cacheBudgetBytes', /got -1$/],
        ['flag as text', open({ withGram: 'yes' }), 'opts.withGram', /got "yes"$/],
        ['even window key', open({ windows: [{ k: 2, variant: 'normalized', a: null }] }), 'opts.windows[0].k', /odd integer/],
        ['unknown precision', open({ windowPrecision: 'float16' }), 'opts.windowPrecision', /got "float16"$/],
        ['windows longer than seqlen (never finished)', open({}, 8), 'windows[0]', /^holds 16 tokens, not the window length 8$/],
        ['seqlen past the context', open({}, 4096, [new Int32Array(4096)]), 'seqlen', /longer than the model's context/],
      ]);
      assert.deepEqual(readdirSync(parent), []);
    } finally {
      checkpoint.close();
    }
  });

  it('writeCheckpoint refuses an unknown format, non-string metadata and bad callbacks before writing (wrote dense files, unreadable metadata)', async () => {
    const dir = scratchDir('write-checkpoint');
    const source = { names: () => ['w.weight'], info: () => ({ dtype: 'F32' as const, shape: [2, 2] }), readRaw: () => new Uint8Array(16) };
    const write = (options: unknown, target: unknown = dir, from: unknown = source) => () => writeCheckpoint(target as never, from as never, options as never);
    await assertRefusals([
      ['misspelt option', write({ maxShardsize: 10 }), 'options.maxShardsize', /did you mean options\.maxShardSize\?$/],
      ['unknown format', write({ format: 'sparse_bitmask' }), 'options.format', /^must be one of dense, sparse-bitmask, got "sparse_bitmask"$/],
      ['shard size as text', write({ maxShardSize: '5GB' }), 'options.maxShardSize', /got "5GB"$/],
      ['metadata value not a string', write({ metadata: { step: 5 } }), 'options.metadata.step', /must be a string/],
      ['compress not a function', write({ format: 'sparse-bitmask', compress: true }), 'options.compress', /got true$/],
      ['null options', write(null), 'options', /must be an object/],
      ['directory not a string', write({}, 5), 'dir', /got 5$/],
      ['source without its methods', write({}, dir, {}), 'source', /names, info and readRaw/],
    ]);
    assert.deepEqual(readdirSync(dir), []);
    assert.deepEqual((await writeCheckpoint(dir, source, { metadata: { step: '5' } })).files, ['model.safetensors']);
  });
});

describe('smaller building blocks from JavaScript', () => {
  it('refuse arguments that gave a silently wrong answer or a TypeError, naming them', async () => {
    const weights = new Float32Array([1, -2, 3, -4, 5, -6, 7, -8]);
    const confirm = async () => ({ ppl: 10, seconds: 0 });
    await assertRefusals([
      // A misspelt override left the Hub online.
      ['hubSettings misspelt override', () => hubSettings({ ofline: true } as never, {}), 'ofline', /^is not a field of the Hub settings; did you mean offline\?$/],
      ['hubSettings flag as text', () => hubSettings({ offline: 'yes' } as never, {}), 'offline', /got "yes"$/],
      // Plain arrays have no buffer: they hashed as no bytes (the sha256 of nothing).
      ['windowsSha256 of plain arrays', () => windowsSha256([[1, 2]] as never), 'windows', /must be a list of Int32Arrays/],
      // A gold index past the choices scored the document wrong.
      ['documentMetrics gold past the choices', () => documentMetrics([1, 2], ['a', 'b'], 5), 'gold', /^must be an integer in \[0, 1\], got 5$/],
      ['documentMetrics one score for two choices', () => documentMetrics([1], ['a', 'b'], 0), 'logLikelihoods', /one number per choice \(2\)/],
      ['planLoglikelihoods misspelt option', () => planLoglikelihoods([], { windw: 64 } as never), 'windw', /did you mean window\?$/],
      ['planLoglikelihoods window 1', () => planLoglikelihoods([], { window: 1 }), 'window', /^must be an integer ≥ 2, got 1$/],
      // An unknown device ran on the CPU.
      ['scoreLoglikelihoods unknown device', () => scoreLoglikelihoods(null as never, planLoglikelihoods([], { window: 8 }), { device: 'gpu' } as never), 'device', /got "gpu"$/],
      // A number for the params object scored with the default exponent.
      ['riaScores params as a number', () => riaScores(weights, 2, 4, new Float32Array(4), 9 as never), 'params', /got 9$/],
      ['defaultCrepeConfigFor NaN sparsity (picked the 50% default)', () => defaultCrepeConfigFor({ kind: 'unstructured', sparsity: Number.NaN }), 'target', /got NaN$/],
      ['parseTaskList of a number', () => parseTaskList(5 as never), 'tasks', /got 5$/],
      ['bitmaskCompress shape of other bytes', () => bitmaskCompress(new Uint8Array(16), 'F32', [3, 2]), 'raw', /^must hold the 3×2 F32 weight \(24 bytes\), got 16 bytes$/],
      ['bitmaskCompress unknown dtype', () => bitmaskCompress(new Uint8Array(16), 'F33' as never, [2, 2]), 'dtype', /got "F33"$/],
      // "NaN values are stored, but the bitmask marks 0".
      ['bitmaskDecompress unknown dtype', () => bitmaskDecompress({ compressed: new Uint8Array(4), bitmask: new Uint8Array(1) }, 'F33' as never, [1, 8], 'w'), 'dtype', /^must be one of F32, F16, BF16, got "F33"$/],
      ['bitmaskDecompress without its parts', () => bitmaskDecompress(null as never, 'F32', [1, 8], 'w'), 'parts', /^must be \{ compressed, bitmask \} \(Uint8Arrays\) with optional rowOffsets \(numbers\), got null$/],
      // No values gave a mean of NaN.
      ['meanWithStderr of nothing', () => meanWithStderr([]), 'values', /^must be a non-empty list of finite numbers, got an array \[\]$/],
      ['meanWithStderr of text', () => meanWithStderr([1, 'a'] as never), 'values', /got an array \[1, "a"\]$/],
      ['encodeRequest encode not a function', () => encodeRequest(5 as never, { context: 'a', continuation: 'b' }), 'encode', /^must be a function from text to token ids, got 5$/],
      ['encodeRequest context a number (a TypeError)', () => encodeRequest(() => Int32Array.of(1), { context: 5, continuation: 'b' } as never), 'request.context', /^must be a string, got 5$/],
      ['formatZeroShotTable of null', () => formatZeroShotTable(null as never), 'report', /with its tasks\), got null$/],
      ['parseHubId of a number (a TypeError)', () => parseHubId(5 as never), 'text', /^must be a Hub id such as org\/name or org\/name@revision, got 5$/],
      ['resolveModelArgument of a number', () => resolveModelArgument(5 as never, { kind: 'model-dir' }), 'model', /got 5$/],
      ['resolveModelArgument unknown kind', () => resolveModelArgument('no/such-model', { kind: 'dir' } as never), 'options.kind', /^must be one of model-dir, checkpoint-file, got "dir"$/],
      ['resolveModelArgument misspelt option', () => resolveModelArgument('no/such-model', { kind: 'model-dir', revison: 'v1' } as never), 'options.revison', /did you mean options\.revision\?$/],
      // Plain arrays gave plain-array windows, which the engines cannot take.
      ['sampleTextWindows of a plain array', () => sampleTextWindows([1, 2, 3] as never, { nsamples: 1, seqlen: 2, seed: 0 }), 'tokens', /^must be an Int32Array of token ids, got an array \[1, 2, 3\]$/],
      ['sampleC4Windows of a number', () => sampleC4Windows(5 as never, () => Int32Array.of(1), { nsamples: 1, seqlen: 2, seed: 0 }), 'documents', /got 5$/],
      ['sampleC4Windows of a number document', () => sampleC4Windows([5] as never, () => Int32Array.of(1, 2, 3), { nsamples: 1, seqlen: 2, seed: 0 }), 'documents[0]', /^must be a document's text, got 5$/],
      ['planLoglikelihoods of a number (a TypeError)', () => planLoglikelihoods(5 as never, { window: 8 }), 'groups', /got 5$/],
      ['planLoglikelihoods plain-array context', () => planLoglikelihoods([[{ context: [1], continuation: Int32Array.of(2) }]] as never, { window: 8 }), 'groups[0][0].context', /^must be an Int32Array of token ids, got an array \[1\]$/],
      ['withSparsityConfig of null (a TypeError)', () => withSparsityConfig(null as never, { format: 'dense', globalSparsity: 0, structure: 'unstructured', ignore: [] }, 'x'), 'config', /^must be a config\.json object, got null$/],
      // Unchecked, not a function would be a TypeError, and a trial resolving to {} would never win, unnoticed.
      ['chooseByConfirmation candidates not a list', () => chooseByConfirmation(5 as never, confirm), 'candidates', /got 5$/],
      ['chooseByConfirmation trial not a function', () => chooseByConfirmation([], 5 as never), 'trial', /^must be a function from CRePE parameters to a promise of \{ ppl, seconds \}, got 5$/],
      ['chooseByConfirmation even window', () => chooseByConfirmation([{ source: 'x', params: { ...RIA_POINT, k: 2 }, objective: null }], confirm), 'candidates[0].params.k', /odd integer/],
      ['chooseByConfirmation trial without ppl', () => chooseByConfirmation([], (async () => ({})) as never), 'trial', /^must resolve to \{ ppl: number, seconds: number \}, got an object$/],
    ]);
    // Well formed: the second choice scores higher, and per character too.
    assert.deepEqual(documentMetrics([-4, -1], ['ab', 'cd'], 1), { acc: 1, acc_norm: 1 });
    assert.equal(hubSettings({ offline: true }, { HF_HOME: '/nowhere' }).offline, true);
  });
});

describe('convertModel progress and cancellation', () => {
  it('reports parameters written and stops between tensors when its signal is aborted, leaving nothing', async () => {
    const parent = scratchDir('convert-abort');
    const controller = new AbortController();
    const updates: number[] = [];
    await assert.rejects(convertModel({
      input: STORIES_BIN,
      out: path.join(parent, 'model'),
      signal: controller.signal,
      onProgress: (event) => {
        if (event.kind !== 'update') return;
        updates.push(event.done);
        if (updates.length === 3) controller.abort();
      },
    }), { name: 'AbortError' });
    assert.equal(updates.length, 3);
    assert.ok(updates.every((done, i) => i === 0 || done > updates[i - 1]));
    assert.deepEqual(readdirSync(parent), []);
  });
});
