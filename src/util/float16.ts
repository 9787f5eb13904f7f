/**
 * Conversions between float32 and the two 16-bit float formats of checkpoints:
 *   F16  (IEEE binary16: 1 sign, 5 exponent, 10 mantissa bits)
 *   BF16 (bfloat16: the top 16 bits of a float32)
 * These run over every weight of a model, so they work on bit patterns through Uint32Array
 * views (no Math.pow, no per-element allocation). Narrowing rounds to nearest, ties to even.
 */

/** float32 bit pattern of every binary16 value, built once on first use (256 KiB). */
let f16ToF32BitsTable: Uint32Array | null = null;

function buildF16Table(): Uint32Array {
  const table = new Uint32Array(65536);
  const scratch = new Float32Array(1);
  const scratchBits = new Uint32Array(scratch.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exponent = (h >>> 10) & 0x1f;
    const mantissa = h & 0x3ff;
    if (exponent === 0x1f) {
      // Inf (mantissa 0) or NaN (payload kept in the top mantissa bits).
      table[h] = (sign | 0x7f800000 | (mantissa << 13)) >>> 0;
    } else if (exponent === 0) {
      // Zero or subnormal: mantissa · 2^-24, exactly representable in float32.
      scratch[0] = mantissa * 5.9604644775390625e-8;
      table[h] = (sign | scratchBits[0]) >>> 0;
    } else {
      // Normal: rebias the exponent from 15 to 127.
      table[h] = (sign | ((exponent + 112) << 23) | (mantissa << 13)) >>> 0;
    }
  }
  return table;
}

/** Widens binary16 bit patterns to float32 (exact). */
export function f16ToF32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  f16ToF32Into(bits, out);
  return out;
}

/** f16ToF32 into `out` (at least `bits.length` long): no allocation, for buffers that are reused. */
export function f16ToF32Into(bits: Uint16Array, out: Float32Array): void {
  const table = (f16ToF32BitsTable ??= buildF16Table());
  const outBits = float32Bits(out);
  for (let i = 0; i < bits.length; i++) outBits[i] = table[bits[i]];
}

/** Widens bfloat16 bit patterns to float32 (exact: bfloat16 is a float32's upper half). */
export function bf16ToF32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  bf16ToF32Into(bits, out);
  return out;
}

/** bf16ToF32 into `out` (at least `bits.length` long). */
export function bf16ToF32Into(bits: Uint16Array, out: Float32Array): void {
  const outBits = float32Bits(out);
  for (let i = 0; i < bits.length; i++) outBits[i] = bits[i] << 16;
}

function float32Bits(x: Float32Array): Uint32Array {
  return new Uint32Array(x.buffer, x.byteOffset, x.length);
}

/** Smallest float32 magnitude (bits) that is a normal binary16 value: 2^-14. */
const HALF_NORMAL_MIN = 0x38800000;
/** float32 magnitudes (bits) from here on round to a half beyond 65504, that is to Inf. */
const HALF_OVERFLOW = 0x477ff000;

/**
 * A float32 magnitude (bits) in the normal half range rounded, ties to even, to the 10 mantissa
 * bits a half keeps; the 13 dropped bits are left for the caller to shift out or clear (a carry
 * correctly bumps the exponent).
 */
const roundToHalfMantissa = (magnitude: number): number => magnitude + 0xfff + ((magnitude >>> 13) & 1);

/**
 * The binary16 bit pattern nearest (ties to even) to the float32 of bit pattern `bits`. Values
 * beyond the largest half (65504, after rounding) become ±Inf; small values become subnormals or
 * ±0; NaN stays NaN (made quiet, so that a payload living only in the low bits survives).
 */
function halfBits(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const magnitude = bits & 0x7fffffff;
  if (magnitude >= HALF_NORMAL_MIN && magnitude < HALF_OVERFLOW) {
    // Normal: drop the 13 rounded-off mantissa bits, then rebias the exponent from 127 to 15 (112 << 10 = 0x1c000).
    return sign | ((roundToHalfMantissa(magnitude) >>> 13) - 0x1c000);
  }
  const exponent = magnitude >>> 23;
  const mantissa = magnitude & 0x7fffff;
  if (exponent === 0xff) return mantissa === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mantissa >>> 13);
  if (magnitude >= HALF_OVERFLOW) return sign | 0x7c00;
  const halfExponent = exponent - 112; // rebias 127 → 15; here ≤ 0
  if (halfExponent < -10) return sign; // below half the smallest subnormal: ±0
  // Subnormal result: shift the full 24-bit significand down to units of 2^-24.
  const significand = mantissa | 0x800000;
  const shift = 14 - halfExponent; // 14 … 24
  let half = significand >>> shift;
  const rest = significand & ((1 << shift) - 1);
  const halfway = 1 << (shift - 1);
  if (rest > halfway || (rest === halfway && (half & 1) === 1)) half++;
  return sign | half; // rounding up to 0x400 yields the smallest normal, as it should
}

/**
 * Narrows float32 to binary16, round to nearest even. Values beyond the largest half (65504,
 * after rounding) become ±Inf; small values become subnormals or ±0; NaN stays NaN.
 */
export function f32ToF16(x: Float32Array): Uint16Array {
  const out = new Uint16Array(x.length);
  f32ToF16Into(x, out);
  return out;
}

/** f32ToF16 into `out` (at least `x.length` long). */
export function f32ToF16Into(x: Float32Array, out: Uint16Array): void {
  const inBits = float32Bits(x);
  for (let i = 0; i < inBits.length; i++) out[i] = halfBits(inBits[i]);
}

/** The bfloat16 bit pattern nearest (ties to even) to the float32 of bit pattern `bits`; NaN stays NaN (made quiet). */
function bfloat16Bits(bits: number): number {
  // NaN: rounding could carry a low-bits payload into Inf, so set the quiet bit instead.
  if ((bits & 0x7fffffff) > 0x7f800000) return (bits >>> 16) | 0x0040;
  return (bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16;
}

/** Narrows float32 to bfloat16, round to nearest even; NaN stays NaN (made quiet). */
export function f32ToBf16(x: Float32Array): Uint16Array {
  const out = new Uint16Array(x.length);
  f32ToBf16Into(x, out);
  return out;
}

/** f32ToBf16 into `out` (at least `x.length` long). */
export function f32ToBf16Into(x: Float32Array, out: Uint16Array): void {
  const inBits = float32Bits(x);
  for (let i = 0; i < inBits.length; i++) out[i] = bfloat16Bits(inBits[i]);
}

/**
 * Rounds float32 values to the nearest f16 (or bf16) value in place: what a weight becomes once
 * stored in a half-precision checkpoint, value by value, without a temporary.
 */
export function roundThroughHalfInPlace(x: Float32Array, dtype: 'F16' | 'BF16'): void {
  const bits = float32Bits(x);
  if (dtype === 'BF16') {
    for (let i = 0; i < bits.length; i++) bits[i] = bfloat16Bits(bits[i]) << 16;
    return;
  }
  const table = (f16ToF32BitsTable ??= buildF16Table());
  for (let i = 0; i < bits.length; i++) {
    const value = bits[i];
    const magnitude = value & 0x7fffffff;
    // Normal halves: clear the 13 dropped mantissa bits after rounding to nearest even; the rest
    // (subnormals, zeros, overflow, Inf, NaN) goes through the half's bit pattern.
    bits[i] = magnitude >= HALF_NORMAL_MIN && magnitude < HALF_OVERFLOW
      ? (value & 0x80000000) | (roundToHalfMantissa(magnitude) & ~0x1fff)
      : table[halfBits(value)];
  }
}
