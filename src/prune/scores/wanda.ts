/**
 * Wanda score (ALGORITHMS.md §2): S_ij = |W_ij| · ‖X_j‖₂, implemented as |W| · sqrt(s_j) with s_j the
 * running mean of Σ_t x²_j per sample (§1.4).
 */
import { checkInputSqNorms, checkScoreArguments, type InputSqNorms } from './index.ts';

export function wandaScores(weights: Float32Array, dOut: number, dIn: number, inputSqNorms: InputSqNorms, out?: Float32Array): Float32Array {
  checkScoreArguments(weights, dOut, dIn, out);
  checkInputSqNorms(inputSqNorms, dIn, 'wanda');
  // The reference multiplies by torch.sqrt of an fp32 tensor: round the factor to fp32 as it does,
  // so that float32 statistics reproduce its scores exactly.
  const inputNorms = new Float64Array(dIn);
  for (let j = 0; j < dIn; j++) inputNorms[j] = Math.fround(Math.sqrt(inputSqNorms[j]));
  const scores = out ?? new Float32Array(weights.length);
  for (let i = 0; i < dOut; i++) {
    const rowStart = i * dIn;
    for (let j = 0; j < dIn; j++) scores[rowStart + j] = Math.abs(weights[rowStart + j]) * inputNorms[j];
  }
  return scores;
}
