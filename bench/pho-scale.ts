/**
 * "PHO at scale": the proxy search on Llama-2-7B's layer shapes (hidden 4096, intermediate 11008,
 * 32 heads, vocab 32000, F16) with 2 decoder layers and 16 × 512 random calibration tokens:
 *   - the dense pass that builds the proxy cache (once per model and calibration set),
 *   - the time of one proxy evaluation (PHO's default proxy at 50 % per matrix, random
 *     configurations from PHO's box with k = 5) on 1 and 2 threads, and on a 10 % row subset,
 *     in wall and in CPU seconds (all threads), after a first evaluation per window size (which
 *     reads and checksums the files, and writes the row-subset files),
 *   - weights/s, peak RSS of each run (its own child process), the cache's size on disk,
 *   - the projection to Llama-2-7B's 32 layers: dense pass, one evaluation, a full search of
 *     5 window sizes × 60 candidates.
 *   - the same on 2 threads with the candidates of a CMA-ES generation evaluated together
 *     (evaluateMany: each linear's terms read once for the λ candidates, λ as PHO's CMA-ES has
 *     in its 2-dimensional space), per candidate = generation time / λ,
 *   - the bytes each run reads per candidate (/proc/self/io rchar: from the page cache or storage).
 * The 1- and 2-thread runs and the batched runs evaluate the same configurations (the batched
 * runs more of them); their proxy values must be identical.
 *
 * A complete cache from an earlier run of the same model and calibration is reused (its manifest
 * keeps the dense pass's time) and left in place; a cache this run built is removed at the end
 * unless --keep-cache (run.ts: --keep-model) leaves it for the next run.
 *
 * Standalone: node --import tsx bench/pho-scale.ts [--quick] [--keep-cache]
 * Children:   … --child build|evaluate --model DIR --cache DIR [--threads T --rows F --evaluations N --batch λ --budget MiB]
 */
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ModelCheckpoint } from '../src/model/checkpoint.ts';
import { ProxyContext, type ProxyOptions } from '../src/search/proxy.ts';
import { DEFAULT_PROXY } from '../src/search/proxy-defaults.ts';
import { subsetDir } from '../src/search/proxy-cache.ts';
import { spearman } from '../src/util/stats.ts';
import { argValue, peakRssBytes, runBenchChild, sendChildResult } from './child-process.ts';
import { cmaesConstants } from '../src/search/cmaes.ts';
import { dimension } from '../src/search/space.ts';
import { benchCacheOptions, directoryBytes, linearWeights, randomParams, SPACE, timeEvaluations, type EvaluationTimings } from './pho.ts';
import { ensureSyntheticModel, randomTokenWindows, weightFileBytes, LLAMA2_7B_2_LAYERS, QUICK_MODEL } from './synthetic-model.ts';

const K_SET = [1, 3, 5, 7, 9];
/** The window size of the timed evaluations (a search evaluates 60 candidates of one k in a row). */
const TIMED_K = 5;
/** Llama-2-7B: 32 decoder layers. */
const FULL_LAYERS = 32;
/** PHO's default search: 5 window sizes × 60 candidates. */
const SEARCH_EVALUATIONS = 5 * 60;
const BUDGET_MIB = 1024;
const SUBSET_ROWS = 0.1;
/** PHO's generation size in the space the random configurations come from (CMA-ES's default λ). */
const LAMBDA = cmaesConstants(dimension(SPACE)).lambda;

interface BuildResult {
  /** The dense pass's seconds, as the cache's manifest records them (also when this run reused the cache). */
  denseSeconds: number;
  reused: boolean;
  cacheBytes: number;
  peakRssBytes: number;
}

interface EvaluateResult {
  threads: number;
  rows: number;
  /** Candidates evaluated together (a generation); 1 = one by one. */
  batch: number;
  /** Bytes the process read (rchar) during the timed evaluations; NaN where /proc/self/io is missing. */
  bytesRead: number;
  /** The first evaluation of each window size: reads and checksums its files (and writes the row-subset files). */
  firstSeconds: number;
  timings: EvaluationTimings;
  /** CPU seconds (user + system, all threads) of the timed evaluations. */
  cpuSeconds: number;
  values: number[];
  peakRssBytes: number;
}

