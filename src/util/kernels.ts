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

/**
 * [start, end) of part `part` of n columns when a part's work is its own columns plus a share
 * `prefixShare` of a column's work for every column before its end (a row prefix from column 0):
 * with ρ = prefixShare, equal work ρ·end_p + (1 − ρ)·(end_p − start_p) for every part gives
 * end_{p+1} = c + (1 − ρ)·end_p, c = n·ρ / (1 − (1 − ρ)^parts). The first parts are the widest.
 */
export function prefixWeightedRange(n: number, part: number, parts: number, prefixShare: number): [number, number] {
  const keep = 1 - prefixShare;
  const step = (n * prefixShare) / (1 - keep ** parts);
  const end = (p: number): number => (p >= parts ? n : Math.min(n, Math.round((step * (1 - keep ** p)) / prefixShare)));
  return [end(part), end(part + 1)];
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

/** Number of columns of the window centred on column j that lie inside [0, dIn). */
function windowColumns(j: number, radius: number, dIn: number): number {
  return Math.min(dIn, j + radius + 1) - Math.max(0, j - radius);
}

/**
 * Streams the k×k window sums (window centred on each cell, clipped at the borders) of a dOut×dIn
 * matrix whose rows `fillRow(p, out, end)` produces on demand (entries 0 … end−1), calling
 * `visit(i, sums, rowsInWindow)` once per row i in order (sums[j] = window sum at (i, j) for the
 * columns c0 … c1−1; the array is reused).
 *
 * Summed-area table, factored: horizontal window sums per row from a row prefix sum, then
 * vertical prefix sums V_p = Σ_{q<p} hsum_q kept in a ring of min(k, dOut) + 1 rows; the window
 * sum of row i is V_{i2} − V_{i1}. All in float64. Every column's sums come out the same whatever
 * [c0, c1) is: the row prefix always starts at column 0.
 */
export function forEachWindowSumRow(
  dOut: number,
  dIn: number,
  k: number,
  fillRow: (p: number, out: Float64Array, end: number) => void,
  visit: (i: number, sums: Float64Array, rowsInWindow: number) => void,
  c0 = 0,
  c1 = dIn,
): void {
  const radius = (k - 1) / 2;
  const end = Math.min(dIn, c1 + radius);
  const ringSize = Math.min(k, dOut) + 1;
  const ring: Float64Array[] = [];
  for (let r = 0; r < ringSize; r++) ring.push(new Float64Array(dIn)); // ring[0] = V_0 = 0
  const values = new Float64Array(dIn);
  const prefix = new Float64Array(dIn + 1);
  const sums = new Float64Array(dIn);
  let built = 0; // V_0 … V_built are available

  for (let i = 0; i < dOut; i++) {
    const top = Math.max(0, i - radius);
    const bottom = Math.min(dOut, i + radius + 1);
    while (built < bottom) {
      fillRow(built, values, end);
      let sum = 0;
      for (let j = 0; j < end; j++) prefix[j + 1] = sum += values[j];
      addWindowRow(prefix, ring[built % ringSize], ring[(built + 1) % ringSize], radius, dIn, c0, c1);
      built++;
    }
    const upper = ring[top % ringSize];
    const lower = ring[bottom % ringSize];
    for (let j = c0; j < c1; j++) sums[j] = lower[j] - upper[j];
    visit(i, sums, bottom - top);
  }
}

/**
 * next[j] = previous[j] + the sum of the row's entries in the columns of j's window (clipped at the
 * borders), from the row's prefix sums, for j in [c0, c1): the clipped columns on either side apart,
 * so that the columns between need no clipping (a third faster).
 */
function addWindowRow(prefix: Float64Array, previous: Float64Array, next: Float64Array, radius: number, dIn: number, c0: number, c1: number): void {
  const leftEnd = Math.min(c1, Math.max(c0, radius));
  const rightStart = Math.max(leftEnd, Math.min(c1, dIn - radius - 1));
  for (let j = c0; j < leftEnd; j++) next[j] = previous[j] + (prefix[Math.min(dIn, j + radius + 1)] - prefix[0]);
  for (let j = leftEnd; j < rightStart; j++) next[j] = previous[j] + (prefix[j + radius + 1] - prefix[j - radius]);
  for (let j = rightStart; j < c1; j++) next[j] = previous[j] + (prefix[dIn] - prefix[Math.max(0, j - radius)]);
}

/** A matrix and its relative-importance factors (prune/scores/ria.ts), as the score kernels read them. */
export interface ScoreInputs {
  weights: Float32Array; dOut: number; dIn: number;
  inverseColSums: Float64Array; inverseRowSums: Float64Array; activation: Float64Array;
}

/**
 * CRePE's neighbourhood term (prune/scores/crepe.ts) row by row for the columns c0 … c1−1,
 * `visit(i, values)` for i = 0 … dOut−1 (values reused):
 *   normalized: B_ij = A_ij / (window sum of A around (i, j)), 0 where A_ij = 0;
 *   smooth:     the window mean of the plain RIA score (P + Q)·x^a (inputs.activation).
 * With meanBorder the window's out-of-matrix cells count as its in-matrix mean.
 */
export function forEachNeighbourhoodRow(
  inputs: ScoreInputs,
  k: number,
  smooth: boolean,
  meanBorder: boolean,
  visit: (i: number, values: Float64Array) => void,
  c0 = 0,
  c1 = inputs.dIn,
): void {
  const { weights, dOut, dIn, inverseColSums, inverseRowSums, activation } = inputs;
  const values = new Float64Array(dIn);
  const windowArea = k * k;
  const radius = (k - 1) / 2;

  if (!smooth) {
    forEachWindowSumRow(dOut, dIn, k, (p, out, end) => {
      const rowStart = p * dIn;
      for (let j = 0; j < end; j++) out[j] = Math.abs(weights[rowStart + j]);
    }, (i, windowSums, rowsInWindow) => {
      const rowStart = i * dIn;
      for (let j = c0; j < c1; j++) {
        const magnitude = Math.abs(weights[rowStart + j]);
        // A window always contains its centre, so its sum is > 0 wherever A_ij > 0.
        let neighbourhood = 0;
        if (magnitude > 0) {
          neighbourhood = magnitude / windowSums[j];
          if (meanBorder) neighbourhood *= (rowsInWindow * windowColumns(j, radius, dIn)) / windowArea;
        }
        values[j] = neighbourhood;
      }
      visit(i, values);
    }, c0, c1);
    return;
  }

  // smooth: the box mean of the plain RIA score (P + Q)·x^a.
  forEachWindowSumRow(dOut, dIn, k, (p, out, end) => {
    const rowStart = p * dIn;
    const inverseRowSum = inverseRowSums[p];
    for (let j = 0; j < end; j++) out[j] = relativeImportanceTerm(Math.abs(weights[rowStart + j]), inverseColSums[j], inverseRowSum, 1, 1) * activation[j];
  }, (i, windowSums, rowsInWindow) => {
    for (let j = c0; j < c1; j++) {
      const cells = meanBorder ? rowsInWindow * windowColumns(j, radius, dIn) : windowArea;
      values[j] = windowSums[j] / cells;
    }
    visit(i, values);
  }, c0, c1);
}

/**
 * CRePE's score with a neighbourhood term (prune/scores/crepe.ts) for this part's columns:
 *   normalized: (α·P + β·Q + γ·B)·x^a;   smooth: (α·P + β·Q)·x^a + γ·B;
 * in float64, stored as float32. Parts split the columns: each part runs its own window sums over
 * every row, so a row's work divides between them and the scores are the same bits for any split;
 * a part also fills each row up to its last column, so the first parts take more columns.
 */
function crepeNeighbourhoodScores(
  args: ScoreInputs & { out: Float32Array; k: number; alpha: number; beta: number; gamma: number; smooth: boolean; meanBorder: boolean },
  part: number,
  parts: number,
): void {
  const { weights, dIn, out, inverseColSums, inverseRowSums, activation, k, alpha, beta, gamma, smooth, meanBorder } = args;
  // The row fill and prefix up to a part's last column are about 0.3 of a column's work (measured).
  const [c0, c1] = prefixWeightedRange(dIn, part, parts, 0.3);
  forEachNeighbourhoodRow(args, k, smooth, meanBorder, (i, neighbourhood) => {
    const rowStart = i * dIn;
    const inverseRowSum = inverseRowSums[i];
    for (let j = c0; j < c1; j++) {
      const term = relativeImportanceTerm(Math.abs(weights[rowStart + j]), inverseColSums[j], inverseRowSum, alpha, beta);
      out[rowStart + j] = smooth ? term * activation[j] + gamma * neighbourhood[j] : (term + gamma * neighbourhood[j]) * activation[j];
    }
  }, c0, c1);
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
  crepeNeighbourhoodScores,
  histogramHigh,
  histogramLow,
  rowKthSmallest,
  markAtMost,
  markRowsBelow,
};
export type KernelName = keyof typeof KERNELS;
