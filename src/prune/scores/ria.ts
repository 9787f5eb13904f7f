/**
 * RIA score (ALGORITHMS.md §3.1), Relative Importance and Activations:
 *
 *   RI_ij  = A_ij / C_j + A_ij / R_i      A = |W|, C_j = Σ_i A_ij (column), R_i = Σ_j A_ij (row)
 *   RIA_ij = RI_ij · sqrt(s_j)^a          s_j = input-channel squared norm (§1.4), a = 0.5
 *
 * The pieces are exported because CRePE (crepe.ts) is this score with coefficients on the two
 * terms plus a neighbourhood term: both compute each term with `relativeImportanceTerm`
 * (util/kernels.ts), so with unit coefficients and no neighbourhood CRePE reproduces RIA bit for bit.
 *
 * Sums and the score are computed in float64 and stored as float32. (The reference computes RI in
 * fp16, so near-ties may break differently; ALGORITHMS.md §1.5.)
 */
import { checkKnownFields, describeValue } from '../../util/fields.ts';
import { checkInputSqNorms, checkScoreArguments, type InputSqNorms } from './index.ts';
import { checkField, invariant } from '../../util/errors.ts';
import type { ScoreInputs } from '../../util/kernels.ts';
import { isShared, parallelParts, runKernel, sharedFloat32, sharedFloat64 } from '../../util/parallel.ts';

/**
 * From this many weights on, sums and scores are computed by worker threads as well (kernels.ts):
 * the same float64 operations in the same order, so the same scores.
 */
const PARALLEL_MIN_WEIGHTS = 1 << 20;

/**
 * How many parts a score's pass over `length` weights runs in: every thread from
 * PARALLEL_MIN_WEIGHTS on, else one. The one rule for the sums, the scores and the weights' shared
 * copy; a pass that writes a caller's array runs in one part unless that array is shared
 * (scoreKernelInputs).
 */
function workerParts(length: number): number {
  return length >= PARALLEL_MIN_WEIGHTS ? parallelParts() : 1;
}

/** The one reused shared copy of a weight matrix that the workers read (grown to the largest seen). */
let sharedWeights: Float32Array | null = null;

/** A copy of `array` in shared memory. */
function sharedCopy<T extends Float32Array | Float64Array>(array: T): T {
  const copy = (array instanceof Float32Array ? sharedFloat32(array.length) : sharedFloat64(array.length)) as T;
  copy.set(array);
  return copy;
}

/** `weights` itself when the workers can read it, else its copy in the reused shared buffer. */
function visibleToWorkers(weights: Float32Array): Float32Array {
  if (isShared(weights)) return weights;
  if (!sharedWeights || sharedWeights.length < weights.length) sharedWeights = sharedFloat32(weights.length);
  const view = sharedWeights.subarray(0, weights.length);
  view.set(weights);
  return view;
}

export interface RiaParams {
  /** Exponent of the activation factor ‖X_j‖; the reference default is 0.5. */
  a: number;
}
export const RIA_DEFAULT_PARAMS: RiaParams = { a: 0.5 };

/**
 * Allowed activation exponents a (RIA and CRePE). Below 0 a weight would rank higher the quieter
 * its input. Above 4, sqrt(s_j)^a leaves float32 (max 3.4e38) for input norms ‖X_j‖ beyond 1e9 —
 * outlier channels of LLMs reach 1e5 over a 2048-token window, which already overflows at a = 8.
 * The reference uses 0.5 and PHO searches [0, 1.5].
 */
const ACTIVATION_EXPONENT_RANGE: readonly [number, number] = [0, 4];

/** Whether `a` is a number in ACTIVATION_EXPONENT_RANGE. */
export function isActivationExponent(a: unknown): a is number {
  return typeof a === 'number' && a >= ACTIVATION_EXPONENT_RANGE[0] && a <= ACTIVATION_EXPONENT_RANGE[1];
}

/** The refusal of an exponent outside the range, to follow the field's name. */
export const activationExponentProblem = (a: unknown): string =>
  `(the activation exponent a) must be a number in [${ACTIVATION_EXPONENT_RANGE.join(', ')}], got ${describeValue(a)}`;

