/**
 * Pipeline benchmark: RIA and SparseGPT at 50 % unstructured on a 4-layer synthetic
 * model with TinyLlama-1.1B's layer shapes, 32 × 512 random calibration tokens, through
 * runPrunePipeline. Reports where the wall time goes, scoring + selection throughput and peak RSS
 * next to the model's size. Each method runs in its own child process so that its peak RSS is its own.
 *
 * Standalone: node --import tsx bench/pipeline.ts [--quick]
 * Child:      node --import tsx bench/pipeline.ts --child <method> --model <dir> --nsamples N --seqlen L
 */
import { rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { stageTotals } from '../src/prune/layer-loop.ts';
import { runPrunePipeline, workDirFor } from '../src/prune/pipeline.ts';
import { pruneSettings, type PruneSettings } from '../src/prune/settings.ts';
import { LINEAR_NAMES, linearShape, type ModelSpec } from '../src/model/spec.ts';
import { readModelConfig } from '../src/model/config.ts';
import { argValue, peakRssBytes, runBenchChild, sendChildResult } from './child-process.ts';
import {
  ensureSyntheticModel, randomTokenWindows, weightFileBytes, QUICK_MODEL, TINYLLAMA_4_LAYERS,
} from './synthetic-model.ts';

const METHODS = ['ria', 'sparsegpt'] as const;
type Method = (typeof METHODS)[number];

/** What one child reports about its run (seconds summed over layers / linears). */
interface PipelineTimings {
  method: Method;
  wall: number;
  statistics: number;
  forward: number;
  pruning: number;
  score: number;
  select: number;
  update: number;
  linearWeights: number;
  sparsity: number;
  peakRssBytes: number;
}

function settingsFor(method: Method, nsamples: number, seqlen: number): PruneSettings {
  return pruneSettings({
    method,
    target: { kind: 'unstructured', sparsity: 0.5 },
    selection: 'per-matrix',
    calibration: { file: '(random token ids)', sha256: '', nsamples, seqlen, seed: 0 },
  });
}

/** The child's work: one pruning run, timed. */
async function runChild(method: Method, modelDir: string, nsamples: number, seqlen: number): Promise<PipelineTimings> {
  const spec = readModelConfig(modelDir);
  const windows = randomTokenWindows(nsamples, seqlen, spec.vocabSize, 0);
  const outDir = path.join(os.tmpdir(), `crepe-bench-pipeline-${method}-${process.pid}`);
  const started = performance.now();
  try {
    const result = await runPrunePipeline({
      modelDir, outDir, settings: settingsFor(method, nsamples, seqlen), windows,
      engine: { device: 'cpu' }, resume: false, overwrite: true,
      progress: { update: (done: number, message?: string) => console.error(`pipeline ${method}: ${message ?? done}`), log: (line: string) => console.error(line), done: () => undefined },
    });
    const wall = (performance.now() - started) / 1000;
    return {
      method, wall, ...stageTotals(result.layers),
      linearWeights: result.linearWeights, sparsity: result.linearSparsity, peakRssBytes: peakRssBytes(),
    };
  } finally {
    rmSync(workDirFor(outDir), { recursive: true, force: true });
    rmSync(outDir, { recursive: true, force: true });
  }
}

const MiB = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
const secs = (s: number): string => s.toFixed(1);
const pct = (part: number, whole: number): string => `${((part / whole) * 100).toFixed(1)} %`;

/** Bytes of one decoder layer's linear weights widened to float32 (what the loop holds per layer). */
function layerLinearBytesF32(spec: ModelSpec): number {
  let count = 0;
  for (const name of LINEAR_NAMES) {
    const [dOut, dIn] = linearShape(spec, name);
    count += dOut * dIn;
  }
  return count * 4;
}

export async function benchPipeline(log: (line: string) => void, options: { quick?: boolean } = {}): Promise<string> {
  const modelOptions = options.quick ? QUICK_MODEL : TINYLLAMA_4_LAYERS;
  const nsamples = options.quick ? 4 : 32;
  const seqlen = options.quick ? 128 : 512;
  const modelDir = await ensureSyntheticModel(modelOptions, log);
  const spec = readModelConfig(modelDir);

  const results: PipelineTimings[] = [];
  for (const method of METHODS) {
    log(`pipeline: ${method}, ${nsamples} × ${seqlen} tokens, in a child process …`);
    const args = [method, '--model', modelDir, '--nsamples', String(nsamples), '--seqlen', String(seqlen)];
    results.push(await runBenchChild<PipelineTimings>(fileURLToPath(import.meta.url), args, log));
  }

  const table = [
    '| | ' + results.map((r) => r.method).join(' | ') + ' |',
    '|---|' + results.map(() => '---:|').join(''),
  ];
  const row = (what: string, value: (r: PipelineTimings) => number): void => {
    table.push(`| ${what} | ${results.map((r) => `${secs(value(r))} s (${pct(value(r), r.wall)})`).join(' | ')} |`);
  };
  row('statistics: dense block forward with Σx² (RIA) or Σx + XᵀX (SparseGPT) outputs', (r) => r.statistics);
  row('forward: pruned block → next layer\'s inputs', (r) => r.forward);
  row('scoring', (r) => r.score);
  row('selection (per-matrix threshold)', (r) => r.select);
  row('SparseGPT: Hessian factorization + OBS updates', (r) => r.update);
  row('other pruning work (zeroing, rounding to F16)', (r) => r.pruning - r.score - r.select - r.update);
  row('I/O and the rest: hashing, reading layers, embedding, writing layers/activations/state, final assembly', (r) => r.wall - r.statistics - r.forward - r.pruning);
  table.push(`| **wall time** | ${results.map((r) => `**${secs(r.wall)} s**`).join(' | ')} |`);
  table.push(`| linear sparsity reached | ${results.map((r) => `${(r.sparsity * 100).toFixed(2)} %`).join(' | ')} |`);
  table.push(`| **peak RSS** (child process) | ${results.map((r) => `**${MiB(r.peakRssBytes)}**`).join(' | ')} |`);

  const ria = results.find((r) => r.method === 'ria');
  const lines: string[] = [];
  if (ria) {
    const rate = ria.linearWeights / (ria.score + ria.select);
    const bigMatrix = 4096 * 11008;
    lines.push(
      `RIA scoring + selection inside the pipeline: ${(ria.linearWeights / 1e6).toFixed(0)} M weights in ${(ria.score + ria.select).toFixed(2)} s = **${(rate / 1e6).toFixed(0)} M weights/s**;`
      + ` at that rate a 4096 × 11008 matrix takes **${(bigMatrix / rate).toFixed(2)} s** (goal < 0.5 s; measured directly in the pruning-math section).`,
    );
  }

  const weightBytes = weightFileBytes(modelDir);
  const activationBytes = nsamples * seqlen * spec.hiddenSize * 4;
  const embeddingBytes = spec.vocabSize * spec.hiddenSize * 4;
  const largestGram = Math.max(...LINEAR_NAMES.map((name) => linearShape(spec, name)[1])) ** 2 * 8;
  const dtype = modelOptions.dtype ?? 'F16';
  return [
    '## Pipeline: RIA and SparseGPT, layer by layer',
    '',
    `Synthetic model: ${spec.numLayers} layers, hidden ${spec.hiddenSize}, intermediate ${spec.intermediateSize}, ${spec.numHeads} heads, ${spec.numKvHeads} KV heads, vocab ${spec.vocabSize}, ${dtype}, weights N(0, 0.02²).`
      + ` Calibration: ${nsamples} × ${seqlen} random token ids (seed 0). 50 % unstructured, per-matrix selection (RIA a = 0.5; SparseGPT block 128, percdamp 0.01). CPU, ORT default threads.`,
    'Each method runs in its own child process through `runPrunePipeline` (work directory, resumable state, final model.safetensors); times come from its layer and linear reports.',
    '',
    ...table,
    '',
    ...lines,
    '',
    `Memory for scale: the model's weight file is ${MiB(weightBytes)} (${dtype}); one layer's linear weights in float32 are ${MiB(layerLinearBytesF32(spec))},`
      + ` the calibration activations ${MiB(activationBytes)} (float32, one copy), the token embedding widened to float32 ${MiB(embeddingBytes)},`
      + ` SparseGPT's largest float64 Hessian (d_in ${Math.sqrt(largestGram / 8)}) ${MiB(largestGram)}. Peak RSS follows one layer plus activations, not the whole model (it also includes ORT's arenas and Node's own ~50 MiB).`,
    '',
  ].join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  if (process.argv.includes('--child')) {
    const method = process.argv[process.argv.indexOf('--child') + 1] as Method;
    if (!METHODS.includes(method)) throw new Error(`--child expects one of ${METHODS.join(', ')}, got ${method}`);
    const modelDir = argValue('model');
    if (!modelDir) throw new Error('--child needs --model <dir>');
    sendChildResult(await runChild(method, modelDir, Number(argValue('nsamples')), Number(argValue('seqlen'))));
  } else {
    const started = Date.now();
    const section = await benchPipeline((line) => console.error(line), { quick: process.argv.includes('--quick') });
    console.log(section);
    console.error(`pipeline bench took ${((Date.now() - started) / 1000).toFixed(0)} s`);
  }
}
