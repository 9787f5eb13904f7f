/**
 * Benchmark of the per-matrix pruning math in TypeScript: scoring + selection on a 4096 × 11008
 * matrix (goal: RIA scored and selected in < 0.5 s), CRePE's neighbourhood term, per-row and N:M
 * selection, and the float64 Cholesky chain SparseGPT needs (O(d³), extrapolated to 5632 / 11008).
 *
 * Standalone: node --import tsx bench/prune-math.ts   (about a minute on the 2-core dev machine)
 */
import os from 'node:os';
import { pathToFileURL } from 'node:url';
import { nmMask, perMatrixMask, perRowMask } from '../src/prune/mask.ts';
import { crepeScores } from '../src/prune/scores/crepe.ts';
import { riaScores } from '../src/prune/scores/ria.ts';
import { wandaScores } from '../src/prune/scores/wanda.ts';
import { choleskyInverseUpperInPlace } from '../src/util/cholesky.ts';

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

function secondsOf<T>(fn: () => T): [T, number] {
  const start = process.hrtime.bigint();
  const value = fn();
  return [value, Number(process.hrtime.bigint() - start) / 1e9];
}

/** Best of `repeats` runs (the first run also warms the JIT). */
function bestOf<T>(repeats: number, fn: () => T): number {
  let best = Infinity;
  for (let r = 0; r < repeats; r++) best = Math.min(best, secondsOf(fn)[1]);
  return best;
}

const fmt = (s: number): string => (s < 1 ? `${(s * 1000).toFixed(0)} ms` : `${s.toFixed(2)} s`);
const rate = (count: number, s: number): string => `${(count / s / 1e6).toFixed(0)} M/s`;

export async function benchPruneMath(log: (line: string) => void): Promise<string> {
  const dOut = 4096;
  const dIn = 11008;
  const total = dOut * dIn;
  log(`prune-math: random ${dOut}×${dIn} weights …`);
  const next = uniform(7);
  const weights = new Float32Array(total);
  for (let p = 0; p < total; p++) weights[p] = next() + next() + next() - 1.5;
  const sqNorms = Float32Array.from({ length: dIn }, () => Math.exp(4 * next() - 2));

  const rows: string[] = [];
  const row = (what: string, s: number): void => {
    rows.push(`| ${what} | ${fmt(s)} | ${rate(total, s)} |`);
    log(`prune-math: ${what}: ${fmt(s)}`);
  };

  // Output buffers are reused, as the pipeline should: first-touching a fresh 180 MB array costs
  // more than the scoring itself (measured on its own below).
  row('first touch of a new 4-byte-per-weight array', secondsOf(() => new Float32Array(total).fill(0))[1]);
  const scores = new Float32Array(total);
  const mask = new Uint8Array(total);
  const riaScore = bestOf(2, () => riaScores(weights, dOut, dIn, sqNorms, {}, scores));
  const perMatrix = bestOf(2, () => perMatrixMask(scores, 0.5, mask));
  row('RIA score', riaScore);
  row('per-matrix selection (s = 0.5)', perMatrix);
  row('**RIA score + per-matrix selection**', riaScore + perMatrix);
  row('per-row selection (s = 0.5)', bestOf(2, () => perRowMask(scores, dOut, dIn, 0.5, mask)));
  row('2:4 selection', bestOf(2, () => nmMask(scores, dOut, dIn, 2, 4, mask)));
  row('Wanda score', bestOf(2, () => wandaScores(weights, dOut, dIn, sqNorms, scores)));
  for (const [k, variant] of [[5, 'normalized'], [9, 'normalized'], [5, 'smooth']] as const) {
    const s = bestOf(2, () => crepeScores(weights, dOut, dIn, sqNorms, { k, gamma: 0.05, variant }, scores));
    row(`CRePE score k=${k} ${variant}`, s);
    if (k === 5 && variant === 'normalized') row('**CRePE k=5 score + per-matrix selection**', s + perMatrix);
  }

  const cholesky: string[] = [];
  const measured: { d: number; s: number }[] = [];
  for (const d of [1024, 2048]) {
    log(`prune-math: Cholesky chain d=${d} …`);
    const H = new Float64Array(d * d);
    const spd = (): Float64Array => {
      for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) H[i * d + j] = i === j ? d : 1 / (1 + Math.abs(i - j));
      return H;
    };
    const s = bestOf(2, () => choleskyInverseUpperInPlace(spd(), d));
    measured.push({ d, s });
    const flops = (2 * d ** 3) / 3;
    cholesky.push(`| ${d} | ${fmt(s)} | ${(flops / s / 1e9).toFixed(2)} | measured |`);
  }
  const largest = measured[measured.length - 1];
  for (const d of [4096, 5632, 11008]) {
    const s = largest.s * (d / largest.d) ** 3;
    cholesky.push(`| ${d} | ${fmt(s)} | — | extrapolated O(d³) from ${largest.d} |`);
  }

  return [
    '## Pruning math (TypeScript, per matrix)',
    '',
    `Random ${dOut} × ${dIn} matrix (${(total / 1e6).toFixed(1)} M weights), best of 2 runs, score and mask buffers reused. Goal: RIA scored and selected in < 0.5 s. Machine load (1-min average) at the start: ${os.loadavg()[0].toFixed(1)} on ${os.cpus().length} CPUs.`,
    '',
    '| step | time | weights/s |',
    '|---|---|---|',
    ...rows,
    '',
    'SparseGPT factorization: U = upper Cholesky factor of H⁻¹ (one Cholesky of the reversed H plus a triangular inverse, 2d³/3 flops, float64).',
    '',
    '| d | time | GFLOP/s | |',
    '|---|---|---|---|',
    ...cholesky,
    '',
  ].join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const started = Date.now();
  const section = await benchPruneMath((line) => console.error(line));
  console.log(section);
  console.error(`prune-math bench took ${((Date.now() - started) / 1000).toFixed(0)} s`);
}
