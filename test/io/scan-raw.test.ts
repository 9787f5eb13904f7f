import { test } from 'node:test';
import assert from 'node:assert/strict';
import { scanRaw } from '../../src/io/safetensors.ts';
import { f32ToBf16, f32ToF16 } from '../../src/util/float16.ts';

test('scanRaw counts ±0 and finds non-finite values from the bit patterns of F32, F16 and BF16', () => {
  const values = Float32Array.from([0, -0, 1.5, -2, 0, 65504, 3]);
  const f32 = new Uint8Array(values.buffer.slice(0));
  assert.deepEqual(scanRaw(f32, 'F32'), { zeros: 3, allFinite: true });
  assert.deepEqual(scanRaw(new Uint8Array(f32ToF16(values).buffer), 'F16'), { zeros: 3, allFinite: true });
  assert.deepEqual(scanRaw(new Uint8Array(f32ToBf16(values).buffer), 'BF16'), { zeros: 3, allFinite: true });
  for (const bad of [Infinity, -Infinity, NaN]) {
    const withBad = Float32Array.from([1, bad, 0]);
    assert.deepEqual(scanRaw(new Uint8Array(withBad.buffer), 'F32'), { zeros: 1, allFinite: false }, `F32 ${bad}`);
    assert.equal(scanRaw(new Uint8Array(f32ToF16(withBad).buffer), 'F16').allFinite, false, `F16 ${bad}`);
    assert.equal(scanRaw(new Uint8Array(f32ToBf16(withBad).buffer), 'BF16').allFinite, false, `BF16 ${bad}`);
  }
  // 70000 overflows binary16 to Inf; 1e-8 underflows to 0 there.
  assert.deepEqual(scanRaw(new Uint8Array(f32ToF16(Float32Array.from([70000, 1e-8])).buffer), 'F16'), { zeros: 1, allFinite: false });
  // An odd byte offset (a tensor inside a file buffer) is read through a copy.
  const shifted = new Uint8Array(f32.length + 1);
  shifted.set(f32, 1);
  assert.deepEqual(scanRaw(shifted.subarray(1), 'F32'), { zeros: 3, allFinite: true });
});

test('scanRaw agrees with the per-value definition for every F16 and BF16 pattern, in either half of a word and as an odd last value', () => {
  for (const [dtype, exponent] of [['F16', 0x7c00], ['BF16', 0x7f80]] as const) {
    const finite = dtype === 'F16' ? 0x3c00 : 0x3f80;
    for (let p = 0; p < 65536; p++) {
      const isZero = (p & 0x7fff) === 0;
      const isFinite = (p & exponent) !== exponent;
      // p in the low half, in the high half, and alone at the end of an odd count.
      const values = Uint16Array.from([p, finite, finite, p, p]);
      const bytes = new Uint8Array(values.buffer);
      const expect = (n: number) => ({ zeros: isZero ? n : 0, allFinite: isFinite });
      const got = [scanRaw(bytes.subarray(0, 4), dtype), scanRaw(bytes.subarray(4, 8), dtype), scanRaw(bytes, dtype)];
      const want = [expect(1), expect(1), expect(3)];
      for (let k = 0; k < 3; k++) {
        if (got[k].zeros !== want[k].zeros || got[k].allFinite !== want[k].allFinite) assert.deepEqual(got[k], want[k], `${dtype} 0x${p.toString(16)} case ${k}`);
      }
    }
  }
});
