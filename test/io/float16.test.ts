import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  bf16ToF32, bf16ToF32Into, f16ToF32, f16ToF32Into, f32ToBf16, f32ToBf16Into, f32ToF16, f32ToF16Into, roundThroughHalfInPlace,
} from '../../src/util/float16.ts';

const toF16 = (x: number): number => f32ToF16(new Float32Array([x]))[0];
const toBf16 = (x: number): number => f32ToBf16(new Float32Array([x]))[0];
const fromF16 = (bits: number): number => f16ToF32(new Uint16Array([bits]))[0];
const fromBf16 = (bits: number): number => bf16ToF32(new Uint16Array([bits]))[0];

test('f16: known bit patterns', () => {
  const cases: [number, number][] = [
    [1.0, 0x3c00],
    [-2.5, 0xc100],
    [65504, 0x7bff], // largest finite half
    [2 ** -14, 0x0400], // smallest normal
    [2 ** -24, 0x0001], // smallest subnormal
    [1e-6, 0x0011], // subnormal: 1e-6 / 2^-24 = 16.78 → 17
    [1e-8, 0x0000], // below half the smallest subnormal: underflows to +0
    [-0, 0x8000],
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
  ];
  for (const [value, bits] of cases) {
    assert.equal(toF16(value), bits, `f32ToF16(${value})`);
    if (bits !== 0x0011 && value !== 1e-8) assert.ok(Object.is(fromF16(bits), value), `f16ToF32(0x${bits.toString(16)})`);
  }
  assert.equal(fromF16(0x0011), 17 * 2 ** -24);
  assert.equal(fromF16(0x03ff), 1023 * 2 ** -24); // largest subnormal
});

test('f16: overflow to infinity, NaN preserved', () => {
  assert.equal(toF16(65519), 0x7bff); // below the halfway point to 65536
  assert.equal(toF16(65520), 0x7c00); // exactly halfway: ties to even, which is Inf
  assert.equal(toF16(1e9), 0x7c00);
  assert.equal(toF16(-1e9), 0xfc00);
  assert.equal(toF16(NaN), 0x7e00);
  assert.ok(Number.isNaN(fromF16(0x7e00)));
  assert.ok(Number.isNaN(fromF16(0x7c01)));
  // A NaN whose payload lies only in the low 13 bits must not become Inf.
  const lowPayloadNaN = new Float32Array(new Uint32Array([0x7f800001]).buffer);
  assert.ok(Number.isNaN(fromF16(f32ToF16(lowPayloadNaN)[0])));
});

test('f16: round to nearest, ties to even (normal and subnormal)', () => {
  assert.equal(toF16(1 + 2 ** -11), 0x3c00); // halfway between 0x3c00 (even) and 0x3c01
  assert.equal(toF16(1 + 3 * 2 ** -11), 0x3c02); // halfway between 0x3c01 and 0x3c02 (even)
  assert.equal(toF16(1 + 2 ** -11 + 2 ** -20), 0x3c01); // just above halfway
  assert.equal(toF16(2 ** -25), 0x0000); // halfway between 0 (even) and 1
  assert.equal(toF16(1.5 * 2 ** -24), 0x0002); // halfway between 1 and 2 (even)
  assert.equal(toF16(2.5 * 2 ** -24), 0x0002); // halfway between 2 (even) and 3
  assert.equal(toF16(0.75 * 2 ** -24), 0x0001);
  assert.equal(toF16(1023.5 * 2 ** -24), 0x0400); // rounds up out of the subnormals into the smallest normal
});

test('f16: every non-NaN half survives widen → narrow', () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const back = f32ToF16(f16ToF32(all));
  for (let h = 0; h < 65536; h++) {
    const isNaN = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
    if (isNaN) assert.ok((back[h] & 0x7c00) === 0x7c00 && (back[h] & 0x3ff) !== 0, `NaN 0x${h.toString(16)}`);
    else assert.equal(back[h], h, `0x${h.toString(16)}`);
  }
});