/** Spearman ρ of two proxies over the configurations both evaluated (the first min(length) of each). */
function subsetFidelity(full: number[], subset: number[]): number {
  const n = Math.min(full.length, subset.length);
  return spearman(full.slice(0, n), subset.slice(0, n));
}

function largestRelativeDifference(full: number[], subset: number[]): number {
  const n = Math.min(full.length, subset.length);
  let largest = 0;
  for (let i = 0; i < n; i++) largest = Math.max(largest, Math.abs(subset[i] - full[i]) / Math.abs(full[i]));
  return largest;
}

function calibration(model: ModelCheckpoint): { windows: Int32Array[]; seqlen: number } {
  const nsamples = Number(argValue('nsamples'));
  const seqlen = Number(argValue('seqlen'));
  return { windows: randomTokenWindows(nsamples, seqlen, model.spec.vocabSize, 0), seqlen };
}

async function childBuild(modelDir: string, cacheDir: string): Promise<BuildResult> {
  const model = ModelCheckpoint.open(modelDir);
  try {
    const { windows, seqlen } = calibration(model);
    const context = await ProxyContext.open(model, windows, seqlen, { device: 'cpu' }, {
      ...benchCacheOptions(cacheDir, modelDir, K_SET, 1, BUDGET_MIB * 2 ** 20),
      progress: { update: (done, detail) => console.error(`pho-scale: ${detail ?? done}`), log: (line) => console.error(line), done: () => {} },
    });
    await context.close();
    const { cache } = context;
    return { denseSeconds: cache.totalDenseSeconds, reused: cache.layersBuilt === 0, cacheBytes: directoryBytes(cacheDir), peakRssBytes: peakRssBytes() };
  } finally {
    model.close();
  }
}

/** Bytes this process has read through system calls (page cache or storage), or NaN. */
function bytesRead(): number {
  if (!existsSync('/proc/self/io')) return Number.NaN;
  const match = /^rchar:\s*(\d+)/m.exec(readFileSync('/proc/self/io', 'utf8'));
  return match ? Number(match[1]) : Number.NaN;
}

async function childEvaluate(modelDir: string, cacheDir: string): Promise<EvaluateResult> {
  const threads = Number(argValue('threads'));
  const rows = Number(argValue('rows'));
  const evaluations = Number(argValue('evaluations'));
  const batch = Number(argValue('batch') ?? 1);
  const budget = Number(argValue('budget')) * 2 ** 20;
  const model = ModelCheckpoint.open(modelDir);
  try {
    const { windows, seqlen } = calibration(model);
    const context = await ProxyContext.open(model, windows, seqlen, { device: 'cpu' }, benchCacheOptions(cacheDir, modelDir, K_SET, threads, budget));
    try {
      const options: ProxyOptions = { target: { kind: 'unstructured', sparsity: 0.5 }, selection: 'per-matrix', giniSubsample: 65536, seed: 0, rows };
      // A search evaluates many candidates of one window size in a row: the first use of a k (its
      // files read and checksummed) is timed apart, the timed evaluations share one k, as in a search.
      const warmUp = [...K_SET.filter((k) => k !== TIMED_K), TIMED_K];
      const started = performance.now();
      for (const [i, k] of warmUp.entries()) await context.evaluate(randomParams(1, 100 + i, [k])[0], options, [DEFAULT_PROXY.name]);
      const firstSeconds = (performance.now() - started) / 1000 / warmUp.length;
      console.error(`pho-scale: ${threads} thread(s), rows ${rows}: first evaluation per window size ${firstSeconds.toFixed(1)} s`);
      const values: number[] = [];
      const params = randomParams(evaluations, 1, [TIMED_K]);
      const read = bytesRead();
      const cpu = process.cpuUsage();
      let timings: EvaluationTimings;
      if (batch === 1) {
        timings = await timeEvaluations(context, params, options, [DEFAULT_PROXY.name], (v) => values.push(v[DEFAULT_PROXY.name]));
      } else {
        timings = { count: params.length, wall: 0, score: 0, select: 0, gini: 0 };
        for (let start = 0; start < params.length; start += batch) {
          const t = performance.now();
          const generation = await context.evaluateMany(params.slice(start, start + batch), options, [DEFAULT_PROXY.name]);
          timings.wall += (performance.now() - t) / 1000;
          for (const { values: v, seconds } of generation) {
            values.push(v[DEFAULT_PROXY.name]);
            timings.score += seconds.score;
            timings.select += seconds.select;
            timings.gini += seconds.gini;
          }
        }
      }
      const used = process.cpuUsage(cpu);
      return {
        threads, rows, batch, bytesRead: bytesRead() - read, firstSeconds, timings, cpuSeconds: (used.user + used.system) / 1e6, values, peakRssBytes: peakRssBytes(),
      };
    } finally {
      await context.close();
    }
  } finally {
    model.close();
  }
}

