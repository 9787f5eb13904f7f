/** Magnitude pruning score: |W_ij| (no calibration statistics). */

export function magnitudeScores(weights: Float32Array, dOut: number, dIn: number): Float32Array {
  if (weights.length !== dOut * dIn) throw new Error(`magnitudeScores: expected ${dOut}×${dIn} weights, got ${weights.length}`);
  const scores = new Float32Array(weights.length);
  for (let p = 0; p < weights.length; p++) scores[p] = Math.abs(weights[p]);
  return scores;
}
