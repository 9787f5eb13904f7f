/**
 * Benchmark of the orthogonal combinations: channel permutation for 2:4 (reallocation and the
 * exact per-slot LSA refinement, O(dOut·G²) profit + O(G³) assignment per slot), the assignment
 * solver alone, and DSnoT re-pruning per layer at 50 %.
 *
 * Standalone: node --import tsx bench/combos.ts   (about two minutes on the 2-core dev machine)
 */
import { pathToFileURL } from 'node:url';
import { linearSumAssignment } from '../src/util/assignment.ts';
import { permuteForNM, slotProfitMatrix, ascendingColumnOrder, serpentineOrder } from '../src/prune/permute.ts';
import { dsnot } from '../src/prune/dsnot.ts';
import { perRowMask } from '../src/prune/mask.ts';

/** Deterministic uniform [0, 1) (xorshift32). */
function uniform(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13; state ^= state >>> 17; state ^= state << 5;
    return (state >>> 0) / 4294967296;
  };
}

/** Wanda-like scores: |gaussian-ish| times a heavy-tailed per-channel activation norm. */
function layerScores(dOut: number, dIn: number, seed: number): Float32Array {
  const next = uniform(seed);
  const channel = Float32Array.from({ length: dIn }, () => Math.exp(2 * next()));
  const scores = new Float32Array(dOut * dIn);
  for (let i = 0; i < dOut; i++) {
    for (let j = 0; j < dIn; j++) scores[i * dIn + j] = Math.abs(next() + next() + next() - 1.5) * channel[j];
  }
  return scores;
}

function secondsOf<T>(fn: () => T): [T, number] {
  const start = process.hrtime.bigint();
  const value = fn();
  return [value, Number(process.hrtime.bigint() - start) / 1e9];
}

const fmt = (s: number) => (s < 1 ? `${(s * 1000).toFixed(0)} ms` : `${s.toFixed(2)} s`);

export async function benchCombos(log: (s: string) => void): Promise<string> {
  const lines: string[] = ['## Orthogonal combinations: channel permutation, assignment solver, DSnoT', ''];

  // 1. The assignment solver alone, on random uniform profits and on the real profit matrix of a
  //    permutation slot (slot 0 of the serpentine order of a layer with dIn = 4n, dOut ≤ 1024).
  lines.push('### Linear sum assignment (exact, float64, maximise)', '');
  lines.push('| n | random uniform matrix | profit matrix of a 2:4 slot | (profit build) |', '|---:|---:|---:|---:|');
  let largestUnderMinute = 0;
  for (const n of [256, 512, 1024, 2048]) {
    log(`combos: assignment n=${n} …`);
    const next = uniform(n);
    const random = Float64Array.from({ length: n * n }, () => next());
    const [, randomTime] = secondsOf(() => linearSumAssignment(random, n, { maximize: true }));
    const dIn = 4 * n;
    const dOut = Math.min(dIn, 1024);
    const scores = layerScores(dOut, dIn, 7 + n);
    const permutation = serpentineOrder(ascendingColumnOrder(scores, dOut, dIn), 4);
    const [profit, buildTime] = secondsOf(() => slotProfitMatrix(scores, dOut, dIn, 2, 4, permutation, 0, 0, n));
    const [, profitTime] = secondsOf(() => linearSumAssignment(profit, n, { maximize: true }));
    if (Math.max(randomTime, profitTime) < 60) largestUnderMinute = n;
    lines.push(`| ${n} | ${fmt(randomTime)} | ${fmt(profitTime)} | ${fmt(buildTime)} (dOut ${dOut}) |`);
  }
  lines.push('', `Largest n measured here that solves in under a minute: **${largestUnderMinute}**.`, '');

  // 2. Whole-layer permutation for 2:4.
  lines.push('### Channel permutation for 2:4, per layer', '');
  lines.push('| dOut × dIn | blocks | G | reallocation | reallocation + LSA | retained: plain → realloc → LSA |', '|---|---:|---:|---:|---:|---|');
  const shapes: Array<[number, number]> = [[256, 1], [512, 1], [1024, 1], [2048, 1], [4096, 4]];
  for (const [d, blocks] of shapes) {
    log(`combos: permutation ${d}×${d} blocks=${blocks} …`);
    const scores = layerScores(d, d, d);
    const [plain, reallocTime] = secondsOf(() => permuteForNM(scores, d, d, 2, 4, { strategy: 'reallocation' }));
    const [lsa, lsaTime] = secondsOf(() => permuteForNM(scores, d, d, 2, 4, { strategy: 'lsa', blocks }));
    const pct = (x: number) => `${((x / plain.retainedBefore - 1) * 100).toFixed(2)} %`;
    lines.push(
      `| ${d} × ${d} | ${blocks} | ${d / 4 / blocks} | ${fmt(reallocTime)} | ${fmt(lsaTime)} | ` +
        `1 → +${pct(plain.retainedAfter)} → +${pct(lsa.retainedAfter)} |`,
    );
  }
  lines.push('');

  // 3. DSnoT at 50 % unstructured, reference defaults (50 cycles, τ 0.1, sign check off).
  lines.push('### DSnoT re-pruning at 50 % (per-row Wanda mask, 50 cycles, τ = 0.1)', '');
  lines.push('| dOut × dIn | time | swaps | cycles run | mean |e| before → after |', '|---|---:|---:|---:|---|');
  for (const [dOut, dIn] of [[2048, 2048], [2048, 5632]] as const) {
    log(`combos: DSnoT ${dOut}×${dIn} …`);
    const next = uniform(dOut + dIn);
    const gauss = () => Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
    const weights = Float32Array.from({ length: dOut * dIn }, () => 0.02 * gauss());
    const stats = {
      sqNorm: Float32Array.from({ length: dIn }, () => 2048 * Math.exp(2 * next())),
      mean: Float32Array.from({ length: dIn }, () => 40 * gauss()),
      variance: Float32Array.from({ length: dIn }, () => 0.5 + next()),
    };
    const wanda = new Float32Array(dOut * dIn);
    for (let i = 0; i < dOut; i++) {
      for (let j = 0; j < dIn; j++) wanda[i * dIn + j] = Math.abs(weights[i * dIn + j]) * Math.sqrt(stats.sqNorm[j]);
    }
    const mask = perRowMask(wanda, dOut, dIn, 0.5);
    const [result, time] = secondsOf(() => dsnot(weights, mask, stats, dOut, dIn));
    const meanAbs = (e: Float64Array) => e.reduce((a, b) => a + Math.abs(b), 0) / e.length;
    lines.push(
      `| ${dOut} × ${dIn} | ${fmt(time)} | ${result.swaps} | ${result.cyclesRun} | ` +
        `${meanAbs(result.errorBefore).toFixed(3)} → ${meanAbs(result.errorAfter).toFixed(3)} |`,
    );
  }
  lines.push('');
  return lines.join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const started = Date.now();
  const section = await benchCombos((line) => console.error(line));
  console.log(section);
  console.error(`combos bench took ${((Date.now() - started) / 1000).toFixed(0)} s`);
}
