/**
 * PHO benchmark: the proxy context's one dense calibration pass on the 4-layer synthetic
 * TinyLlama-shaped model (32 × 512 random tokens), then proxy evaluations per second for random
 * CRePE configurations at 50 % per-matrix and where an evaluation's time goes (scoring, selection,
 * proxy): for PHO's default proxy, and for gini-own with its Gini on a 65,536-position subsample
 * and exact, on one thread. Runs in a child process so that the peak RSS is its own.
 *
 * Standalone: node --import tsx bench/pho.ts [--quick]
 */
import { readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ModelCheckpoint } from '../src/model/checkpoint.ts';
import { ProxyContext, type ProxyContextOptions, type ProxyName, type ProxyOptions } from '../src/search/proxy.ts';
import { windowKey } from '../src/search/proxy-terms.ts';
import { LINEAR_NAMES, linearShape, type ModelSpec } from '../src/model/spec.ts';
import { DEFAULT_PROXY } from '../src/search/proxy-defaults.ts';
import { toParams, LOG_RATIO_RANGE, type SearchSpace } from '../src/search/space.ts';
import type { CrepeParams } from '../src/prune/scores/crepe.ts';
import { Rng } from '../src/util/rng.ts';
import { argValue, peakRssBytes, runBenchChild, sendChildResult } from './child-process.ts';
import {
  ensureSyntheticModel, randomTokenWindows, weightFileBytes, QUICK_MODEL, TINYLLAMA_4_LAYERS,
} from './synthetic-model.ts';

const GINI_SUBSAMPLE = 65536;
export const SPACE: SearchSpace = { searchA: false, fixedA: 0.5, variant: 'normalized' };

export interface EvaluationTimings {
  count: number;
  /** Wall seconds of all `count` evaluations. */
  wall: number;
  score: number;
  select: number;
  gini: number;
}

/** A proxy set and Gini mode measured, with its timings. */
interface EvaluationCase {
  label: string;
  timings: EvaluationTimings;
}

interface PhoResult {
  linears: number;
  linearWeights: number;
  buildSeconds: number;
  /** Bytes of the proxy cache directory (terms and the neighbourhood terms of k = 3, 5, 7, 9). */
  cachedBytes: number;
  rssAfterBuildBytes: number;
  cases: EvaluationCase[];
  peakRssBytes: number;
}

/** Random CRePE configurations from PHO's search box, k drawn from `kSet`. */
export function randomParams(count: number, seed: number, kSet: number[] = [3, 5, 7, 9]): CrepeParams[] {
  const rng = new Rng(seed);
  const [lo, hi] = LOG_RATIO_RANGE;
  return Array.from({ length: count }, () => {
    const k = kSet[rng.below(kSet.length)];
    return toParams([lo + (hi - lo) * rng.uniform(), lo + (hi - lo) * rng.uniform()], k, SPACE);
  });
}

/** Linear weights of all layers of a model. */
export function linearWeights(spec: ModelSpec): number {
  return spec.numLayers * LINEAR_NAMES.reduce((sum, name) => sum + linearShape(spec, name).reduce((a, b) => a * b, 1), 0);
}

/** Bytes of the files under `dir`. */
export function directoryBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    total += entry.isDirectory() ? directoryBytes(full) : statSync(full).size;
  }
  return total;
}

/** The proxy cache options of a benchmark: the model's identity is its directory, the neighbourhood terms those of `kSet`. */
export function benchCacheOptions(cacheDir: string, modelDir: string, kSet: number[], threads: number, budgetBytes: number): ProxyContextOptions {
  return {
    cacheDir, cacheBudgetBytes: budgetBytes, threads, modelSha256: `synthetic:${modelDir}`, calibrationSeed: 0, withGram: false,
    windows: kSet.map((k) => windowKey({ k, variant: SPACE.variant, a: SPACE.fixedA })),
  };
}

export async function timeEvaluations(
  context: ProxyContext,
  params: CrepeParams[],
  opts: ProxyOptions,
  proxies: ProxyName[],
  onValues?: (values: Record<ProxyName, number>) => void,
): Promise<EvaluationTimings> {
  const timings: EvaluationTimings = { count: params.length, wall: 0, score: 0, select: 0, gini: 0 };
  for (const p of params) {
    const started = performance.now();
    const { seconds, values } = await context.evaluate(p, opts, proxies);
    onValues?.(values);
    timings.wall += (performance.now() - started) / 1000;
    timings.score += seconds.score;
    timings.select += seconds.select;
    timings.gini += seconds.gini;
  }
  return timings;
}

