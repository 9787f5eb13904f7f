/**
 * The loops behind scoring and selection, written as kernels over one part of the work
 * (`part` of `parts`), so util/parallel.ts can run the parts on worker threads and the callers can
 * run them all on their own thread. A part's result never depends on how many parts there are:
 * sums run over the same elements in the same order, counts are counts.
 *
 * Arguments are plain objects of typed arrays and numbers; results go into the arrays.
 */

/** [start, end) of part `part` when n items are split into `parts` near-equal runs. */
export function partRange(n: number, part: number, parts: number): [number, number] {
  return [Math.floor((n * part) / parts), Math.floor((n * (part + 1)) / parts)];
}

/** out[j] = Σ_i |W_ij| over all rows in row order, for this part's columns j. */
function columnAbsSums(args: { weights: Float32Array; dOut: number; dIn: number; out: Float64Array }, part: number, parts: number): void {
  const { weights, dOut, dIn, out } = args;
  const [c0, c1] = partRange(dIn, part, parts);
  out.fill(0, c0, c1);
  for (let i = 0; i < dOut; i++) {
    const rowStart = i * dIn;
    for (let j = c0; j < c1; j++) out[j] += Math.abs(weights[rowStart + j]);
  }
}

/** out[i] = Σ_j |W_ij| in column order, for this part's rows i. */
function rowAbsSums(args: { weights: Float32Array; dOut: number; dIn: number; out: Float64Array }, part: number, parts: number): void {
  const { weights, dOut, dIn, out } = args;
  const [r0, r1] = partRange(dOut, part, parts);
  for (let i = r0; i < r1; i++) {
    const rowStart = i * dIn;
    let sum = 0;
    for (let j = 0; j < dIn; j++) sum += Math.abs(weights[rowStart + j]);
    out[i] = sum;
  }
}

/**
 * One weight's weighted relative importance without the activation factor (prune/scores/ria.ts):
 * colCoef·(A_ij / C_j) + rowCoef·(A_ij / R_i) — the column term first, as the reference.
 */
export function relativeImportanceTerm(magnitude: number, inverseColSum: number, inverseRowSum: number, rowCoef: number, colCoef: number): number {
  return colCoef * (magnitude * inverseColSum) + rowCoef * (magnitude * inverseRowSum);
}

/**
 * Weighted relative importance for this part's rows (prune/scores/ria.ts):
 * out_ij = (colCoef·(A_ij·invC_j) + rowCoef·(A_ij·invR_i)) · act_j, in float64, stored as float32.
 */
function weightedRelativeImportance(
  args: {
    weights: Float32Array; dOut: number; dIn: number; out: Float32Array;
    inverseColSums: Float64Array; inverseRowSums: Float64Array; activation: Float64Array; rowCoef: number; colCoef: number;
  },
  part: number,
  parts: number,
): void {
  const { weights, dOut, dIn, out, inverseColSums, inverseRowSums, activation, rowCoef, colCoef } = args;
  const [r0, r1] = partRange(dOut, part, parts);
  for (let i = r0; i < r1; i++) {
    const rowStart = i * dIn;
    const inverseRowSum = inverseRowSums[i];
    for (let j = 0; j < dIn; j++) {
      const magnitude = Math.abs(weights[rowStart + j]);
      out[rowStart + j] = relativeImportanceTerm(magnitude, inverseColSums[j], inverseRowSum, rowCoef, colCoef) * activation[j];
    }
  }
}

/** counts[part·65536 + high 16 bits of v]++ for this part's values (raw float32 bits). */
function histogramHigh(args: { values: Float32Array; counts: Uint32Array }, part: number, parts: number): void {
  const { values, counts } = args;
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const [start, end] = partRange(bits.length, part, parts);
  const base = part << 16;
  counts.fill(0, base, base + 0x10000);
  for (let i = start; i < end; i++) counts[base + (bits[i] >>> 16)]++;
}

/** counts[part·65536 + low 16 bits of v]++ for this part's values whose high 16 bits are `bucket`. */
function histogramLow(args: { values: Float32Array; counts: Uint32Array; bucket: number }, part: number, parts: number): void {
  const { values, counts, bucket } = args;
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const [start, end] = partRange(bits.length, part, parts);
  const base = part << 16;
  counts.fill(0, base, base + 0x10000);
  for (let i = start; i < end; i++) {
    const v = bits[i];
    if (v >>> 16 === bucket) counts[base + (v & 0xffff)]++;
  }
}

/**
 * out[i] = the k-th smallest (0-based) of row i of values [dOut, dIn], for this part's rows: a
 * histogram of the top 11 bits of each value's order-preserving key picks the bucket that holds
 * rank k, its few members are gathered, and quickselect finishes among them.
 */