/** Bytes one evaluation of the timed window size reads: every linear's terms and its neighbourhood term for TIMED_K. */
function workingSetBytes(dir: string): number {
  return readdirSync(dir)
    .filter((name) => name.endsWith('.terms.bin') || name.endsWith(`.normalized-k${TIMED_K}.bin`))
    .reduce((sum, name) => sum + statSync(path.join(dir, name)).size, 0);
}

const MiB = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
const GiB = (bytes: number): string => `${(bytes / 2 ** 30).toFixed(1)} GiB`;
const duration = (seconds: number): string => (seconds >= 3600 ? `${(seconds / 3600).toFixed(1)} h` : seconds >= 120 ? `${(seconds / 60).toFixed(1)} min` : `${seconds.toFixed(1)} s`);

export async function benchPhoScale(log: (line: string) => void, options: { quick?: boolean; keepCache?: boolean; keepModel?: boolean } = {}): Promise<string> {
  const modelOptions = options.quick ? QUICK_MODEL : LLAMA2_7B_2_LAYERS;
  const nsamples = options.quick ? 4 : 16;
  const seqlen = options.quick ? 128 : 512;
  const evaluations = options.quick ? 2 : 5;
  const modelDir = await ensureSyntheticModel(modelOptions, log);
  const cacheDir = path.join(os.tmpdir(), `crepe-bench-pho-scale-cache-${path.basename(modelDir)}`);
  // A cache already there may be another run's, in use: only one this run starts is removed.
  const cacheFound = existsSync(cacheDir);
  const common = ['--model', modelDir, '--cache', cacheDir, '--nsamples', String(nsamples), '--seqlen', String(seqlen)];
  const script = fileURLToPath(import.meta.url);
  const load = () => os.loadavg()[0].toFixed(1);
  try {
    log(`pho-scale: dense pass and proxy cache build (load average ${load()}) …`);
    const build = await runBenchChild<BuildResult>(script, ['build', ...common], log);
    const runs: EvaluateResult[] = [];
    const loads: string[] = [];
    // One by one: `evaluations` candidates; batched: `generations` generations of LAMBDA (the first candidates are the same).
    const generations = options.quick ? 1 : 2;
    for (const [threads, rows, batch] of [[1, 1, 1], [2, 1, 1], [2, SUBSET_ROWS, 1], [2, 1, LAMBDA], [2, SUBSET_ROWS, LAMBDA]] as const) {
      const count = batch === 1 ? evaluations : generations * batch;
      loads.push(load());
      log(`pho-scale: ${count} evaluations on ${threads} thread(s), rows ${rows}, ${batch === 1 ? 'one by one' : `generations of ${batch}`} (load average ${loads.at(-1)}) …`);
      runs.push(await runBenchChild<EvaluateResult>(script, [
        'evaluate', ...common, '--threads', String(threads), '--rows', String(rows), '--evaluations', String(count), '--batch', String(batch), '--budget', String(BUDGET_MIB),
      ], log));
    }
    const workingSets = runs.map((r) => workingSetBytes(subsetDir(cacheDir, r.rows < 1 ? { fraction: r.rows, seed: 0 } : null)));
    return report(modelOptions.layers, modelDir, { nsamples, seqlen, quick: Boolean(options.quick) }, build, runs, loads, workingSets);
  } finally {
    if (!cacheFound && !options.keepCache && !options.keepModel) rmSync(cacheDir, { recursive: true, force: true });
  }
}

