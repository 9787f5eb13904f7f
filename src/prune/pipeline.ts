/**
 * A pruning run that writes a checkpoint: the shared layer loop, with each finished layer saved
 * in the work directory (`--resume` continues after a crash or Ctrl-C with an identical result),
 * then the final model.safetensors streamed together from the saved layers and the untouched
 * tensors, in the input's dtypes. A channel permutation of the MLP's intermediate channels is
 * folded into the stored gate/up rows and down columns (storage-order.ts), so down_proj is N:M as
 * written; the non-weight files of the input are copied alongside (io/model-files.ts).
 *
 * With `replay`, masks recorded by an earlier prune of the same model with the same settings
 * (mask-replay.ts) are applied to the dense layers instead: no statistics, no scoring, no forward
 * pass, the same checkpoint.
 */
import path from 'node:path';
import { ModelCheckpoint } from '../model/checkpoint.ts';
import { LINEAR_NAMES, fusedTensors, isBlockLinearWeight, layerPrefix, storedBlockTensorNames, storedTensorOf, type BlockWeights } from '../model/spec.ts';
import type { EngineOptions } from '../engine/session.ts';
import { checkOutputDir, publishOutputDir } from '../io/output-dir.ts';
import { copyModelFiles, type CopiedModelFiles } from '../io/model-files.ts';
import { writeSafetensors, type TensorToWrite } from '../io/safetensors-writer.ts';
import { SafetensorsFile, scanRaw } from '../io/safetensors.ts';
import { writeCheckpoint, type SaveFormat, type WeightSource } from '../io/checkpoint-writer.ts';
import { SparsityTally, writeSparsityConfig, type SparsityMetadata } from './sparsity-config.ts';
import { roundThroughHalfInPlace } from '../util/float16.ts';
import { windowsSha256 } from '../data/calibration.ts';
import { UserError } from '../util/errors.ts';
import { WriteError } from '../io/write-error.ts';
import type { Progress } from '../util/progress.ts';
import { pruneLayers, prunedWeightCount, validateAgainstModel, type LayerReport } from './layer-loop.ts';
import type { PruneSettings, PruneTarget } from './settings.ts';
import { WorkDir } from './work-dir.ts';
import { foldMlpPermutation, storageOrder, type StorageOrder } from './storage-order.ts';
import { keepOnSignal } from '../io/atomic.ts';
import { applyLayerMasks, masksFit, type RecordedMasks } from './mask-replay.ts';

export interface PipelineRequest {
  modelDir: string;
  outDir: string;
  settings: PruneSettings;
  /** Calibration windows of `settings.calibration.seqlen` tokens each. */
  windows: Int32Array[];
  engine: EngineOptions;
  resume: boolean;
  overwrite: boolean;
  progress?: Progress;
  /** How the pruned weights are stored (default: dense, 5 GB shards). */
  output?: OutputOptions;
  /** Masks an earlier prune of this model with these settings and windows recorded: applied instead of pruning (masksReproduce must hold). */
  replay?: RecordedMasks;
}

export interface OutputOptions {
  format?: SaveFormat;
  /** Largest weight file, bytes (default 5 GB, as transformers). */
  maxShardSize?: number;
  /** Write compressed-tensors' sparsity metadata into config.json (default true; needed by sparse-bitmask). */
  sparsityMetadata?: boolean;
}

export interface PipelineResult {
  outDir: string;
  inputSha256: Record<string, string>;
  /** The input's non-weight files copied next to the weights, and what was left out. */
  files: CopiedModelFiles;
  /** Permuted N:M linears: which are N:M as stored (MLP permutation folded in) and which need a runtime permutation. */
  storage: StorageOrder;
  layers: LayerReport[];
  layerTargets: PruneTarget[];
  linearSparsity: number;
  prunedWeights: number;
  linearWeights: number;
  seconds: number;
}

