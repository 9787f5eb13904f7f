// Recorded masks (prune/mask-replay.ts): the dense weights with the recorded +0s are the pruned
// weights bit for bit, a kept −0 included; a linear left dense has no mask; and masks are only
// used for settings whose pruning does nothing but set weights to +0. On stories260K, the masks a
// trial records give the pipeline's checkpoint byte for byte, also when the replay stops and
// resumes; a pruning run does not resume a replay's work directory.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { applyLayerMasks, masksFit, masksReproduce, writeLayerMasks, type RecordedMasks } from '../../src/prune/mask-replay.ts';
import type { LayerReport } from '../../src/prune/layer-loop.ts';
import { pruneSettings } from '../../src/prune/settings.ts';
import { publishOutput, runPrunePipeline } from '../../src/prune/pipeline.ts';
import { pruneAndMeasure } from '../../src/search/trial.ts';
import { ModelCheckpoint } from '../../src/model/checkpoint.ts';
import { TextTokenizer } from '../../src/model/tokenizer.ts';
import { sampleCalibrationFile } from '../../src/data/calibration.ts';
import type { Progress } from '../../src/util/progress.ts';
import { C4_SAMPLE } from '../helpers/shared.ts';
import { scratchDir, storiesModelDir } from '../helpers/stories.ts';

const seconds = { score: 0, select: 0, update: 0 };
const report: LayerReport = {
  layer: 0,
  target: { kind: 'unstructured', sparsity: 0.5 },
  linears: [
    { name: 'self_attn.q_proj', shape: [2, 5], pruned: 5, sparsity: 0.5, seconds },
    { name: 'self_attn.k_proj', shape: [1, 3], pruned: 0, sparsity: 0, seconds, excluded: true },
  ],
  seconds: { statistics: 0, pruning: 0, forward: 0 },
};
const calibration = { file: 'c4.jsonl', sha256: '', nsamples: 1, seqlen: 8, seed: 0 };

describe('recorded masks', () => {
  test('written from pruned weights and applied to dense ones, they give the pruned weights bit for bit', async () => {
    const dir = path.join(scratchDir('mask-replay'), 'masks');
    mkdirSync(dir);
    // Dense q_proj: a kept −0 (index 1), a kept +0 (index 2), a pruned −0 (index 3, pruning writes +0).
    const dense = new Float32Array([0.5, -0, 0, -0, -2, 3, 1e-30, -7, 8, 9]);
    const pruned = new Float32Array([0.5, -0, 0, 0, 0, 3, 0, -7, 0, 0]);
    const denseK = new Float32Array([1, 2, 3]);
    await writeLayerMasks(dir, 0, { 'self_attn.q_proj.weight': pruned, 'self_attn.k_proj.weight': denseK }, report);
    // +0 at 2, 3, 4, 6, 8, 9 → bits 0b01011100 and 0b11; the dense k_proj has none.
    assert.deepEqual([...readFileSync(path.join(dir, 'layer-00000.zeros'))], [0b01011100, 0b11]);
    const masks: RecordedMasks = { dir, settings: pruneSettings({ method: 'crepe', target: report.target, calibration }), layers: [report] };
    const weights = { 'self_attn.q_proj.weight': dense.slice(), 'self_attn.k_proj.weight': denseK.slice() };
    applyLayerMasks(masks, 0, weights);
    const bitsOf = (x: Float32Array) => [...new Uint32Array(x.buffer)];
    assert.deepEqual(bitsOf(weights['self_attn.q_proj.weight']), bitsOf(pruned));
    assert.ok(Object.is(weights['self_attn.q_proj.weight'][1], -0));
    assert.deepEqual([...weights['self_attn.k_proj.weight']], [1, 2, 3]);
  });

  test('a file that does not hold one mask per pruned linear is refused', async () => {
    const dir = path.join(scratchDir('mask-replay-short'), 'masks');
    mkdirSync(dir);
    const short = { ...report, linears: [{ ...report.linears[0], shape: [1, 5] as [number, number] }] };
    await writeLayerMasks(dir, 0, { 'self_attn.q_proj.weight': new Float32Array(5) }, short);
    const masks: RecordedMasks = { dir, settings: pruneSettings({ method: 'crepe', target: report.target, calibration }), layers: [report] };
    assert.throws(() => applyLayerMasks(masks, 0, { 'self_attn.q_proj.weight': new Float32Array(10), 'self_attn.k_proj.weight': new Float32Array(3) }), /fewer masks/);
  });

  test('masks stand for a prune only when pruning just sets weights to +0, with the same settings, for every layer', () => {
    const target = { kind: 'unstructured' as const, sparsity: 0.5 };
    const crepe = pruneSettings({ method: 'crepe', target, calibration });
    assert.equal(masksReproduce(crepe), true);
    assert.equal(masksReproduce(pruneSettings({ method: 'crepe', target, calibration, dsnot: {} })), true);
    assert.equal(masksReproduce(pruneSettings({ method: 'crepe', target, calibration, reconstruct: true })), false);
    assert.equal(masksReproduce(pruneSettings({ method: 'sparsegpt', target, calibration })), false);
    assert.equal(masksReproduce(pruneSettings({ method: 'crepe', target: { kind: 'nm', n: 2, m: 4 }, calibration, permute: { strategy: 'lsa' } })), false);
    const masks: RecordedMasks = { dir: '', settings: crepe, layers: [report, report] };
    assert.equal(masksFit(masks, crepe, 2), true);
    assert.equal(masksFit(masks, crepe, 3), false);
    assert.equal(masksFit(masks, pruneSettings({ method: 'crepe', target, calibration: { ...calibration, seed: 1 } }), 2), false);
  });
});

