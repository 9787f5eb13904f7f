/**
 * What every score function shares: a weight matrix and its calibration statistics in, importance
 * scores (higher = keep) out. The methods that use them are listed in prune/methods.ts.
 */
import type { CrepeParams } from './crepe.ts';

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
