/**
 * Rotary position embedding tables in Hugging Face's rotate_half layout: for position p and
 * frequency index i < headDim/2, angle = p · invFreq[i], and the table row is
 * [cos(angle_0 … angle_{d/2-1}), cos(angle_0 … angle_{d/2-1})] (the same for sin). The rotation pairs
 * element i with element i + d/2. Angles are computed in float64, then stored as float32.
 */
import type { Llama3RopeScaling, ModelSpec } from './spec.ts';

/** Inverse frequencies base^(−2i/d), i = 0 … d/2−1, with `rope_scaling` applied (float64). */
export function ropeInverseFrequencies(spec: ModelSpec): Float64Array {
  const half = spec.headDim / 2;
  const invFreq = new Float64Array(half);
  for (let i = 0; i < half; i++) invFreq[i] = 1 / Math.pow(spec.ropeTheta, (2 * i) / spec.headDim);
  if (spec.ropeScaling?.type === 'llama3') applyLlama3Scaling(invFreq, spec.ropeScaling);
  return invFreq;
}

/**
 * Llama 3.1 frequency scaling (Hugging Face `rope_type: "llama3"`), in place. With wavelength
 * λ = 2π / f and the original context length C:
 *   λ < C / highFreqFactor  (high frequencies)  → unchanged;
 *   λ > C / lowFreqFactor   (low frequencies)   → f / factor;
 *   otherwise (between)                          → (1 − s)·f/factor + s·f,
 *     s = (C/λ − lowFreqFactor) / (highFreqFactor − lowFreqFactor).
 */
export function applyLlama3Scaling(invFreq: Float64Array, scaling: Llama3RopeScaling): void {
  const { factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings: context } = scaling;
  const lowFreqWavelength = context / lowFreqFactor;
  const highFreqWavelength = context / highFreqFactor;
  for (let i = 0; i < invFreq.length; i++) {
    const freq = invFreq[i];
    const wavelength = (2 * Math.PI) / freq;
    if (wavelength < highFreqWavelength) continue;
    if (wavelength > lowFreqWavelength) {
      invFreq[i] = freq / factor;
    } else {
      const smooth = (context / wavelength - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
      invFreq[i] = (1 - smooth) * (freq / factor) + smooth * freq;
    }
  }
}

/** cos and sin tables, each [seqLen, headDim] row-major, for positions 0 … seqLen−1. */
export interface RopeTables {
  cos: Float32Array;
  sin: Float32Array;
}

export function ropeTables(spec: ModelSpec, seqLen: number): RopeTables {
  const d = spec.headDim;
  const half = d / 2;
  const invFreq = ropeInverseFrequencies(spec);
  const cos = new Float32Array(seqLen * d);
  const sin = new Float32Array(seqLen * d);
  for (let p = 0; p < seqLen; p++) {
    for (let i = 0; i < half; i++) {
      const angle = p * invFreq[i];
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      cos[p * d + i] = c;
      cos[p * d + half + i] = c;
      sin[p * d + i] = s;
      sin[p * d + half + i] = s;
    }
  }
  return { cos, sin };
}