/** Per-matrix quantities shared by every row: column sums, row sums, activation factors. */
export interface RelativeImportanceSetup {
  dOut: number;
  dIn: number;
  /** 1/C_j, with C_j = 0 replaced by 1: an all-zero column has A = 0, so 0 instead of 0/0 = NaN. */
  inverseColSums: Float64Array;
  /** 1/R_i, with the same guard. */
  inverseRowSums: Float64Array;
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
  // Callers check their arguments (checkScoreArguments); a mismatch here is crepe's own.
  invariant(weights.length === dOut * dIn && inputSqNorms?.length === dIn, () => `${method}: ${weights.length} weights and ${inputSqNorms?.length ?? 'no'} input norms for a ${dOut}×${dIn} matrix`);
  const parts = workerParts(weights.length);
  const float64s = parts > 1 ? sharedFloat64 : (n: number) => new Float64Array(n);
  const visible = parts > 1 ? visibleToWorkers(weights) : weights;
  const colSums = float64s(dIn);
  const rowSums = float64s(dOut);
  runKernel('columnAbsSums', { weights: visible, dOut, dIn, out: colSums }, parts);
  runKernel('rowAbsSums', { weights: visible, dOut, dIn, out: rowSums }, parts);
  // Reciprocals: a multiply per term instead of a divide (about 3× faster at LLM sizes); A·(1/C)
  // and A/C differ by at most an ulp in float64, far below the float32 the score is stored in.
  const inverseColSums = Float64Array.from(colSums, (sum) => (sum === 0 ? 1 : 1 / sum));
  const inverseRowSums = Float64Array.from(rowSums, (sum) => (sum === 0 ? 1 : 1 / sum));
  return { dOut, dIn, inverseColSums, inverseRowSums, activation: activationFactors(inputSqNorms, a) };
}

/** The activation factors sqrt(s_j)^a, as the reference writes them. */
export function activationFactors(inputSqNorms: Float32Array | Float64Array, a: number): Float64Array {
  const activation = new Float64Array(inputSqNorms.length);
  for (let j = 0; j < activation.length; j++) activation[j] = Math.pow(Math.sqrt(inputSqNorms[j]), a);
  return activation;
}

/**
 * (rowCoef·P + colCoef·Q) · sqrt(s_j)^a for the whole matrix, as float32. RIA is rowCoef = colCoef = 1.
 */
export function weightedRelativeImportanceScores(
  weights: Float32Array,
  setup: RelativeImportanceSetup,
  rowCoef: number,
  colCoef: number,
  out?: Float32Array,
): Float32Array {
  const scores = scoreBuffer(setup.dOut * setup.dIn, out);
  const { parts, inputs } = scoreKernelInputs(weights, setup, scores);
  runKernel('weightedRelativeImportance', { ...inputs, out: scores, rowCoef, colCoef }, parts);
  return scores;
}

/**
 * How many parts a score kernel writing `scores` runs in (several when the scores are large and
 * shared), and its inputs: the weights and the per-row/per-column factors, in shared memory when
 * the workers take part.
 */
export function scoreKernelInputs(weights: Float32Array, setup: RelativeImportanceSetup, scores: Float32Array): { parts: number; inputs: ScoreInputs } {
  const parts = isShared(scores) ? workerParts(scores.length) : 1;
  const visible = <T extends Float32Array | Float64Array>(array: T): T => (parts > 1 && !isShared(array) ? sharedCopy(array) : array);
  return {
    parts,
    inputs: {
      weights: parts > 1 ? visibleToWorkers(weights) : weights, dOut: setup.dOut, dIn: setup.dIn,
      inverseColSums: visible(setup.inverseColSums), inverseRowSums: visible(setup.inverseRowSums), activation: visible(setup.activation),
    },
  };
}

export function riaScores(
  weights: Float32Array,
  dOut: number,
  dIn: number,
  inputSqNorms: InputSqNorms,
  params: Partial<RiaParams> = {},
  out?: Float32Array,
): Float32Array {
  checkKnownFields(params, 'params', ['a']);
  const a = params.a ?? RIA_DEFAULT_PARAMS.a;
  checkField(isActivationExponent(a), 'riaA', () => activationExponentProblem(a));
  checkScoreArguments(weights, dOut, dIn, out);
  checkInputSqNorms(inputSqNorms, dIn, 'ria');
  const visible = scoredWeights(weights);
  const setup = relativeImportanceSetup(visible, dOut, dIn, inputSqNorms, a);
  return weightedRelativeImportanceScores(visible, setup, 1, 1, out);
}

/**
 * The weights a score reads in both its passes (sums, then scores): when the workers take part,
 * their one shared copy, so that the passes do not copy them once each.
 */
export function scoredWeights(weights: Float32Array): Float32Array {
  return workerParts(weights.length) > 1 ? visibleToWorkers(weights) : weights;
}

/**
 * The score array: `out` when given (every entry gets overwritten), else a new one — shared with
 * the worker threads when large, so they can write it and the selection can count it in parallel.
 * Reusing one buffer across linears matters at LLM sizes: first-touching a fresh 180 MB allocation
 * costs more than computing the scores.
 */
export function scoreBuffer(length: number, out: Float32Array | undefined): Float32Array {
  if (!out) return length >= PARALLEL_MIN_WEIGHTS ? sharedFloat32(length) : new Float32Array(length);
  if (out.length !== length) throw new Error(`score buffer has ${out.length} entries, expected ${length}`);
  return out;
}
