// Requests as JavaScript callers build them, not only as the command line's parser does: wrong
// types, misspelt fields, null, non-boolean flags, callbacks that are no functions or that throw,
// and arguments of the building blocks. Each is refused naming its field before any work, and
// nothing is left behind.
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import {
  FieldError, ModelCheckpoint, TextTokenizer, UserError, convertModel, evaluatePerplexity, evaluateTasks, inspectModel, parseTarget, perplexity,
  pruneModel, sampleCalibrationFile, scoreMatrix, searchCoefficients, selectMask, type PruneRequest,
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
      ['exclude as text', () => pruneModel(prune(out, { exclude: 'down_proj' })), 'exclude', /^must be a list of linear names, got "down_proj"$/],
      ['command of the wrong type', () => pruneModel(prune(out, { command: 5 })), 'command', /^must be a non-empty string, got 5$/],
      ['proxy cache of the wrong type', () => search(out, { proxyCache: 5 }), 'proxyCache', /^must name a directory$/],
      ['NaN shard size', () => pruneModel(prune(out, { maxShardSize: Number.NaN })), 'maxShardSize', /got NaN$/],
      ['task directory that does not exist', () => evaluateTasks({ model, tasks: 'rte', taskDir: path.join(parent, 'tasks') }), 'taskDir', /tasks: no such directory \(expected the directory of the task files/],
      ['tasks of the wrong type', () => evaluateTasks({ model, tasks: 5, taskDir: TASK_DIR } as never), 'tasks', /comma-separated or as a list, got 5$/],
      ['onProgress not a function', () => pruneModel(prune(out, { onProgress: 'log' })), 'onProgress', /^must be a function, got "log"$/],
      ['signal not an AbortSignal', () => evaluate({ signal: { aborted: true } }), 'signal', /^must be an AbortSignal, got an object$/],
    ];
    for (const [what, run, field, problem] of cases) {
      const error = await thrown(run);
      assert.ok(error instanceof FieldError, `${what}: expected a FieldError, got ${String(error)}`);
      assert.equal(error.field, field, what);
      assert.match(error.problem, problem, what);
    }
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
    try {
      const cases: Array<[string, () => unknown, string, RegExp]> = [
        // Windows past the context ran positions the model never saw: PPL 1.8e11, no error.
        ['perplexity window past the context', () => perplexity(checkpoint, new Int32Array(2048).fill(5), { seqlen: 1024, threads: 1, device: 'cpu' }), 'seqlen', /1024 is longer than the model's context of 512 tokens/],
        ['perplexity one-token window (PPL NaN)', () => perplexity(checkpoint, tokens, { seqlen: 1, threads: 1, device: 'cpu' }), 'seqlen', /at least 2 tokens/],
        ['perplexity seqlen as text', () => perplexity(checkpoint, tokens, { seqlen: '8', threads: 1, device: 'cpu' } as never), 'seqlen', /got "8"$/],
        ['perplexity maxChunks 0', () => perplexity(checkpoint, tokens, { seqlen: 8, maxChunks: 0, threads: 1, device: 'cpu' }), 'maxChunks', /integer ≥ 1, got 0$/],
        ['perplexity token id outside the vocabulary', () => perplexity(checkpoint, new Int32Array(16).fill(600), { seqlen: 8, threads: 1, device: 'cpu' }), 'tokens', /token id 600 at 0, outside the model's vocabulary of 512$/],
        ['perplexity plain array', () => perplexity(checkpoint, [1, 2, 3] as never, { seqlen: 2, threads: 1, device: 'cpu' }), 'tokens', /must be an Int32Array of token ids, got an array \[1, 2, 3\]$/],
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
      ];
      for (const [what, run, field, problem] of cases) {
        const error = await thrown(run);
        assert.ok(error instanceof FieldError, `${what}: expected a FieldError, got ${String(error)}`);
        assert.equal(error.field, field, what);
        assert.match(error.problem, problem, what);
      }
      const options = await thrown(() => sampleCalibrationFile(C4_SAMPLE, encode, null as never));
      assert.ok(options instanceof UserError && options.message === 'a request must be an object, got null');
      // Well formed, the same call works: per row, the two lowest scores (−2, −4 and −6, −8) are pruned.
      assert.deepEqual(Array.from(selectMask(weights, 2, 4, half, 'per-row')), [0, 1, 0, 1, 0, 1, 0, 1]);
    } finally {
      checkpoint.close();
    }
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
