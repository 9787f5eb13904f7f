/**
 * The names of PHO's proxies (computed in proxy.ts), and the proxy PHO uses by default with the
 * sign it uses it with. Both come from proxy validation on stories260K (see RESULTS.md, "Proxy
 * validation"): the sign is that of the measured Spearman correlation between the proxy and
 * held-out perplexity. Nothing here loads the engine, so the command line can list the names.
 */
export const PROXY_NAMES = ['gini-own', 'gini-ref', 'pruned-mass', 'column-gini', 'output-error'] as const;
export type ProxyName = (typeof PROXY_NAMES)[number];

// Measured (RESULTS.md, 40 random configurations at 50 % unstructured, held-out PTB valid):
// Spearman ρ with PPL: gini-ref +0.58 [0.28, 0.80], pruned-mass +0.56, output-error +0.51,
// column-gini +0.42, gini-own −0.12 [−0.45, 0.22]. gini-ref tracks PPL best, with a positive sign:
// a lower Gini of the reference importance on the pruned set goes with a lower PPL.
export const DEFAULT_PROXY: { name: ProxyName; sign: 1 | -1 } = { name: 'gini-ref', sign: 1 };
