/**
 * The pruning methods: how each scores a weight matrix, the unstructured selection its reference
 * uses, and the calibration statistics of a linear's input it reads. The layer loop collects
 * exactly the statistics the run's method and options declare (`requiredStatistics`).
 */
import { FieldError, checkField } from '../util/errors.ts';
import { checkKnownFields } from '../util/fields.ts';
import type { Selection } from './target.ts';
import type { InputSqNorms, ScoreFunction, ScoreParams } from './scores/index.ts';
import { crepeScores } from './scores/crepe.ts';
import { magnitudeScores } from './scores/magnitude.ts';
import { riaScores } from './scores/ria.ts';
import { wandaScores } from './scores/wanda.ts';

/**
 * Statistics of a linear's input over the calibration tokens (prune/calibration-stats.ts):
 *   sqnorm   Σ_t x² per input channel (Wanda, RIA, CRePE, OWL's outlier ratios)
 *   moments  Σ_t x and the within-sequence variance per channel (DSnoT)
 *   gram     XᵀX (SparseGPT, reconstruction)
 */
export type Statistic = 'sqnorm' | 'moments' | 'gram';

export interface PruningMethod {
  /** Importance scores, higher = keep; null for SparseGPT, which picks its mask while it updates the weights. */
  score: ScoreFunction | null;
  /** The reference's unstructured selection (ALGORITHMS.md §1.5, §3.2); SparseGPT selects per column block instead. */
  defaultSelection: Selection;
  /** The statistics the method reads. */
  statistics: readonly Statistic[];
}

/** The statistics each optional pass reads: OWL's outlier ratios, DSnoT's prune-and-grow, reconstruction. */
const PASS_STATISTICS = {
  owl: ['sqnorm'],
  dsnot: ['sqnorm', 'moments'],
  reconstruct: ['gram'],
} as const satisfies Record<string, readonly Statistic[]>;

/** In the order the documentation lists them. */
export const METHODS = {
  magnitude: {
    score: (w, dOut, dIn, _norms, _params, out) => magnitudeScores(w, dOut, dIn, out),
    defaultSelection: 'per-matrix',
    statistics: [],
  },
  wanda: {
    score: (w, dOut, dIn, norms, _params, out) => wandaScores(w, dOut, dIn, norms, out),
    defaultSelection: 'per-row',
    statistics: ['sqnorm'],
  },
  sparsegpt: { score: null, defaultSelection: 'per-matrix', statistics: ['gram'] },
  ria: {
    score: (w, dOut, dIn, norms, params, out) => riaScores(w, dOut, dIn, norms, { a: params.riaA }, out),
    defaultSelection: 'per-matrix',
    statistics: ['sqnorm'],
  },
  crepe: {
    score: (w, dOut, dIn, norms, params, out) => crepeScores(w, dOut, dIn, norms, params.crepe ?? {}, out),
    defaultSelection: 'per-matrix',
    statistics: ['sqnorm'],
  },
} as const satisfies Record<string, PruningMethod>;

export type MethodName = keyof typeof METHODS;
export const METHOD_NAMES = Object.keys(METHODS) as MethodName[];

function isMethodName(name: unknown): name is MethodName {
  return typeof name === 'string' && Object.hasOwn(METHODS, name);
}

/** The method called `name`; anything else is a FieldError naming `field` and listing the known methods. */
export function pruningMethod(name: unknown, field = 'method'): PruningMethod {
  if (!isMethodName(name)) {
    throw new FieldError(field, `${JSON.stringify(name)} is unknown; expected one of ${METHOD_NAMES.join(', ')}`);
  }
  return METHODS[name];
}

/** Scores of a [dOut, dIn] weight matrix with a score-based method; `out` is reused when given. */
export function scoreMatrix(
  method: MethodName,
  weights: Float32Array,
  dOut: number,
  dIn: number,
  inputSqNorms: InputSqNorms,
  params: ScoreParams = {},
  out?: Float32Array,
): Float32Array {
  const { score } = pruningMethod(method);
  checkField(score, 'method', () => `${method} has no score function (it selects its mask while it updates the weights)`);
  checkKnownFields(params, 'params', ['riaA', 'crepe']);
  return score(weights, dOut, dIn, inputSqNorms, params, out);
}

/** The statistics a run must collect: its method's and those of the passes it turns on. */
export function requiredStatistics(run: { method: MethodName; owl: unknown; dsnot: unknown; reconstruct: boolean }): Set<Statistic> {
  const needed = new Set<Statistic>(METHODS[run.method].statistics);
  for (const pass of ['owl', 'dsnot', 'reconstruct'] as const) {
    if (run[pass]) for (const statistic of PASS_STATISTICS[pass]) needed.add(statistic);
  }
  return needed;
}
