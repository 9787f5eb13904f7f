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
  const table = (f16ToF32BitsTable ??= buildF16Table());
  const out = new Float32Array(bits.length);
  const outBits = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) outBits[i] = table[bits[i]];
  return out;
}

/** Widens bfloat16 bit patterns to float32 (exact: bfloat16 is a float32's upper half). */
export function bf16ToF32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  const outBits = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) outBits[i] = bits[i] << 16;
  return out;
}

function float32Bits(x: Float32Array): Uint32Array {
  return new Uint32Array(x.buffer, x.byteOffset, x.length);
}

/**
 * Narrows float32 to binary16, round to nearest even. Values beyond the largest half (65504,
 * after rounding) become ±Inf; small values become subnormals or ±0; NaN stays NaN.
 */
export function f32ToF16(x: Float32Array): Uint16Array {
  const inBits = float32Bits(x);
  const out = new Uint16Array(x.length);
  for (let i = 0; i < inBits.length; i++) {
    const bits = inBits[i];
    const sign = (bits >>> 16) & 0x8000;
    const exponent = (bits >>> 23) & 0xff;
    const mantissa = bits & 0x7fffff;

    if (exponent === 0xff) {
      // Inf, or NaN forced quiet so that a payload living only in the low bits survives.
      out[i] = mantissa === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mantissa >>> 13);
      continue;
    }
    const halfExponent = exponent - 112; // rebias 127 → 15
    if (halfExponent >= 0x1f) {
      out[i] = sign | 0x7c00; // overflow
    } else if (halfExponent > 0) {
      // Normal. A carry out of the mantissa correctly bumps the exponent (up to Inf).
      let half = (halfExponent << 10) | (mantissa >>> 13);
      const rest = mantissa & 0x1fff;
      if (rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1)) half++;
      out[i] = sign | half;
    } else if (halfExponent >= -10) {
      // Subnormal result: shift the full 24-bit significand down to units of 2^-24.
      const significand = mantissa | 0x800000;
      const shift = 14 - halfExponent; // 14 … 24
      let half = significand >>> shift;
      const rest = significand & ((1 << shift) - 1);
      const halfway = 1 << (shift - 1);
      if (rest > halfway || (rest === halfway && (half & 1) === 1)) half++;
      out[i] = sign | half; // rounding up to 0x400 yields the smallest normal, as it should
    } else {
      out[i] = sign; // below half the smallest subnormal: ±0
    }
  }
  return out;
}

/** Narrows float32 to bfloat16, round to nearest even; NaN stays NaN (made quiet). */
export function f32ToBf16(x: Float32Array): Uint16Array {
  const inBits = float32Bits(x);
  const out = new Uint16Array(x.length);
  for (let i = 0; i < inBits.length; i++) {
    const bits = inBits[i];
    if ((bits & 0x7fffffff) > 0x7f800000) {
      // NaN: rounding could carry a low-bits payload into Inf, so set the quiet bit instead.
      out[i] = (bits >>> 16) | 0x0040;
    } else {
      const roundingBias = 0x7fff + ((bits >>> 16) & 1);
      out[i] = (bits + roundingBias) >>> 16;
    }
  }
  return out;
}

/**
 * Rounds float32 values to the nearest f16 (or bf16) value in place, chunk by chunk: what a
 * weight becomes once stored in a half-precision checkpoint, without a model-sized temporary.
 */
export function roundThroughHalfInPlace(x: Float32Array, dtype: 'F16' | 'BF16'): void {
  const chunk = 1 << 16;
  for (let start = 0; start < x.length; start += chunk) {
    const part = x.subarray(start, Math.min(start + chunk, x.length));
    part.set(dtype === 'F16' ? f16ToF32(f32ToF16(part)) : bf16ToF32(f32ToBf16(part)));
  }
}
