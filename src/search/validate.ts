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
import { isLinearProxy } from './proxy-defaults.ts';
import { EXPONENT_RANGE, LOG_RATIO_RANGE, toParams, type SearchSpace } from './space.ts';

export interface ValidationPoint {
  params: CrepeParams;
  proxies: Record<ProxyName, number>;
  /** The proxies on the row subset (when validating --proxy-rows). */
  subsampledProxies?: Record<ProxyName, number>;
  ppl: number;
  trialSeconds: number;
  /** Seconds of the proxy evaluation (all proxies), and of the row-subset one. */
  proxySeconds: number;
  subsampledProxySeconds?: number;
}

export interface ProxyCorrelation {
  proxy: ProxyName;
  spearman: ConfidenceInterval;
  pearson: ConfidenceInterval;
  /** +1 when a lower proxy goes with lower PPL (minimise it), −1 when higher does. */
  sign: 1 | -1;
}

/** What evaluating the proxies on a fraction of the rows costs in fidelity. */
export interface SubsampleFidelity {
  rows: number;
  proxies: Array<{
    proxy: ProxyName;
    /** Spearman ρ between the subsampled and the full proxy over the validation configurations. */
    spearmanWithFull: number;
    /** Spearman ρ of the subsampled proxy with held-out PPL. */
    spearman: ConfidenceInterval;
  }>;
}

export interface ValidationResult {
  points: ValidationPoint[];
  correlations: ProxyCorrelation[];
  subsample: SubsampleFidelity | null;
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
  opts: { bootstrapSeed: number; onPoint?: (p: ValidationPoint, index: number) => void; rows?: number },
): Promise<ValidationResult> {
  const rows = opts.rows ?? 1;
  const points: ValidationPoint[] = [];
  // A row subset changes only the per-linear proxies (calib-nll runs the whole model).
  const rowProxies = context.availableProxies.filter(isLinearProxy);
  for (const params of configurations) {
    let t = performance.now();
    const proxies = (await context.evaluate(params, { ...proxyOptions, rows: 1 })).values;
    const proxySeconds = (performance.now() - t) / 1000;
    const point: ValidationPoint = { params, proxies, ppl: Number.NaN, trialSeconds: 0, proxySeconds };
    if (rows < 1) {
      t = performance.now();
      point.subsampledProxies = (await context.evaluate(params, { ...proxyOptions, rows }, rowProxies)).values;
      point.subsampledProxySeconds = (performance.now() - t) / 1000;
    }
    t = performance.now();
    point.ppl = (await trial(params)).ppl;
    point.trialSeconds = (performance.now() - t) / 1000;
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
  const subsample = rows < 1
    ? {
        rows,
        proxies: rowProxies.map((proxy) => {
          const values = points.map((p) => p.subsampledProxies![proxy]);
          return {
            proxy,
            spearmanWithFull: spearman(values, points.map((p) => p.proxies[proxy])),
            spearman: bootstrapCI(values, ppl, spearman, { seed: opts.bootstrapSeed }),
          };
        }),
      }
    : null;
  return { points, correlations, subsample };
}
