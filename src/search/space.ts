/**
 * The search space of CRePE's coefficients. Scores are invariant to scaling (α, β, γ) by a positive
 * constant, so α = 1 and the searched coordinates are log(β/α) and log(γ/α), optionally with the
 * activation exponent a. Coordinates are clipped to a box: γ = e^−12 is RIA for every practical
 * purpose, and ratios beyond e^6 make the other terms vanish.
 */
import type { CrepeParams } from '../prune/scores/crepe.ts';
import { checkNumber } from '../util/fields.ts';

export const LOG_RATIO_RANGE: readonly [number, number] = [-12, 6];
export const EXPONENT_RANGE: readonly [number, number] = [0, 1.5];

export interface SearchSpace {
  /** Search the activation exponent a as a third coordinate. */
  searchA: boolean;
  /** a when it is not searched. */
  fixedA: number;
  variant: CrepeParams['variant'];
}

/** CMA-ES's initial step in log-ratio units: positive, at most the width of the ratio box. */
export function checkSigma0(field: string, sigma0: unknown): asserts sigma0 is number {
  checkNumber(field, sigma0, [0, LOG_RATIO_RANGE[1] - LOG_RATIO_RANGE[0]], { min: true });
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
