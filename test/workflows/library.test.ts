// The library's contract: requests are checked with errors naming their fields, progress arrives as
// events, an aborted signal stops a prune with nothing left behind, and nothing outside the CLI prints.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import {
  FieldError, evaluatePerplexity, inspectModel, parseTarget, pruneModel, searchCoefficients, type ProgressEvent, type PruneRequest,
} from '../../src/index.ts';
import { removePendingTemporaries } from '../../src/io/atomic.ts';
import { heldCalibrationWindows } from '../helpers/held-calibration.ts';
import { C4_SAMPLE, PTB_VALID, REPO_ROOT, WIKITEXT_TEST } from '../helpers/shared.ts';
import { scratchDir, storiesModelDir } from '../helpers/stories.ts';

let model = '';
before(async () => {
  model = await storiesModelDir();
});

const prune = (out: string, extra: Partial<PruneRequest> = {}): PruneRequest => ({
  model, out, method: 'wanda', target: parseTarget('0.5'), calib: C4_SAMPLE, nsamples: 2, seqlen: 64, threads: 1, ...extra,
});

/** The FieldError a promise rejects with. */
async function fieldError(promise: Promise<unknown>): Promise<FieldError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof FieldError, `expected a FieldError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected a refusal');
}

describe('library API', () => {
  it('errors name request fields, not flags', async () => {
    const out = () => path.join(scratchDir('fields'), 'out');
    const cases: Array<[Promise<unknown>, string, RegExp]> = [
      [pruneModel(prune(out(), { target: { kind: 'unstructured', sparsity: 1.5 } })), 'target', /strictly between 0 and 1.*got 1\.5/],
      [pruneModel(prune(out(), { owl: { lambda: 0.6 } })), 'owl.lambda', /must be in \(0, 0\.5\).*got 0\.6/],
      [pruneModel(prune(out(), { method: 'obs' as never })), 'method', /"obs" is unknown/],
      [pruneModel(prune(out(), { sparsegpt: { percdamp: 2 } })), 'sparsegpt.percdamp', /\(0, 1\]/],
      [pruneModel(prune(out(), { evalText: WIKITEXT_TEST, evalSeqlen: 513 })), 'evalSeqlen', /513 is longer than the model's context of 512/],
      [pruneModel(prune(out(), { calib: path.dirname(C4_SAMPLE) })), 'calib', /is a directory/],
      [evaluatePerplexity({ model, text: WIKITEXT_TEST, maxChunks: 0 }), 'maxChunks', /integer ≥ 1, got 0/],
      [searchCoefficients({ model, out: out(), target: parseTarget('2:4'), calib: C4_SAMPLE, sigma0: 0 }), 'sigma0', /\(0, 18\], got 0/],
      [searchCoefficients({ model, out: out(), target: parseTarget('0.5'), calib: C4_SAMPLE, kSet: [2] }), 'kSet', /odd window sizes/],
      [searchCoefficients({ model, out: out(), target: parseTarget('0.5'), calib: C4_SAMPLE, confirm: 1, confirmOn: 'ptb' as never }), 'confirmOn', /"heldout" or "calibration", got "ptb"/],
      // Confirming on --eval-ppl needs it; on held-out calibration windows it does not (the PHO test in integration/search runs that).
      [searchCoefficients({ model, out: out(), target: parseTarget('0.5'), calib: C4_SAMPLE, confirm: 1 }), 'evalText', /is needed/],
      [inspectModel({ model, pattern: '0.5' }), 'pattern', /must be n:m with whole numbers, e\.g\. 2:4 .*got "0\.5"/],
      [inspectModel({ model, pattern: { kind: 'unstructured', sparsity: 0.5 } }), 'pattern', /expects n:m/],
    ];
    for (const [promise, field, problem] of cases) {
      const error = await fieldError(promise);
      assert.equal(error.field, field);
      assert.match(error.problem, problem);
      assert.doesNotMatch(error.message, /--/, `no flag in "${error.message}"`);
    }
  });

  it('progress: start, monotonic updates, done', async () => {
    const events: ProgressEvent[] = [];
    const result = await evaluatePerplexity({ model, text: WIKITEXT_TEST, seqlen: 64, maxChunks: 5, threads: 1, onProgress: (e) => events.push(e) });
    assert.equal(result.windows, 5);
    assert.deepEqual(events.map((e) => e.stage), events.map(() => 'eval'));
    assert.equal(events[0].kind, 'start');
    assert.equal(events.at(-1)?.kind, 'done');
    assert.equal(events.at(-1)?.detail, `PPL ${result.ppl.toFixed(4)}`);
    const updates = events.filter((e) => e.kind === 'update');
    const total = 5 * (5 + 1); // windows × (layers + head)
    assert.ok(updates.every((e, i) => e.total === total && e.done <= total && (i === 0 || e.done > updates[i - 1].done)));
    assert.equal(updates.at(-1)?.done, total);
  });

  it('an aborted signal stops a prune after the layer it is in; neither the output nor its work directory remains', async () => {
    const parent = scratchDir('abort');
    const out = path.join(parent, 'pruned');
    const controller = new AbortController();
    const layers: number[] = [];
    const run = pruneModel(prune(out, {
      signal: controller.signal,
      onProgress: (event) => {
        if (event.kind !== 'update' || !event.stage.startsWith('prune')) return;
        layers.push(event.done);
        if (event.done === 2) controller.abort();
      },
    }));
    await assert.rejects(run, (error: Error) => error.name === 'AbortError');
    assert.deepEqual(layers, [1, 2]);
    assert.ok(!existsSync(out));
    assert.ok(!existsSync(`${out}.crepe-partial`));
    assert.deepEqual(readdirSync(parent), []);
  });

  it('--auto\'s scratch proxy cache is among what a Ctrl-C removes (removePendingTemporaries, called by the command line\'s handler)', async () => {
    const parent = scratchDir('auto-signal');
    const out = path.join(parent, 'pruned');
    const cache = `${out}.crepe-auto-cache`;
    const seen: boolean[] = [];
    const run = pruneModel(prune(out, {
      method: 'crepe', nsamples: 8, auto: { budget: 2, kSet: [1], confirm: 1, windows: 2 },
      onProgress: (event) => {
        if (event.kind !== 'update' || !event.stage.startsWith('auto: PHO')) return;
        seen.push(existsSync(cache));
        removePendingTemporaries();
        seen.push(existsSync(cache));
        throw new Error('stopped here');
      },
    }));
    await assert.rejects(run, /stopped here/);
    assert.deepEqual(seen, [true, false], 'present during PHO, removed by the handler');
    assert.deepEqual(readdirSync(parent), []);

    // One left by a killed run (here: built from other calibration windows) is replaced, not refused.
    mkdirSync(cache);
    writeFileSync(path.join(cache, 'manifest.json'), JSON.stringify({ identity: { format: 'left by a killed run' } }));
    await pruneModel(prune(out, { method: 'crepe', nsamples: 8, auto: { budget: 2, kSet: [1], confirm: 1, windows: 2 } }));
    assert.deepEqual(readdirSync(parent), ['pruned']);
  });

  it('auto.windows that the calibration text cannot supply is refused naming how many it holds; the default takes those with a note', async () => {
    const dir = scratchDir('auto-short');
    const short = path.join(dir, 'short.txt');
    writeFileSync(short, readFileSync(PTB_VALID, 'utf8').slice(0, 1500));
    const held = heldCalibrationWindows(model, short, { nsamples: 2, count: 8, seqlen: 64 });
    assert.ok(held > 0 && held < 8, `${held} windows`);
    const holds = `${held} windows of 64 tokens beyond the 2 statistics windows (overlapping none of them)`;

    const error = await fieldError(pruneModel(prune(path.join(dir, 'a'), { method: 'crepe', calib: short, auto: { budget: 1, kSet: [1], confirm: 1, windows: 8 } })));
    assert.equal(error.field, 'auto.windows');
    assert.equal(error.problem, `8 is more than the calibration text yields: ${holds}`);
    assert.ok(!existsSync(path.join(dir, 'a')), 'refused before any output');

    const notes: string[] = [];
    const result = await pruneModel(prune(path.join(dir, 'b'), {
      method: 'crepe', calib: short, auto: { budget: 1, kSet: [1], confirm: 1 },
      onProgress: (event) => { if (event.kind === 'note' && event.stage === 'auto') notes.push(event.detail ?? ''); },
    }));
    assert.deepEqual(notes, [`confirmation on ${held} held-out calibration windows, fewer than the default 8: the calibration text yields ${holds}`]);
    assert.equal(result.auto?.confirmation.windows, held);
  });

  it('nothing outside src/cli prints or exits the process', () => {
    const offenders: string[] = [];
    for (const entry of readdirSync(path.join(REPO_ROOT, 'src'), { recursive: true, withFileTypes: true })) {
      const file = path.join(entry.parentPath, entry.name);
      if (!entry.isFile() || !file.endsWith('.ts') || file.includes(`${path.sep}cli${path.sep}`)) continue;
      const source = readFileSync(file, 'utf8');
      if (/process\.(stdout|stderr|exit)\b|console\.\w+\(/.test(source)) offenders.push(path.relative(REPO_ROOT, file));
    }
    assert.deepEqual(offenders, []);
  });

  it('an already aborted signal stops before any work', async () => {
    const parent = scratchDir('aborted');
    const controller = new AbortController();
    controller.abort();
    await assert.rejects(pruneModel(prune(path.join(parent, 'out'), { signal: controller.signal })), { name: 'AbortError' });
    assert.deepEqual(readdirSync(parent), []);
  });
});
