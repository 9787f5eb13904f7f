/**
 * What every score function shares: a weight matrix and its calibration statistics in, importance
 * scores (higher = keep) out. The methods that use them are listed in prune/methods.ts.
 */
import type { CrepeParams } from './crepe.ts';
import { checkField } from '../../util/errors.ts';
import { checkMatrix, describeValue } from '../../util/fields.ts';

/**
 * Calibration statistic of one linear's input: s_j = (1/N) Σ_n Σ_t x²_{n,t,j} per input channel
 * (ALGORITHMS.md §1.4), so ‖X_j‖ ∝ sqrt(s_j). Null for methods that need none (magnitude).
 */
export type InputSqNorms = Float32Array | Float64Array | null;

/** Method parameters; each method reads its own (`riaA` for ria, `crepe` for crepe). */
export interface ScoreParams {
  /** RIA's activation exponent a (default 0.5). */
  riaA?: number;
  /** CRePE parameters; missing fields take CREPE_DEFAULT_PARAMS. */
  crepe?: Partial<CrepeParams> | null;
}

export type ScoreFunction = (
  weights: Float32Array,
  dOut: number,
  dIn: number,
  inputSqNorms: InputSqNorms,
  params: ScoreParams,
  out?: Float32Array,
) => Float32Array;

/**
 * Throws a FieldError naming the argument unless `weights` is a Float32Array of dOut×dIn entries
 * and `out`, when given, one of as many scores. A mismatch would read past the matrix or write
 * past the buffer. O(1).
 */
export function checkScoreArguments(weights: unknown, dOut: unknown, dIn: unknown, out: unknown): asserts weights is Float32Array {
  checkMatrix('weights', weights, [Float32Array], dOut, dIn, 'weights');
  if (out !== undefined) checkMatrix('out', out, [Float32Array], dOut, dIn, 'scores');
}

/**
 * Throws a FieldError naming `inputSqNorms` unless it holds one statistic per input channel for
 * `method` (another linear's statistics would score this one against the wrong inputs). O(1).
 */
export function checkInputSqNorms(inputSqNorms: unknown, dIn: number, method: string): asserts inputSqNorms is Float32Array | Float64Array {
  const isArray = inputSqNorms instanceof Float32Array || inputSqNorms instanceof Float64Array;
  checkField(
    isArray && inputSqNorms.length === dIn,
    'inputSqNorms',
    () => `must hold one squared input norm per input channel (dIn = ${dIn}) for ${method}, got ${isArray ? `${inputSqNorms.length} entries` : describeValue(inputSqNorms)}`,
  );
}
