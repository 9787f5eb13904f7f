/**
 * The names of PHO's proxies (computed in proxy.ts), and the proxy PHO uses by default with the
 * sign it uses it with. Both come from proxy validation on stories260K (see RESULTS.md, "Proxy
 * validation"): the sign is that of the measured Spearman correlation between the proxy and
 * held-out perplexity. Nothing here loads the engine, so the command line can list the names.
 */
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
 * PHO's proxy for a target when none is named: the one with the strongest Spearman ρ with held-out
 * PPL in that target's validation (stories260K, 32 random configurations, C4 32 × 256 seed 0, PTB
 * valid), with the sign of that ρ. Unstructured sparsities up to 55 % use the 50 % validation,
 * higher ones the 60 % validation, N:M patterns the 2:4 validation.
 */
export function defaultProxy(target: { kind: 'unstructured'; sparsity: number } | { kind: 'nm'; n: number; m: number }): ProxyChoice {
  if (target.kind === 'nm') return DEFAULT_PROXY_2_4;
  return target.sparsity <= 0.55 ? DEFAULT_PROXY_50 : DEFAULT_PROXY_60;
}

const DEFAULT_PROXY_50: ProxyChoice = { name: 'calib-nll', sign: 1, evidence: '50 % validation: calib-nll Spearman ρ +0.81 [0.56, 0.94] (gini-ref +0.59)' };
const DEFAULT_PROXY_60: ProxyChoice = { name: 'pruned-mass', sign: 1, evidence: '60 % validation: pruned-mass Spearman ρ +0.80 [0.60, 0.89] (calib-nll +0.74)' };
// At 2:4 no proxy's Spearman ρ is significant (see RESULTS.md: a configuration's 2:4 perplexity moves
// as much with the calibration draw as across configurations). calib-nll ties gini-own on ρ and is
// the only proxy whose Spearman and Pearson agree in sign with an interval of r above zero.
const DEFAULT_PROXY_2_4: ProxyChoice = { name: 'calib-nll', sign: 1, evidence: '2:4 validation: calib-nll Spearman ρ +0.29 [−0.10, 0.60], Pearson r +0.44 [0.02, 0.69]' };
