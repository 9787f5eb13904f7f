/**
 * OWL: outlier-weighted layer-wise sparsity (ALGORITHMS.md §5). Layers with more activation
 * outliers (Wanda scores far above the block mean) are pruned less; the mean sparsity over layers
 * stays the requested target.
 *
 * Where crepe differs from the reference (luuyin/OWL), deliberately:
 *   - all layers with the same outlier ratio: the reference divides by zero; crepe returns the
 *     uniform target (uniform n for N:M);
 *   - a mapping that gives some layer a sparsity ≤ 0 or ≥ 1: the reference silently clips ≤ 0 to
 *     0.01 (changing the mean); crepe refuses with an error naming owl.lambda;
 *   - the mean of the scores is taken in float64 (the reference: a float32 torch.mean).
 */
import { describeValue } from '../util/fields.ts';
import { checkField, invariant } from '../util/errors.ts';
import type { PruneTarget } from './target.ts';

/** OWL's settings: the outlier threshold M (× the block's mean score) and the spread λ. */
export interface OwlSettings {
  m: number;
  lambda: number;
}

/** Checks OWL's settings against the run's target; errors name `owl.m` / `owl.lambda`. */
export function validateOwl(owl: OwlSettings, target: PruneTarget): void {
  checkField(Number.isFinite(owl.m) && owl.m > 0, 'owl.m', `(the outlier threshold M) must be a positive number, got ${describeValue(owl.m)}`);
  checkOwlLambda(owl.lambda, target);
}

/** λ must lie in (0, target sparsity) for unstructured targets and be positive for N:M. */
function checkOwlLambda(lambda: number, target: PruneTarget): void {
  if (target.kind === 'unstructured') {
    const s = target.sparsity;
    checkField(Number.isFinite(lambda) && lambda > 0 && lambda < s, 'owl.lambda', `must be in (0, ${s}) for sparsity ${s}, got ${describeValue(lambda)}`);
  } else {
    checkField(Number.isFinite(lambda) && lambda > 0, 'owl.lambda', `must be a positive number, got ${describeValue(lambda)}`);
  }
}

/**
 * Layer outlier ratio D = 100 · #{z > M·mean(z)} / |z| over the concatenation of every linear's
 * Wanda scores in the block (two passes over the arrays; nothing is concatenated).
 */
export function outlierRatio(scoresOfBlock: Float32Array[], M: number): number {
  let total = 0;
  let count = 0;
  for (const scores of scoresOfBlock) {
    for (let p = 0; p < scores.length; p++) total += scores[p];
    count += scores.length;
  }
  invariant(count > 0, 'outlierRatio: the block has no scores');
  const threshold = M * (total / count);
  let outliers = 0;
  for (const scores of scoresOfBlock) {
    for (let p = 0; p < scores.length; p++) if (scores[p] > threshold) outliers++;
  }
  return (100 * outliers) / count;
}

/**
 * Per-layer sparsities: r_ℓ = (D_ℓ − min D)/(max D − min D) · 2λ, sparsity_ℓ = S − (r_ℓ − mean r).
 * Their mean is S and their spread (max − min) is exactly 2λ.
 */
export function owlSparsities(ratios: number[], target: number, lambda: number): number[] {
  checkOwlLambda(lambda, { kind: 'unstructured', sparsity: target });
  const scaled = minMaxScaled(ratios, 2 * lambda);
  if (scaled === null) return ratios.map(() => target);
  const meanScaled = mean(scaled);
  const sparsities = scaled.map((r) => target - (r - meanScaled));
  sparsities.forEach((s, layer) => {
    checkField(
      s > 0 && s < 1,
      'owl.lambda',
      () => `${lambda} gives layer ${layer} a sparsity of ${s.toFixed(4)} (target ${target}); ` +
        'every layer needs a sparsity strictly between 0 and 1 — choose a smaller λ',
    );
  });
  return sparsities;
}

/**
 * N:M variant: r_ℓ = (D_ℓ − min)/(max − min) · λ, r_ℓ ← round(r_ℓ − mean r) (half to even, as
 * numpy), n_ℓ = n − r_ℓ. More outliers → fewer pruned per group.
 */
export function owlNMPerLayer(ratios: number[], n: number, m: number, lambda: number): number[] {
  checkOwlLambda(lambda, { kind: 'nm', n, m });
  const scaled = minMaxScaled(ratios, lambda);
  if (scaled === null) return ratios.map(() => n);
  const meanScaled = mean(scaled);
  const perLayerN = scaled.map((r) => n - roundHalfToEven(r - meanScaled));
  perLayerN.forEach((layerN, layer) => {
    checkField(
      layerN >= 1 && layerN <= m - 1,
      'owl.lambda',
      () => `${lambda} gives layer ${layer} the pattern ${layerN}:${m}; ` +
        `every layer needs between 1 and ${m - 1} pruned per group of ${m} — choose a smaller λ`,
    );
  });
  return perLayerN;
}

/** (x − min)/(max − min) · span, or null when all ratios are equal (no layer stands out). */
function minMaxScaled(ratios: number[], span: number): number[] | null {
  invariant(ratios.length > 0, 'OWL: no layers');
  for (const r of ratios) invariant(Number.isFinite(r), () => `OWL: outlier ratio ${r} is not finite`);
  const min = Math.min(...ratios);
  const max = Math.max(...ratios);
  if (max === min) return null;
  return ratios.map((r) => ((r - min) / (max - min)) * span);
}

function mean(values: number[]): number {
  let total = 0;
  for (const v of values) total += v;
  return total / values.length;
}

/** numpy.round: halves go to the even neighbour. */
export function roundHalfToEven(x: number): number {
  const floor = Math.floor(x);
  const fraction = x - floor;
  if (fraction > 0.5) return floor + 1;
  if (fraction < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}
