/**
 * DSnoT: training-free prune-and-grow re-pruning (ALGORITHMS.md §6). Each output row i swaps
 * pruned and kept weights — one grown, one pruned per swap, so the row's count never changes — to
 * drive its expected reconstruction error e_i = Σ_{j pruned} W_ij·m_j towards zero.
 *
 * Per row, per cycle (rows are independent; the reference runs them in lock-step):
 *   grow:  e > 0 → the pruned weight with the largest c/v^p, else the most negative (c = W·m);
 *   prune: e < 0 → from the end of the prune list (positive c, least important first), else from
 *          its start (negative c, least important first). N:M path: the kept weight with the smallest
 *          Wanda score in the grown weight's group of m, each weight used at most once;
 *   e' = e + c_prune − c_grow; the row stays active while |e| > τ (and, with the sign check,
 *   sign(e') = sign(e₀)); an active row swaps and takes e ← e'; an inactive row stops for good.
 *   Both pointers advance whether or not the swap happened (it matters only for the last cycle).
 *
 * What the rule guarantees — and what it does not:
 *   - each row keeps its pruned count, an N:M mask stays N:M, rows with |e₀| ≤ τ are untouched;
 *   - with the sign check (N:M path always; unstructured when `withoutSameSign` is false) the sign
 *     of e never flips;
 *   - it does NOT guarantee |e| decreases. Without the sign check (the reference's effective default
 *     for unstructured pruning) a swap can overshoot: e = 1 → −2 is accepted. With the sign check
 *     in the unstructured path |e| strictly decreases on every swap whose candidates have the
 *     expected signs, which holds while the row has at least `maxCycles` kept weights with c of the
 *     sign opposite to e₀; past that, the prune pointer reaches same-signed weights and |e| can grow.
 *
 * Deviations from the reference (zyxxmu/DSnoT), each to keep the count/pattern invariant:
 *   - the grow list holds only pruned weights; the reference also lists the kept ones (as 0), so a
 *     pointer that runs past the same-signed candidates "regrows" an already-kept weight while still
 *     pruning one. A row whose candidate list is used up stops;
 *   - exactly-zero c among kept weights: the reference's sign reorder replaces them by copies of the
 *     least important kept weight; crepe places them between the negatives and the positives, in
 *     ascending Wanda order (walked from the start) — they change e by nothing when pruned;
 *   - N:M: when the grown weight's group has no unused kept weight left, the reference picks an
 *     arbitrary entry; crepe skips the swap for that cycle (the row stays active);
 *   - c/v with v = 0 (a constant channel): ±∞ for c ≠ 0 (grown first), 0 for c = 0 (torch: NaN).
 * Arithmetic is float64 (the reference: fp16 weights, fp32 error).
 */
import assert from 'node:assert/strict';

export interface DsnotStats {
  /** s_j: Wanda's running mean over sequences of Σ_t x_j² (sets the Wanda order). */
  sqNorm: Float32Array;
  /** m_j: running mean over sequences of the per-sequence Σ_t x_j. */
  mean: Float32Array;
  /** v_j: average over sequences of the per-sequence population variance of x_j. */
  variance: Float32Array;
}

export interface DsnotOptions {
  /** --dsnot-cycles; reference default 50. */
  maxCycles?: number;
  /** --dsnot-threshold τ on |e_i| (absolute, in Σ_t x units); reference default 0.1. */
  updateThreshold?: number;
  /** Exponent p in the grow ranking c/v^p; reference default 1 (0 → rank by c). */
  powOfVarRegrowing?: number;
  /** true (the reference's effective default): no sign check in the unstructured path. */
  withoutSameSign?: boolean;
  /** N:M path when given; the input mask must satisfy it. */
  pattern?: { n: number; m: number };
}

export interface DsnotResult {
  mask: Uint8Array;
  swaps: number;
  /** Cycles until no row was active (the reference's loop count), at most maxCycles. */
  cyclesRun: number;
  /** e_i before the first swap and after the last, per row. */
  errorBefore: Float64Array;
  errorAfter: Float64Array;
}

/** The reference's cycle limit and update threshold. */
export const DSNOT_DEFAULTS = { maxCycles: 50, updateThreshold: 0.1 } as const;

