/**
 * A pruning run that writes a checkpoint: the shared layer loop, with each finished layer saved
 * in the work directory (`--resume` continues after a crash or Ctrl-C with an identical result),
 * then the final model.safetensors streamed together from the saved layers and the untouched
 * tensors, in the input's dtypes.
 */
import { copyFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { ModelCheckpoint } from '../model/checkpoint.ts';
import { LINEAR_NAMES, blockTensorNames, layerPrefix, type BlockWeights } from '../model/spec.ts';
import type { EngineOptions } from '../engine/session.ts';
import { checkOutputDir, publishOutputDir } from '../io/output-dir.ts';
import { writeSafetensors, SafetensorsStreamWriter, type TensorToWrite } from '../io/safetensors-writer.ts';
import { SafetensorsFile } from '../io/safetensors.ts';
import { roundThroughHalfInPlace } from '../util/float16.ts';
import { sha256Bytes } from '../util/hash.ts';
import { UserError } from '../util/errors.ts';
import { WriteError, writingToSync } from '../io/write-error.ts';
import type { Progress } from '../util/progress.ts';
import { pruneLayers, validateAgainstModel, type LayerReport } from './layer-loop.ts';
import type { PruneSettings, PruneTarget } from './settings.ts';
import { WorkDir } from './work-dir.ts';

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
}

export interface PipelineResult {
  outDir: string;
  inputSha256: Record<string, string>;
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
    const settingsHash = sha256Bytes(JSON.stringify({ settings, inputSha256, windows: windowsDigest(windows) }));
    const { work, state } = WorkDir.open<LayerReport>(outDir, { resume: request.resume, overwrite: request.overwrite, settingsHash });
    let layerTargets = (state?.layerTargets as PruneTarget[] | undefined) ?? [];
    if (state) progress?.log(`resuming at layer ${state.layersDone} of ${spec.numLayers}`);

    const prunable = new Set(LINEAR_NAMES.map((n) => `${n}.weight`));
    let layers: LayerReport[];
    try {
      await pruneLayers({
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
        roundWeight: (layer, name, weight) => roundToStoredDtype(weight, model.weights.info(layerPrefix(layer) + name).dtype),
        onTargets: async (targets, hidden) => {
          layerTargets = targets;
          await work.commitStart(settingsHash, layerTargets, hidden);
        },
        onLayerDone: async (layer, weights, report, hidden) => {
          await work.commitLayer(layer, report, hidden, (file) => writeLayer(model, file, layer, weights, prunable));
        },
      });
      layers = work.state!.layers;
      await assembleCheckpoint(model, work);
      copyModelFiles(request.modelDir, work.dir);
      work.keepOnly(PUBLISHED_FILES);
    } catch (error) {
      throw stopped(error, work, state !== null);
    }

    let prunedWeights = 0;
    let linearWeights = 0;
    for (const layer of layers) {
      for (const linear of layer.linears) {
        prunedWeights += linear.pruned;
        linearWeights += linear.shape[0] * linear.shape[1];
      }
    }
    return {
      outDir,
      inputSha256,
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
  publishOutputDir(WorkDir.pathFor(resolved), resolved, { command: 'prune', overwrite });
}

export const workDirFor = (outDir: string): string => WorkDir.pathFor(outDir);

/** The pruned model computes with weights as stored: round f32 results to f16/bf16 when the checkpoint is. */
function roundToStoredDtype(weight: Float32Array, dtype: string): Float32Array {
  if (dtype === 'F16' || dtype === 'BF16') roundThroughHalfInPlace(weight, dtype);
  return weight;
}

/** Writes one layer's tensors in the checkpoint's dtypes; tensors crepe does not prune are copied byte for byte. */
async function writeLayer(model: ModelCheckpoint, file: string, layer: number, weights: BlockWeights, prunable: Set<string>): Promise<void> {
  const tensors: TensorToWrite[] = blockTensorNames(model.spec).map((name) => {
    const info = model.weights.info(layerPrefix(layer) + name);
    return { name: info.name, dtype: info.dtype, shape: info.shape, data: prunable.has(name) ? weights[name] : model.weights.readRaw(info.name) };
  });
  await writeSafetensors(file, tensors);
}

/** Streams the final model.safetensors: pruned layers from the work directory, every other tensor copied. */
async function assembleCheckpoint(model: ModelCheckpoint, work: WorkDir<LayerReport>): Promise<void> {
  const names = model.weights.names();
  const layout = names.map((name) => {
    const { dtype, shape } = model.weights.info(name);
    return { name, dtype, shape };
  });
  const writer = await SafetensorsStreamWriter.create(work.path('model.safetensors'), layout, { format: 'pt', producer: 'crepe' });
  const layerFiles: SafetensorsFile[] = [];
  try {
    for (let l = 0; l < model.spec.numLayers; l++) layerFiles.push(SafetensorsFile.open(work.layerFile(l)));
    for (const name of names) {
      const match = /^model\.layers\.(\d+)\./.exec(name);
      const layerFile = match ? layerFiles[Number(match[1])] : undefined;
      await writer.write(name, layerFile?.tensors.has(name) ? layerFile.readRaw(name) : model.weights.readRaw(name));
    }
    await writer.finish();
  } catch (error) {
    await writer.abort();
    throw error;
  } finally {
    for (const f of layerFiles) f.close();
  }
}

/** config.json, tokenizer and generation files travel with the pruned weights. */
const MODEL_FILES = ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'tokenizer.model'];
/** What a finished work directory holds (crepe-report.json is added by the caller). */
const PUBLISHED_FILES = ['model.safetensors', ...MODEL_FILES];

function copyModelFiles(modelDir: string, targetDir: string): void {
  for (const file of MODEL_FILES) {
    const source = path.join(modelDir, file);
    const target = path.join(targetDir, file);
    if (existsSync(source)) writingToSync(target, () => copyFileSync(source, target));
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


function windowsDigest(windows: Int32Array[]): string {
  return sha256Bytes(windows.map((w) => sha256Bytes(w)).join(''));
}
