// A layer's commit is atomic: state.json, written last, names the exact files it commits, and the
// activations file carries the index of the layer it enters. The scenario — a run stopped
// when state.json says 2 layers are done, with the activations and the layer file of a run that
// got one layer further copied into its work directory (what a kill between the old renames left)
// — resumes to a model byte-identical to an uninterrupted run's. Stale `.*.tmp-*` files of a
// killed write are removed on resume and never published. All in process: a run "crashes" by a
// non-user error thrown from its progress callback right after a commit.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { runPrunePipeline, publishOutput, workDirFor } from '../../src/prune/pipeline.ts';
import { pruneSettings, type PruneSettings } from '../../src/prune/settings.ts';
import { activationsFileName, layerFileName, WORK_STATE_FORMAT, WorkDir } from '../../src/prune/work-dir.ts';
import { removePendingTemporaries } from '../../src/io/atomic.ts';
import { sampleCalibrationFile } from '../../src/data/calibration.ts';
import { TextTokenizer } from '../../src/model/tokenizer.ts';
import { UserError } from '../../src/util/errors.ts';
import type { Progress } from '../../src/util/progress.ts';
import { C4_SAMPLE } from '../helpers/shared.ts';
import { scratchDir, storiesModelDir } from '../helpers/stories.ts';

const sha256 = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');

class SimulatedCrash extends Error {}

/** Progress that throws (like a kill) once `stopAfter` layers are committed. */
function crashAfter(stopAfter: number): Progress {
  return {
    update(done) {
      if (done >= stopAfter) throw new SimulatedCrash(`stopped after ${done} layers`);
    },
    log() {},
    done() {},
  };
}

