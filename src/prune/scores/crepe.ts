/**
 * CRePE score (ALGORITHMS.md §7.2): RIA's relative importance with coefficients and a 2-D local
 * neighbourhood term. With A = |W|, x_j^a = sqrt(s_j)^a:
 *
 *   P_ij = A_ij / Σ_q A_iq      (row term)       Q_ij = A_ij / Σ_p A_pj   (column term)
 *   B_ij = A_ij / Σ_{k×k window centred on (i,j)} A   (window clipped at the border = zero padding)
 *
 *   normalized: S = (α·P + β·Q + γ·B) · x^a
 *   smooth:     S = (α·P + β·Q) · x^a + γ·BoxMean_k[(P + Q) · x^a]
 *
 * Window sums come from a summed-area table in float64, kept as a ring of k+1 rows so memory is
 * O(k·dIn) and the cost O(1) per weight for any k (util/kernels.ts; large matrices are split over
 * worker threads by columns, with the same bits). Border 'mean' treats the cells outside the
 * matrix as the window's in-matrix mean instead of zeros: the box mean divides by the count of
 * in-matrix cells, and B's denominator becomes k²·(window mean).
 *
 * With α = β = 1 and γ = 0 the score is computed by RIA's own routine, so it equals RIA's score bit
 * for bit (whatever k, variant and border).
 */
import { FieldError, UserError } from '../../util/errors.ts';
import { checkKnownFields, describeValue } from '../../util/fields.ts';
import { checkInputSqNorms, checkScoreArguments, type InputSqNorms } from './index.ts';
import {
  activationExponentProblem, isActivationExponent, relativeImportanceSetup, scoreBuffer, scoreKernelInputs, scoredWeights, weightedRelativeImportanceScores,
} from './ria.ts';
import { runKernel } from '../../util/parallel.ts';

export type CrepeVariant = 'normalized' | 'smooth';
export type CrepeBorder = 'zero' | 'mean';

export interface CrepeParams {
  /** Window size, odd ≥ 1. */
  k: number;
  /** Coefficient of the row term P. */
  alpha: number;
  /** Coefficient of the column term Q. */
  beta: number;
  /** Coefficient of the neighbourhood term. */
  gamma: number;
  /** Activation exponent. */
  a: number;
  variant: CrepeVariant;
  border: CrepeBorder;
}

/**
 * Fill-ins for parameters a caller leaves out (the RIA point α = β = 1, γ = 0, a = 0.5, k = 3).
 * `crepe prune --method crepe` does not use these: without --config it applies the searched
 * configuration shipped in configs/crepe-default.json, with its provenance.
 */
export const CREPE_DEFAULT_PARAMS: Readonly<CrepeParams> = {
  k: 3,
  alpha: 1,
  beta: 1,
  gamma: 0,
  a: 0.5,
  variant: 'normalized',
  border: 'zero',
};

/** The largest neighbourhood window: a k×k window sum is kept per row, and wider windows only blur the term away. */
const MAX_CREPE_K = 63;

/** A window size CRePE takes: an odd integer in [1, MAX_CREPE_K]. */
const isWindowSize = (k: unknown): k is number => Number.isSafeInteger(k) && (k as number) >= 1 && (k as number) <= MAX_CREPE_K && (k as number) % 2 === 1;

/** CRePE's neighbourhood-term variants. */
export const isCrepeVariant = (variant: unknown): variant is CrepeVariant => variant === 'normalized' || variant === 'smooth';
export const crepeVariantProblem = (variant: unknown): string => `must be "normalized" or "smooth", got ${describeValue(variant)}`;

/** Throws a FieldError naming `field` unless `kSet` lists window sizes CRePE takes (isWindowSize). */
export function checkWindowSizes(field: string, kSet: unknown): asserts kSet is readonly number[] {
  if (!(Array.isArray(kSet) && kSet.length > 0)) throw new FieldError(field, `must list at least one window size, got ${describeValue(kSet)}`);
  if (!kSet.every(isWindowSize)) {
    throw new FieldError(field, `expects odd window sizes in [1, ${MAX_CREPE_K}], got ${kSet.map(describeValue).join(',')}`);
  }
}

