/**
 * Input-channel permutation for N:M sparsity (RIA's channel reallocation, ALGORITHMS.md §3.4).
 *
 * N:M keeps the m−n best scores of every m consecutive input columns. Which columns share a group
 * is arbitrary once a runtime permutes the layer's inputs, so we choose the grouping that keeps the
 * most score:
 *   0. plain N:M on the original order (the baseline, `retainedBefore`);
 *   1. column importance v_j = Σ_i S_ij, columns sorted ascending (stable: ties → lower index);
 *   2. serpentine deal: slot r of every group draws from the (r+1)-th importance quantile, odd
 *      1-based quantiles ascending, even ones reversed, so every group mixes strong and weak columns;
 *   3. ('lsa') for each slot c in turn, per block of G groups, reassign the slot-c channels among
 *      the groups by an exact maximum-profit linear assignment;
 *   4. the mask is mapped back to the original column order (weights are not moved).
 *
 * Two guards the reference lacks, so the result is never worse than plain N:M:
 *   - if the serpentine deal retains less than the identity order, we start from the identity
 *     (`usedIdentity`); the reference would keep the worse serpentine order;
 *   - an assignment is applied only when it strictly raises the block's total, and the LSA result
 *     is kept only if its recomputed retained score is ≥ its starting point's.
 */
import { checkField } from '../util/errors.ts';
import { assignmentTotal, linearSumAssignment } from '../util/assignment.ts';
import { nmMask } from './mask.ts';
import { validateTarget } from './target.ts';

export type PermuteStrategy = 'reallocation' | 'lsa';

export interface PermuteOptions {
  strategy: PermuteStrategy;
  /** LSA works on `blocks` contiguous pieces of the permutation (RIA's --fast); default 1. */
  blocks?: number;
}

export interface PermuteResult {
  /** New position p holds old column permutation[p]. */
  permutation: Int32Array;
  /** Prune mask (1 = pruned) in ORIGINAL column order; N:M only after permuting columns. */
  mask: Uint8Array;
  /** Σ kept scores of plain N:M on the original order. */
  retainedBefore: number;
  /** Σ kept scores of the returned mask. */
  retainedAfter: number;
  /** Σ kept scores of the serpentine deal alone (before the identity guard and LSA). */
  retainedReallocation: number;
  /** True when the serpentine order retained less than the identity and was discarded. */
  usedIdentity: boolean;
}

/** The default: LSA over the whole permutation at once (RIA without --fast). */
export const PERMUTE_DEFAULTS = { blocks: 1 } as const;

export function permuteForNM(
  scores: Float32Array,
  dOut: number,
  dIn: number,
  n: number,
  m: number,
  options: PermuteOptions,
): PermuteResult {
  validateTarget({ kind: 'nm', n, m }, 'pattern');
  checkField(dIn % m === 0, 'permute', `needs the input width ${dIn} to be a multiple of m=${m}`);
  const blocks = options.blocks ?? PERMUTE_DEFAULTS.blocks;
  const groups = dIn / m;
  checkField(
    Number.isInteger(blocks) && blocks >= 1 && groups % blocks === 0,
    'permute.blocks',
    `must be a positive integer dividing the ${groups} groups of ${m} columns, got ${blocks}`,
  );
  if (scores.length !== dOut * dIn) throw new Error(`permuteForNM: expected ${dOut * dIn} scores, got ${scores.length}`);

  const identity = new Int32Array(dIn);
  for (let j = 0; j < dIn; j++) identity[j] = j;
  const identityMask = nmMask(scores, dOut, dIn, n, m);
  const retainedBefore = retainedScore(scores, identityMask);

  const serpentine = serpentineOrder(ascendingColumnOrder(scores, dOut, dIn), m);
  const serpentineMask = permutedNMMask(scores, dOut, dIn, n, m, serpentine);
  const retainedReallocation = retainedScore(scores, serpentineMask);

  const usedIdentity = retainedReallocation < retainedBefore;
  let permutation = usedIdentity ? identity : serpentine;
  let mask = usedIdentity ? identityMask : serpentineMask;
  let retainedAfter = usedIdentity ? retainedBefore : retainedReallocation;

  if (options.strategy === 'lsa') {
    const refined = refineByAssignment(scores, dOut, dIn, n, m, permutation, blocks);
    const refinedMask = permutedNMMask(scores, dOut, dIn, n, m, refined);
    const refinedRetained = retainedScore(scores, refinedMask);
    if (refinedRetained >= retainedAfter) {
      permutation = refined;
      mask = refinedMask;
      retainedAfter = refinedRetained;
    }
  }
  return { permutation, mask, retainedBefore, retainedAfter, retainedReallocation, usedIdentity };
}

