/**
 * The pruning pipeline (ALGORITHMS.md §1.3): layer-0 inputs from the calibration windows, then per
 * decoder layer — one dense pass collecting every linear's input statistics, prune the linears,
 * one pass of the pruned block to make the next layer's inputs — and finally the pruned checkpoint.
 *
 * Memory: one layer's weights plus the calibration activations. Each finished layer is saved in the
 * work directory, so `--resume` continues after a crash or Ctrl-C with an identical result.
 */
import { copyFileSync, existsSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { ModelCheckpoint } from '../model/checkpoint.ts';
import {
  LINEAR_NAMES, LINEAR_INPUT_GROUP, blockTensorNames, layerPrefix, linearShape, inputGroupWidth,
  type BlockWeights, type LinearInputGroup, type LinearName, type ModelSpec,
} from '../model/spec.ts';
import { ropeTables } from '../model/rope.ts';
import { BlockEngine } from '../engine/block-engine.ts';
import { embed } from '../engine/forward.ts';
import type { EngineOptions } from '../engine/session.ts';
import { writeSafetensors, SafetensorsStreamWriter, type TensorToWrite } from '../io/safetensors-writer.ts';
import { SafetensorsFile } from '../io/safetensors.ts';
import { f32ToBf16, f32ToF16, bf16ToF32, f16ToF32 } from '../util/float16.ts';
import { sha256Bytes, sha256File } from '../util/hash.ts';
import { check } from '../util/errors.ts';
import type { Progress } from '../util/progress.ts';
import { collectStatistics } from './calibration-stats.ts';
import { pruneLinear, type LinearReport } from './prune-linear.ts';
import { owlLayerTargets } from './owl-pass.ts';
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
  /** Called after each finished layer (tests use it to interrupt a run at a known point). */
  onLayerDone?: (layer: number) => void;
}

