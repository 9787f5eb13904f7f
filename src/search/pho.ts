/**
 * PHO — Proxy-based Hyperparameter Optimization: for each window size k, CMA-ES minimises
 * sign · proxy over (log β/α, log γ/α[, a]) using the cached dense statistics only. The sign says
 * whether a high or a low proxy goes with low perplexity; it comes from proxy validation.
 */
import { checkWindowSizes, type CrepeParams } from '../prune/scores/crepe.ts';
import { checkField } from '../util/errors.ts';
import { checkFunction, checkInteger, checkKnownFields, describeValue, hasMethods } from '../util/fields.ts';
import { checkProxyName } from './proxy-defaults.ts';
import { CmaEs, cmaesConstants } from './cmaes.ts';
import type { EngineOptions } from '../engine/session.ts';
import type { ModelSource } from '../model/source.ts';
import type { PruneSettings } from '../prune/settings.ts';
import type { ProxyContext, ProxyName, ProxyOptions } from './proxy.ts';
import { measurePruned, pruneAndMeasure, type HeldOutText } from './trial.ts';
import { checkProxyOptions } from './proxy-measures.ts';
import { checkLogStep, checkSearchSpace, checkSearchStart, startPoint, toParams, type SearchSpace } from './space.ts';

export interface PhoOptions extends ProxyOptions {
  kSet: number[];
  /** Proxy evaluations per window size, rounded up to whole CMA-ES generations (phoEvaluationsPerK). */
  budgetPerK: number;
  proxy: ProxyName;
  /** +1: lower proxy is better; −1: higher proxy is better. */
  sign: 1 | -1;
  space: SearchSpace;
  sigma0: number;
  /** Start from this configuration's point instead of the RIA-like default. */
  start?: CrepeParams;
  /**
   * Race the window sizes: after one CMA-ES generation at every k, only the `race` window sizes
   * with the lowest objective so far continue to `budgetPerK` (default: every one continues).
   */
  race?: number;
}

export interface PhoCandidate {
  k: number;
  generation: number;
  params: CrepeParams;
  proxies: Record<ProxyName, number>;
  objective: number;
  seconds: number;
}

export interface PhoResult {
  best: PhoCandidate;
  bestPerK: PhoCandidate[];
  candidates: PhoCandidate[];
  seconds: { total: number; score: number; select: number; gini: number; forward: number };
}

/**
 * The proxy evaluations PHO makes per window size for `budgetPerK`: CMA-ES evaluates whole
 * generations of its population size λ (6 candidates in the two-coordinate space, 7 with a), so the
 * budget is rounded up to a multiple of λ. An upper bound: CMA-ES can stop earlier, on convergence.
 */
export function phoEvaluationsPerK(budgetPerK: number, space: SearchSpace): number {
  const { lambda } = cmaesConstants(startPoint(space).length);
  return Math.ceil(budgetPerK / lambda) * lambda;
}

/** The proxy evaluations of a whole PHO search (an upper bound, as phoEvaluationsPerK): with `race`, one generation at the window sizes that do not continue. */
export function phoEvaluations(budgetPerK: number, space: SearchSpace, kCount: number, race = kCount): number {
  const continuing = Math.min(race, kCount);
  return continuing * phoEvaluationsPerK(budgetPerK, space) + (kCount - continuing) * phoEvaluationsPerK(1, space);
}

const PHO_OPTIONS = ['kSet', 'budgetPerK', 'proxy', 'sign', 'space', 'sigma0', 'start', 'race', 'target', 'selection', 'giniSubsample', 'seed', 'rows'];

export async function runPho(context: ProxyContext, opts: PhoOptions, onCandidate?: (c: PhoCandidate) => void): Promise<PhoResult> {
  // A caller's options, checked before the first candidate: an unknown proxy or a sign of 0 would
  // make every objective NaN or 0, and the search would return its start point as the best.
  checkKnownFields(opts, '', PHO_OPTIONS);
  checkWindowSizes('kSet', opts.kSet);
  checkInteger('budgetPerK', opts.budgetPerK, 1);
  if (opts.race !== undefined) checkInteger('race', opts.race, 1);
  checkProxyName('proxy', opts.proxy);
  checkField(opts.sign === 1 || opts.sign === -1, 'sign', () => `must be 1 or -1, got ${describeValue(opts.sign)}`);
  checkLogStep('sigma0', opts.sigma0);
  checkProxyOptions(opts);
  checkSearchSpace('space', opts.space);
  const start = opts.start === undefined ? undefined : checkSearchStart('start', opts.start);
  checkFunction('onCandidate', onCandidate);
  checkField(hasMethods(context, ['evaluateMany']), 'context', () => `must be an open ProxyContext, got ${describeValue(context)}`);
  const started = performance.now();
  const candidates: PhoCandidate[] = [];
  const seconds = { total: 0, score: 0, select: 0, gini: 0, forward: 0 };

  // One CMA-ES per window size, seeded by k. With `race`, every size runs its first generation, and
  // only the `race` sizes with the lowest objective so far run the rest.
  const runs = opts.kSet.map((k) => ({ k, es: new CmaEs(startPoint(opts.space, start), opts.sigma0, { seed: opts.seed + k, maxEvaluations: opts.budgetPerK }), best: null as PhoCandidate | null }));
  const generation = async (run: (typeof runs)[number]): Promise<void> => {
    // The generation is evaluated together (the cache read once for all of it); its candidates
    // are reported in order, each with an equal share of the generation's time.
    const { k, es } = run;
    const t = performance.now();
    const points = es.ask();
    const paramsList = points.map((x) => toParams(x, k, opts.space));
    const evaluations = await context.evaluateMany(paramsList, opts, [opts.proxy]);
    const share = (performance.now() - t) / 1000 / points.length;
    const told: { x: Float64Array; value: number }[] = [];
    for (const [i, x] of points.entries()) {
      const evaluation = evaluations[i];
      seconds.score += evaluation.seconds.score;
      seconds.select += evaluation.seconds.select;
      seconds.gini += evaluation.seconds.gini;
      seconds.forward += evaluation.seconds.forward;
      const candidate: PhoCandidate = {
        k,
        generation: es.generation,
        params: paramsList[i],
        proxies: evaluation.values,
        objective: opts.sign * evaluation.values[opts.proxy],
        seconds: share,
      };
      candidates.push(candidate);
      onCandidate?.(candidate);
      if (!run.best || candidate.objective < run.best.objective) run.best = candidate;
      told.push({ x, value: candidate.objective });
    }
    es.tell(told);
  };
  let continuing = runs;
  if (opts.race !== undefined && opts.race < runs.length) {
    for (const run of runs) if (run.es.shouldStop() === null) await generation(run);
    const ranked = [...runs].sort((a, b) => (a.best?.objective ?? Infinity) - (b.best?.objective ?? Infinity));
    const kept = new Set(ranked.slice(0, opts.race));
    continuing = runs.filter((run) => kept.has(run));
  }
  for (const run of continuing) {
    while (run.es.shouldStop() === null) await generation(run);
  }
  const bestPerK = runs.flatMap((run) => (run.best ? [run.best] : []));
  const best = bestPerK.reduce((a, b) => (b.objective < a.objective ? b : a));
  seconds.total = (performance.now() - started) / 1000;
  return { best, bestPerK, candidates, seconds };
}

