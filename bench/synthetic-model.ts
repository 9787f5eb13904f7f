/**
 * A synthetic Hugging Face model directory for benchmarks: config.json and model.safetensors with
 * a real model's layer shapes (TinyLlama-1.1B by default) but only a few layers, its weights drawn
 * N(0, 0.02²) like a trained model's initial scale, norms 1. No tokenizer: benchmarks feed random
 * token windows directly.
 *
 * The benchmarks keep each model in the temporary directory under a name made of its options
 * (syntheticModelDir), shared by every run on the machine: written by the first run that needs it,
 * then kept and reused. `npm run bench -- --remove-models` removes, after the run, only the models
 * that run wrote.
 *
 * Standalone: node --import tsx bench/synthetic-model.ts <dir> [--f32]
 */
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, linkSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { atomicWriteJson } from '../src/io/atomic.ts';
import { SafetensorsStreamWriter, type TensorLayout } from '../src/io/safetensors-writer.ts';
import { specToConfigJson } from '../src/model/config.ts';
import {
  blockTensorNames, blockTensorShape, layerPrefix, EMBED_NAME, FINAL_NORM_NAME, LM_HEAD_NAME,
  type ModelSpec,
} from '../src/model/spec.ts';
import { Rng } from '../src/util/rng.ts';

export interface SyntheticModelOptions {
  layers: number;
  hidden: number;
  intermediate: number;
  heads: number;
  kvHeads: number;
  vocab: number;
  /** Stored dtype of every tensor; F16 as real checkpoints ship. */
  dtype?: 'F16' | 'F32';
  seed?: number;
}

/** TinyLlama-1.1B's layer shape with 4 layers: what the pipeline and PHO benchmarks run on. */
export const TINYLLAMA_4_LAYERS: SyntheticModelOptions = {
  layers: 4, hidden: 2048, intermediate: 5632, heads: 32, kvHeads: 4, vocab: 32000, dtype: 'F16', seed: 0,
};

/** Two such layers: the peer benchmark and scripts/gpu-check. */
export const TINYLLAMA_2_LAYERS: SyntheticModelOptions = { ...TINYLLAMA_4_LAYERS, layers: 2 };

/** Llama-2-7B's layer shapes (multi-head attention, no GQA) with 2 layers: the PHO-at-scale benchmark's model. */
export const LLAMA2_7B_2_LAYERS: SyntheticModelOptions = {
  layers: 2, hidden: 4096, intermediate: 11008, heads: 32, kvHeads: 32, vocab: 32000, dtype: 'F16', seed: 0,
};

/** A small model of the same structure, for smoke runs (--quick). */
export const QUICK_MODEL: SyntheticModelOptions = {
  layers: 2, hidden: 512, intermediate: 1408, heads: 8, kvHeads: 2, vocab: 4000, dtype: 'F16', seed: 0,
};

/** Standard deviation of the random weights (the usual initializer_range of Llama models). */
const WEIGHT_STD = 0.02;

export function syntheticSpec(options: SyntheticModelOptions): ModelSpec {
  return {
    family: 'llama',
    hiddenSize: options.hidden,
    intermediateSize: options.intermediate,
    numLayers: options.layers,
    numHeads: options.heads,
    numKvHeads: options.kvHeads,
    headDim: options.hidden / options.heads,
    vocabSize: options.vocab,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: null,
    maxPositionEmbeddings: 2048,
    tieWordEmbeddings: false,
    attentionBias: false,
    qkNorm: false,
    bosTokenId: 1,
    eosTokenId: 2,
    torchDtype: (options.dtype ?? 'F16') === 'F16' ? 'float16' : 'float32',
  };
}

/** Every tensor of the model, in checkpoint order (embedding, layers, final norm, lm_head). */
function tensorLayout(spec: ModelSpec, dtype: 'F16' | 'F32'): TensorLayout[] {
  const layout: TensorLayout[] = [{ name: EMBED_NAME, dtype, shape: [spec.vocabSize, spec.hiddenSize] }];
  for (let layer = 0; layer < spec.numLayers; layer++) {
    for (const name of blockTensorNames(spec)) layout.push({ name: layerPrefix(layer) + name, dtype, shape: blockTensorShape(spec, name) });
  }
  layout.push({ name: FINAL_NORM_NAME, dtype, shape: [spec.hiddenSize] });
  layout.push({ name: LM_HEAD_NAME, dtype, shape: [spec.vocabSize, spec.hiddenSize] });
  return layout;
}

/**
 * Writes config.json and model.safetensors into `dir` (created if needed), one tensor at a time.
 * config.json is written last, so its presence means the directory is complete.
 */
export async function writeSyntheticModel(dir: string, options: SyntheticModelOptions): Promise<ModelSpec> {
  const spec = syntheticSpec(options);
  const dtype = options.dtype ?? 'F16';
  mkdirSync(dir, { recursive: true });
  const rng = new Rng(options.seed ?? 0);
  const layout = tensorLayout(spec, dtype);
  const writer = await SafetensorsStreamWriter.create(path.join(dir, 'model.safetensors'), layout, { format: 'pt', producer: 'crepe-bench' });
  try {
    for (const tensor of layout) {
      const { name, shape } = tensor;
      const size = shape.reduce((a, b) => a * b, 1);
      const data = new Float32Array(size);
      if (name.endsWith('norm.weight')) data.fill(1);
      else for (let i = 0; i < size; i++) data[i] = WEIGHT_STD * rng.gaussian();
      await writer.write(tensor, data);
    }
    await writer.finish();
  } catch (error) {
    await writer.abort();
    throw error;
  }
  await atomicWriteJson(path.join(dir, 'config.json'), specToConfigJson(spec));
  return spec;
}

