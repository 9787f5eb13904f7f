import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ropeInverseFrequencies, ropeTables } from '../../src/model/rope.ts';
import { smallSpec, SMALL_LLAMA3_SCALING } from '../helpers/random-model.ts';

const close = (actual: number, expected: number, tol: number, what: string): void =>
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: ${actual} vs ${expected}`);

test('plain rotary: invFreq = θ^(−2i/d), tables duplicated over both halves', () => {
  const spec = smallSpec('llama'); // headDim 16, θ = 10⁴ → invFreq[i] = 10^(−i/2)
  const invFreq = ropeInverseFrequencies(spec);
  assert.equal(invFreq.length, 8);
  close(invFreq[0], 1, 0, 'f0');
  close(invFreq[2], 0.1, 1e-15, 'f2');
  close(invFreq[4], 0.01, 1e-16, 'f4');
  const { cos, sin } = ropeTables(spec, 4);
  assert.equal(cos.length, 4 * 16);
  // Position 0: angle 0 everywhere.
  for (let i = 0; i < 16; i++) { assert.equal(cos[i], 1); assert.equal(sin[i], 0); }
  // Position 3, frequency 2: angle 0.3, in columns 2 and 2 + 8.
  close(cos[3 * 16 + 2], Math.cos(0.3), 1e-7, 'cos');
  close(cos[3 * 16 + 10], Math.cos(0.3), 1e-7, 'cos (second half)');
  close(sin[3 * 16 + 10], Math.sin(0.3), 1e-7, 'sin (second half)');
});

test('llama3 rope scaling: one frequency in each regime, derived by hand', () => {
  // headDim 16, θ = 10⁴: f_i = 10^(−i/2), wavelength λ_i = 2π/f_i. Context C = 64, factor 8,
  // lowFreqFactor 1, highFreqFactor 4 → λ < 16 is high-frequency (kept), λ > 64 is low-frequency
  // (divided by 8), between is interpolated with s = (C/λ − 1)/(4 − 1).
  const spec = smallSpec('llama', { ropeScaling: { ...SMALL_LLAMA3_SCALING } });
  const invFreq = ropeInverseFrequencies(spec);
  // i = 0: λ = 2π ≈ 6.28 < 16 → unchanged.
  close(invFreq[0], 1, 0, 'high-frequency regime');
  // i = 1: λ = 2π√10 ≈ 19.869, s = (64/19.869 − 1)/3 ≈ 0.740357,
  //        f = 0.316228·((1 − s)/8 + s) ≈ 0.316228·0.772812 ≈ 0.244385.
  close(invFreq[1], 0.2443846, 1e-7, 'interpolated regime');
  // i = 2: λ = 20π ≈ 62.83 (just below 64), s ≈ 0.0061972 → f ≈ 0.1·(0.9938028/8 + 0.0061972) ≈ 0.0130423.
  close(invFreq[2], 0.0130423, 1e-7, 'interpolated regime, near the low edge');
  // i = 3: λ = 2π·10^1.5 ≈ 198.7 > 64 → f/8 = 0.0316228/8 ≈ 0.00395285.
  close(invFreq[3], 0.00395285, 1e-8, 'low-frequency regime');
  // And the tables use the scaled frequency: position 5, i = 1 → cos(5·0.2443846) ≈ 0.341839.
  const { cos } = ropeTables(spec, 6);
  close(cos[5 * 16 + 1], 0.3418392, 1e-6, 'cos table');
  close(cos[5 * 16 + 9], 0.3418392, 1e-6, 'cos table (second half)');
});
