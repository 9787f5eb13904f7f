import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../../src/util/float16.ts';

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