describe('replaying recorded masks on stories260K', () => {
  test('a trial\'s masks write the pipeline\'s checkpoint byte for byte, after a stop and --resume too; a pruning run does not resume the replay', async () => {
    const model = await storiesModelDir();
    const tokenizer = TextTokenizer.load(model);
    const { windows } = sampleCalibrationFile(C4_SAMPLE, (text) => tokenizer.encode(text, { bos: true }), { nsamples: 4, seqlen: 64, seed: 0 });
    const settings = pruneSettings({
      method: 'crepe', target: { kind: 'unstructured', sparsity: 0.6 }, crepe: { k: 3, gamma: 0.5 },
      calibration: { file: C4_SAMPLE, sha256: '', nsamples: 4, seqlen: 64, seed: 0 },
    });
    const engine = { device: 'cpu' as const, threads: 1 };
    const quiet: Progress = { update() {}, log() {}, done() {} };
    const run = (out: string, opts: { replay?: RecordedMasks; resume?: boolean; progress?: Progress } = {}) => runPrunePipeline({
      modelDir: model, outDir: out, settings, windows, engine, resume: Boolean(opts.resume), overwrite: false, progress: opts.progress ?? quiet, replay: opts.replay,
    });
    const sha = (dir: string) => createHash('sha256').update(readFileSync(path.join(dir, 'model.safetensors'))).digest('hex');

    const pruned = path.join(scratchDir('replay-pruned'), 'out');
    const plain = await run(pruned);
    publishOutput(pruned);

    const masks: RecordedMasks = { dir: path.join(scratchDir('replay-masks'), 'masks'), settings, layers: [] };
    mkdirSync(masks.dir);
    const source = ModelCheckpoint.open(model);
    try {
      await pruneAndMeasure(source, settings, windows, { tokens: windows[0], seqlen: 64 }, engine, async (layer, weights, report) => {
        masks.layers.push(report);
        await writeLayerMasks(masks.dir, layer, weights, report);
      });
    } finally {
      source.close();
    }

    const replayed = path.join(scratchDir('replay-once'), 'out');
    const replay = await run(replayed, { replay: masks });
    publishOutput(replayed);
    assert.equal(sha(replayed), sha(pruned));
    assert.deepEqual(replay.layers.map((l) => l.linears.map((x) => x.pruned)), plain.layers.map((l) => l.linears.map((x) => x.pruned)));

    const stopped = path.join(scratchDir('replay-stopped'), 'out');
    const crash: Progress = { update(done) { if (done >= 2) throw new Error('stopped'); }, log() {}, done() {} };
    await assert.rejects(run(stopped, { replay: masks, progress: crash }), /stopped/);
    await assert.rejects(run(stopped, { resume: true }), /was started with other settings, model or calibration data \(it was writing the masks --auto chose: resume it with --auto\)/);
    await run(stopped, { replay: masks, resume: true });
    publishOutput(stopped);
    assert.equal(sha(stopped), sha(pruned));
  });
});