function report(
  layers: number, modelDir: string, run: { nsamples: number; seqlen: number; quick: boolean }, build: BuildResult, runs: EvaluateResult[], loads: string[], workingSets: number[],
): string {
  const model = ModelCheckpoint.open(modelDir);
  const weights = linearWeights(model.spec);
  model.close();
  const scale = FULL_LAYERS / layers;
  const [one, two, subset, batched, batchedSubset] = runs;
  const perEvaluation = (r: EvaluateResult) => r.timings.wall / r.timings.count;
  // A search pays the first evaluation of each window size (reading and checksumming its files) once.
  const search = (r: EvaluateResult) => scale * (K_SET.length * r.firstSeconds + (SEARCH_EVALUATIONS - K_SET.length) * perEvaluation(r));
  const memory = os.totalmem();
  const same = (a: EvaluateResult, b: EvaluateResult) => a.values.length <= b.values.length && a.values.every((v, i) => Object.is(v, b.values[i]));
  const identical = one.values.length === two.values.length && same(one, two);
  const batchIdentical = same(two, batched) && same(subset, batchedSubset);
  const readPerEvaluation = (r: EvaluateResult) => (Number.isFinite(r.bytesRead) ? `${(r.bytesRead / r.timings.count / 2 ** 30).toFixed(2)} GiB` : 'n/a');
  const row = (label: string, r: EvaluateResult, load: string) => {
    const t = perEvaluation(r);
    const cpu = r.cpuSeconds / r.timings.count;
    const evaluated = weights * r.rows;
    const steps = r.timings.score + r.timings.select + r.timings.gini;
    const share = (part: number) => `${((part / steps) * 100).toFixed(0)}`;
    return `| ${label} | ${r.timings.count} | ${t.toFixed(2)} s | **${(evaluated / t / 1e6).toFixed(0)} M** | ${cpu.toFixed(2)} s | ${(evaluated / cpu / 1e6).toFixed(0)} M |`
      + ` ${share(r.timings.score)} / ${share(r.timings.select)} / ${share(r.timings.gini)} | ${r.firstSeconds.toFixed(1)} s | ${MiB(r.peakRssBytes)} | ${load} |`
      + ` ${readPerEvaluation(r)} | ${duration(t * scale)} | ${duration(search(r))} |`;
  };
  return [
    '## PHO at scale: Llama-2-7B layer shapes',
    '',
    `Synthetic model: ${layers} decoder layers with Llama-2-7B's shapes (hidden 4096, intermediate 11008, 32 heads, vocab 32000${run.quick ? '; --quick: scaled down' : ''}), F16,`
      + ` weights N(0, 0.02²): ${(weights / 1e6).toFixed(0)} M linear weights, weight file ${MiB(weightFileBytes(modelDir))}. Calibration ${run.nsamples} × ${run.seqlen} random token ids.`
      + ` One evaluation = CRePE scores from the cached terms, per-matrix selection at 50 % and PHO's default proxy (${DEFAULT_PROXY.name}) for all ${layers * 7} linears:`
      + ' one pass per linear that scores each weight and walks it against the threshold, bracketed beforehand by the scores of 65536 evenly spaced positions (no score or mask array).'
      + ` Random configurations from PHO's box with k = ${TIMED_K} (a search evaluates 60 candidates of one k in a row), after a first evaluation of each k ∈ {${K_SET.join(', ')}} (which reads and checksums its files, and writes the row-subset files).`
      + ` In-memory LRU budget ${BUDGET_MIB} MiB; the rest is read from the cache directory each evaluation (from the page cache when it fits).`
      + ` Each run is its own child process (its own peak RSS). "Load" is the 1-minute load average when the run started (2 CPUs; other work on the machine slows every number).`,
    '',
    `Dense pass and cache build (once per model and calibration set): **${duration(build.denseSeconds)}**${build.reused ? ' (as recorded in the manifest of the cache an earlier run built; this run reused it)' : `, peak RSS ${MiB(build.peakRssBytes)}`}; cache on disk ${GiB(build.cacheBytes)}`
      + ` (weights as float16, row and column as uint16, one float32 neighbourhood term per k). Projected to ${FULL_LAYERS} layers: ${duration(build.denseSeconds * scale)}, ${GiB(build.cacheBytes * scale)} on disk.`,
    '',
    `| run | evaluations | time / evaluation | weights / s | CPU / evaluation | weights / CPU-s | score / select / proxy (% of steps) | first evaluation per k | peak RSS | load | read / evaluation | ${FULL_LAYERS} layers: / evaluation | ${FULL_LAYERS} layers: search of ${SEARCH_EVALUATIONS} (first use of each k included) |`,
    '|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|',
    row('1 thread', one, loads[0]),
    row('2 threads', two, loads[1]),
    row(`2 threads, --proxy-rows ${SUBSET_ROWS}`, subset, loads[2]),
    row(`2 threads, generations of λ = ${LAMBDA} batched`, batched, loads[3]),
    row(`2 threads, --proxy-rows ${SUBSET_ROWS}, generations of λ = ${LAMBDA} batched`, batchedSubset, loads[4]),
    '',
    `Bytes one evaluation reads (every linear's terms and the neighbourhood term of k = ${TIMED_K}): ${GiB(workingSets[0])} (${GiB(workingSets[0] * scale)} at ${FULL_LAYERS} layers),`
      + ` ${GiB(workingSets[2])} with --proxy-rows ${SUBSET_ROWS} (${GiB(workingSets[2] * scale)}); this machine has ${GiB(memory)} of memory.`
      + ` The ${FULL_LAYERS}-layer columns assume these bytes come from the page cache as they do here; where they do not fit in memory, every evaluation reads them from storage instead.`,
    '',
    `Batched: the λ = ${LAMBDA} candidates of a CMA-ES generation (PHO's λ in its 2-dimensional space) evaluated together (ProxyContext.evaluateMany): each evaluator reads a linear's terms and neighbourhood term once and walks every candidate over them in one pass`
      + ' (per chunk of 4096 positions, the candidate-independent products m/C, m/R, the reference importance and x^a computed once, then each candidate scored and walked from them; the threshold sample gathered once and kept in the LRU);'
      + ` time / evaluation = generation time / λ. Speed-up over one by one on 2 threads: **${(perEvaluation(two) / perEvaluation(batched)).toFixed(2)}×** with all rows, ${(perEvaluation(subset) / perEvaluation(batchedSubset)).toFixed(2)}× with --proxy-rows ${SUBSET_ROWS};`
      + ` proxy values of the candidates both ways evaluated ${batchIdentical ? 'identical (bit for bit)' : '**differ**'}. "Read / evaluation" is the bytes the process read (rchar of /proc/self/io: page cache or storage) during the timed evaluations, per candidate.`,
    '',
    `Fidelity of the row subset: over the ${Math.min(batched.values.length, batchedSubset.values.length)} configurations of the batched runs, Spearman ρ of the --proxy-rows ${SUBSET_ROWS} proxy with the all-rows proxy`
      + ` **${subsetFidelity(batched.values, batchedSubset.values).toFixed(3)}**, largest relative difference ${(100 * largestRelativeDifference(batched.values, batchedSubset.values)).toFixed(2)} %`
      + ' (random weights: rows are alike, so a real model\'s rows may agree less; `crepe search --validate N --proxy-rows F` measures the same ρ on a real model).',
    '',
    `Parallel speed-up (1 → 2 threads, same configurations): **${(perEvaluation(one) / perEvaluation(two)).toFixed(2)}×**; proxy values of the two runs ${identical ? 'identical (bit for bit)' : '**differ**'}.`
      + ` Weights/s counts the weights an evaluation covers (a tenth of them with --proxy-rows ${SUBSET_ROWS}); CPU is user + system time of all threads, so on an idle machine`
      + ` an evaluation on T threads takes about CPU / T; the wall-clock projections use the measured wall time. The score/select/proxy split is of the evaluator threads' step times: score = the pass (scores and walk), select = the sample's bracket and the settling of the entries inside it; the rest of an evaluation is reading the terms the LRU does not hold.`
      + ` Peak RSS does not grow with the layer count: an evaluator holds one linear's terms and buffers plus its share of the LRU budget.`,
    '',
  ].join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const childAt = process.argv.indexOf('--child');
  if (childAt >= 0) {
    const role = process.argv[childAt + 1];
    const modelDir = argValue('model');
    const cacheDir = argValue('cache');
    if (!modelDir || !cacheDir) throw new Error('--child needs --model <dir> and --cache <dir>');
    sendChildResult(role === 'build' ? await childBuild(modelDir, cacheDir) : await childEvaluate(modelDir, cacheDir));
  } else {
    const started = Date.now();
    const section = await benchPhoScale((line) => console.error(line), { quick: process.argv.includes('--quick'), keepCache: process.argv.includes('--keep-cache') });
    console.log(section);
    console.error(`pho-scale bench took ${((Date.now() - started) / 1000).toFixed(0)} s`);
  }
}