test('bf16: known bit patterns', () => {
  const cases: [number, number][] = [
    [1.0, 0x3f80],
    [-2.5, 0xc020],
    [Infinity, 0x7f80],
    [-Infinity, 0xff80],
    [-0, 0x8000],
  ];
  for (const [value, bits] of cases) {
    assert.equal(toBf16(value), bits, `f32ToBf16(${value})`);
    assert.ok(Object.is(fromBf16(bits), value));
  }
  assert.equal(toBf16(65504), 0x4780); // 0x477fe000 rounds up to 65536
  assert.equal(fromBf16(0x4780), 65536);
  assert.equal(toBf16(1e-8), 0x322c); // 0x322bcc77: a normal number in bf16
  assert.equal(toBf16(1e-40), 0x0001); // float32 subnormal 0x000116c2 → bf16 subnormal
  assert.equal(fromBf16(0x0001), 2 ** -133);
  assert.equal(toBf16(3.3895313892515355e38), 0x7f7f); // largest finite bf16 stays finite
  assert.equal(toBf16(3.4028234663852886e38), 0x7f80); // float32 max rounds up to Inf
});

test('bf16: ties to even, NaN preserved', () => {
  assert.equal(toBf16(1 + 2 ** -8), 0x3f80); // 0x3f808000: halfway, 0x3f80 is even
  assert.equal(toBf16(1 + 3 * 2 ** -8), 0x3f82); // 0x3f818000: halfway, 0x3f82 is even
  assert.equal(toBf16(1 + 2 ** -8 + 2 ** -20), 0x3f81);
  assert.equal(toBf16(NaN), 0x7fc0);
  const lowPayloadNaN = new Float32Array(new Uint32Array([0x7f800001, 0xff800001]).buffer);
  const narrowed = f32ToBf16(lowPayloadNaN);
  assert.ok(Number.isNaN(fromBf16(narrowed[0])) && Number.isNaN(fromBf16(narrowed[1])));
  assert.equal(narrowed[1] & 0x8000, 0x8000); // sign kept
});

test('bf16: every bfloat16 survives widen → narrow', () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const back = f32ToBf16(bf16ToF32(all));
  for (let b = 0; b < 65536; b++) {
    const isNaN = (b & 0x7f80) === 0x7f80 && (b & 0x7f) !== 0;
    if (isNaN) assert.ok(Number.isNaN(fromBf16(back[b])));
    else assert.equal(back[b], b);
  }
});

test('narrowing works on a subarray view (non-zero byteOffset)', () => {
  const backing = new Float32Array([7, 1, -2.5]);
  assert.deepEqual([...f32ToF16(backing.subarray(1))], [0x3c00, 0xc100]);
  assert.deepEqual([...f32ToBf16(backing.subarray(1))], [0x3f80, 0xc020]);
});

/** binary16 → float32 from the definition (Math.pow), independent of the table the library builds. */
function referenceF16Value(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >>> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * Math.pow(2, -24);
  if (exponent === 0x1f) return mantissa === 0 ? sign * Infinity : NaN;
  return sign * (1 + mantissa / 1024) * Math.pow(2, exponent - 15);
}

/** The straightforward per-element float32 → binary16 narrowing (round to nearest even): the reference for the fast one. */
function referenceF32ToF16(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return mantissa === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mantissa >>> 13);
  const halfExponent = exponent - 112;
  if (halfExponent >= 0x1f) return sign | 0x7c00;
  if (halfExponent > 0) {
    let half = (halfExponent << 10) | (mantissa >>> 13);
    const rest = mantissa & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1)) half++;
    return sign | half;
  }
  if (halfExponent >= -10) {
    const significand = mantissa | 0x800000;
    const shift = 14 - halfExponent;
    let half = significand >>> shift;
    const rest = significand & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rest > halfway || (rest === halfway && (half & 1) === 1)) half++;
    return sign | half;
  }
  return sign;
}

