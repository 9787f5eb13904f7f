/** Magnitude pruning score: |W_ij| (no calibration statistics). */
import { checkScoreArguments } from './index.ts';

export function magnitudeScores(weights: Float32Array, dOut: number, dIn: number, out?: Float32Array): Float32Array {
  checkScoreArguments(weights, dOut, dIn, out);
  const scores = out ?? new Float32Array(weights.length);
  for (let p = 0; p < weights.length; p++) scores[p] = Math.abs(weights[p]);
  return scores;
}
