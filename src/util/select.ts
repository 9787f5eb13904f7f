/**
 * Order statistics over float32 typed arrays: the k-th smallest value (0-based) without sorting.
 *
 * Two strategies, same answer:
 *  - small inputs: quickselect (median-of-three pivots, insertion sort below 16) on a scratch copy;
 *  - large inputs: radix select on the bit pattern (float32 bits mapped to an order-preserving
 *    uint32 key), two histogram passes of 16 bits — O(n) worst case, reads the input in place.
 *
 * Arrays in SharedArrayBuffers (as the score functions return them) are counted by worker threads
 * as well (util/parallel.ts); the answer is the same.
 *
 * NaN has no place in an order; callers validate their data first and these functions throw
 * (an internal error) if they meet one. -0 and +0 compare equal, as with `<`.
 */
import assert from 'node:assert/strict';
import { quickselectInPlace } from './kernels.ts';
import { isShared, parallelParts, runKernel, sharedFloat32, sharedUint32, sharedUint8 } from './parallel.ts';

/** Above this length radix select beats quickselect (histogram clearing is amortised). */
const RADIX_MIN_LENGTH = 1 << 16;
/** Above this many values a shared array is counted by worker threads too. */
const PARALLEL_MIN_LENGTH = 1 << 20;

/** Parts to split work over `values` into: 1 unless it is large and shared. */
function partsFor(values: Float32Array): number {
  return values.length >= PARALLEL_MIN_LENGTH && isShared(values) ? parallelParts() : 1;
}

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
 * Radix select on the raw float32 bits, 16 bits per pass. Float order by raw bits: negative
 * values (sign set) run from 0xFFFF_FFFF (most negative) down to 0x8000_0000 (-0), then
 * non-negative values from 0x0000_0000 up; so buckets and low halves are walked downwards for
 * negative numbers and upwards otherwise. The hot loops only shift and count.
 */
function radixSelect(values: Float32Array, k: number): number {
  const parts = partsFor(values);
  const counts = parts > 1 ? sharedUint32(parts << 16) : new Uint32Array(1 << 16);
  const merged = new Uint32Array(1 << 16);
  const count = (kernel: 'histogramHigh' | 'histogramLow', bucket?: number): void => {
    runKernel(kernel, { values, counts, bucket }, parts);
    merged.set(counts.subarray(0, 1 << 16));
    for (let part = 1; part < parts; part++) {
      const base = part << 16;
      for (let b = 0; b < 1 << 16; b++) merged[b] += counts[base + b];
    }
  };

  count('histogramHigh');
  // Raw buckets 0x7F80–0x7FFF and 0xFF80–0xFFFF hold ±inf and NaN: look closer only if used.
  let extreme = 0;
  for (let b = 0; b < 0x80; b++) extreme += merged[0x7f80 + b] + merged[0xff80 + b];
  if (extreme > 0) for (let i = 0; i < values.length; i++) if (values[i] !== values[i]) throw new Error('kthSmallest: NaN in input');

  let below = 0;
  let bucket = -1;
  for (let b = 0xffff; b >= 0x8000 && bucket < 0; b--) {
    if (below + merged[b] > k) bucket = b;
    else below += merged[b];
  }
  for (let b = 0; b <= 0x7fff && bucket < 0; b++) {
    if (below + merged[b] > k) bucket = b;
    else below += merged[b];
  }
  const rank = k - below;

  count('histogramLow', bucket);
  const negative = bucket >= 0x8000;
  let seen = 0;
  let low = negative ? 0xffff : 0;
  for (;;) {
    if (seen + merged[low] > rank) break;
    seen += merged[low];
    low += negative ? -1 : 1;
  }
  return new Float32Array(new Uint32Array([((bucket << 16) | low) >>> 0]).buffer)[0];
}

/**
 * The k-th smallest (0-based) of every row of `values` [dOut, dIn]: [dOut]. Rows are split over
 * worker threads when `values` is large and shared.
 */
export function rowKthSmallest(values: Float32Array, dOut: number, dIn: number, k: number): Float32Array {
  assert(values.length === dOut * dIn && Number.isInteger(k) && k >= 0 && k < dIn, 'rowKthSmallest: bad arguments');
  const parts = partsFor(values);
  const out = parts > 1 ? sharedFloat32(dOut) : new Float32Array(dOut);
  runKernel('rowKthSmallest', { values, dOut, dIn, k, out }, parts);
  return out;
}

/**
 * A new mask [values.length] for marks over `values`: in shared memory when the marking is split
 * over worker threads (values large and shared), so the workers can write it.
 */
export function markBuffer(values: Float32Array): Uint8Array {
  return partsFor(values) > 1 ? sharedUint8(values.length) : new Uint8Array(values.length);
}

/** Parts for marking `values` into `mask`: split only when the workers can write the mask too. */
const markParts = (values: Float32Array, mask: Uint8Array): number => (isShared(mask) ? partsFor(values) : 1);

/**
 * mask[p] = 1 where values[p] ≤ threshold, else 0 (branch-free: ~5× faster on random scores).
 * Split over worker threads when both arrays are shared and large.
 */
export function markAtMost(values: Float32Array, threshold: number, mask: Uint8Array): void {
  assert(mask.length === values.length, 'markAtMost: mask and values differ in length');
  runKernel('markAtMost', { values, threshold, mask }, markParts(values, mask));
}

/**
 * Per row of values [dOut, dIn]: marks every entry below thresholds[i], then entries equal to it
 * from the lowest column on, until the row has `count` marks (the stable-sort tie order). Split
 * over worker threads by rows when both arrays are shared and large.
 */
export function markRowsBelow(values: Float32Array, dOut: number, dIn: number, thresholds: Float32Array, count: number, mask: Uint8Array): void {
  assert(mask.length === values.length && values.length === dOut * dIn && thresholds.length === dOut, 'markRowsBelow: bad arguments');
  const parts = markParts(values, mask);
  const shared = parts > 1 && !isShared(thresholds) ? sharedFloat32(dOut) : thresholds;
  if (shared !== thresholds) shared.set(thresholds);
  runKernel('markRowsBelow', { values, dOut, dIn, thresholds: shared, count, mask }, parts);
}
