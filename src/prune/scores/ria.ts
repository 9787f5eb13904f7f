/**
 * RIA score (ALGORITHMS.md §3.1), Relative Importance and Activations:
 *
 *   RI_ij  = A_ij / C_j + A_ij / R_i      A = |W|, C_j = Σ_i A_ij (column), R_i = Σ_j A_ij (row)
 *   RIA_ij = RI_ij · sqrt(s_j)^a          s_j = input-channel squared norm (§1.4), a = 0.5
 *
 * The pieces are exported because CRePE (crepe.ts) is this score with coefficients on the two
 * terms plus a neighbourhood term: both go through `relativeImportanceRow`, so with unit
 * coefficients and no neighbourhood CRePE reproduces RIA bit for bit.
 *
 * Sums and the score are computed in float64 and stored as float32. (The reference computes RI in
 * fp16, so near-ties may break differently; ALGORITHMS.md §1.5.)
 */
import type { InputSqNorms } from './index.ts';
import { check } from '../../util/errors.ts';

export interface RiaParams {
  /** Exponent of the activation factor ‖X_j‖; the reference default is 0.5. */
  a: number;
}
export const RIA_DEFAULT_PARAMS: RiaParams = { a: 0.5 };

/** Per-matrix quantities shared by every row: column sums, row sums, activation factors. */
export interface RelativeImportanceSetup {
  dOut: number;
  dIn: number;
  /** C_j, with 0 replaced by 1: an all-zero column has A = 0, so A/1 = 0 instead of 0/0 = NaN. */
  colSums: Float64Array;
  /** R_i, with the same guard. */
  rowSums: Float64Array;
  /** sqrt(s_j)^a, as the reference writes it. */
  activation: Float64Array;
}

export function relativeImportanceSetup(
  weights: Float32Array,
  dOut: number,
  dIn: number,
  inputSqNorms: InputSqNorms,
  a: number,
  method = 'ria',
): RelativeImportanceSetup {
  if (weights.length !== dOut * dIn) throw new Error(`${method}: expected ${dOut}×${dIn} weights, got ${weights.length}`);
  if (!inputSqNorms || inputSqNorms.length !== dIn) {
    throw new Error(`${method} needs input-channel squared norms of length ${dIn}, got ${inputSqNorms?.length ?? 'none'}`);
  }
  const colSums = new Float64Array(dIn);
  const rowSums = new Float64Array(dOut);
  for (let i = 0; i < dOut; i++) {
    const rowStart = i * dIn;
    let rowSum = 0;
    for (let j = 0; j < dIn; j++) {
      const magnitude = Math.abs(weights[rowStart + j]);
      rowSum += magnitude;
      colSums[j] += magnitude;
    }
    rowSums[i] = rowSum === 0 ? 1 : rowSum;
  }
  for (let j = 0; j < dIn; j++) if (colSums[j] === 0) colSums[j] = 1;
  const activation = new Float64Array(dIn);
  for (let j = 0; j < dIn; j++) activation[j] = Math.pow(Math.sqrt(inputSqNorms[j]), a);
  return { dOut, dIn, colSums, rowSums, activation };
}

/**
 * Row i of the weighted relative importance, without the activation factor:
 * out[j] = colCoef·(A_ij / C_j) + rowCoef·(A_ij / R_i) — the column term first, as the reference.
 */
export function relativeImportanceRow(
  weights: Float32Array,
  setup: RelativeImportanceSetup,
  i: number,
  rowCoef: number,
  colCoef: number,
  out: Float64Array,
): void {
  const { dIn, colSums } = setup;
  const rowStart = i * dIn;
  const rowSum = setup.rowSums[i];
  for (let j = 0; j < dIn; j++) {
    const magnitude = Math.abs(weights[rowStart + j]);
    out[j] = colCoef * (magnitude / colSums[j]) + rowCoef * (magnitude / rowSum);
  }
}

/**
 * (rowCoef·P + colCoef·Q) · sqrt(s_j)^a for the whole matrix, as float32. RIA is rowCoef = colCoef = 1.
 */
export function weightedRelativeImportanceScores(
  weights: Float32Array,
  setup: RelativeImportanceSetup,
  rowCoef: number,
  colCoef: number,
): Float32Array {
  const { dOut, dIn, activation } = setup;
  const scores = new Float32Array(dOut * dIn);
  const terms = new Float64Array(dIn);
  for (let i = 0; i < dOut; i++) {
    relativeImportanceRow(weights, setup, i, rowCoef, colCoef, terms);
    const rowStart = i * dIn;
    for (let j = 0; j < dIn; j++) scores[rowStart + j] = terms[j] * activation[j];
  }
  return scores;
}

export function riaScores(
  weights: Float32Array,
  dOut: number,
  dIn: number,
  inputSqNorms: InputSqNorms,
  params: Partial<RiaParams> = {},
): Float32Array {
  const a = params.a ?? RIA_DEFAULT_PARAMS.a;
  check(Number.isFinite(a), `--ria-a (the activation exponent a) must be a finite number, got ${a}`);
  const setup = relativeImportanceSetup(weights, dOut, dIn, inputSqNorms, a);
  return weightedRelativeImportanceScores(weights, setup, 1, 1);
}