/** Σ of the scores of kept entries (mask 0), accumulated in float64 in row-major order. */
export function retainedScore(scores: Float32Array, mask: Uint8Array): number {
  let total = 0;
  for (let p = 0; p < scores.length; p++) if (mask[p] === 0) total += scores[p];
  return total;
}

/** Columns by ascending importance v_j = Σ_i S_ij (float64 sums; ties → lower column first). */
export function ascendingColumnOrder(scores: Float32Array, dOut: number, dIn: number): Int32Array {
  const importance = new Float64Array(dIn);
  for (let i = 0; i < dOut; i++) {
    const rowStart = i * dIn;
    for (let j = 0; j < dIn; j++) importance[j] += scores[rowStart + j];
  }
  const order = new Int32Array(dIn);
  for (let j = 0; j < dIn; j++) order[j] = j;
  // A sort of dIn column indices (not of the matrix): the whole order is needed for the deal.
  order.sort((a, b) => importance[a] - importance[b] || a - b);
  return order;
}

/**
 * Serpentine deal (§3.4 step 2). `sortedColumns` split into m chunks of K = dIn/m; slot r of
 * group g takes chunk r's g-th column, counted from the end for odd r (even 1-based chunks).
 */
export function serpentineOrder(sortedColumns: Int32Array, m: number): Int32Array {
  const dIn = sortedColumns.length;
  const groups = dIn / m;
  const permutation = new Int32Array(dIn);
  for (let slot = 0; slot < m; slot++) {
    const chunkStart = slot * groups;
    const reversed = slot % 2 === 1;
    for (let g = 0; g < groups; g++) {
      permutation[g * m + slot] = sortedColumns[chunkStart + (reversed ? groups - 1 - g : g)];
    }
  }
  return permutation;
}

/** N:M mask of S[:, permutation], returned in original column order. */
export function permutedNMMask(
  scores: Float32Array,
  dOut: number,
  dIn: number,
  n: number,
  m: number,
  permutation: Int32Array,
): Uint8Array {
  const permutedMask = nmMask(gatherColumns(scores, dOut, dIn, permutation), dOut, dIn, n, m);
  const mask = new Uint8Array(dOut * dIn);
  for (let i = 0; i < dOut; i++) {
    const rowStart = i * dIn;
    for (let p = 0; p < dIn; p++) mask[rowStart + permutation[p]] = permutedMask[rowStart + p];
  }
  return mask;
}

function gatherColumns(scores: Float32Array, dOut: number, dIn: number, permutation: Int32Array): Float32Array {
  const out = new Float32Array(dOut * dIn);
  for (let i = 0; i < dOut; i++) {
    const rowStart = i * dIn;
    for (let p = 0; p < dIn; p++) out[rowStart + p] = scores[rowStart + permutation[p]];
  }
  return out;
}

/**
 * §3.4 step 3: for each slot c = 0..m−1, per block of G groups, solve the G×G assignment
 * "which group's slot-c channel should group r hold" exactly, and apply it.
 *
 * With t = m−n kept per group and o₁ ≥ … ≥ o_{m−1} the group's other values in a row, replacing
 * the slot-c value by x keeps (o₁ + … + o_{t−1}) + max(x, o_t). So per (row, group) we precompute
 * `keptBase` = o₁ + … + o_{t−1} and `keepThreshold` = o_t once, and each profit entry is
 * Σ_i max(x_ik, o_t(i, r)) plus a per-r constant — O(1) per (row, r, k), O(dOut·G²) per block.
 */
function refineByAssignment(
  scores: Float32Array,
  dOut: number,
  dIn: number,
  n: number,
  m: number,
  start: Int32Array,
  blocks: number,
): Int32Array {
  const groupsPerBlock = dIn / m / blocks;
  let permutation = Int32Array.from(start);
  for (let slot = 0; slot < m; slot++) {
    const next = Int32Array.from(permutation);
    for (let block = 0; block < blocks; block++) {
      const firstGroup = block * groupsPerBlock;
      const profit = slotProfitMatrix(scores, dOut, dIn, n, m, permutation, slot, firstGroup, groupsPerBlock);
      const assignment = linearSumAssignment(profit, groupsPerBlock, { maximize: true });
      let identityTotal = 0;
      for (let r = 0; r < groupsPerBlock; r++) identityTotal += profit[r * groupsPerBlock + r];
      if (assignmentTotal(profit, groupsPerBlock, assignment) <= identityTotal) continue; // nothing to gain
      for (let r = 0; r < groupsPerBlock; r++) {
        next[(firstGroup + r) * m + slot] = permutation[(firstGroup + assignment[r]) * m + slot];
      }
    }
    permutation = next;
  }
  return permutation;
}

