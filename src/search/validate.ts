/**
 * Proxy validation: what is a proxy worth? Draw N random configurations, compute every proxy (from
 * the cached dense statistics) and the real held-out perplexity (full prune) of each, and report
 * Spearman and Pearson correlations with bootstrap confidence intervals. The sign PHO uses for a
 * proxy is the sign of its Spearman ρ with PPL.
 */
import type { CrepeParams } from '../prune/scores/crepe.ts';
import { Rng } from '../util/rng.ts';
import { bootstrapCI, pearson, spearman, type ConfidenceInterval } from '../util/stats.ts';
import { type ProxyContext, type ProxyName, type ProxyOptions } from './proxy.ts';
import { EXPONENT_RANGE, LOG_RATIO_RANGE, toParams, type SearchSpace } from './space.ts';

export interface ValidationPoint {
  params: CrepeParams;
  proxies: Record<ProxyName, number>;
  ppl: number;
  trialSeconds: number;
}

export interface ProxyCorrelation {
  proxy: ProxyName;
  spearman: ConfidenceInterval;
  pearson: ConfidenceInterval;
  /** +1 when a lower proxy goes with lower PPL (minimise it), −1 when higher does. */
  sign: 1 | -1;
}

export interface ValidationResult {
  points: ValidationPoint[];
  correlations: ProxyCorrelation[];
}

/** Random configurations spread over the search box (log-ratios uniform, k uniform over the set). */
export function randomConfigurations(count: number, kSet: number[], space: SearchSpace, seed: number): CrepeParams[] {
  const rng = new Rng(seed);
  const uniform = ([lo, hi]: readonly [number, number]) => lo + (hi - lo) * rng.uniform();
  // Log-ratios are drawn from the part of the box where every term still matters.
  const ratioRange: [number, number] = [Math.max(LOG_RATIO_RANGE[0], -6), Math.min(LOG_RATIO_RANGE[1], 4)];
  return Array.from({ length: count }, () => {
    const k = kSet[rng.below(kSet.length)];
    const x = [uniform(ratioRange), uniform(ratioRange), uniform(EXPONENT_RANGE)];
    return toParams(x, k, space);
  });
}

export async function validateProxies(
  context: ProxyContext,
  configurations: CrepeParams[],
  proxyOptions: ProxyOptions,
  trial: (params: CrepeParams) => Promise<{ ppl: number }>,
  opts: { bootstrapSeed: number; onPoint?: (p: ValidationPoint, index: number) => void },
): Promise<ValidationResult> {
  const points: ValidationPoint[] = [];
  for (const params of configurations) {
    const proxies = context.evaluate(params, proxyOptions).values;
    const t = performance.now();
    const { ppl } = await trial(params);
    const point = { params, proxies, ppl, trialSeconds: (performance.now() - t) / 1000 };
    points.push(point);
    opts.onPoint?.(point, points.length - 1);
  }
  const ppl = points.map((p) => p.ppl);
  const correlations = context.availableProxies.map((proxy): ProxyCorrelation => {
    const values = points.map((p) => p.proxies[proxy]);
    const rho = bootstrapCI(values, ppl, spearman, { seed: opts.bootstrapSeed });
    const r = bootstrapCI(values, ppl, pearson, { seed: opts.bootstrapSeed });
    return { proxy, spearman: rho, pearson: r, sign: rho.estimate >= 0 ? 1 : -1 };
  });
  return { points, correlations };
}
