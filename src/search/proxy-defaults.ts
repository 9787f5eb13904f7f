/**
 * The names of PHO's proxies (computed in proxy.ts), and the proxy PHO uses by default with the
 * sign it uses it with. Both come from proxy validation on stories260K (see RESULTS.md, "Proxy
 * validation"): the sign is that of the measured Spearman correlation between the proxy and
 * held-out perplexity. Nothing here loads the engine, so the command line can list the names.
 */
import { LINEAR_NAMES, linearShape, type ModelSpec } from '../model/spec.ts';
import { checkField } from '../util/errors.ts';
import { describeValue } from '../util/fields.ts';

export const LINEAR_PROXY_NAMES = ['gini-own', 'gini-ref', 'pruned-mass', 'column-gini', 'output-error'] as const;
/** Proxies computed per linear (proxy-measures.ts) and averaged over the linears. */
export type LinearProxyName = (typeof LINEAR_PROXY_NAMES)[number];
/** All proxies: the per-linear ones and calib-nll, the pruned model's NLL on calibration windows (proxy-e2e.ts). */
export const PROXY_NAMES = [...LINEAR_PROXY_NAMES, 'calib-nll'] as const;
export type ProxyName = (typeof PROXY_NAMES)[number];

/** Throws a FieldError naming `field` unless `name` is one of PROXY_NAMES. */
export function checkProxyName(field: string, name: unknown): asserts name is ProxyName {
  checkField((PROXY_NAMES as readonly unknown[]).includes(name), field, () => `${describeValue(name)} is unknown; expected one of ${PROXY_NAMES.join(', ')}`);
}
export const isLinearProxy = (name: ProxyName): name is LinearProxyName => name !== 'calib-nll';

// The cheapest well-validated proxy: one pass over each linear's cached terms, no forward pass.
// Measured (RESULTS.md, 32 random configurations at 50 % unstructured, held-out PTB valid):
// Spearman ρ with PPL gini-ref +0.59 [0.24, 0.82], pruned-mass +0.60, output-error +0.52,
// column-gini +0.53, gini-own −0.11 [−0.48, 0.26]: a lower Gini of the reference importance on the
// pruned set goes with a lower PPL. The benchmarks time it; `--auto` searches with it.
export const DEFAULT_PROXY: { name: ProxyName; sign: 1 | -1 } = { name: 'gini-ref', sign: 1 };

export interface ProxyChoice {
  name: ProxyName;
  sign: 1 | -1;
  /** The validation the choice rests on (RESULTS.md, "Proxy validation"). */
  evidence: string;
}

/**
 * The most forward-pass work a search may spend on calib-nll for it to be the default: 10¹⁴ FLOPs,
 * about 10 minutes on two CPU cores. Beyond it (from about 10⁸ weights at the default budget of
 * 300 candidates with 8 windows of 256 tokens, 10⁷ with windows of 2048) the forward passes would
 * make PHO a matter of hours, the cost it exists to avoid.
 */
export const CALIB_NLL_DEFAULT_MAX_FLOPS = 1e14;

/** Weights of the linears PHO scores: every block's seven (the head and embeddings are never pruned). */
export function linearWeights(spec: ModelSpec): number {
  let weights = 0;
  for (const name of LINEAR_NAMES) {
    const [dOut, dIn] = linearShape(spec, name);
    weights += spec.numLayers * dOut * dIn;
  }
  return weights;
}

/** FLOPs of calib-nll's forward passes over a whole search: 2 per weight of the linears and the head, per token, per candidate. */
export function calibNllSearchFlops(spec: ModelSpec, tokensPerCandidate: number, candidates: number): number {
  return 2 * (linearWeights(spec) + spec.vocabSize * spec.hiddenSize) * tokensPerCandidate * candidates;
}

/**
 * The most weights a per-linear proxy may visit over a whole search by default (linear weights ×
 * fraction of rows × candidates): 2 × 10¹¹, about 16 minutes on two CPU cores at the ≈ 210 M
 * weights/s measured on Llama-2-7B shapes (BENCHMARKS.md, "PHO at scale"). Beyond it, from about
 * 7 × 10⁸ weights at PHO's 300 candidates, the default is a fixed random subset of each linear's
 * rows (`defaultProxyRows`): all rows of a 7B model would take about 3 hours.
 */
export const PER_LINEAR_DEFAULT_MAX_VISITS = 2e11;
/** The smallest default row fraction: 41 rows of a 4096-row linear. */
export const MIN_DEFAULT_PROXY_ROWS = 0.01;