/** The straightforward per-element float32 → bfloat16 narrowing. */
function referenceF32ToBf16(bits: number): number {
  if ((bits & 0x7fffffff) > 0x7f800000) return (bits >>> 16) | 0x0040;
  return (bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16;
}

/**
 * float32 bit patterns covering every sign and exponent, each with every top-10-bit mantissa and
 * the low 13 bits at and around the rounding points (0, 1, halfway − 1, halfway, halfway + 1, all
 * ones), plus the halfway points of bfloat16's 16 dropped bits: 3.7 M patterns.
 */
function float32Patterns(): Uint32Array {
  const lows = [0, 1, 0xfff, 0x1000, 0x1001, 0x1fff];
  const out = new Uint32Array(2 * 256 * 1024 * (lows.length + 1));
  let n = 0;
  for (let sign = 0; sign < 2; sign++) {
    for (let exponent = 0; exponent < 256; exponent++) {
      for (let high = 0; high < 1024; high++) {
        const base = ((sign << 31) | (exponent << 23) | (high << 13)) >>> 0;
        for (const low of lows) out[n++] = base | low;
        out[n++] = (base & 0xffff0000) | 0x8000 | (high & 1);
      }
    }
  }
  return out;
}

test('f16ToF32 / f16ToF32Into: every one of the 65536 halves equals its value from the definition', () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const widened = f16ToF32(all);
  const into = new Float32Array(65536 + 2).fill(7);
  f16ToF32Into(all, into.subarray(1, 65537));
  assert.equal(into[0], 7);
  assert.equal(into[65537], 7);
  for (let h = 0; h < 65536; h++) {
    const expected = referenceF16Value(h);
    if (Number.isNaN(expected)) {
      // NaN keeps its payload in the top mantissa bits, and its sign.
      const bits = new Uint32Array(widened.buffer, h * 4, 1)[0];
      assert.equal(bits, (((h & 0x8000) << 16) | 0x7f800000 | ((h & 0x3ff) << 13)) >>> 0, `0x${h.toString(16)}`);
    } else {
      assert.ok(Object.is(widened[h], expected), `0x${h.toString(16)}: ${widened[h]} vs ${expected}`);
    }
    assert.ok(Object.is(into[h + 1], widened[h]), `into 0x${h.toString(16)}`);
  }
  const bf = new Float32Array(65536);
  bf16ToF32Into(all, bf);
  assert.deepEqual(new Uint32Array(bf.buffer), new Uint32Array(bf16ToF32(all).buffer));
});

test('f32ToF16 and f32ToBf16 (and their Into forms) agree bit for bit with the per-element reference', () => {
  const patterns = float32Patterns();
  const values = new Float32Array(patterns.buffer);
  const half = f32ToF16(values);
  const halfInto = new Uint16Array(values.length);
  f32ToF16Into(values, halfInto);
  const bf = f32ToBf16(values);
  const bfInto = new Uint16Array(values.length);
  f32ToBf16Into(values, bfInto);
  for (let i = 0; i < patterns.length; i++) {
    const hex = `0x${patterns[i].toString(16)}`;
    if (half[i] !== referenceF32ToF16(patterns[i])) assert.equal(half[i], referenceF32ToF16(patterns[i]), `f16 ${hex}`);
    if (halfInto[i] !== half[i]) assert.equal(halfInto[i], half[i], `f16 into ${hex}`);
    if (bf[i] !== referenceF32ToBf16(patterns[i])) assert.equal(bf[i], referenceF32ToBf16(patterns[i]), `bf16 ${hex}`);
    if (bfInto[i] !== bf[i]) assert.equal(bfInto[i], bf[i], `bf16 into ${hex}`);
  }
});

test('roundThroughHalfInPlace gives the bits of narrowing then widening, for F16 and BF16', () => {
  const patterns = float32Patterns();
  for (const dtype of ['F16', 'BF16'] as const) {
    const rounded = new Float32Array(patterns.slice().buffer);
    roundThroughHalfInPlace(rounded, dtype);
    const roundedBits = new Uint32Array(rounded.buffer);
    const narrow = dtype === 'F16' ? referenceF32ToF16 : referenceF32ToBf16;
    const widen = dtype === 'F16' ? f16ToF32 : bf16ToF32;
    const narrowed = new Uint16Array(patterns.length);
    for (let i = 0; i < patterns.length; i++) narrowed[i] = narrow(patterns[i]);
    const expected = new Uint32Array(widen(narrowed).buffer);
    for (let i = 0; i < patterns.length; i++) {
      if (roundedBits[i] !== expected[i]) assert.equal(roundedBits[i], expected[i], `${dtype} 0x${patterns[i].toString(16)}`);
    }
  }
  // On a view: only the view's values change.
  const backing = Float32Array.from([1 + 2 ** -12, 1 + 2 ** -12, 1 + 2 ** -12]);
  roundThroughHalfInPlace(backing.subarray(1, 2), 'F16');
  assert.deepEqual([...backing], [1 + 2 ** -12, 1, 1 + 2 ** -12]);
});
