/**
 * Benchmark of the per-matrix pruning math in TypeScript: scoring + selection on a 4096 × 11008
 * matrix (goal: RIA scored and selected in < 0.5 s), CRePE's neighbourhood term, per-row and N:M
 * selection, SparseGPT's Cholesky chain (in process vs ONNX Runtime) and one SparseGPT layer.
 *
 * Standalone: node --import tsx bench/prune-math.ts [--old-layer] [--scores-only]   (a few minutes on the 2-core dev machine)
 */
import os from 'node:os';
import { pathToFileURL } from 'node:url';
import { nmMask, perMatrixMask, perRowMask } from '../src/prune/mask.ts';
import { crepeScores } from '../src/prune/scores/crepe.ts';
import { riaScores } from '../src/prune/scores/ria.ts';
import { wandaScores } from '../src/prune/scores/wanda.ts';
import { releaseLinalgSessions } from '../src/engine/linalg-graphs.ts';
import { parallelParts, sharedFloat32, sharedUint8 } from '../src/util/parallel.ts';
import { sparsegpt } from '../src/prune/sparsegpt.ts';
import { choleskyInverseUpperBlocked, choleskyInverseUpperInPlace } from '../src/engine/cholesky.ts';

/** Deterministic uniform [0, 1) (xorshift32). */
function uniform(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 4294967296;
  };
}

/** Wall and CPU seconds (all threads of the process) of the fastest of `repeats` runs. */
function bestOfWithCpu(repeats: number, fn: () => unknown): { wall: number; cpu: number } {
  let wall = Infinity;
  let cpu = Infinity;
  for (let r = 0; r < repeats; r++) {
    const before = process.cpuUsage();
    wall = Math.min(wall, secondsOf(fn)[1]);
    const used = process.cpuUsage(before);
    cpu = Math.min(cpu, (used.user + used.system) / 1e6);
  }
  return { wall, cpu };
}

function secondsOf<T>(fn: () => T): [T, number] {
  const start = process.hrtime.bigint();
  const value = fn();
  return [value, Number(process.hrtime.bigint() - start) / 1e9];
}

const fmt = (s: number): string => (s < 1 ? `${(s * 1000).toFixed(0)} ms` : `${s.toFixed(2)} s`);
const rate = (count: number, s: number): string => `${(count / s / 1e6).toFixed(0)} M/s`;