export function dsnot(
  weights: Float32Array,
  mask: Uint8Array,
  stats: DsnotStats,
  dOut: number,
  dIn: number,
  options: DsnotOptions = {},
): DsnotResult {
  const maxCycles = options.maxCycles ?? DSNOT_DEFAULTS.maxCycles;
  const threshold = options.updateThreshold ?? DSNOT_DEFAULTS.updateThreshold;
  const pow = options.powOfVarRegrowing ?? 1;
  const signCheck = options.pattern !== undefined || options.withoutSameSign === false;
  assert.equal(weights.length, dOut * dIn, 'dsnot: weights shape');
  assert.equal(mask.length, dOut * dIn, 'dsnot: mask shape');
  assert.ok(stats.sqNorm.length === dIn && stats.mean.length === dIn && stats.variance.length === dIn, 'dsnot: stats width');
  if (options.pattern) assert.equal(dIn % options.pattern.m, 0, 'dsnot: width not a multiple of m');

  const out = Uint8Array.from(mask);
  const errorBefore = new Float64Array(dOut);
  const errorAfter = new Float64Array(dOut);
  const row = new RowWorkspace(dIn, maxCycles);
  let swaps = 0;
  let cyclesRun = 0;

  for (let i = 0; i < dOut; i++) {
    row.load(weights, out, stats, i, dIn, pow);
    errorBefore[i] = row.error;
    const result = options.pattern
      ? row.runNM(options.pattern.m, maxCycles, threshold)
      : row.runUnstructured(maxCycles, threshold, signCheck);
    errorAfter[i] = row.error;
    swaps += result.swaps;
    cyclesRun = Math.max(cyclesRun, result.cycles);
  }
  return { mask: out, swaps, cyclesRun, errorBefore, errorAfter };
}

/** One row's state; buffers are reused across rows. */
class RowWorkspace {
  /** c_j = W_ij·m_j. */
  readonly contribution: Float64Array;
  /** Grow ranking c_j / v_j^p (pruned entries only). */
  readonly growKey: Float64Array;
  /** Wanda score |W_ij|·√s_j (kept entries' order). */
  readonly wanda: Float64Array;
  /** The row's mask slice (a view into the output mask). */
  rowMask!: Uint8Array;
  error = 0;
  readonly pruned: Int32Array;
  readonly kept: Int32Array;
  prunedCount = 0;
  keptCount = 0;
  /** Whether each column was kept when the row was loaded (N:M: only those may be given up). */
  readonly initiallyKept: Uint8Array;

  constructor(dIn: number, readonly maxCycles: number) {
    this.contribution = new Float64Array(dIn);
    this.growKey = new Float64Array(dIn);
    this.wanda = new Float64Array(dIn);
    this.pruned = new Int32Array(dIn);
    this.kept = new Int32Array(dIn);
    this.initiallyKept = new Uint8Array(dIn);
  }

  load(weights: Float32Array, mask: Uint8Array, stats: DsnotStats, i: number, dIn: number, pow: number): void {
    const rowStart = i * dIn;
    this.rowMask = mask.subarray(rowStart, rowStart + dIn);
    this.prunedCount = 0;
    this.keptCount = 0;
    let error = 0;
    for (let j = 0; j < dIn; j++) {
      const w = weights[rowStart + j];
      const c = w * stats.mean[j];
      this.contribution[j] = c;
      this.initiallyKept[j] = this.rowMask[j] ? 0 : 1;
      if (this.rowMask[j]) {
        error += c;
        this.pruned[this.prunedCount++] = j;
        const scale = pow === 0 ? 1 : Math.pow(stats.variance[j], pow);
        this.growKey[j] = c === 0 ? 0 : c / scale;
      } else {
        this.kept[this.keptCount++] = j;
        this.wanda[j] = Math.abs(w) * Math.sqrt(stats.sqNorm[j]);
      }
    }
    this.error = error;
  }

  /** Grow candidates from the low end (most negative c/v first) and the high end. */
  growEnds(): { low: Int32Array; high: Int32Array } {
    const key = this.growKey;
    const ascending = (a: number, b: number) => key[a] < key[b] || (key[a] === key[b] && a < b);
    const k = Math.min(this.maxCycles, this.prunedCount);
    return {
      low: firstK(this.pruned, this.prunedCount, k, ascending),
      high: firstK(this.pruned, this.prunedCount, k, (a, b) => ascending(b, a)),
    };
  }