/** Where the benchmarks keep a synthetic model of these options between sections and runs. */
export function syntheticModelDir(options: SyntheticModelOptions): string {
  const { layers, hidden, intermediate, heads, kvHeads, vocab, dtype = 'F16', seed = 0 } = options;
  return path.join(os.tmpdir(), `crepe-bench-model-L${layers}-h${hidden}-i${intermediate}-a${heads}-kv${kvHeads}-v${vocab}-${dtype}-s${seed}`);
}

/** The synthetic model directories this process wrote (not those it found): what a run may remove. */
const written = new Set<string>();

const isComplete = (dir: string): boolean => existsSync(path.join(dir, 'config.json'));

/**
 * The synthetic model's directory, written first if it is not there yet. The model is shared: other
 * runs (other sessions too) find it and use it. It is written under a private name and renamed into
 * place, so a directory under the shared name is always complete, and two runs that write it at
 * the same time never write into the same files (the first rename wins, the other copy is dropped).
 */
export async function ensureSyntheticModel(options: SyntheticModelOptions, log?: (line: string) => void): Promise<string> {
  const dir = syntheticModelDir(options);
  if (isComplete(dir)) return dir;
  const privateDir = `${dir}.writing-${process.pid}-${randomBytes(4).toString('hex')}`;
  const started = performance.now();
  log?.(`synthetic model: writing ${dir} …`);
  try {
    await writeSyntheticModel(privateDir, options);
    if (existsSync(dir) && !isComplete(dir)) {
      // An incomplete directory under the shared name (an interrupted write of an older version):
      // moved aside first, so that nothing removes a complete model that appears meanwhile.
      const stale = `${dir}.stale-${process.pid}-${randomBytes(4).toString('hex')}`;
      try {
        renameSync(dir, stale);
        rmSync(stale, { recursive: true, force: true });
      } catch { /* another run moved it first */ }
    }
    try {
      renameSync(privateDir, dir);
      written.add(dir);
      log?.(`synthetic model: ${(weightFileBytes(dir) / 2 ** 20).toFixed(0)} MiB in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    } catch (error) {
      if (!isComplete(dir)) throw error;
      log?.('synthetic model: another run wrote it first; using that one');
    }
  } finally {
    rmSync(privateDir, { recursive: true, force: true });
  }
  return dir;
}

/** The synthetic model directories this process wrote (ensureSyntheticModel), in the order written. */
export function writtenSyntheticModels(): string[] {
  return [...written];
}

/**
 * Removes the synthetic models this process wrote and returns their directories; models it found
 * already there are never removed (another run may be using them).
 */
export function removeWrittenSyntheticModels(): string[] {
  const removed = [...written];
  for (const dir of removed) {
    rmSync(dir, { recursive: true, force: true });
    written.delete(dir);
  }
  return removed;
}

/**
 * A directory `dir` holding the synthetic model of `options` (its weight file hard-linked where the
 * file system allows, else copied) with the tokenizer of another model directory beside it, so
 * that commands which tokenise text (calibration, evaluation) can run on it. Any tokenizer whose
 * ids stay below the synthetic vocabulary will do (stories260K's 512 ids, for instance).
 */
export async function syntheticModelWithTokenizer(options: SyntheticModelOptions, tokenizerModelDir: string, dir: string, log?: (line: string) => void): Promise<string> {
  const source = await ensureSyntheticModel(options, log);
  mkdirSync(dir, { recursive: true });
  const weights = path.join(dir, 'model.safetensors');
  try {
    linkSync(path.join(source, 'model.safetensors'), weights);
  } catch {
    copyFileSync(path.join(source, 'model.safetensors'), weights);
  }
  copyFileSync(path.join(source, 'config.json'), path.join(dir, 'config.json'));
  for (const file of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(path.join(tokenizerModelDir, file), path.join(dir, file));
  return dir;
}

/** `count` windows of `seqlen` uniformly random token ids (what a tokenizer would feed, without one). */
export function randomTokenWindows(count: number, seqlen: number, vocab: number, seed: number): Int32Array[] {
  const rng = new Rng(seed);
  return Array.from({ length: count }, () => Int32Array.from({ length: seqlen }, () => rng.below(vocab)));
}

export function weightFileBytes(dir: string): number {
  return statSync(path.join(dir, 'model.safetensors')).size;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const dir = process.argv[2];
  if (!dir) {
    console.error('usage: node --import tsx bench/synthetic-model.ts <dir> [--f32]');
    process.exit(2);
  }
  const dtype = process.argv.includes('--f32') ? 'F32' : 'F16';
  const started = performance.now();
  await writeSyntheticModel(dir, { ...TINYLLAMA_4_LAYERS, dtype });
  console.error(`wrote ${dir} (${(weightFileBytes(dir) / 2 ** 20).toFixed(0)} MiB) in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}