export async function benchPruneMath(log: (line: string) => void, options: { scoresOnly?: boolean } = {}): Promise<string> {
  const dOut = 4096;
  const dIn = 11008;
  const total = dOut * dIn;
  log(`prune-math: random ${dOut}×${dIn} weights …`);
  const next = uniform(7);
  const weights = new Float32Array(total);
  for (let p = 0; p < total; p++) weights[p] = next() + next() + next() - 1.5;
  const sqNorms = Float32Array.from({ length: dIn }, () => Math.exp(4 * next() - 2));
  const loadAtStart = os.loadavg()[0];

  const rows: string[] = [];
  const row = (what: string, t: { wall: number; cpu: number }): void => {
    rows.push(`| ${what} | ${fmt(t.wall)} | ${fmt(t.cpu)} | ${rate(total, t.wall)} |`);
    log(`prune-math: ${what}: ${fmt(t.wall)} (CPU ${fmt(t.cpu)})`);
  };
  const sum = (a: { wall: number; cpu: number }, b: { wall: number; cpu: number }) => ({ wall: a.wall + b.wall, cpu: a.cpu + b.cpu });

  // Output buffers are reused, as the pipeline should: first-touching a fresh 180 MB array costs
  // more than the scoring itself (measured on its own below). The score buffer is shared with the
  // worker threads, as the score functions allocate it in the pipeline; a plain one keeps the
  // work on this thread (the single-thread rows).
  const firstTouch = secondsOf(() => new Float32Array(total).fill(0))[1];
  row('first touch of a new 4-byte-per-weight array', { wall: firstTouch, cpu: firstTouch });
  const parts = parallelParts();
  const scores = sharedFloat32(total);
  const plainScores = new Float32Array(total);
  const mask = sharedUint8(total);
  const plainMask = new Uint8Array(total);
  const riaScore = bestOfWithCpu(3, () => riaScores(weights, dOut, dIn, sqNorms, {}, scores));
  const perMatrix = bestOfWithCpu(3, () => perMatrixMask(scores, 0.5, mask));
  const riaScorePlain = bestOfWithCpu(2, () => riaScores(weights, dOut, dIn, sqNorms, {}, plainScores));
  const perMatrixPlain = bestOfWithCpu(2, () => perMatrixMask(plainScores, 0.5, plainMask));
  row(`RIA score (${parts} threads)`, riaScore);
  row(`per-matrix selection, s = 0.5 (${parts} threads count and mark)`, perMatrix);
  row(`**RIA score + per-matrix selection** (${parts} threads)`, sum(riaScore, perMatrix));
  row('RIA score + per-matrix selection, one thread', sum(riaScorePlain, perMatrixPlain));
  row(`per-row selection, s = 0.5 (${parts} threads select and mark)`, bestOfWithCpu(2, () => perRowMask(scores, dOut, dIn, 0.5, mask)));
  row('per-row selection, one thread', bestOfWithCpu(2, () => perRowMask(plainScores, dOut, dIn, 0.5, plainMask)));
  row('2:4 selection', bestOfWithCpu(2, () => nmMask(scores, dOut, dIn, 2, 4, mask)));
  row('Wanda score', bestOfWithCpu(2, () => wandaScores(weights, dOut, dIn, sqNorms, scores)));
  for (const [k, variant] of [[5, 'normalized'], [9, 'normalized'], [5, 'smooth']] as const) {
    const t = bestOfWithCpu(2, () => crepeScores(weights, dOut, dIn, sqNorms, { k, gamma: 0.05, variant }, scores));
    row(`CRePE score k=${k} ${variant}`, t);
    if (k === 5 && variant === 'normalized') row('**CRePE k=5 score + per-matrix selection**', sum(t, perMatrix));
  }
  const scoresTable = [
    '## Pruning math (TypeScript, per matrix)',
    '',
    `Random ${dOut} × ${dIn} matrix (${(total / 1e6).toFixed(1)} M weights), best of 2–3 runs, score and mask buffers reused; ${parts} threads (this one and ${parts - 1} workers, util/parallel.ts) where the score buffer is shared. `
      + `Goal: RIA scored and selected in < 0.5 s. CPU time counts every thread of the process. Machine load (1-min average): ${loadAtStart.toFixed(1)} at the start, ${os.loadavg()[0].toFixed(1)} at the end, on ${os.cpus().length} CPUs.`,
    '',
    '| step | wall | CPU | weights/s (wall) |',
    '|---|---|---|---|',
    ...rows,
    '',
  ];
  if (options.scoresOnly) return scoresTable.join('\n');

  const { cholesky, layer } = await benchSparseGptLinalg(log);
  return [
    ...scoresTable,
    'SparseGPT factorization: U = upper Cholesky factor of H⁻¹ (one Cholesky of the reversed H plus a triangular inverse, 2d³/3 useful flops; GFLOP/s counts those). In process: float64 JavaScript loops. ORT: left-looking panels of 256, GEMMs in ONNX Runtime (the inverse runs its products over the dense square, d³ flops done), diagonal blocks in float64 here.',
    '',
    '| d | path | time | GFLOP/s | |',
    '|---|---|---|---|---|',
    ...cholesky,
    '',
    ...layer,
    '',
  ].join('\n');
}

/**
 * A correlated SPD Hessian in O(d²): the Kac–Murdock–Szegő matrix ρ^|i−j| between channels with
 * spread-out scales (a stand-in for the gram of correlated activations), as a float64 gram.
 */
function correlatedGram(d: number, rho: number, seed: number): Float64Array {
  const next = uniform(seed);
  const scales = Float64Array.from({ length: d }, () => Math.exp(2 * next() - 1));
  const gram = new Float64Array(d * d);
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) gram[i * d + j] = scales[i] * scales[j] * rho ** Math.abs(i - j);
  return gram;
}

async function secondsOfAsync<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const start = process.hrtime.bigint();
  const value = await fn();
  return [value, Number(process.hrtime.bigint() - start) / 1e9];
}

/**
 * The Cholesky chain by width and path, and one SparseGPT layer (2048 × 5632, TinyLlama's
 * down_proj shape) with the share of its time spent factorizing. `includeOldLayer` also runs the
 * layer fully in process (about two minutes).
 */
