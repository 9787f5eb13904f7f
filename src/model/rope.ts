/**
 * Rotary position embedding tables in Hugging Face's rotate_half layout: for position p and
 * frequency index i < headDim/2, angle = p · invFreq[i], and the table row is
 * [cos(angle_0 … angle_{d/2-1}), cos(angle_0 … angle_{d/2-1})] (the same for sin). The rotation pairs
 * element i with element i + d/2. Angles are computed in float64, then stored as float32.
 */
import type { Llama3RopeScaling, ModelSpec } from './spec.ts';

/** Channels of each head that rotary embedding turns: all, or the first `rotaryDim` (partial rotary). */
export const rotaryDim = (spec: ModelSpec): number => spec.rotaryDim ?? spec.headDim;

/**
 * Inverse frequencies base^(−2i/r), i = 0 … r/2−1 over the r = rotaryDim turned channels, with
 * `rope_scaling` applied (float64).
 */
export function ropeInverseFrequencies(spec: ModelSpec): Float64Array {
  const r = rotaryDim(spec);
  const half = r / 2;
  const invFreq = new Float64Array(half);
  for (let i = 0; i < half; i++) invFreq[i] = 1 / Math.pow(spec.ropeTheta, (2 * i) / r);
  if (spec.ropeScaling?.type === 'llama3') applyLlama3Scaling(invFreq, spec.ropeScaling);
  if (spec.ropeScaling?.type === 'longrope') {
    const { shortFactor } = spec.ropeScaling;
    for (let i = 0; i < half; i++) invFreq[i] /= shortFactor[i];
  }
  return invFreq;
}

/** The factor cos and sin are scaled by (longrope's attention factor; 1 otherwise). */
export const ropeAttentionFactor = (spec: ModelSpec): number =>
  spec.ropeScaling?.type === 'longrope' ? spec.ropeScaling.attentionFactor : 1;

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

/** cos and sin tables, each [seqLen, rotaryDim] row-major, for positions 0 … seqLen−1. */
export interface RopeTables {
  cos: Float32Array;
  sin: Float32Array;
}

export function ropeTables(spec: ModelSpec, seqLen: number): RopeTables {
  const d = rotaryDim(spec);
  const half = d / 2;
  const invFreq = ropeInverseFrequencies(spec);
  const scale = ropeAttentionFactor(spec);
  const cos = new Float32Array(seqLen * d);
  const sin = new Float32Array(seqLen * d);
  for (let p = 0; p < seqLen; p++) {
    for (let i = 0; i < half; i++) {
      const angle = p * invFreq[i];
      const c = Math.cos(angle) * scale;
      const s = Math.sin(angle) * scale;
      cos[p * d + i] = c;
      cos[p * d + half + i] = c;
      sin[p * d + i] = s;
      sin[p * d + half + i] = s;
    }
  }
  return { cos, sin };
}