export async function runPrunePipeline(request: PipelineRequest): Promise<PipelineResult> {
  const started = Date.now();
  const { settings, windows, progress } = request;
  const outDir = path.resolve(request.outDir);
  checkOutputDir(outDir, { overwrite: request.overwrite, inputs: [request.modelDir] });

  const model = ModelCheckpoint.open(request.modelDir);
  try {
    const { spec } = model;
    validateAgainstModel(spec, settings);
    const inputSha256 = model.hashAndCheckFinite();
    // A replayed run commits no activations: neither kind of run resumes the other's state.
    const identity = { settings, inputSha256, spec, windows: windowsSha256(windows), ...(request.replay ? { replayed: true } : {}) };
    const { work, state } = WorkDir.open<LayerReport>(outDir, { resume: request.resume, overwrite: request.overwrite, identity });
    let layerTargets = (state?.layerTargets as PruneTarget[] | undefined) ?? [];
    if (state) progress?.log(`resuming at layer ${state.layersDone} of ${spec.numLayers}`);
    else if (request.resume) progress?.log(`no interrupted run to resume in ${work.dir}: starting at the first layer`);

    const prunable = new Set(LINEAR_NAMES.map((n) => `${n}.weight`));
    let layers: LayerReport[];
    let files: CopiedModelFiles;
    const writeDone = async (layer: number, weights: BlockWeights, report: LayerReport, hidden: Float32Array[]) => {
      await work.commitLayer(layer, report, hidden, (file) => writeLayer(model, file, layer, foldMlpPermutation(weights, report), prunable));
      // Written out: the next layer is read into these arrays.
      if (layer + 1 < spec.numLayers) model.recycleBlock(weights);
    };
    try {
      if (request.replay) {
        const { replay } = request;
        if (!masksFit(replay, settings, spec.numLayers)) throw new Error('internal: masks recorded with other settings, or not for every layer');
        layerTargets = replay.layers.map((layer) => layer.target);
        if (!state) await work.commitStart(layerTargets, []);
        for (let layer = work.state!.layersDone; layer < spec.numLayers; layer++) {
          const weights = model.readBlock(layer);
          // Dense values with +0 where the recorded run pruned: already in the stored dtype.
          applyLayerMasks(replay, layer, weights);
          // The recorded report, with this run's seconds: none spent on statistics, scores or forward passes.
          const recorded = replay.layers[layer];
          const report: LayerReport = {
            ...recorded,
            linears: recorded.linears.map((linear) => ({ ...linear, seconds: { score: 0, select: 0, update: 0 } })),
            seconds: { statistics: 0, pruning: 0, forward: 0 },
          };
          await writeDone(layer, weights, report, []);
          progress?.update(layer + 1, `layer ${layer}: masks applied`);
        }
      } else await pruneLayers({
        model,
        settings,
        windows,
        engine: request.engine,
        start: state
          ? {
              firstLayer: state.layersDone,
              hidden: work.readActivations(windows.length, settings.calibration.seqlen * spec.hiddenSize),
              layerTargets,
            }
          : undefined,
        progress,
        roundWeight: (layer, name, weight) => roundToStoredDtype(weight, model.weights.info(layerPrefix(layer) + storedTensorOf(spec, name)).dtype),
        onTargets: async (targets, hidden) => {
          layerTargets = targets;
          await work.commitStart(layerTargets, hidden);
        },
        onLayerDone: writeDone,
      });
      layers = work.state!.layers;
      files = await finishOutput(model, work, request);
    } catch (error) {
      throw stopped(error, work, state !== null);
    }

    const { pruned: prunedWeights, total: linearWeights } = prunedWeightCount(layers);
    return {
      outDir,
      inputSha256,
      files,
      storage: storageOrder(layers),
      layers,
      layerTargets,
      linearSparsity: prunedWeights / linearWeights,
      prunedWeights,
      linearWeights,
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    model.close();
  }
}

/** Moves the finished work directory into place, replacing an old output (crepe's own, when `overwrite`) only now. */
export function publishOutput(outDir: string, overwrite = false): void {
  const resolved = path.resolve(outDir);
  // Moved into place, or (refused) kept where the message says: a later signal removes neither.
  keepOnSignal(WorkDir.pathFor(resolved));
  publishOutputDir(WorkDir.pathFor(resolved), resolved, { command: 'prune', overwrite });
}

export const workDirFor = (outDir: string): string => WorkDir.pathFor(outDir);

/** The pruned model computes with weights as stored: round f32 results to f16/bf16 when the checkpoint is. */
function roundToStoredDtype(weight: Float32Array, dtype: string): Float32Array {
  if (dtype === 'F16' || dtype === 'BF16') roundThroughHalfInPlace(weight, dtype);
  return weight;
}

/**
 * Writes one layer's tensors as the checkpoint stores them, in its dtypes: pruned linears from
 * `weights` (fused ones stacked again), tensors crepe does not prune copied byte for byte.
 */
async function writeLayer(model: ModelCheckpoint, file: string, layer: number, weights: BlockWeights, prunable: Set<string>): Promise<void> {
  const fused = fusedTensors(model.spec);
  const tensors: TensorToWrite[] = storedBlockTensorNames(model.spec).map((name) => {
    const info = model.weights.info(layerPrefix(layer) + name);
    const group = fused.find((f) => f.stored === name);
    const data = group ? stackRows(group.parts.map((part) => weights[part])) : prunable.has(name) ? weights[name] : model.weights.readRaw(info.name);
    return { name: info.name, dtype: info.dtype, shape: info.shape, data };
  });
  await writeSafetensors(file, tensors);
}

/** Row-major matrices with the same width, one below the other. */
function stackRows(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, part) => n + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/**
 * Completes the output in the work directory from the committed layers: the weights, the input's
 * other files, the sparsity metadata in config.json (unless switched off); everything else there
 * (layer files, state) is removed. Returns what was copied from the input.
 */
async function finishOutput(model: ModelCheckpoint, work: WorkDir<LayerReport>, request: PipelineRequest): Promise<CopiedModelFiles> {
  const output = request.output ?? {};
  const { files: weightFiles, sparsity } = await assembleCheckpoint(model, work, request.settings.target, output);
  const files = copyModelFiles(request.modelDir, work.dir);
  for (const skipped of files.skipped) if (skipped.note) request.progress?.log(skipped.note);
  if (output.sparsityMetadata !== false) await writeSparsityConfig(work.path('config.json'), sparsity);
  work.keepOnly([...weightFiles, ...new Set(files.copied.map((file) => file.split('/')[0]))]);
  return files;
}

/**
 * Streams the final weights (model.safetensors, or shards with their index): pruned layers from
 * the work directory, every other tensor copied, in the requested format; returns the files and
 * the sparsity metadata counted on the way.
 */
async function assembleCheckpoint(
  model: ModelCheckpoint, work: WorkDir<LayerReport>, target: PruneTarget, output: OutputOptions,
): Promise<{ files: string[]; sparsity: SparsityMetadata }> {
  const format = output.format ?? 'dense';
  const layerFiles: SafetensorsFile[] = [];
  const tally = new SparsityTally(target);
  try {
    for (let l = 0; l < model.spec.numLayers; l++) layerFiles.push(SafetensorsFile.open(work.layerFile(l)));
    /** The layer file that holds tensor `name` when its layer was pruned, else undefined (the input holds it). */
    const prunedFile = (name: string): SafetensorsFile | undefined => {
      const match = /^model\.layers\.(\d+)\./.exec(name);
      const layerFile = match ? layerFiles[Number(match[1])] : undefined;
      return layerFile?.tensors.has(name) ? layerFile : undefined;
    };
    const source: WeightSource = {
      names: () => model.weights.names(),
      info: (name: string) => model.weights.info(name),
      readRaw: (name, scratch) => (prunedFile(name) ?? model.weights).readRaw(name, scratch),
      // Stored dense, a tensor is read a piece at a time (a bitmask-compressed input's only whole).
      rangeReader(name) {
        const layerFile = prunedFile(name);
        if (layerFile) return (target, offset) => layerFile.readRawInto(name, target, offset);
        return model.weights.isBitmaskCompressed(name) ? null : (target, offset) => model.weights.readStoredInto(name, target, offset);
      },
    };
    const { files } = await writeCheckpoint(work.dir, source, {
      format,
      maxShardSize: output.maxShardSize,
      metadata: { format: 'pt', producer: 'crepe' },
      // Block linears with zeros; lm_head, embeddings, norms and linears left dense stay dense.
      compress: (name, raw) => {
        const { dtype, shape } = model.weights.info(name);
        return isBlockLinearWeight(name, shape) && scanRaw(raw, dtype).zeros > 0;
      },
      onTensor: (name, raw) => {
        const { dtype, shape } = model.weights.info(name);
        tally.observe(name, raw, dtype, shape);
      },
    });
    return { files, sparsity: tally.metadata(format) };
  } finally {
    for (const f of layerFiles) f.close();
  }
}

/**
 * What is left after a run stops, and the error to report. Bad data found mid-run (a UserError)
 * leaves nothing behind in a fresh run. A refused write (a full disk, a read-only mount) removes
 * what was not committed and keeps the committed layers for --resume, saying so; with no layer
 * committed there is nothing worth keeping. A crash or a signal never reaches this point, and its
 * work directory stays for --resume.
 */
function stopped(error: unknown, work: WorkDir<LayerReport>, resumed: boolean): unknown {
  if (error instanceof WriteError) {
    const done = work.state?.layersDone ?? 0;
    if (done === 0 && !resumed) {
      work.remove();
      return error;
    }
    work.removeUncommitted();
    return new UserError(`${error.message}; the ${done} finished layer${done === 1 ? '' : 's'} stay in ${work.dir} for resume once the problem is fixed (or delete it)`);
  }
  if (error instanceof UserError && !resumed) work.remove();
  return error;
}