  runUnstructured(maxCycles: number, threshold: number, signCheck: boolean): { swaps: number; cycles: number } {
    const c = this.contribution;
    const wanda = this.wanda;
    // Prune list order: negative c by ascending Wanda, zero c likewise, positive c by descending
    // Wanda (so the end of the list is the least important positive). Ties: column order.
    const signClass = (j: number) => (c[j] < 0 ? 0 : c[j] === 0 ? 1 : 2);
    const wandaAscending = (a: number, b: number) => wanda[a] < wanda[b] || (wanda[a] === wanda[b] && a < b);
    const listOrder = (a: number, b: number) => {
      const ca = signClass(a);
      const cb = signClass(b);
      if (ca !== cb) return ca < cb;
      return ca < 2 ? wandaAscending(a, b) : wandaAscending(b, a);
    };
    const k = Math.min(maxCycles, this.keptCount);
    const fromStart = firstK(this.kept, this.keptCount, k, listOrder);
    const fromEnd = firstK(this.kept, this.keptCount, k, (a, b) => listOrder(b, a));
    let startUsed = 0, endUsed = 0;
    // The two pointers of the prune list meet when all its entries are used.
    return this.swapCycles(maxCycles, threshold, signCheck, (e) =>
      startUsed + endUsed >= this.keptCount ? STOP : e < 0 ? fromEnd[endUsed++] : fromStart[startUsed++]);
  }

  runNM(m: number, maxCycles: number, threshold: number): { swaps: number; cycles: number } {
    const wanda = this.wanda;
    // The initially kept, still kept weight of the grown weight's group with the smallest Wanda
    // score (ties: lower column). Weights grown in this run are not eligible: they were pruned
    // initially, and the reference's metric for them is +∞.
    return this.swapCycles(maxCycles, threshold, true, (_e, grow) => {
      const groupStart = grow - (grow % m);
      let prune = -1;
      for (let j = groupStart; j < groupStart + m; j++) {
        if (this.initiallyKept[j] && this.rowMask[j] === 0 && (prune < 0 || wanda[j] < wanda[prune])) prune = j;
      }
      return prune < 0 ? SKIP : prune; // SKIP: nothing left to give up in this group
    });
  }

  /**
   * The cycles both paths share: while |e| > τ and grow candidates remain, grow from the end that
   * reduces e (the high end for e > 0) and prune `pruneFor(e, grow)` in its place: a column, SKIP
   * (no swap this cycle, the row stays active) or STOP (the prune list is used up). With
   * `signCheck` the first swap that would flip e's sign ends the row.
   */
  private swapCycles(maxCycles: number, threshold: number, signCheck: boolean, pruneFor: (e: number, grow: number) => number): { swaps: number; cycles: number } {
    const c = this.contribution;
    const { low, high } = this.growEnds();
    const sign0 = Math.sign(this.error);
    let lowUsed = 0, highUsed = 0;
    let swaps = 0;
    let cycles = 0;
    while (cycles < maxCycles) {
      cycles++;
      const e = this.error;
      if (!(Math.abs(e) > threshold)) break;
      if (lowUsed + highUsed >= this.prunedCount) break;
      const grow = e > 0 ? high[highUsed++] : low[lowUsed++];
      const prune = pruneFor(e, grow);
      if (prune === STOP) break;
      if (prune === SKIP) continue;
      const after = e + c[prune] - c[grow];
      if (signCheck && Math.sign(after) !== sign0) break;
      this.rowMask[prune] = 1;
      this.rowMask[grow] = 0;
      this.error = after;
      swaps++;
    }
    return { swaps, cycles };
  }
}

/** What a prune rule of swapCycles returns instead of a column: no swap this cycle, or no more swaps. */
const SKIP = -1;
const STOP = -2;

/**
 * The first k of items[0..count) under the strict order `before`, in order: a bounded max-heap,
 * O(count · log k) — only the ends of each list are ever reached, so no full sort.
 */
function firstK(items: Int32Array, count: number, k: number, before: (a: number, b: number) => boolean): Int32Array {
  const heap = new Int32Array(k); // root = the latest (worst) of the kept ones
  let size = 0;
  const siftDown = (from: number) => {
    let p = from;
    for (;;) {
      const l = 2 * p + 1;
      if (l >= size) return;
      const r = l + 1;
      const worst = r < size && before(heap[l], heap[r]) ? r : l;
      if (!before(heap[p], heap[worst])) return;
      const t = heap[p];
      heap[p] = heap[worst];
      heap[worst] = t;
      p = worst;
    }
  };
  for (let t = 0; t < count; t++) {
    const item = items[t];
    if (size < k) {
      let p = size++;
      heap[p] = item;
      while (p > 0) {
        const parent = (p - 1) >> 1;
        if (!before(heap[parent], heap[p])) break;
        const tmp = heap[p];
        heap[p] = heap[parent];
        heap[parent] = tmp;
        p = parent;
      }
    } else if (k > 0 && before(item, heap[0])) {
      heap[0] = item;
      siftDown(0);
    }
  }
  return Int32Array.from(heap.subarray(0, size)).sort((a, b) => (before(a, b) ? -1 : before(b, a) ? 1 : 0));
}