async function runChild(modelDir: string, nsamples: number, seqlen: number, evaluations: number, exactEvaluations: number): Promise<PhoResult> {
  const model = ModelCheckpoint.open(modelDir);
  try {
    const windows = randomTokenWindows(nsamples, seqlen, model.spec.vocabSize, 0);
    console.error(`pho: dense statistics pass (${nsamples} × ${seqlen}) …`);
    const cacheDir = path.join(os.tmpdir(), `crepe-bench-pho-cache-${process.pid}`);
    rmSync(cacheDir, { recursive: true, force: true });
    const context = await ProxyContext.open(model, windows, seqlen, { device: 'cpu' }, benchCacheOptions(cacheDir, modelDir, [3, 5, 7, 9], 1, 2 ** 30));
    const rssAfterBuildBytes = process.memoryUsage().rss;
    const cachedBytes = directoryBytes(cacheDir);

    const base = { target: { kind: 'unstructured', sparsity: 0.5 }, selection: 'per-matrix', seed: 0 } as const;
    const subsampled: ProxyOptions = { ...base, giniSubsample: GINI_SUBSAMPLE };
    const params = randomParams(1 + 2 * evaluations + exactEvaluations, 1);
    console.error('pho: warm-up evaluation …');
    await context.evaluate(params[0], subsampled, [DEFAULT_PROXY.name]);
    const plan: [string, CrepeParams[], ProxyOptions, ProxyName[]][] = [
      [`${DEFAULT_PROXY.name} (PHO's default proxy; Gini along the precomputed reference order, no sort)`, params.slice(1, 1 + evaluations), subsampled, [DEFAULT_PROXY.name]],
      [`gini-own, Gini on ${GINI_SUBSAMPLE} subsampled positions per matrix`, params.slice(1 + evaluations, 1 + 2 * evaluations), subsampled, ['gini-own']],
      ['gini-own, exact Gini (sort of every pruned score)', params.slice(1 + 2 * evaluations), { ...base, giniSubsample: null }, ['gini-own']],
    ];
    const cases: EvaluationCase[] = [];
    for (const [label, caseParams, opts, proxies] of plan) {
      console.error(`pho: ${caseParams.length} evaluation(s), ${label} …`);
      cases.push({ label, timings: await timeEvaluations(context, caseParams, opts, proxies) });
    }
    await context.close();
    rmSync(cacheDir, { recursive: true, force: true });
    return {
      linears: model.spec.numLayers * LINEAR_NAMES.length, linearWeights: linearWeights(model.spec), buildSeconds: context.denseSeconds, cachedBytes,
      rssAfterBuildBytes, cases, peakRssBytes: peakRssBytes(),
    };
  } finally {
    model.close();
  }
}

const MiB = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
const share = (part: number, whole: number): string => `${((part / whole) * 100).toFixed(1)} %`;

function evaluationRow(label: string, t: EvaluationTimings, linearWeights: number): string {
  const perEvaluation = t.wall / t.count;
  const other = t.wall - t.score - t.select - t.gini;
  return `| ${label} | ${t.count} | ${perEvaluation.toFixed(2)} s | **${(1 / perEvaluation).toFixed(3)}** | ${(linearWeights / perEvaluation / 1e6).toFixed(0)} M | `
    + `${share(t.score, t.wall)} | ${share(t.select, t.wall)} | ${share(t.gini, t.wall)} | ${share(other, t.wall)} |`;
}

export async function benchPho(log: (line: string) => void, options: { quick?: boolean } = {}): Promise<string> {
  const modelOptions = options.quick ? QUICK_MODEL : TINYLLAMA_4_LAYERS;
  const nsamples = options.quick ? 4 : 32;
  const seqlen = options.quick ? 128 : 512;
  const evaluations = options.quick ? 3 : 5;
  const exactEvaluations = options.quick ? 1 : 2;
  const modelDir = await ensureSyntheticModel(modelOptions, log);
  const args = ['--model', modelDir, '--nsamples', String(nsamples), '--seqlen', String(seqlen), '--evaluations', String(evaluations), '--exact', String(exactEvaluations)];
  log('pho: proxy context and evaluations, in a child process …');
  const r = await runBenchChild<PhoResult>(fileURLToPath(import.meta.url), args, log);

  const { layers, hidden, intermediate } = modelOptions;
  return [
    '## PHO: proxy evaluations',
    '',
    `Synthetic model: ${layers} layers, hidden ${hidden}, intermediate ${intermediate} (TinyLlama-1.1B's layer shapes${options.quick ? ' scaled down, --quick' : ''}), F16, weights N(0, 0.02²);`
      + ` calibration ${nsamples} × ${seqlen} random token ids. One evaluation = CRePE score, per-matrix selection at 50 % and the proxy for all ${r.linears} linears (${(r.linearWeights / 1e6).toFixed(0)} M weights); a PHO search computes one proxy per candidate.`
      + ` Random configurations from PHO's box (log β/α, log γ/α uniform in [${LOG_RATIO_RANGE.join(', ')}], k ∈ {3, 5, 7, 9}, a = 0.5, normalized), after one warm-up evaluation.`,
    '',
    `Dense calibration pass and proxy cache build (\`ProxyContext.open\`, once per model and calibration set): ${r.buildSeconds.toFixed(1)} s. Evaluations on one thread (see "PHO at scale" for threads).`,
    '',
    '| proxy computed | evaluations | time / evaluation | evaluations / s | weights / s | scoring | selection | proxy (Gini) | other |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...r.cases.map((c) => evaluationRow(c.label, c.timings, r.linearWeights)),
    '',
    `Memory: the proxy cache on disk holds ${MiB(r.cachedBytes)} (per weight: the weight, its row and column, and one float32 neighbourhood term per k; the model's F16 weight file is ${MiB(weightFileBytes(modelDir))});`
      + ` the in-memory LRU budget is 1 GiB. RSS after the dense pass ${MiB(r.rssAfterBuildBytes)}; peak RSS (child process) **${MiB(r.peakRssBytes)}**.`,
    '',
  ].join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  if (process.argv.includes('--child')) {
    const modelDir = argValue('model');
    if (!modelDir) throw new Error('--child needs --model <dir>');
    sendChildResult(await runChild(modelDir, Number(argValue('nsamples')), Number(argValue('seqlen')), Number(argValue('evaluations')), Number(argValue('exact'))));
  } else {
    const started = Date.now();
    const section = await benchPho((line) => console.error(line), { quick: process.argv.includes('--quick') });
    console.log(section);
    console.error(`pho bench took ${((Date.now() - started) / 1000).toFixed(0)} s`);
  }
}