async function benchSparseGptLinalg(log: (line: string) => void, includeOldLayer = process.argv.includes('--old-layer')) {
  const cholesky: string[] = [];
  const gflops = (d: number, s: number) => ((2 * d ** 3) / 3 / s / 1e9).toFixed(1);
  let largestOld = { d: 0, s: 0 };
  for (const d of [1024, 2048, 4096, 5632]) {
    const H = correlatedGram(d, 0.9, d);
    for (let i = 0; i < d; i++) H[i * d + i] += 0.01;
    const predictedOld = largestOld.s * (d / largestOld.d) ** 3;
    if (d <= 2048 || predictedOld < 60) {
      log(`prune-math: Cholesky chain d=${d}, in process …`);
      const s = secondsOf(() => choleskyInverseUpperInPlace(Float64Array.from(H), d))[1];
      largestOld = { d, s };
      cholesky.push(`| ${d} | in process | ${fmt(s)} | ${gflops(d, s)} | measured |`);
    } else {
      cholesky.push(`| ${d} | in process | ${fmt(predictedOld)} | — | extrapolated O(d³) from ${largestOld.d} |`);
    }
    for (const precision of ['float64', 'float32'] as const) {
      log(`prune-math: Cholesky chain d=${d}, ORT ${precision} …`);
      const s = (await secondsOfAsync(() => choleskyInverseUpperBlocked(Float64Array.from(H), d, { precision })))[1];
      cholesky.push(`| ${d} | ORT ${precision} | ${fmt(s)} | ${gflops(d, s)} | measured |`);
    }
  }

  const [dOut, dIn] = [2048, 5632];
  const gram = correlatedGram(dIn, 0.9, 11);
  const next = uniform(12);
  const weights = Float32Array.from({ length: dOut * dIn }, () => next() + next() + next() - 1.5);
  const layer = [
    `SparseGPT on one ${dOut} × ${dIn} layer (50 % unstructured, block 128, correlated random Hessian): time and the factorization's share; the lazy update is a float32 ORT GEMM on the ORT paths. Agreement with the float64-Cholesky ORT run: mask entries that differ and max |ΔW| / max |W|.`,
    '',
    '| path | total | factorization | share | update | mask differs | max ΔW |',
    '|---|---|---|---|---|---|---|',
  ];
  const runs: { name: string; options: Parameters<typeof sparsegpt>[5] }[] = [
    { name: 'ORT, float64 Cholesky', options: { target: { kind: 'unstructured', sparsity: 0.5 }, choleskyPrecision: 'float64' } },
    { name: 'ORT, float32 Cholesky', options: { target: { kind: 'unstructured', sparsity: 0.5 }, choleskyPrecision: 'float32' } },
  ];
  if (includeOldLayer) runs.push({ name: 'in process (float64)', options: { target: { kind: 'unstructured', sparsity: 0.5 }, ortMinWidth: Infinity } });
  let reference: { weight: Float32Array; mask: Uint8Array } | undefined;
  for (const run of runs) {
    log(`prune-math: SparseGPT ${dOut}×${dIn}, ${run.name} …`);
    const [result, s] = await secondsOfAsync(() => sparsegpt(Float32Array.from(weights), dOut, dIn, gram, 1, run.options));
    reference ??= result;
    let maskDiffers = 0;
    let maxDelta = 0;
    let maxWeight = 0;
    for (let p = 0; p < result.mask.length; p++) {
      if (result.mask[p] !== reference.mask[p]) maskDiffers++;
      maxDelta = Math.max(maxDelta, Math.abs(result.weight[p] - reference.weight[p]));
      maxWeight = Math.max(maxWeight, Math.abs(reference.weight[p]));
    }
    const { factorizationMs, updateMs } = result.timings;
    layer.push(`| ${run.name} | ${fmt(s)} | ${fmt(factorizationMs / 1000)} | ${((100 * factorizationMs) / 1000 / s).toFixed(0)} % | ${fmt(updateMs / 1000)} | ${maskDiffers} of ${result.mask.length} | ${(maxDelta / maxWeight).toExponential(1)} |`);
  }
  if (!includeOldLayer) layer.push('', '(In-process row: run with --old-layer.)');
  await releaseLinalgSessions();
  return { cholesky, layer };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const started = Date.now();
  const section = await benchPruneMath((line) => console.error(line), { scoresOnly: process.argv.includes('--scores-only') });
  console.log(section);
  console.error(`prune-math bench took ${((Date.now() - started) / 1000).toFixed(0)} s`);
}
