/** Magnitude pruning score: |W_ij| (no calibration statistics). */

export function magnitudeScores(weights: Float32Array, dOut: number, dIn: number, out?: Float32Array): Float32Array {
  if (weights.length !== dOut * dIn) throw new Error(`magnitudeScores: expected ${dOut}×${dIn} weights, got ${weights.length}`);
  const scores = out ?? new Float32Array(weights.length);
  if (scores.length !== weights.length) throw new Error(`magnitudeScores: output buffer has ${scores.length} entries`);
  for (let p = 0; p < weights.length; p++) scores[p] = Math.abs(weights[p]);
  return scores;
}