function rowKthSmallest(args: { values: Float32Array; dOut: number; dIn: number; k: number; out: Float32Array }, part: number, parts: number): void {
  const { values, dOut, dIn, k, out } = args;
  const bits = new Int32Array(values.buffer, values.byteOffset, values.length);
  const [r0, r1] = partRange(dOut, part, parts);
  const work = new Float32Array(dIn);
  const counts = new Uint32Array(1 << 11);
  // Key order = float order: flip every bit of negatives, only the sign bit of the rest.
  const bucketOf = (x: number): number => ((x ^ ((x >> 31) | 0x80000000)) >>> 21) & 0x7ff;
  for (let i = r0; i < r1; i++) {
    const rowStart = i * dIn;
    counts.fill(0);
    for (let j = 0; j < dIn; j++) {
      if (values[rowStart + j] !== values[rowStart + j]) throw new Error('kthSmallest: NaN in input');
      counts[bucketOf(bits[rowStart + j])]++;
    }
    let bucket = 0;
    let below = 0;
    while (below + counts[bucket] <= k) below += counts[bucket++];
    let n = 0;
    for (let j = 0; j < dIn; j++) if (bucketOf(bits[rowStart + j]) === bucket) work[n++] = values[rowStart + j];
    out[i] = quickselectInPlace(work, 0, n, k - below);
  }
}

/** mask[p] = 1 where values[p] ≤ threshold, else 0, for this part's entries (branch-free). */
function markAtMost(args: { values: Float32Array; threshold: number; mask: Uint8Array }, part: number, parts: number): void {
  const { values, threshold, mask } = args;
  const [start, end] = partRange(values.length, part, parts);
  for (let p = start; p < end; p++) mask[p] = +(values[p] <= threshold);
}

/**
 * Per-row marks for this part's rows of values [dOut, dIn]: every entry below the row's threshold,
 * then entries equal to it from the lowest column on, until the row has `count` marks.
 */
function markRowsBelow(
  args: { values: Float32Array; dOut: number; dIn: number; thresholds: Float32Array; count: number; mask: Uint8Array },
  part: number,
  parts: number,
): void {
  const { values, dOut, dIn, thresholds, count, mask } = args;
  const [r0, r1] = partRange(dOut, part, parts);
  for (let i = r0; i < r1; i++) {
    const rowStart = i * dIn;
    const threshold = thresholds[i];
    let marked = 0;
    for (let j = 0; j < dIn; j++) {
      const below = +(values[rowStart + j] < threshold);
      mask[rowStart + j] = below;
      marked += below;
    }
    for (let j = 0; j < dIn && marked < count; j++) {
      if (values[rowStart + j] === threshold) {
        mask[rowStart + j] = 1;
        marked++;
      }
    }
  }
}

/** Rearranges a[lo, hi) so that a[k] is the value of sorted rank k; returns it. Throws on NaN. */
export function quickselectInPlace(a: Float32Array, lo: number, hi: number, k: number): number {
  let left = lo;
  let right = hi - 1;
  for (let i = lo; i < hi; i++) if (a[i] !== a[i]) throw new Error('kthSmallest: NaN in input');
  while (right - left > 16) {
    // Median of three as pivot, placed at `left`.
    const mid = (left + right) >>> 1;
    if (a[mid] < a[left]) swap(a, mid, left);
    if (a[right] < a[left]) swap(a, right, left);
    if (a[right] < a[mid]) swap(a, right, mid);
    const pivot = a[mid];
    // Hoare partition: [left, j] ≤ pivot ≤ [j+1, right].
    let i = left - 1;
    let j = right + 1;
    for (;;) {
      do i++; while (a[i] < pivot);
      do j--; while (a[j] > pivot);
      if (i >= j) break;
      swap(a, i, j);
    }
    if (k <= j) right = j;
    else left = j + 1;
  }
  // Insertion sort of the small remainder.
  for (let i = left + 1; i <= right; i++) {
    const v = a[i];
    let j = i - 1;
    while (j >= left && a[j] > v) {
      a[j + 1] = a[j];
      j--;
    }
    a[j + 1] = v;
  }
  return a[k];
}

function swap(a: Float32Array, i: number, j: number): void {
  const t = a[i];
  a[i] = a[j];
  a[j] = t;
}

export const KERNELS = {
  columnAbsSums,
  rowAbsSums,
  weightedRelativeImportance,
  histogramHigh,
  histogramLow,
  rowKthSmallest,
  markAtMost,
  markRowsBelow,
};
export type KernelName = keyof typeof KERNELS;
