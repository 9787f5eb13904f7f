/**
 * The proxy PHO uses by default, and the sign with which it uses it. Both come from proxy
 * validation on stories260K (see RESULTS.md, "Proxy validation"): the sign is that of the measured
 * Spearman correlation between the proxy and held-out perplexity.
 */
import type { ProxyName } from './proxy.ts';

export const DEFAULT_PROXY: { name: ProxyName; sign: 1 | -1 } = { name: 'gini-own', sign: 1 };
