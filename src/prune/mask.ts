/**
 * Prune masks from scores (ALGORITHMS.md §1.5). A mask is a Uint8Array [dOut·dIn] over a row-major
 * weight matrix with 1 = pruned (weight set to zero), 0 = kept. Scores: higher = more important.
 *
 * - per-row (Wanda; RIA --per_outneuron): exactly floor(dIn·s) per row, ties → lower column first
 *   (the stable ascending sort of the reference).
 * - per-matrix (RIA default, magnitude): t = sorted[floor(N·s)], prune every score ≤ t
 *   (floor(N·s) + 1 entries plus the ties at t).
 * - n:m: per row, in each group of m consecutive input columns, prune the n smallest. The
 *   reference's torch.topk leaves the tie order unspecified; here the lower column goes first.
 *
 * All selection is by quickselect / radix select, never a full sort. Every builder takes an optional
 * `out` buffer to reuse across matrices.
 */
import { kthSmallest, markAtMost, markBuffer, markRowsBelow, rowKthSmallest } from '../util/select.ts';
import { SELECTIONS, validateTarget, type PruneTarget, type Selection } from './target.ts';
import { checkField, invariant } from '../util/errors.ts';
import { checkInteger, checkMatrix, describeValue } from '../util/fields.ts';

/** Prunes exactly floor(dIn·s) entries in every row; ties at the threshold: lower column first. */
export function perRowMask(scores: Float32Array, dOut: number, dIn: number, sparsity: number, out?: Uint8Array): Uint8Array {
  checkShape(scores, dOut, dIn);
  const count = Math.floor(dIn * sparsity);
  if (count <= 0) return maskBuffer(scores.length, out);
  const mask = out ?? markBuffer(scores); // every entry is written below
  invariant(mask.length === scores.length, () => `mask buffer has ${mask.length} entries, expected ${scores.length}`);
  markRowsBelow(scores, dOut, dIn, rowKthSmallest(scores, dOut, dIn, count - 1), count, mask);
  return mask;
}

/** One threshold for the whole matrix: t = sorted[floor(N·s)], prune every score ≤ t. */
export function perMatrixMask(scores: Float32Array, sparsity: number, out?: Uint8Array): Uint8Array {
  const total = scores.length;
  const mask = out ?? markBuffer(scores); // every entry is written below
  invariant(mask.length === total, () => `mask buffer has ${mask.length} entries, expected ${total}`);
  if (total === 0) return mask;
  markAtMost(scores, perMatrixThreshold(scores, sparsity), mask);
  return mask;
}

/**
 * The per-matrix threshold: the score at index ⌊n·sparsity⌋ (the last at sparsity 1) of the scores
 * sorted ascending; every score at most it is pruned (ties included). `scores` must not be empty.
 */
export function perMatrixThreshold(scores: Float32Array, sparsity: number): number {
  return kthSmallest(scores, Math.min(Math.floor(scores.length * sparsity), scores.length - 1));
}

/** Per row, per group of m consecutive columns: prune the n smallest (ties: lower column first). */
export function nmMask(scores: Float32Array, dOut: number, dIn: number, n: number, m: number, out?: Uint8Array): Uint8Array {
  checkShape(scores, dOut, dIn);
  invariant(Number.isInteger(n) && Number.isInteger(m) && n > 0 && n < m && dIn % m === 0, () => `nmMask: invalid ${n}:${m} for width ${dIn}`);
  const mask = maskBuffer(scores.length, out);
  for (let g = 0; g < scores.length; g += m) {
    // Rank of each entry in its group under (score, column) order; the n lowest ranks are pruned.
    // O(m²) per group: m is small (4, 8, 16) in every use.
    for (let a = 0; a < m; a++) {
      const va = scores[g + a];
      let rank = 0;
      for (let b = 0; b < m; b++) {
        const vb = scores[g + b];
        if (vb < va || (vb === va && b < a)) rank++;
      }
      if (rank < n) mask[g + a] = 1;
    }
  }
  return mask;
}

/**
 * A caller's mask target and selection rule, checked: an unknown rule would fall to per-matrix
 * without a word. A mask may prune nothing or everything (sparsity 0 or 1: the search's end points).
 */