export interface LayerReport {
  layer: number;
  target: PruneTarget;
  linears: LinearReport[];
  seconds: { statistics: number; pruning: number; forward: number; io: number };
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

/** Linear-input groups whose statistics are collected together (one stage each when true-sequential). */
function statisticStages(settings: PruneSettings): LinearInputGroup[][] {
  return settings.trueSequential ? [['qkv'], ['o'], ['gateup'], ['down']] : [['qkv', 'o', 'gateup', 'down']];
}

/** Which statistics the settings need: none (magnitude), Σx² only, or also Σx and XᵀX. */
function statisticsKind(settings: PruneSettings): 'none' | 'sqnorm' | 'full' {
  if (settings.method === 'sparsegpt' || settings.reconstruct || settings.dsnot) return 'full';
  if (settings.method === 'magnitude' && !settings.owl) return 'none';
  return 'sqnorm';
}

export async function runPrunePipeline(request: PipelineRequest): Promise<PipelineResult> {
  const started = Date.now();
  const { settings, windows, progress } = request;
  const outDir = path.resolve(request.outDir);
  check(!existsSync(outDir) || request.overwrite, `${outDir} already exists; pass --overwrite to replace it`);

  const model = ModelCheckpoint.open(request.modelDir);
  try {
    const { spec } = model;
    const seqlen = settings.calibration.seqlen;
    for (const linear of LINEAR_NAMES) {
      if (settings.target.kind === 'nm') {
        const [, dIn] = linearShape(spec, linear);
        check(dIn % settings.target.m === 0, `--pattern ${settings.target.n}:${settings.target.m}: ${linear} has ${dIn} inputs, not a multiple of ${settings.target.m}`);
      }
    }

    const inputSha256 = hashWeightFiles(model);
    const settingsHash = sha256Bytes(JSON.stringify({ settings, inputSha256, windows: windowsHash(windows) }));
    const { work, state } = WorkDir.open<LayerReport>(outDir, { resume: request.resume, overwrite: request.overwrite, settingsHash });
    const rope = ropeTables(spec, seqlen);
    const kind = statisticsKind(settings);
    const statsEngine = kind === 'none' ? null : await BlockEngine.create(spec, seqlen, { ...request.engine, stats: kind });
    const plainEngine = await BlockEngine.create(spec, seqlen, { ...request.engine, stats: 'none' });

    try {
      let hidden: Float32Array[];
      let layerTargets: PruneTarget[];
      const layers: LayerReport[] = state?.layers ?? [];
      const firstLayer = state?.layersDone ?? 0;
      if (state) {
        hidden = work.readActivations(windows.length, seqlen * spec.hiddenSize);
        layerTargets = state.layerTargets as PruneTarget[];
        progress?.log(`resuming at layer ${firstLayer} of ${spec.numLayers}`);
      } else {
        const embedding = model.readEmbedding();
        hidden = windows.map((tokens) => embed(tokens, embedding, spec.hiddenSize));
        layerTargets = settings.owl
          ? await owlLayerTargets(model, hidden, rope, statsEngine ?? plainEngine, plainEngine, settings, progress)
          : Array.from({ length: spec.numLayers }, () => settings.target);
        await work.writeState({ settingsHash, layersDone: 0, layers: [], layerTargets });
      }

      for (let layer = firstLayer; layer < spec.numLayers; layer++) {
        const seconds = { statistics: 0, pruning: 0, forward: 0, io: 0 };
        let t = Date.now();
        const weights = model.readBlock(layer);
        seconds.io += (Date.now() - t) / 1000;

        const linears: LinearReport[] = [];
        for (const stage of statisticStages(settings)) {
          t = Date.now();
          const stats = statsEngine ? await collectStatistics(spec, statsEngine, hidden, weights, rope, stage, kind === 'full') : null;
          seconds.statistics += (Date.now() - t) / 1000;
          t = Date.now();
          for (const name of LINEAR_NAMES) {
            if (!stage.includes(LINEAR_INPUT_GROUP[name])) continue;
            const [dOut, dIn] = linearShape(spec, name);
            const result = pruneLinear({
              name,
              weight: weights[`${name}.weight`],
              dOut,
              dIn,
              stats: stats?.get(LINEAR_INPUT_GROUP[name]) ?? null,
              settings,
              target: layerTargets[layer],
            });
            weights[`${name}.weight`] = roundToStoredDtype(result.weight, model.weights.info(`${layerPrefix(layer)}${name}.weight`).dtype);
            linears.push(result.report);
          }
          seconds.pruning += (Date.now() - t) / 1000;
        }

        t = Date.now();
        for (let n = 0; n < hidden.length; n++) hidden[n] = (await plainEngine.run(hidden[n], weights, rope)).hidden;
        seconds.forward += (Date.now() - t) / 1000;

        t = Date.now();
        await writeLayer(model, work.layerFile(layer), layer, weights);
        await work.writeActivations(hidden);
        layers.push({ layer, target: layerTargets[layer], linears, seconds });
        await work.writeState({ settingsHash, layersDone: layer + 1, layers, layerTargets });
        seconds.io += (Date.now() - t) / 1000;

        const sparsity = layerSparsity(linears);
        progress?.update(layer + 1, `layer ${layer} pruned to ${(sparsity * 100).toFixed(2)}%`);
        request.onLayerDone?.(layer);
      }

      await assembleCheckpoint(model, work, spec.numLayers);
      copyModelFiles(request.modelDir, work.dir);
      work.clearIntermediates(spec.numLayers);

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
      await statsEngine?.release();
      await plainEngine.release();
    }
  } finally {
    model.close();
  }
}

/** Moves the finished work directory into place (replacing an old output only now, when asked to). */
export function publishOutput(outDir: string): void {
  const resolved = path.resolve(outDir);
  const work = WorkDir.pathFor(resolved);
  if (existsSync(resolved)) {
    const old = `${resolved}.crepe-old`;
    rmSync(old, { recursive: true, force: true });
    renameSync(resolved, old);
    renameSync(work, resolved);
    rmSync(old, { recursive: true, force: true });
  } else {
    renameSync(work, resolved);
  }
}

export function workDirFor(outDir: string): string {
  return WorkDir.pathFor(outDir);
}

function layerSparsity(linears: LinearReport[]): number {
  let pruned = 0;
  let total = 0;
  for (const l of linears) {
    pruned += l.pruned;
    total += l.shape[0] * l.shape[1];
  }
  return pruned / total;
}

/** The pruned model computes with weights as stored: round f32 results to f16/bf16 when the checkpoint is. */
function roundToStoredDtype(weight: Float32Array, dtype: string): Float32Array {
  if (dtype === 'F16') return f16ToF32(f32ToF16(weight));
  if (dtype === 'BF16') return bf16ToF32(f32ToBf16(weight));
  return weight;
}

/** Writes one layer's tensors in the checkpoint's dtypes; tensors crepe does not prune are copied byte for byte. */
async function writeLayer(model: ModelCheckpoint, file: string, layer: number, weights: BlockWeights): Promise<void> {
  const prunable = new Set(LINEAR_NAMES.map((n) => `${n}.weight`));
  const tensors: TensorToWrite[] = blockTensorNames(model.spec).map((name) => {
    const info = model.weights.info(layerPrefix(layer) + name);
    return {
      name: info.name,
      dtype: info.dtype,
      shape: info.shape,
      data: prunable.has(name) ? weights[name] : model.weights.readRaw(info.name),
    };
  });
  await writeSafetensors(file, tensors);
}

/** Streams the final model.safetensors: pruned layers from the work directory, every other tensor copied. */
async function assembleCheckpoint(model: ModelCheckpoint, work: WorkDir<LayerReport>, numLayers: number): Promise<void> {
  const names = model.weights.names();
  const layout = names.map((name) => {
    const info = model.weights.info(name);
    return { name, dtype: info.dtype, shape: info.shape };
  });
  const writer = await SafetensorsStreamWriter.create(work.path('model.safetensors'), layout, { format: 'pt', producer: 'crepe' });
  try {
    const layerFiles = new Map<number, SafetensorsFile>();
    for (let l = 0; l < numLayers; l++) layerFiles.set(l, SafetensorsFile.open(work.layerFile(l)));
    try {
      for (const name of names) {
        const match = /^model\.layers\.(\d+)\./.exec(name);
        const layerFile = match ? layerFiles.get(Number(match[1])) : undefined;
        const bytes = layerFile?.tensors.has(name) ? layerFile.readRaw(name) : model.weights.readRaw(name);
        await writer.write(name, bytes);
      }
    } finally {
      for (const f of layerFiles.values()) f.close();
    }
    await writer.finish();
  } catch (error) {
    await writer.abort();
    throw error;
  }
}

/** config.json, tokenizer and generation files travel with the pruned weights. */
function copyModelFiles(modelDir: string, targetDir: string): void {
  const files = ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'tokenizer.model'];
  for (const file of files) {
    const source = path.join(modelDir, file);
    if (existsSync(source)) copyFileSync(source, path.join(targetDir, file));
  }
}

function hashWeightFiles(model: ModelCheckpoint): Record<string, string> {
  const files = new Set(model.weights.names().map((n) => model.weights.info(n).file));
  const hashes: Record<string, string> = {};
  for (const file of [...files].sort()) hashes[path.basename(file)] = sha256File(file);
  return hashes;
}

function windowsHash(windows: Int32Array[]): string {
  const parts = windows.map((w) => sha256Bytes(w));
  return sha256Bytes(parts.join(''));
}