/**
 * Fills in defaults and validates. `source` says where the parameters came from: a file (its
 * path prefixes a UserError) or `{ field }`, a request field (`crepe`) whose sub-field each
 * FieldError names (`crepe.k`), so a command line can name its flag.
 */
/** CRePE's parameters alone (a configuration file's format and provenance left out), keys in the order settings hash them. */
export function crepeParamsOf({ k, alpha, beta, gamma, a, variant, border }: CrepeParams): CrepeParams {
  return { k, alpha, beta, gamma, a, variant, border };
}

export function resolveCrepeParams(params: Partial<CrepeParams> = {}, source: string | { field: string } = 'crepe parameters'): CrepeParams {
  // A misspelt parameter ("gama") would otherwise stay at its default.
  checkKnownFields(params, typeof source === 'string' ? 'crepe' : source.field, Object.keys(CREPE_DEFAULT_PARAMS));
  const p: CrepeParams = { ...CREPE_DEFAULT_PARAMS, ...definedOnly(params) };
  const fail = (name: keyof CrepeParams, problem: string): never => {
    if (typeof source === 'string') throw new UserError(`${source}: ${name} ${problem}`);
    throw new FieldError(`${source.field}.${name}`, problem);
  };
  if (!isWindowSize(p.k)) {
    fail('k', `(the neighbourhood window size) must be an odd integer in [1, ${MAX_CREPE_K}], got ${describeValue(p.k)}`);
  }
  for (const name of ['alpha', 'beta', 'gamma'] as const) {
    const value = p[name];
    if (!(typeof value === 'number' && Number.isFinite(value) && value >= 0)) fail(name, `must be a finite number ≥ 0, got ${describeValue(value)}`);
  }
  if (p.alpha === 0 && p.beta === 0 && p.gamma === 0) {
    if (typeof source === 'string') throw new UserError(`${source}: alpha, beta and gamma are all zero; at least one coefficient must be positive`);
    fail('gamma', 'is zero, and so are alpha and beta; at least one coefficient must be positive');
  }
  if (!isActivationExponent(p.a)) fail('a', activationExponentProblem(p.a));
  if (!isCrepeVariant(p.variant)) fail('variant', crepeVariantProblem(p.variant));
  if (p.border !== 'zero' && p.border !== 'mean') fail('border', `must be "zero" or "mean", got ${JSON.stringify(p.border)}`);
  return p;
}

export function crepeScores(
  weights: Float32Array,
  dOut: number,
  dIn: number,
  inputSqNorms: InputSqNorms,
  params: Partial<CrepeParams> = {},
  out?: Float32Array,
): Float32Array {
  const { k, alpha, beta, gamma, a, variant, border } = resolveCrepeParams(params);
  checkScoreArguments(weights, dOut, dIn, out);
  checkInputSqNorms(inputSqNorms, dIn, 'crepe');
  const visible = scoredWeights(weights);
  const setup = relativeImportanceSetup(visible, dOut, dIn, inputSqNorms, a, 'crepe');
  if (gamma === 0) return weightedRelativeImportanceScores(visible, setup, alpha, beta, out);

  const scores = scoreBuffer(dOut * dIn, out);
  const { parts, inputs } = scoreKernelInputs(visible, setup, scores);
  runKernel('crepeNeighbourhoodScores', {
    ...inputs, out: scores, k, alpha, beta, gamma, smooth: variant === 'smooth', meanBorder: border === 'mean',
  }, parts);
  return scores;
}

function definedOnly<T extends object>(params: Partial<T>): Partial<T> {
  const out: Partial<T> = {};
  for (const [key, value] of Object.entries(params)) if (value !== undefined) (out as Record<string, unknown>)[key] = value;
  return out;
}