export function checkMaskTarget(target: PruneTarget, selection: Selection): void {
  if (target?.kind !== 'unstructured') validateTarget(target, 'target');
  else {
    const { sparsity } = target;
    checkField(typeof sparsity === 'number' && sparsity >= 0 && sparsity <= 1, 'target', () => `sparsity must be a number in [0, 1], got ${describeValue(sparsity)}`);
  }
  checkField(SELECTIONS.includes(selection), 'selection', () => `must be one of ${SELECTIONS.join(', ')}, got ${describeValue(selection)}`);
}

/**
 * The mask of a [dOut, dIn] score matrix for `target`: N:M per group, or the unstructured
 * `selection` rule. `out` is reused when given (it must hold dOut·dIn entries).
 */
export function selectMask(
  scores: Float32Array,
  dOut: number,
  dIn: number,
  target: PruneTarget,
  selection: Selection,
  out?: Uint8Array,
): Uint8Array {
  checkMaskTarget(target, selection);
  checkMatrix('scores', scores, [Float32Array], dOut, dIn, 'scores');
  if (out !== undefined) checkMatrix('out', out, [Uint8Array], dOut, dIn, 'mask entries');
  if (target.kind === 'nm') checkField(dIn % target.m === 0, 'target', `${target.n}:${target.m} needs an input width divisible by ${target.m}, got ${dIn}`);
  if (target.kind === 'nm') return nmMask(scores, dOut, dIn, target.n, target.m, out);
  return selection === 'per-row'
    ? perRowMask(scores, dOut, dIn, target.sparsity, out)
    : perMatrixMask(scores, target.sparsity, out);
}

/**
 * Sets pruned weights (mask 1) to +0, in place: branch-free on the bit patterns, since a mask is
 * about half ones in no order (a branch per weight would be mispredicted half the time).
 */
export function applyMask(weights: Float32Array, mask: Uint8Array): void {
  checkField(weights instanceof Float32Array, 'weights', () => `must be a Float32Array, got ${describeValue(weights)}`);
  checkField(mask instanceof Uint8Array && mask.length === weights.length, 'mask', () => `must be a Uint8Array of one entry per weight (${weights.length}), got ${describeValue(mask)}`);
  const bits = new Uint32Array(weights.buffer, weights.byteOffset, weights.length);
  for (let p = 0; p < mask.length; p++) bits[p] &= mask[p] - 1;
}

/**
 * Whether every row's group of m consecutive inputs has at least n pruned entries: zeros for a
 * weight matrix (Float32Array), 1s for a mask (Uint8Array). Refuses (FieldError) a pattern that is
 * no n:m with 1 ≤ n ≤ m (m = 0 would check no group and answer false), a width that is no whole
 * number of groups, and an array of another size than dOut×dIn.
 */
export function satisfiesNM(weightsOrMask: Float32Array | Uint8Array, dOut: number, dIn: number, n: number, m: number): boolean {
  checkInteger('m', m, 1);
  checkInteger('n', n, 1, m);
  checkMatrix('weightsOrMask', weightsOrMask, [Float32Array, Uint8Array], dOut, dIn, 'weights or mask entries');
  checkField(dIn % m === 0, 'dIn', () => `must be a multiple of m = ${m} (rows are checked in groups of m consecutive inputs), got ${dIn}`);
  const isMask = weightsOrMask instanceof Uint8Array;
  for (let g = 0; g < weightsOrMask.length; g += m) {
    let pruned = 0;
    for (let b = 0; b < m; b++) {
      const v = weightsOrMask[g + b];
      if (isMask ? v !== 0 : v === 0) pruned++;
    }
    if (pruned < n) return false;
  }
  return true;
}

/**
 * The mask array: `out` (cleared) when given, else a new one. Reusing one buffer across linears
 * matters at LLM sizes: first-touching a fresh 45 MB–180 MB allocation costs more than the work.
 */
function maskBuffer(length: number, out: Uint8Array | undefined): Uint8Array {
  if (!out) return new Uint8Array(length);
  invariant(out.length === length, () => `mask buffer has ${out.length} entries, expected ${length}`);
  return out.fill(0);
}

function checkShape(values: ArrayLike<number>, dOut: number, dIn: number): void {
  invariant(values.length === dOut * dIn, () => `expected ${dOut}×${dIn} = ${dOut * dIn} entries, got ${values.length}`);
}