describe('resume after a stop between the commit steps of a layer', () => {
  let model = '';
  let settings: PruneSettings;
  let windows: Int32Array[] = [];
  let cleanSha = '';
  const logs: string[] = [];

  const run = (out: string, opts: { resume?: boolean; progress?: Progress; modelDir?: string } = {}) =>
    runPrunePipeline({
      modelDir: opts.modelDir ?? model,
      outDir: out,
      settings,
      windows,
      engine: { device: 'cpu' },
      resume: Boolean(opts.resume),
      overwrite: false,
      progress: opts.progress ?? { update() {}, log: (line) => logs.push(line), done() {} },
    });

  before(async () => {
    model = await storiesModelDir();
    const tokenizer = TextTokenizer.load(model);
    windows = sampleCalibrationFile(C4_SAMPLE, (text) => tokenizer.encode(text, { bos: true }), { nsamples: 4, seqlen: 64, seed: 0 }).windows;
    settings = pruneSettings({
      method: 'wanda',
      target: { kind: 'unstructured', sparsity: 0.5 },
      selection: 'per-row',
      calibration: { file: C4_SAMPLE, sha256: '', nsamples: 4, seqlen: 64, seed: 0 },
    });
    const clean = path.join(scratchDir('clean'), 'out');
    await run(clean);
    publishOutput(clean);
    cleanSha = sha256(path.join(clean, 'model.safetensors'));
  });

  it('a config.json changed since the stop (rms_norm_eps) is refused on resume; restored, the run resumes', async () => {
    const copy = path.join(scratchDir('changed-config'), 'model');
    mkdirSync(copy);
    for (const file of readdirSync(model)) copyFileSync(path.join(model, file), path.join(copy, file));
    const out = path.join(scratchDir('changed-config-out'), 'out');
    await assert.rejects(run(out, { progress: crashAfter(2), modelDir: copy }), SimulatedCrash);
    const configFile = path.join(copy, 'config.json');
    const original = readFileSync(configFile, 'utf8');
    writeFileSync(configFile, JSON.stringify({ ...JSON.parse(original), rms_norm_eps: 0.01 }));
    await assert.rejects(run(out, { resume: true, modelDir: copy }), (e: unknown) =>
      e instanceof UserError && e.message === `${workDirFor(out)} was started with other settings, model or calibration data (config.json describes another architecture (rmsNormEps)); pass the same options to resume, or overwrite to start again`);
    writeFileSync(configFile, original);
    await run(out, { resume: true, modelDir: copy });
    publishOutput(out);
    assert.equal(sha256(path.join(out, 'model.safetensors')), cleanSha);
  });

  it('a resume with other options says which, as they were and as they are', async () => {
    const out = path.join(scratchDir('changed-settings'), 'out');
    await assert.rejects(run(out, { progress: crashAfter(1) }), SimulatedCrash);
    const original = settings;
    try {
      settings = { ...original, target: { kind: 'unstructured', sparsity: 0.6 }, calibration: { ...original.calibration, seed: 3 } };
      await assert.rejects(run(out, { resume: true }), (e: unknown) =>
        e instanceof UserError && e.message === `${workDirFor(out)} was started with other settings, model or calibration data `
          + '(target.sparsity: was 0.5, now 0.6; calibration.seed: was 0, now 3); pass the same options to resume, or overwrite to start again');
    } finally {
      settings = original;
    }
    await run(out, { resume: true });
    publishOutput(out);
    assert.equal(sha256(path.join(out, 'model.safetensors')), cleanSha);
  });

  it('resume with nothing to resume says so, and runs from the first layer', async () => {
    const out = path.join(scratchDir('nothing-to-resume'), 'out');
    logs.length = 0;
    await run(out, { resume: true });
    assert.deepEqual(logs, [`no interrupted run to resume in ${workDirFor(out)}: starting at the first layer`]);
    publishOutput(out);
    assert.equal(sha256(path.join(out, 'model.safetensors')), cleanSha);
  });

  it('a stopped run keeps exactly the committed files, named by state.json', async () => {
    const out = path.join(scratchDir('stopped'), 'out');
    await assert.rejects(run(out, { progress: crashAfter(2) }), SimulatedCrash);
    const work = workDirFor(out);
    const state = JSON.parse(readFileSync(path.join(work, 'state.json'), 'utf8'));
    assert.equal(state.format, WORK_STATE_FORMAT);
    assert.equal(state.layersDone, 2);
    assert.deepEqual(state.files.layers.map((f: { name: string }) => f.name), [layerFileName(0), layerFileName(1)]);
    assert.equal(state.files.activations.name, activationsFileName(2));
    assert.equal(state.files.activations.bytes, 4 * 64 * 64 * 4, '4 windows × 64 tokens × hidden 64 × 4 bytes');
    assert.deepEqual(readdirSync(work).sort(), [activationsFileName(2), layerFileName(0), layerFileName(1), 'state.json']);
  });

  it('the issue\'s scenario: files of a later stop copied in, plus stale temporaries → the uninterrupted sha256', async () => {
    const first = path.join(scratchDir('first'), 'out');
    const later = path.join(scratchDir('later'), 'out');
    await assert.rejects(run(first, { progress: crashAfter(2) }), SimulatedCrash);
    await assert.rejects(run(later, { progress: crashAfter(3) }), SimulatedCrash);
    const firstWork = workDirFor(first);
    const laterWork = workDirFor(later);
    // What a kill after the layer file and the activations were written, before state.json, leaves.
    for (const name of [activationsFileName(3), layerFileName(2)]) copyFileSync(path.join(laterWork, name), path.join(firstWork, name));
    // A write killed before its rename (atomic.ts names temporaries `.<name>.tmp-<pid>-<random>`).
    writeFileSync(path.join(firstWork, '.model.safetensors.tmp-99999-0123456789ab'), 'partial');
    writeFileSync(path.join(firstWork, `.${activationsFileName(3)}.tmp-99999-ba9876543210`), 'partial');
    writeFileSync(path.join(firstWork, 'model.safetensors'), 'a half-assembled model');

    logs.length = 0;
    await run(first, { resume: true });
    assert.ok(logs.some((line) => /resuming at layer 2 of 5/.test(line)), logs.join('\n'));
    assert.deepEqual(
      readdirSync(firstWork).sort(),
      ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer.model', 'tokenizer_config.json'],
      'only the model files remain: no intermediates, no temporaries',
    );
    publishOutput(first);
    assert.equal(sha256(path.join(first, 'model.safetensors')), cleanSha);
    assert.ok(!readdirSync(first).some((name) => name.includes('.tmp-')), 'no temporary file published');
  });

  it('a stop after the last layer (before assembly) resumes to the same model', async () => {
    const out = path.join(scratchDir('last'), 'out');
    await assert.rejects(run(out, { progress: crashAfter(5) }), SimulatedCrash);
    logs.length = 0;
    await run(out, { resume: true });
    assert.ok(logs.some((line) => /resuming at layer 5 of 5/.test(line)), logs.join('\n'));
    publishOutput(out);
    assert.equal(sha256(path.join(out, 'model.safetensors')), cleanSha);
  });

  it('a state that names a file of the wrong size, or an old-format state, is refused (not guessed at)', async () => {
    const out = path.join(scratchDir('bad-state'), 'out');
    await assert.rejects(run(out, { progress: crashAfter(1) }), SimulatedCrash);
    const work = workDirFor(out);
    writeFileSync(path.join(work, activationsFileName(1)), 'truncated');
    await assert.rejects(run(out, { resume: true }), (error: unknown) =>
      error instanceof UserError && /state\.json: activations-00001\.f32 is 9 bytes, not 65536; remove .* or pass overwrite/.test(error.message));

    writeFileSync(path.join(work, 'state.json'), JSON.stringify({ settingsHash: 'x', layersDone: 1, layers: [{}], layerTargets: [] }));
    await assert.rejects(run(out, { resume: true }), (error: unknown) =>
      error instanceof UserError && /format null is not crepe-work\/2 \(written by another version of crepe\)/.test(error.message));
    assert.ok(existsSync(work), 'a refused resume leaves the work directory alone');
  });
});

describe('what a Ctrl-C removes (the command line calls removePendingTemporaries before it exits)', () => {
  it('a work directory without a committed state (before the first commit, after assembly) goes; one with committed layers stays', async () => {
    const out = path.join(scratchDir('signal'), 'out');
    const identity = { settings: { method: 'wanda' }, inputSha256: {}, spec: {}, windows: '' };
    const fresh = WorkDir.open(out, { resume: false, overwrite: false, identity }).work;
    assert.ok(existsSync(fresh.dir));
    removePendingTemporaries();
    assert.ok(!existsSync(fresh.dir), 'nothing to resume: removed');

    const { work } = WorkDir.open(out, { resume: false, overwrite: false, identity });
    await work.commitStart([], [new Float32Array(4)]);
    removePendingTemporaries();
    assert.ok(existsSync(path.join(work.dir, 'state.json')), 'committed: kept for --resume');
    const resumed = WorkDir.open(out, { resume: true, overwrite: false, identity }).work;
    removePendingTemporaries();
    assert.ok(existsSync(path.join(resumed.dir, 'state.json')), 'resumed: kept');

    resumed.keepOnly([]); // the finished model assembled, the state gone: nothing --resume can use
    removePendingTemporaries();
    assert.ok(!existsSync(resumed.dir));
  });
});
