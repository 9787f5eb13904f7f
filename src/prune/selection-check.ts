/**
 * Guards against a silently wrong model: a score distribution that cannot rank weights, and a mask
 * whose size is not what the selection rule yields.
 *
 * - Scores must be finite and not all equal. Extreme exponents make them overflow to ∞ or
 *   underflow to 0, and the threshold rule then takes whole tie groups (a 50 % target became
 *   91.8 % with RIA a = 100).
 * - After selection, the number of pruned weights must be the rule's: exactly ⌊dIn·s⌋ per row
 *   (per-row), exactly n per group of m (N:M), and for the threshold rules (per-matrix:
 *   t = sorted[⌊N·s⌋], prune every score ≤ t; SparseGPT: the same per column block) at least
 *   ⌊N·s⌋ + 1 per threshold, plus the ties at the threshold — which may add at most
 *   TIE_TOLERANCE of the matrix. Weights that were zero before pruning do not count against
 *   that allowance (pruning them again changes nothing).
 * - Weights written back (SparseGPT's update, reconstruction) must be finite.
 */
import { UserError } from '../util/errors.ts';
import type { PruneTarget, Selection } from './target.ts';

/** Largest share of a matrix that ties at a selection threshold may add to the rule's count. */
export const TIE_TOLERANCE = 0.01;

/** "layer 3 mlp.down_proj" or "mlp.down_proj". */
const where = (linear: string, layer: number | undefined): string => (layer === undefined ? linear : `layer ${layer} ${linear}`);

/**
 * Refuses scores that cannot rank `weight`'s entries: a non-finite score, or all scores equal
 * while some weight is non-zero (an all-zero matrix has nothing to rank and nothing to lose).
 */
export function checkScores(scores: Float32Array, weight: Float32Array, dIn: number, linear: string, layer?: number): void {
  if (scores.length === 0) return;
  const first = scores[0];
  let allEqual = true;
  for (let p = 0; p < scores.length; p++) {
    const s = scores[p];
    // s - s is 0 for every finite s and NaN for NaN and ±∞.
    if (s - s !== 0) {
      throw new UserError(
        `${where(linear, layer)}: score ${s} at row ${Math.floor(p / dIn)}, column ${p % dIn}; the scores overflowed ` +
          'or are undefined (an activation exponent too large in magnitude?), so they cannot rank the weights',
      );
    }
    if (s !== first) allEqual = false;
  }
  if (allEqual && scores.length > 1 && weight.some((w) => w !== 0)) {
    throw new UserError(
      `${where(linear, layer)}: all ${scores.length} scores equal ${first}; they cannot rank the weights ` +
        '(underflow from an extreme exponent?)',
    );
  }
}

/** Number of exact zeros in `weight` (counted before pruning). */
export function countZeros(weight: Float32Array): number {
  let zeros = 0;
  for (let p = 0; p < weight.length; p++) if (weight[p] === 0) zeros++;
  return zeros;
}

export interface SelectionRule {
  target: PruneTarget;
  /** Unstructured rule of a score method; 'column-blocks' is SparseGPT's threshold per block of `blockSize` columns. */
  selection: Selection | 'column-blocks';
  dOut: number;
  dIn: number;
  blockSize?: number;
}

/** The fewest and most weights the rule may prune in a matrix without prior zeros. */
export function selectionBounds(rule: SelectionRule): { min: number; max: number } {
  const { target, dOut, dIn } = rule;
  const total = dOut * dIn;
  if (target.kind === 'nm') {
    const exact = dOut * (dIn / target.m) * target.n;
    return { min: exact, max: exact };
  }
  const s = target.sparsity;
  if (rule.selection === 'per-row') {
    const exact = dOut * Math.floor(dIn * s);
    return { min: exact, max: exact };
  }
  // Threshold rules: each threshold prunes its k-th smallest and everything below, so k + 1.
  const perThreshold = (n: number): number => (n === 0 ? 0 : Math.min(Math.floor(n * s), n - 1) + 1);
  let min = 0;
  if (rule.selection === 'column-blocks') {
    const blockSize = rule.blockSize ?? dIn;
    for (let i1 = 0; i1 < dIn; i1 += blockSize) min += perThreshold(dOut * Math.min(blockSize, dIn - i1));
  } else {
    min = perThreshold(total);
  }
  return { min, max: Math.min(total, min + Math.ceil(TIE_TOLERANCE * total)) };
}

/**
 * Refuses a mask whose pruned count is outside the rule's bounds; `zerosBefore` weights that were
 * already zero may be pruned on top of the allowance.
 */
export function checkReachedSparsity(mask: Uint8Array, rule: SelectionRule, zerosBefore: number, linear: string, layer?: number): void {
  let pruned = 0;
  for (let p = 0; p < mask.length; p++) pruned += mask[p];
  const { min, max } = selectionBounds(rule);
  if (pruned >= min && pruned - zerosBefore <= max) return;
  const total = mask.length;
  const percent = (n: number) => `${((n / total) * 100).toFixed(2)} %`;
  const target = rule.target.kind === 'nm' ? `${rule.target.n}:${rule.target.m}` : percent(Math.floor(total * rule.target.sparsity));
  const allowed = min === max ? `exactly ${min}` : `${min} to ${max}${zerosBefore ? ` (plus ${zerosBefore} weights already zero)` : ''}`;
  throw new UserError(
    `${where(linear, layer)}: pruning reached ${percent(pruned)} (${pruned} of ${total} weights) for a ${target} target; ` +
      `the ${rule.selection} rule allows ${allowed}. The scores are degenerate (ties from overflow or underflow?)`,
  );
}

/** Refuses a non-finite weight written back by an update (SparseGPT, reconstruction). */
export function checkUpdatedWeights(weight: Float32Array, dIn: number, linear: string, layer?: number): void {
  for (let p = 0; p < weight.length; p++) {
    const w = weight[p];
    if (w - w !== 0) {
      throw new UserError(
        `${where(linear, layer)}: the weight update produced ${w} at row ${Math.floor(p / dIn)}, column ${p % dIn} ` +
          '(a singular or badly damped Hessian? try a larger percdamp)',
      );
    }
  }
}