/**
 * The G×G profit matrix of one slot and one block: entry [r][k] is the score that groups
 * firstGroup + r keeps, summed over rows, when its slot-`slot` channel is replaced by that of group
 * firstGroup + k (its other m−1 channels fixed). Exported for the benchmark.
 */
export function slotProfitMatrix(
  scores: Float32Array,
  dOut: number,
  dIn: number,
  n: number,
  m: number,
  permutation: Int32Array,
  slot: number,
  firstGroup: number,
  G: number,
): Float64Array {
  const keep = m - n;
  const candidates = new Float32Array(dOut * G); // [row][k]: slot score of group k
  const keepThreshold = new Float32Array(dOut * G); // [row][r]: o_t of group r without the slot
  const keptBaseTotal = new Float64Array(G); // Σ_i (o₁ + … + o_{t−1}) of group r
  const others = new Float32Array(m - 1);
  for (let i = 0; i < dOut; i++) {
    const rowStart = i * dIn;
    for (let r = 0; r < G; r++) {
      const groupStart = (firstGroup + r) * m;
      candidates[i * G + r] = scores[rowStart + permutation[groupStart + slot]];
      let count = 0;
      for (let s = 0; s < m; s++) {
        if (s !== slot) others[count++] = scores[rowStart + permutation[groupStart + s]];
      }
      // Insertion sort, descending: m−1 values (m is 4, 8, 16 in practice).
      for (let a = 1; a < count; a++) {
        const v = others[a];
        let b = a - 1;
        while (b >= 0 && others[b] < v) {
          others[b + 1] = others[b];
          b--;
        }
        others[b + 1] = v;
      }
      let base = 0;
      for (let a = 0; a < keep - 1; a++) base += others[a];
      keptBaseTotal[r] += base;
      keepThreshold[i * G + r] = others[keep - 1];
    }
  }
  const profit = new Float64Array(G * G);
  buildProfit(profit, candidates, keepThreshold, keptBaseTotal, dOut, G);
  return profit;
}

/**
 * profit[r][k] = keptBaseTotal[r] + Σ_i max(candidates[i][k], keepThreshold[i][r]).
 * Four rows of the profit matrix are accumulated per sweep over a candidate row, so each candidate
 * load serves four outputs; Math.max compiles branch-free (a data-dependent `x > t ? x : t`
 * mispredicts half the time here and ran about twice as slowly).
 */
function buildProfit(
  profit: Float64Array,
  candidates: Float32Array,
  keepThreshold: Float32Array,
  keptBaseTotal: Float64Array,
  dOut: number,
  G: number,
): void {
  for (let r = 0; r < G; r++) profit.fill(keptBaseTotal[r], r * G, (r + 1) * G);
  let r0 = 0;
  for (; r0 + 4 <= G; r0 += 4) {
    const o0 = r0 * G, o1 = o0 + G, o2 = o1 + G, o3 = o2 + G;
    for (let i = 0; i < dOut; i++) {
      const rowStart = i * G;
      const t0 = keepThreshold[rowStart + r0], t1 = keepThreshold[rowStart + r0 + 1];
      const t2 = keepThreshold[rowStart + r0 + 2], t3 = keepThreshold[rowStart + r0 + 3];
      for (let k = 0; k < G; k++) {
        const x = candidates[rowStart + k];
        profit[o0 + k] += Math.max(x, t0);
        profit[o1 + k] += Math.max(x, t1);
        profit[o2 + k] += Math.max(x, t2);
        profit[o3 + k] += Math.max(x, t3);
      }
    }
  }
  for (; r0 < G; r0++) {
    const out = r0 * G;
    for (let i = 0; i < dOut; i++) {
      const rowStart = i * G;
      const t = keepThreshold[rowStart + r0];
      for (let k = 0; k < G; k++) profit[out + k] += Math.max(candidates[rowStart + k], t);
    }
  }
}