/** A row fraction as people read it: 0.1 → '10 %'. */
export const rowsPercent = (rows: number): string => `${+(rows * 100).toPrecision(2)} %`;

/**
 * The fraction of each linear's rows a per-linear proxy runs on when none is given: 1 while all
 * rows stay within PER_LINEAR_DEFAULT_MAX_VISITS over `candidates`, else the largest fraction of
 * one significant digit within it (a value a user can type, and one cache subset for every search
 * of that size), at least MIN_DEFAULT_PROXY_ROWS. Measured fidelity of a subset, Spearman ρ with
 * the proxy on all rows over 32 configurations: 1.000 on Llama-2-7B shapes at 0.1 (BENCHMARKS.md),
 * and on stories260K's 64–172-row linears in RESULTS.md, "Proxy validation".
 */
export function defaultProxyRows(spec: ModelSpec, candidates: number): number {
  const fraction = PER_LINEAR_DEFAULT_MAX_VISITS / (linearWeights(spec) * candidates);
  if (fraction >= 1) return 1;
  const scale = 10 ** Math.floor(Math.log10(fraction));
  return Math.max(MIN_DEFAULT_PROXY_ROWS, Number((Math.floor(fraction / scale) * scale).toPrecision(1)));
}

/**
 * PHO's proxy for a target when none is named: the one with the strongest Spearman ρ with held-out
 * PPL in that target's validation (stories260K, 32 random configurations, C4 32 × 256 seed 0, PTB
 * valid), with the sign of that ρ. Unstructured sparsities up to 55 % use the 50 % validation,
 * higher ones the 60 % validation, N:M patterns the 2:4 validation. Where that is calib-nll and
 * its forward passes would cost the search more than CALIB_NLL_DEFAULT_MAX_FLOPS
 * (`calibNllFlops`), the per-linear pruned-mass instead, which needs no forward pass.
 */
export function defaultProxy(target: { kind: 'unstructured'; sparsity: number } | { kind: 'nm'; n: number; m: number }, calibNllFlops = 0): ProxyChoice {
  const validated = target.kind === 'nm' ? DEFAULT_PROXY_2_4 : target.sparsity <= 0.55 ? DEFAULT_PROXY_50 : DEFAULT_PROXY_60;
  if (validated.name !== 'calib-nll' || calibNllFlops <= CALIB_NLL_DEFAULT_MAX_FLOPS) return validated;
  const fallback = target.kind === 'nm' ? PER_LINEAR_2_4 : PER_LINEAR_50;
  return {
    ...fallback,
    evidence: `${fallback.evidence}; calib-nll (${validated.evidence}) would spend ${(calibNllFlops / 1e12).toFixed(0)} TFLOP on forward passes in this search, `
      + `more than the ${CALIB_NLL_DEFAULT_MAX_FLOPS / 1e12} TFLOP a default may`,
  };
}

const DEFAULT_PROXY_50: ProxyChoice = { name: 'calib-nll', sign: 1, evidence: '50 % validation: calib-nll Spearman ρ +0.81 [0.56, 0.94] (gini-ref +0.59)' };
const DEFAULT_PROXY_60: ProxyChoice = { name: 'pruned-mass', sign: 1, evidence: '60 % validation: pruned-mass Spearman ρ +0.80 [0.60, 0.89] (calib-nll +0.74)' };
// At 2:4 no proxy's Spearman ρ is significant (see RESULTS.md: a configuration's 2:4 perplexity moves
// as much with the calibration draw as across configurations). calib-nll ties gini-own on ρ and is
// the only proxy whose Spearman and Pearson agree in sign with an interval of r above zero.
const DEFAULT_PROXY_2_4: ProxyChoice = { name: 'calib-nll', sign: 1, evidence: '2:4 validation: calib-nll Spearman ρ +0.29 [−0.10, 0.60], Pearson r +0.44 [0.02, 0.69]' };
// Where calib-nll costs too much: pruned-mass, the per-linear proxy with the strongest ρ at 50 % (and
// the default above 55 %). At 2:4 no per-linear proxy tracks PPL (every interval spans 0).
const PER_LINEAR_50: ProxyChoice = { name: 'pruned-mass', sign: 1, evidence: '50 % validation: pruned-mass Spearman ρ +0.60 [0.25, 0.83], the strongest per-linear proxy' };
const PER_LINEAR_2_4: ProxyChoice = { name: 'pruned-mass', sign: 1, evidence: '2:4 validation: no per-linear proxy significant (pruned-mass Spearman ρ −0.08 [−0.41, 0.28], Pearson r +0.35 [−0.42, 0.61])' };
