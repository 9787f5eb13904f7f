/**
 * Registry of score-based pruning methods: each maps a weight matrix and its calibration statistics
 * to importance scores (higher = keep), and names the selection rule its reference uses.
 * SparseGPT is not here: it updates weights while it prunes (prune/sparsegpt.ts).
 */
import { UserError } from '../../util/errors.ts';
import type { Selection } from '../target.ts';
import { crepeScores, type CrepeParams } from './crepe.ts';
import { magnitudeScores } from './magnitude.ts';
import { riaScores } from './ria.ts';
import { wandaScores } from './wanda.ts';

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

export type StatisticNeed = 'sqnorm';

export type ScoreFunction = (
  weights: Float32Array,
  dOut: number,
  dIn: number,
  inputSqNorms: InputSqNorms,
  params: ScoreParams,
  out?: Float32Array,
) => Float32Array;

export interface ScoreMethod {
  score: ScoreFunction;
  /** The reference's unstructured selection (ALGORITHMS.md §1.5, §3.2). */
  defaultSelection: Selection;
  /** Calibration statistics the score reads. */
  needs: readonly StatisticNeed[];
}

export const SCORE_METHODS = {
  magnitude: { score: (w, dOut, dIn, _norms, _params, out) => magnitudeScores(w, dOut, dIn, out), defaultSelection: 'per-matrix', needs: [] },
  wanda: { score: (w, dOut, dIn, norms, _params, out) => wandaScores(w, dOut, dIn, norms, out), defaultSelection: 'per-row', needs: ['sqnorm'] },
  ria: { score: (w, dOut, dIn, norms, params, out) => riaScores(w, dOut, dIn, norms, { a: params.riaA }, out), defaultSelection: 'per-matrix', needs: ['sqnorm'] },
  crepe: { score: (w, dOut, dIn, norms, params, out) => crepeScores(w, dOut, dIn, norms, params.crepe ?? {}, out), defaultSelection: 'per-matrix', needs: ['sqnorm'] },
} as const satisfies Record<string, ScoreMethod>;

export type ScoreMethodName = keyof typeof SCORE_METHODS;
export const SCORE_METHOD_NAMES = Object.keys(SCORE_METHODS) as ScoreMethodName[];

/** Looks a method up by name; unknown → UserError listing the known ones. */
export function scoreMethod(name: string): ScoreMethod {
  if (!Object.hasOwn(SCORE_METHODS, name)) {
    throw new UserError(`unknown pruning method "${name}"; known score methods: ${SCORE_METHOD_NAMES.join(', ')}`);
  }
  return SCORE_METHODS[name as ScoreMethodName];
}

/** Scores of a [dOut, dIn] weight matrix with the named method; `out` is reused when given. */
export function scoreMatrix(
  method: string,
  weights: Float32Array,
  dOut: number,
  dIn: number,
  inputSqNorms: InputSqNorms,
  params: ScoreParams = {},
  out?: Float32Array,
): Float32Array {
  return scoreMethod(method).score(weights, dOut, dIn, inputSqNorms, params, out);
}
