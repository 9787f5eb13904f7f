/**
 * Order statistics over float32 typed arrays: the k-th smallest value (0-based) without sorting.
 *
 * Two strategies, same answer:
 *  - small inputs: quickselect (median-of-three pivots, insertion sort below 16) on a scratch copy;
 *  - large inputs: radix select on the bit pattern (float32 bits mapped to an order-preserving
 *    uint32 key), two histogram passes of 16 bits — O(n) worst case, reads the input in place.
 *
 * NaN has no place in an order; callers validate their data first and these functions throw
 * (an internal error) if they meet one. -0 and +0 compare equal, as with `<`.
 */
import assert from 'node:assert/strict';

/** Above this length radix select beats quickselect (histogram clearing is amortised). */
const RADIX_MIN_LENGTH = 1 << 16;

/**
 * The value at 0-based index k of `values` sorted ascending. `values` is not modified.
 * `scratch`, if given, must hold at least `values.length` floats; it is overwritten.
 */
export function kthSmallest(values: Float32Array, k: number, scratch?: Float32Array): number {
  const n = values.length;
  assert(Number.isInteger(k) && k >= 0 && k < n, `kthSmallest: k=${k} outside [0, ${n})`);
  if (n >= RADIX_MIN_LENGTH) return radixSelect(values, k);
  const work = scratch && scratch.length >= n ? scratch.subarray(0, n) : new Float32Array(n);
  work.set(values);
  return quickselectInPlace(work, 0, n, k);
}

/**
 * The value at 0-based index k of `values[start, end)` sorted ascending, with `work` (length ≥
 * end − start) as scratch. For per-row selection without allocating per row.
 */
export function kthSmallestInRange(values: Float32Array, start: number, end: number, k: number, work: Float32Array): number {
  const n = end - start;
  assert(k >= 0 && k < n && work.length >= n, 'kthSmallestInRange: bad arguments');
  const w = work.subarray(0, n);
  w.set(values.subarray(start, end));
  return quickselectInPlace(w, 0, n, k);
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

/**
 * Radix select on the raw float32 bits, 16 bits per pass. Float order by raw bits: negative
 * values (sign set) run from 0xFFFF_FFFF (most negative) down to 0x8000_0000 (-0), then
 * non-negative values from 0x0000_0000 up; so buckets and low halves are walked downwards for
 * negative numbers and upwards otherwise. The hot loops only shift and count.
 */
function radixSelect(values: Float32Array, k: number): number {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const n = bits.length;
  const counts = new Uint32Array(1 << 16);
  for (let i = 0; i < n; i++) counts[bits[i] >>> 16]++;
  // Raw buckets 0x7F80–0x7FFF and 0xFF80–0xFFFF hold ±inf and NaN: look closer only if used.
  let extreme = 0;
  for (let b = 0; b < 0x80; b++) extreme += counts[0x7f80 + b] + counts[0xff80 + b];
  if (extreme > 0) for (let i = 0; i < n; i++) if (values[i] !== values[i]) throw new Error('kthSmallest: NaN in input');

  let below = 0;
  let bucket = -1;
  for (let b = 0xffff; b >= 0x8000 && bucket < 0; b--) {
    if (below + counts[b] > k) bucket = b;
    else below += counts[b];
  }
  for (let b = 0; b <= 0x7fff && bucket < 0; b++) {
    if (below + counts[b] > k) bucket = b;
    else below += counts[b];
  }
  const rank = k - below;

  counts.fill(0);
  for (let i = 0; i < n; i++) {
    const v = bits[i];
    if (v >>> 16 === bucket) counts[v & 0xffff]++;
  }
  const negative = bucket >= 0x8000;
  let seen = 0;
  let low = negative ? 0xffff : 0;
  for (;;) {
    if (seen + counts[low] > rank) break;
    seen += counts[low];
    low += negative ? -1 : 1;
  }
  return new Float32Array(new Uint32Array([((bucket << 16) | low) >>> 0]).buffer)[0];
}