export interface Confirmation {
  /** 'pho': a best-per-k candidate; 'start': the search's start configuration (objective NaN). */
  source: 'pho' | 'start';
  params: CrepeParams;
  objective: number;
  /** Real perplexity on held-out text. */
  ppl: number;
  seconds: number;
  /**
   * 'dense pass': the pruned model measured is the one the dense pass pruned layer by layer to take
   * its statistics (the same prune, kept), not pruned a second time; absent: pruned for this trial.
   */
  prune?: 'dense pass';
}

export type ShortlistEntry = Pick<Confirmation, 'source' | 'params' | 'objective'>;

/**
 * PHO's confirmation shortlist: the best candidate of each of the `count` best window sizes (by
 * objective), then `start` (the configuration the search started from, objective NaN) unless it is
 * one of them. Its length is the number of confirmation trials.
 */
export function confirmationShortlist(result: PhoResult, count: number, start?: CrepeParams): ShortlistEntry[] {
  const shortlist: ShortlistEntry[] = [...result.bestPerK]
    .sort((a, b) => a.objective - b.objective).slice(0, count).map((c) => ({ source: 'pho', params: c.params, objective: c.objective }));
  const same = (a: CrepeParams, b: CrepeParams) => JSON.stringify(a) === JSON.stringify(b);
  if (start && !shortlist.some((c) => same(c.params, start))) shortlist.push({ source: 'start', params: start, objective: Number.NaN });
  return shortlist;
}

/**
 * PHO's confirmation step: each shortlisted configuration (`confirmationShortlist`) gets one real
 * trial on held-out text, in order; the caller keeps the lowest PPL. A handful of trials instead of
 * a climb guards against a proxy optimum that real perplexity disagrees with, and the start guards
 * the result: never worse than where the search began, on that text.
 */
export async function confirmOnHeldOut(
  shortlist: readonly ShortlistEntry[],
  trial: ConfirmationTrial,
  onConfirmation?: (c: Confirmation, index: number) => void,
): Promise<Confirmation[]> {
  const confirmations: Confirmation[] = [];
  for (const candidate of shortlist) {
    const measured = await trial(candidate.params);
    const confirmation: Confirmation = {
      source: candidate.source, params: candidate.params, objective: candidate.objective, ppl: measured.ppl, seconds: measured.seconds,
      ...(measured.prune ? { prune: measured.prune } : {}),
    };
    confirmations.push(confirmation);
    onConfirmation?.(confirmation, confirmations.length - 1);
  }
  return confirmations;
}

/** What a confirmation trial measures: its perplexity, seconds, and whether it measured the dense pass's own prune. */
export type ConfirmationTrial = (params: CrepeParams) => Promise<{ ppl: number; seconds: number; prune?: 'dense pass' }>;

/**
 * PHO's confirmation trial on `text`, as `statistics` says: 'sequential', the real prune
 * (`settingsFor(params)` on the calibration `windows`) and its perplexity, except that the
 * configuration the dense pass pruned to take its statistics (ProxyContext.statisticsPrune) is
 * measured as that pass pruned it, without pruning again (the same result, bit for bit); 'dense',
 * the candidate pruned with the dense pass's statistics (ProxyContext.prunedPerplexity).
 */
export function confirmationTrial(
  context: ProxyContext,
  statistics: 'dense' | 'sequential',
  run: { model: ModelSource; settingsFor: (params: CrepeParams) => PruneSettings; windows: Int32Array[]; text: HeldOutText; engine: EngineOptions; options: ProxyOptions },
): ConfirmationTrial {
  const { settingsFor, windows, text, engine, options } = run;
  if (statistics === 'dense') return (params) => context.prunedPerplexity(params, options, text.tokens, text);
  // The embedding and head calib-nll keeps, not read again per trial.
  const model = context.modelWithEnds ?? run.model;
  return async (params) => {
    const settings = settingsFor(params);
    const blocks = context.statisticsPrune(settings, windows, engine);
    return blocks
      ? { ...(await measurePruned(model, blocks, text, engine)), prune: 'dense pass' }
      : pruneAndMeasure(model, settings, windows, text, engine);
  };
}
