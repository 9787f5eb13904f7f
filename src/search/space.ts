/**
 * The search space of CRePE's coefficients. Scores are invariant to scaling (α, β, γ) by a positive
 * constant, so α = 1 and the searched coordinates are log(β/α) and log(γ/α), optionally with the
 * activation exponent a. Coordinates are clipped to a box: γ = e^−12 is RIA for every practical
 * purpose, and ratios beyond e^6 make the other terms vanish.
 */
import { CREPE_DEFAULT_PARAMS, crepeVariantProblem, isCrepeVariant, resolveCrepeParams, type CrepeParams } from '../prune/scores/crepe.ts';
import type { CrepeConfigFile } from './crepe-config.ts';
import { activationExponentProblem, isActivationExponent } from '../prune/scores/ria.ts';
import { checkField } from '../util/errors.ts';
import { checkFlag, checkKnownFields, checkNumber } from '../util/fields.ts';

export const LOG_RATIO_RANGE: readonly [number, number] = [-12, 6];
export const EXPONENT_RANGE: readonly [number, number] = [0, 1.5];

export interface SearchSpace {
  /** Search the activation exponent a as a third coordinate. */
  searchA: boolean;
  /** a when it is not searched. */
  fixedA: number;
  variant: CrepeParams['variant'];
}

/**
 * A step in log-ratio units (CMA-ES's sigma0, hill climbing's steps): positive, at most `max`,
 * by default the width of the ratio box.
 */
export function checkLogStep(field: string, step: unknown, max = LOG_RATIO_RANGE[1] - LOG_RATIO_RANGE[0]): asserts step is number {
  checkNumber(field, step, [0, max], { min: true });
}

/** Refuses a search space other than a searchA flag, an activation exponent fixedA and a CRePE variant. */
export function checkSearchSpace(field: string, space: unknown): asserts space is SearchSpace {
  checkKnownFields(space, field, ['searchA', 'fixedA', 'variant']);
  checkFlag(`${field}.searchA`, space.searchA);
  checkField(isActivationExponent(space.fixedA), `${field}.fixedA`, () => activationExponentProblem(space.fixedA));
  checkField(isCrepeVariant(space.variant), `${field}.variant`, () => crepeVariantProblem(space.variant));
}

/**
 * A configuration a search starts from (a configuration file's format and provenance allowed), with
 * CREPE_DEFAULT_PARAMS for missing fields; its α must be positive, since the search runs over
 * ratios to α (α = 0 started at the edge of the box).
 */
export function checkSearchStart(field: string, start: unknown): CrepeParams {
  const isObject = typeof start === 'object' && start !== null;
  const { format, provenance, ...given } = (isObject ? start : {}) as Partial<CrepeConfigFile>;
  const params = resolveCrepeParams(isObject ? given : start as never, { field });
  checkField(params.alpha > 0, `${field}.alpha`, 'must be positive to start a search (the search runs over ratios to alpha)');
  return params;
}

export const clip = (value: number, [lo, hi]: readonly [number, number]): number => Math.min(hi, Math.max(lo, value));

export function dimension(space: SearchSpace): number {
  return space.searchA ? 3 : 2;
}

/**
 * The search's starting point: by default β = α (as RIA), γ = α, a = fixedA; or the point of a
 * given configuration (`crepe search --config`), whose α must be positive since the search runs
 * over ratios to α.
 */
export function startPoint(space: SearchSpace, from?: CrepeParams): Float64Array {
  if (!from) return Float64Array.from(space.searchA ? [0, 0, space.fixedA] : [0, 0]);
  const logRatio = (value: number) => clip(value > 0 ? Math.log(value / from.alpha) : -Infinity, LOG_RATIO_RANGE);
  const x = [logRatio(from.beta), logRatio(from.gamma)];
  return Float64Array.from(space.searchA ? [...x, clip(from.a, EXPONENT_RANGE)] : x);
}

/**
 * The start configuration as a point of the space: `startPoint` at the start's own window size (a
 * given configuration's k, else CREPE_DEFAULT_PARAMS'), or, when the search leaves that size out,
 * the searched size nearest to it (the smaller on a tie). The configuration `--proxy-statistics
 * start` prunes with and the one PHO's confirmation measures besides its candidates.
 */
export function startParams(space: SearchSpace, kSet: readonly number[], from?: CrepeParams): CrepeParams {
  const own = from?.k ?? CREPE_DEFAULT_PARAMS.k;
  const k = kSet.reduce((best, c) => (Math.abs(c - own) < Math.abs(best - own) || (Math.abs(c - own) === Math.abs(best - own) && c < best) ? c : best), kSet[0] ?? own);
  return toParams(startPoint(space, from), k, space);
}

export function toParams(x: ArrayLike<number>, k: number, space: SearchSpace): CrepeParams {
  return {
    k,
    alpha: 1,
    beta: Math.exp(clip(x[0], LOG_RATIO_RANGE)),
    gamma: Math.exp(clip(x[1], LOG_RATIO_RANGE)),
    a: space.searchA ? clip(x[2], EXPONENT_RANGE) : space.fixedA,
    variant: space.variant,
    border: 'zero',
  };
}
