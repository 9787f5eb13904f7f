/**
 * PHO's proxy context: the statistics of ONE dense calibration pass, turned into per-linear terms
 * that do not depend on the candidate (proxy-terms.ts) and kept in a cache directory
 * (proxy-cache.ts), so that no forward pass runs inside the search loop and a candidate costs one
 * pass over the terms per linear, the selection and the proxies (proxy-measures.ts), spread over
 * worker threads (proxy-worker.ts).
 *
 * The cache is built layer by layer: each finished layer's files and the activations entering the
 * next layer are on disk before the next starts, so an interrupted build continues at the first
 * unfinished layer. A complete cache is reused as it is by every later search, validation or
 * confirmation on the same model and calibration windows.
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { BlockEngine } from '../engine/block-engine.ts';
import { HeadEngine } from '../engine/head-engine.ts';
import { embedWindows } from '../engine/forward.ts';
import { MAX_THREADS, checkEngineOptions, type EngineOptions } from '../engine/session.ts';
import { ropeTables } from '../model/rope.ts';
import { LINEAR_NAMES, checkSeqlen, checkTokenIds, checkWindows, linearShape, type BlockWeights, type ModelSpec } from '../model/spec.ts';
import { forEachDenseLayer, type DenseLinear } from '../prune/calibration-stats.ts';
import { checkMaskTarget, selectMask } from '../prune/mask.ts';
import type { BlockSource } from '../prune/layer-loop.ts';
import { checkBlockSource, type ModelSource } from '../model/source.ts';
import type { LinearName } from '../model/spec.ts';
import { crepeScores, resolveCrepeParams, type CrepeParams } from '../prune/scores/crepe.ts';
import { pruneSettings, type PruneSettings } from '../prune/settings.ts';
import { windowsSha256 } from '../data/calibration.ts';
import { checkProgress, type Progress } from '../util/progress.ts';
import { check, checkField } from '../util/errors.ts';
import { checkFlag, checkInteger, checkKnownFields, checkNumber, describeValue } from '../util/fields.ts';
import { crepeVersion } from '../util/version.ts';
import { lockOutput, type OutputLock } from '../io/output-lock.ts';
import {
  CACHE_FORMAT, cacheError, hiddenFile, layoutOf, openCacheDir, readArrays, sameRows, subsetDir, subsetName, termsFile, writeArrays, writeManifest,
  type CacheIdentity, type Manifest, type RowSubset, type StatisticsFrom, type TermsLayout, type Unit,
} from './proxy-cache.ts';
import { LINEAR_PROXY_NAMES, PROXIES, PROXY_NAMES, checkProxyOptions, type LinearProxyName, type ProxyName, type ProxyOptions } from './proxy-measures.ts';
import { checkProxyName, isLinearProxy } from './proxy-defaults.ts';
import { CALIB_NLL_WINDOWS, keepingEnds, maskedRead, prunedPerplexity, type LayerPruning } from './proxy-e2e.ts';
import { concatWindows } from './auto.ts';
import { sameWindow, windowKey, type WindowKey, type WindowPrecision } from './proxy-terms.ts';
import { EvaluatorPool, rowSubset, type EvaluationRequest, type UnitPruning } from './proxy-worker.ts';

export { LINEAR_PROXY_NAMES, PROXY_NAMES, type LinearProxyName, type ProxyName, type ProxyOptions } from './proxy-measures.ts';

export interface ProxyValues {
  values: Record<ProxyName, number>;
  /**
   * Seconds spent in each step of the per-linear proxies, summed over the linears (and so over
   * threads); `forward`: calib-nll's pruned forward pass (its masks included).
   */
  seconds: { score: number; select: number; gini: number; forward: number };
}

export interface ProxyContextOptions {
  /** The cache directory: created, continued or reused (when built from the same inputs). */
  cacheDir: string;
  /** Bytes of terms kept in memory between candidates, all threads together. */
  cacheBudgetBytes: number;
  /** Evaluator threads. */
  threads: number;
  /** Identifies the model's weights (e.g. sha256 of the weight files). */
  modelSha256: string;
  /** The calibration text the windows come from (recorded, not compared: the windows are). */
  calibrationFile?: string | null;
  calibrationSeed: number;
  /** Keep XᵀX per linear for the output-error proxy (small models only). */
  withGram: boolean;
  /** Windows calib-nll runs on (the first of `windows`, or of `nllText`; default CALIB_NLL_WINDOWS). */
  nllWindows?: number;
  /**
   * A text calib-nll runs on instead of the calibration windows (its first `nllWindows` windows of
   * `seqlen` tokens): the text a hill climb would climb on, for a search that sees what it sees.
   */
  nllText?: { tokens: Int32Array; seqlen: number };
  /**
   * Take each layer's input statistics from the model pruned layer by layer by this configuration
   * (each layer's inputs made by the layers before it, pruned from their own statistics, as a prune
   * with it makes them) instead of from the dense model: nearer to the statistics a real prune of a
   * nearby candidate sees (RESULTS.md, "Diagnosis 3"). Part of the cache's identity.
   */
  statisticsFrom?: StatisticsFrom;
  /**
   * Neighbourhood terms to prepare with the cache; others are added when a candidate needs them
   * (not to a cache of one row subset: give every window size the run needs).
   */
  windows: WindowKey[];
  /**
   * This run evaluates the per-linear proxies on this row subset only (ProxyOptions.rows and seed):
   * a cache built here then holds that subset's files alone, a fraction of the disk. A cache that
   * holds all rows serves it too; one that holds only a subset serves only runs declaring it.
   */
  rowsOnly?: RowSubset;
  windowPrecision?: WindowPrecision;
  /**
   * The proxies this run asks for (default: any). calib-nll alone: a new cache holds its terms in
   * the natural layout (proxy-cache.ts), which serves masks alone at a lower cost per candidate
   * and dense pass; a cache of the position layout serves it as well. A run that may ask for
   * another converts a natural cache to the position layout when it opens it.
   */
  proxies?: readonly ProxyName[];
  progress?: Progress;
}

export interface CacheReport {
  dir: string;
  /** Layers whose dense statistics this process computed (0 when the cache was complete). */
  layersBuilt: number;
  numLayers: number;
  /** Seconds this process spent on the dense pass; all dense-pass seconds the cache took, restarts included. */
  denseSeconds: number;
  totalDenseSeconds: number;
  /** The one row subset the cache holds (ProxyContextOptions.rowsOnly), or null for all rows. */
  rowsOnly: RowSubset | null;
}

const CONTEXT_OPTIONS: readonly (keyof ProxyContextOptions)[] = [
  'cacheDir', 'cacheBudgetBytes', 'threads', 'modelSha256', 'calibrationFile', 'calibrationSeed', 'withGram', 'nllWindows', 'nllText', 'statisticsFrom', 'windows', 'rowsOnly', 'windowPrecision', 'proxies', 'progress',
];
const WINDOW_PRECISIONS: readonly WindowPrecision[] = ['float32', 'float64'];

/**
 * ProxyContext.open's arguments, named as its parameters (`seqlen`, `opts.cacheDir`), checked
 * before the cache is touched: without a modelSha256 the cache would be keyed on nothing (a cache
 * of another model would be reused), windows of another length than seqlen would run the dense
 * pass on misshapen inputs, and a NaN count of threads would fail inside the pool.
 */
function checkOpenArguments(model: unknown, windows: unknown, seqlen: unknown, engine: unknown, opts: ProxyContextOptions): void {
  checkBlockSource('model', model);
  checkSeqlen('seqlen', seqlen, model.spec);
  checkWindows('windows', windows, seqlen, model.spec);
  checkEngineOptions('engine', engine);
  checkKnownFields(opts, 'opts', CONTEXT_OPTIONS);
  checkField(typeof opts.cacheDir === 'string' && opts.cacheDir.trim() !== '', 'opts.cacheDir', () => `must name a directory, got ${describeValue(opts.cacheDir)}`);
  checkInteger('opts.cacheBudgetBytes', opts.cacheBudgetBytes, 0);
  checkInteger('opts.threads', opts.threads, 1, MAX_THREADS);
  checkField(typeof opts.modelSha256 === 'string' && opts.modelSha256 !== '', 'opts.modelSha256', () => `must identify the model's weights (a non-empty string), got ${describeValue(opts.modelSha256)}`);
  checkField(opts.calibrationFile === undefined || opts.calibrationFile === null || typeof opts.calibrationFile === 'string', 'opts.calibrationFile', () => `must be a file name or null, got ${describeValue(opts.calibrationFile)}`);
  checkInteger('opts.calibrationSeed', opts.calibrationSeed, 0);
  checkFlag('opts.withGram', opts.withGram);
  if (opts.nllWindows !== undefined) checkInteger('opts.nllWindows', opts.nllWindows, 0);
  if (opts.nllText !== undefined) {
    checkKnownFields(opts.nllText, 'opts.nllText', ['tokens', 'seqlen']);
    checkSeqlen('opts.nllText.seqlen', opts.nllText.seqlen, model.spec);
    checkTokenIds('opts.nllText.tokens', opts.nllText.tokens, model.spec);
    checkField(opts.nllText.tokens.length >= opts.nllText.seqlen, 'opts.nllText.tokens', () => `holds ${opts.nllText!.tokens.length} tokens, fewer than one window of ${opts.nllText!.seqlen}`);
  }
  if (opts.rowsOnly !== undefined) {
    checkKnownFields(opts.rowsOnly, 'opts.rowsOnly', ['fraction', 'seed']);
    checkNumber('opts.rowsOnly.fraction', opts.rowsOnly.fraction, [0, 1], { min: true, max: true });
    checkInteger('opts.rowsOnly.seed', opts.rowsOnly.seed, 0);
  }
  if (opts.statisticsFrom !== undefined) {
    checkKnownFields(opts.statisticsFrom, 'opts.statisticsFrom', ['params', 'target', 'selection']);
    checkMaskTarget(opts.statisticsFrom.target, opts.statisticsFrom.selection);
  }
  checkField(Array.isArray(opts.windows), 'opts.windows', () => `must list the neighbourhood terms to prepare (window keys), got ${describeValue(opts.windows)}`);
  opts.windows.forEach((key, i) => {
    const field = `opts.windows[${i}]`;
    checkKnownFields(key, field, ['k', 'variant', 'a']);
    const { k, variant, a } = key;
    // a belongs to smooth windows only (windowKey): null for normalized ones.
    checkField(variant !== 'smooth' || typeof a === 'number', `${field}.a`, () => `must be the activation exponent of a smooth window, got ${describeValue(a)}`);
    checkField(variant === 'smooth' || a === null || a === undefined, `${field}.a`, () => `must be null for a ${describeValue(variant)} window, got ${describeValue(a)}`);
    resolveCrepeParams({ k, variant, ...(typeof a === 'number' && { a }) }, { field });
  });
  if (opts.proxies !== undefined) {
    checkField(Array.isArray(opts.proxies), 'opts.proxies', () => `must list proxy names (some of ${PROXY_NAMES.join(', ')}), got ${describeValue(opts.proxies)}`);
    opts.proxies.forEach((name, i) => checkProxyName(`opts.proxies[${i}]`, name));
  }
  checkField(opts.windowPrecision === undefined || WINDOW_PRECISIONS.includes(opts.windowPrecision), 'opts.windowPrecision', () => `must be one of ${WINDOW_PRECISIONS.join(', ')}, got ${describeValue(opts.windowPrecision)}`);
  checkProgress('opts.progress', opts.progress);
}

export class ProxyContext {
  private constructor(
    private readonly pool: EvaluatorPool,
    private readonly manifest: Manifest,
    private readonly dir: string,
    private readonly withGram: boolean,
    readonly cache: CacheReport,
    private readonly units: Unit[],
    /** What calib-nll runs: the model (with its head) and the windows; null when the model has no head. */
    private readonly endToEnd: { model: ModelSource; tokens: Int32Array; seqlen: number; engine: EngineOptions } | null,
    /** `<cacheDir>.crepe-lock`: one context per cache directory at a time, so no run loses another's manifest entries. */
    private readonly lock: OutputLock,
    /**
     * The model the statistics came from (statisticsFrom), pruned by this context's own dense pass
     * on every layer: its files (each layer's masks; the last layer's statistics, its masks being
     * selected only when asked for) and the engine options the pass ran with; null otherwise.
     */
    private readonly statisticsPruneMasks: { model: BlockSource; files: string[]; engine: EngineOptions } | null,
  ) {}

  /** Set by close(): the evaluator threads are gone, and a request to them would never be answered. */
  private closed = false;

  /** calib-nll's engines, created at its first evaluation and kept for the next ones. */
  private nllEngines: { block: BlockEngine; head: HeadEngine } | null = null;

  /**
   * The model with its embedding, final norm and head kept once read (keepingEnds), as calib-nll
   * reads them: a trial on the model while the context is open reads them from here instead of
   * again. Null for a model without a head.
   */
  get modelWithEnds(): ModelSource | null {
    return this.endToEnd?.model ?? null;
  }

  /** Seconds of dense calibration pass this context cost (0 when the cache was reused). */
  get denseSeconds(): number {
    return this.cache.denseSeconds;
  }

  get threads(): number {
    return this.pool.threads;
  }

  /** The proxies this context can compute (output-error needs the grams; calib-nll a head and every row). */
  get availableProxies(): ProxyName[] {
    const positions = layoutOf(this.manifest) === 'position';
    return PROXY_NAMES.filter((p) => (isLinearProxy(p) ? positions && (!PROXIES[p].needsGram || this.withGram) : this.endToEnd !== null && !this.manifest.rowsOnly));
  }

  /** Bytes the grams of every layer would take (float64), to decide whether output-error is affordable. */
  static gramBytes(spec: ModelSpec): number {
    const widths = [spec.hiddenSize, spec.numHeads * spec.headDim, spec.hiddenSize, spec.intermediateSize];
    return spec.numLayers * widths.reduce((sum, d) => sum + d * d * 8, 0);
  }

  /**
   * Opens the proxy cache for this model and calibration set: reuses it when complete, continues
   * it when a build was interrupted, else runs the dense calibration pass to build it. Refuses
   * (UserError naming the directory) a cache built from other inputs, and one that another live
   * context holds (its lock `<cacheDir>.crepe-lock`, released by close()).
   */
  static async open(model: BlockSource | ModelSource, windows: Int32Array[], seqlen: number, engine: EngineOptions, opts: ProxyContextOptions): Promise<ProxyContext> {
    checkOpenArguments(model, windows, seqlen, engine, opts);
    // The configuration the statistics follow, complete: as the cache's identity records it and as the build prunes with it.
    if (opts.statisticsFrom) opts = { ...opts, statisticsFrom: { ...opts.statisticsFrom, params: resolveCrepeParams(opts.statisticsFrom.params, { field: 'opts.statisticsFrom.params' }) } };
    const { spec } = model;
    const windowPrecision = opts.windowPrecision ?? 'float32';
    const identity: CacheIdentity = {
      format: CACHE_FORMAT,
      crepeVersion: crepeVersion(),
      modelSha256: opts.modelSha256,
      spec,
      calibration: { nsamples: windows.length, seqlen, seed: opts.calibrationSeed, windowsSha256: windowsSha256(windows) },
      device: engine.device ?? 'cpu',
      grams: opts.withGram,
      windowPrecision,
      ...(opts.statisticsFrom ? { statisticsFrom: opts.statisticsFrom } : {}),
    };
    const dir = opts.cacheDir;
    const lock = lockOutput(dir, (message) => opts.progress?.log(message));
    try {
      return await ProxyContext.build(model, windows, seqlen, engine, opts, identity, windowPrecision, lock);
    } catch (error) {
      lock.release();
      throw error;
    }
  }

  /** open()'s work once the cache's lock is held. */
  private static async build(
    model: BlockSource | ModelSource, windows: Int32Array[], seqlen: number, engine: EngineOptions, opts: ProxyContextOptions,
    identity: CacheIdentity, windowPrecision: WindowPrecision, lock: OutputLock,
  ): Promise<ProxyContext> {
    const { spec } = model;
    const dir = opts.cacheDir;
    // Masks alone (calib-nll, and the pruned perplexities of its confirmations) need no reference order.
    const layout: TermsLayout = !opts.rowsOnly && opts.proxies?.length && opts.proxies.every((p) => !isLinearProxy(p)) ? 'natural' : 'position';
    const manifest = await openCacheDir(dir, identity, {
      calibrationFile: opts.calibrationFile ?? null, numLayers: spec.numLayers, layersDone: 0, complete: false, windows: [], denseSeconds: 0, created: new Date().toISOString(),
      ...(opts.rowsOnly ? { rowsOnly: { fraction: opts.rowsOnly.fraction, seed: opts.rowsOnly.seed } } : {}),
      ...(layout === 'natural' ? { layout } : {}),
    });
    if (manifest.rowsOnly && !sameRows(manifest.rowsOnly, opts.rowsOnly)) {
      throw cacheError(dir, `it holds only the row subset ${subsetName(manifest.rowsOnly)}, built for a search on those rows; this run ${opts.rowsOnly ? `is on ${subsetName(opts.rowsOnly)}` : 'needs all rows'}`);
    }
    const units: Unit[] = [];
    for (let layer = 0; layer < spec.numLayers; layer++) {
      LINEAR_NAMES.forEach((name) => {
        const [dOut, dIn] = linearShape(spec, name);
        units.push({ index: units.length, layer, name, dOut, dIn });
      });
    }
    const cache: CacheReport = { dir, layersBuilt: 0, numLayers: spec.numLayers, denseSeconds: 0, totalDenseSeconds: manifest.denseSeconds, rowsOnly: manifest.rowsOnly ?? null };
    const maskFiles: string[] = [];
    // Masks a context left behind (a process that ended without closing it): only a build from layer 0 writes them.
    rmSync(statisticsMasksDir(dir), { recursive: true, force: true });
    const pool = EvaluatorPool.start({ dir, units, budgetBytes: opts.cacheBudgetBytes, windowPrecision, rowsOnly: manifest.rowsOnly ?? null, layout: layoutOf(manifest) }, opts.threads);
    if (!manifest.complete) {
      const started = performance.now();
      try {
        cache.layersBuilt = await buildCache(model, windows, seqlen, engine, { ...opts, windowPrecision }, manifest, units, pool, maskFiles);
      } catch (error) {
        await pool.close();
        throw error;
      }
      cache.denseSeconds = (performance.now() - started) / 1000;
      cache.totalDenseSeconds = manifest.denseSeconds;
    }
    if (layoutOf(manifest) === 'natural' && layout === 'position') {
      // A run that may ask for per-linear proxies: the natural cache (complete by now) is converted.
      try {
        await pool.toPosition(manifest.windows, manifest.identity.grams);
      } catch (error) {
        await pool.close();
        throw error;
      }
      delete manifest.layout;
      await writeManifest(dir, manifest);
      rmSync(subsetDir(dir, null, 'natural'), { recursive: true, force: true });
    }
    const nllWindows = opts.nllWindows ?? CALIB_NLL_WINDOWS;
    const nllText = opts.nllText
      ? { tokens: opts.nllText.tokens.subarray(0, nllWindows * opts.nllText.seqlen), seqlen: opts.nllText.seqlen }
      : { tokens: concatWindows(windows.slice(0, nllWindows)), seqlen };
    const endToEnd = 'readLmHead' in model && nllWindows > 0 ? { model: keepingEnds(model), ...nllText, engine } : null;
    const statisticsPruneMasks = maskFiles.length === spec.numLayers ? { model, files: maskFiles, engine } : null;
    const context = new ProxyContext(pool, manifest, dir, opts.withGram, cache, units, endToEnd, lock, statisticsPruneMasks);
    try {
      for (const key of opts.windows) await context.ensureWindow(key);
    } catch (error) {
      await context.close();
      throw error;
    }
    return context;
  }

  /**
   * Proxies for one candidate; `which` limits the work to the proxies needed (a search needs one,
   * validation all). Scoring and selection are shared and dominate.
   */
  async evaluate(params: CrepeParams, options: ProxyOptions, which: readonly ProxyName[] = this.availableProxies): Promise<ProxyValues> {
    return (await this.evaluateMany([resolveCrepeParams(params, { field: 'params' })], options, which))[0];
  }

  /**
   * Proxies for several candidates (a CMA-ES generation), each equal bit for bit to its own
   * evaluate(): the per-linear proxies read each linear's terms once for all of them (the
   * evaluators run every candidate on a linear while it is in memory); calib-nll runs per candidate.
   * A candidate's seconds are the steps of its own passes.
   */
  async evaluateMany(candidates: readonly CrepeParams[], options: ProxyOptions, which: readonly ProxyName[] = this.availableProxies): Promise<ProxyValues[]> {
    check(!this.closed, 'this ProxyContext is closed: open another to evaluate candidates');
    // A bad window size would be prepared and recorded in the cache's manifest.
    checkField(Array.isArray(candidates), 'paramsList', () => `must be a list of CRePE parameters, got ${describeValue(candidates)}`);
    const paramsList = candidates.map((params, i) => resolveCrepeParams(params, { field: `paramsList[${i}]` }));
    checkProxyOptions(options);
    checkField(Array.isArray(which), 'which', () => `must list proxy names (some of ${this.availableProxies.join(', ')}), got ${describeValue(which)}`);
    which.forEach((name, i) => {
      checkProxyName(`which[${i}]`, name);
      checkField(this.availableProxies.includes(name), `which[${i}]`, () => `${name} is not available in this context (${isLinearProxy(name) ? (layoutOf(this.manifest) === 'natural' ? `the cache ${this.dir} holds its terms in the natural layout, which serves calib-nll alone` : 'it needs the grams: open the context with withGram') : this.manifest.rowsOnly ? `it needs every row, the cache holds only ${subsetName(this.manifest.rowsOnly)}` : 'it needs a model with its head and nllWindows > 0'}); available: ${this.availableProxies.join(', ')}`);
    });
    const linear = LINEAR_PROXY_NAMES.filter((p) => which.includes(p));
    const held = this.manifest.rowsOnly;
    if (held && linear.length > 0) {
      const rows = rowSubset(options);
      checkField(sameRows(rows, held), 'options.rows', () => `this context's cache ${this.dir} holds only the row subset ${subsetName(held)}; asked for ${rows ? subsetName(rows) : 'all rows'}`);
    }
    const evaluations: ProxyValues[] = paramsList.map(() => ({
      values: Object.fromEntries(PROXY_NAMES.map((p) => [p, Number.NaN])) as Record<ProxyName, number>,
      seconds: { score: 0, select: 0, gini: 0, forward: 0 },
    }));
    if (linear.length > 0) await this.evaluateLinears(paramsList, options, linear, evaluations);
    if (which.includes('calib-nll')) {
      for (const [i, params] of paramsList.entries()) {
        const started = performance.now();
        const { model, tokens, seqlen, engine } = this.endToEnd!;
        this.nllEngines ??= {
          block: await BlockEngine.create(model.spec, seqlen, { ...engine, stats: 'none' }),
          head: await HeadEngine.create(model.spec, seqlen, { ...engine, output: 'nll' }),
        };
        evaluations[i].values['calib-nll'] = (await prunedPerplexity(model, await this.layerPruning(params, options), tokens, { seqlen }, engine, this.nllEngines)).meanNll;
        evaluations[i].seconds.forward = (performance.now() - started) / 1000;
      }
    }
    return evaluations;
  }

  /**
   * Perplexity on `tokens` of the model pruned by `params` with the dense pass's statistics (the
   * masks PHO's proxies see; no statistics pass): PHO's confirmation of a candidate on held-out text.
   */
  async prunedPerplexity(
    params: CrepeParams, options: ProxyOptions, tokens: Int32Array, text: { seqlen: number; maxChunks?: number },
  ): Promise<{ ppl: number; seconds: number }> {
    check(!this.closed, 'this ProxyContext is closed: open another to measure a pruned perplexity');
    if (!this.endToEnd) throw new Error('internal: a pruned perplexity needs a model with its head');
    const resolved = resolveCrepeParams(params, { field: 'params' });
    checkProxyOptions(options);
    checkField(typeof text === 'object' && text !== null, 'text', () => `must be { seqlen, maxChunks? }, got ${describeValue(text)}`);
    checkField(!this.manifest.rowsOnly, 'params', () => `a pruned perplexity needs every row of every linear; this context's cache ${this.dir} holds only the row subset ${subsetName(this.manifest.rowsOnly!)}`);
    const started = performance.now();
    const { model, engine } = this.endToEnd;
    const result = await prunedPerplexity(model, await this.layerPruning(resolved, options), tokens, text, engine);
    return { ppl: result.ppl, seconds: (performance.now() - started) / 1000 };
  }

  /** The per-linear proxies in `which` of each candidate, averaged over the linears, into its values and seconds. */
  private async evaluateLinears(
    paramsList: readonly CrepeParams[], options: ProxyOptions, which: readonly LinearProxyName[], evaluations: ProxyValues[],
  ): Promise<void> {
    const requests: EvaluationRequest[] = [];
    for (const params of paramsList) requests.push({ params, options, which, source: await this.scoreSource(params) });
    const batch = await this.pool.evaluate(requests);
    for (const [i, results] of batch.entries()) {
      const { values, seconds } = evaluations[i];
      for (const name of which) values[name] = 0;
      for (const result of results) {
        for (const name of which) values[name] += result.values[name]!;
        seconds.score += result.seconds.score;
        seconds.select += result.seconds.select;
        seconds.gini += result.seconds.gini;
      }
      for (const name of which) values[name] /= results.length;
    }
  }

  /**
   * Where the evaluators take a candidate's scores from: the cached terms and its neighbourhood
   * term (prepared here when missing), or crepeScores on the reconstructed matrix for what the
   * cache does not hold (a border other than zero, a smooth window not prepared).
   */
  private async scoreSource(params: CrepeParams): Promise<EvaluationRequest['source']> {
    const key = windowKey(params);
    if (params.border !== 'zero' || (params.gamma > 0 && key.variant === 'smooth' && !this.hasWindow(key))) return 'direct';
    if (params.gamma > 0) await this.ensureWindow(key);
    return 'terms';
  }

  /**
   * The pruning by `params` of each layer's linears, computed by the evaluators that own them
   * (their pruned weights from a natural-layout cache, their masks from a position one); the
   * layers of one pass are one round of the evaluators' LRU (PruneRequest.newRound).
   */
  private async layerPruning(params: CrepeParams, options: ProxyOptions): Promise<LayerPruning<UnitPruning>> {
    const source = await this.scoreSource(params);
    let newRound = true;
    return {
      weights: layoutOf(this.manifest) === 'natural',
      of: async (layer) => {
        const units = LINEAR_NAMES.map((name) => unitOf(this.units, layer, name).index);
        const request = { params, options, source, units, newRound };
        newRound = false;
        const pruned = await this.pool.prune(request);
        return Object.fromEntries(LINEAR_NAMES.map((name, i) => [name, pruned.get(units[i])!])) as Record<LinearName, UnitPruning>;
      },
      giveBack: (linears) => {
        for (const pruned of Object.values(linears)) if ('weight' in pruned) this.pool.giveBack(pruned.unit, pruned.weight);
      },
    };
  }

  /**
   * The blocks a real trial's prune (pruneLayers) with `settings` on the calibration `windows`
   * makes, when that prune is the one this context's dense pass made to take its statistics: a
   * plain CRePE prune with the statisticsFrom configuration (nothing else in `settings` but the
   * defaults), on this cache's calibration windows, with the same engine options. Each block is
   * the model's, masked by the masks the dense pass selected, read when asked for (one at a time,
   * in layer order): measurePruned then gives what pruneAndMeasure would, bit for bit, without a
   * second statistics pass and selection. Null when that is not the prune asked for, or when this
   * context did not build every layer itself (a reused or continued cache).
   */
  statisticsPrune(settings: PruneSettings, windows: Int32Array[], engine: EngineOptions): ((layer: number) => Promise<BlockWeights>) | null {
    check(!this.closed, 'this ProxyContext is closed: open another to read its pruned blocks');
    const masks = this.statisticsPruneMasks;
    const from = this.manifest.identity.statisticsFrom;
    if (!masks || !from) return null;
    const { calibration } = this.manifest.identity;
    const same = isDeepStrictEqual(settings, pruneSettings({ method: 'crepe', target: from.target, selection: from.selection, crepe: from.params, calibration: settings.calibration }))
      && settings.calibration.seqlen === calibration.seqlen && windows.length === calibration.nsamples && windowsSha256(windows) === calibration.windowsSha256
      && isDeepStrictEqual(engine, masks.engine);
    if (!same) return null;
    const { model, files } = masks;
    const { spec } = model;
    // Each mask is applied as soon as it is made: its arrays serve the next linear of its kind.
    const buffers = new MaskBuffers();
    return async (layer) => {
      const block = { ...model.readBlock(layer) };
      const { arrays } = readArrays(files[layer], this.dir, true);
      LINEAR_NAMES.forEach((name, i) => {
        const key = `${name}.weight`;
        const [dOut, dIn] = linearShape(spec, name);
        const into = buffers.of(i, dOut * dIn);
        // The last layer's masks, selected now from its statistics as the dense pass selects the others'.
        const mask = layer + 1 === spec.numLayers
          ? statisticsMask(from, block[key], dOut, dIn, arrays[name] as Float64Array, into)
          : unpackMask(arrays[name] as Uint8Array, into.mask);
        block[key] = maskedRead(model, block[key], mask);
      });
      return block;
    };
  }

  /** Stops the evaluator threads and releases calib-nll's engines; a second call does nothing. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      if (this.statisticsPruneMasks) rmSync(statisticsMasksDir(this.dir), { recursive: true, force: true });
      await this.pool.close();
      await this.nllEngines?.block.release();
      await this.nllEngines?.head.release();
      this.nllEngines = null;
    } finally {
      this.lock.release();
    }
  }

  private hasWindow(key: WindowKey): boolean {
    return this.manifest.windows.some((w) => sameWindow(w, key));
  }

  /** Makes the neighbourhood term of `key` available for every linear (computed once per key and cache). */
  private async ensureWindow(key: WindowKey): Promise<void> {
    if (this.hasWindow(key)) return;
    await this.pool.prepareWindow(key);
    this.manifest.windows.push(key);
    await writeManifest(this.dir, this.manifest);
  }
}

/** The unit of linear `name` in `layer`. */
function unitOf(units: readonly Unit[], layer: number, name: LinearName): Unit {
  const unit = units.find((u) => u.layer === layer && u.name === name);
  if (!unit) throw new Error(`internal: no linear ${name} in layer ${layer}`);
  return unit;
}

/** The first layer with a linear whose terms (of all rows, or of the one subset the cache holds, in its layout) are not on disk (numLayers when none). */
function firstMissingLayer(dir: string, units: Unit[], rows: RowSubset | null, layout: TermsLayout): number {
  const missing = units.find((unit) => !existsSync(termsFile(dir, unit, rows, layout)));
  return missing ? missing.layer : Number.POSITIVE_INFINITY;
}

/**
 * The dense pass from the first unfinished layer: per layer, every linear's terms and the
 * requested neighbourhood terms are written (by the pool's evaluators, each linear by the one that
 * owns it, at the same time), then the inputs of the next layer; the manifest records progress.
 * Returns the number of layers computed.
 */
async function buildCache(
  model: BlockSource,
  windows: Int32Array[],
  seqlen: number,
  engine: EngineOptions,
  opts: ProxyContextOptions & { windowPrecision: WindowPrecision },
  manifest: Manifest,
  units: Unit[],
  pool: EvaluatorPool,
  maskFiles: string[],
): Promise<number> {
  const { spec } = model;
  const dir = opts.cacheDir;
  const missing = Math.min(spec.numLayers, firstMissingLayer(dir, units, manifest.rowsOnly ?? null, layoutOf(manifest)));
  const rope = ropeTables(spec, seqlen);
  const statsEngine = await BlockEngine.create(spec, seqlen, { ...engine, stats: opts.withGram ? 'full' : 'sqnorm' });
  const plainEngine = await BlockEngine.create(spec, seqlen, { ...engine, stats: 'none' });
  const buildWindows = opts.windows.filter((key, i) => opts.windows.findIndex((other) => sameWindow(other, key)) === i);
  let layersBuilt = 0;
  try {
    if (missing < spec.numLayers) {
      // Inputs of a pruned model cannot be carried through dense blocks: without the saved inputs of the layer, its build starts over.
      const { hidden: inputs, layer: firstLayer } = await layerInputs(model, windows, seqlen, missing, dir, opts.statisticsFrom ? null : plainEngine, rope);
      // The masks of the prune the statistics follow, per layer: its files kept when the pass starts at layer 0, for statisticsPrune.
      const from = opts.statisticsFrom;
      let layerMasks: Uint8Array[] = [];
      // A layer's masks live until its block is masked; the next layer's reuse their arrays.
      const buffers = new MaskBuffers();
      if (from && firstLayer === 0) mkdirSync(statisticsMasksDir(dir));
      await forEachDenseLayer(model, inputs, rope, { stats: statsEngine, plain: plainEngine }, opts.withGram, async (layer, dense) => {
        const started = performance.now();
        const building = pool.build(dense.map(({ name, weight, stats }) => ({
          unit: unitOf(units, layer, name), weight, sqNorm: stats.sqNorm, gram: opts.withGram ? stats.gram : null, windows: buildWindows,
        })));
        // The selection runs on this thread while the evaluators build the layer's terms.
        try {
          if (from) {
            // The last layer makes no next inputs: its masks are selected only if a confirmation asks for them (statisticsPrune), from its statistics.
            const last = layer + 1 === spec.numLayers;
            layerMasks = last ? [] : dense.map(({ weight, dOut, dIn, stats }, i) => statisticsMask(from, weight, dOut, dIn, stats.sqNorm, buffers.of(i, dOut * dIn)));
            if (firstLayer === 0) {
              const file = statisticsMasksFile(dir, layer);
              const arrays = dense.map(({ stats }, i) => (last ? stats.sqNorm : packMask(layerMasks[i])));
              await writeArrays(file, { kind: last ? 'statistics-sqnorm' : 'statistics-masks', layer }, Object.fromEntries(dense.map(({ name }, i) => [name, arrays[i]])));
              maskFiles.push(file);
            }
          }
        } finally {
          await building;
        }
        layersBuilt++;
        manifest.layersDone = Math.max(manifest.layersDone, layer + 1);
        manifest.denseSeconds += (performance.now() - started) / 1000;
        await writeManifest(dir, manifest);
        opts.progress?.update(layer + 1, `dense statistics, layer ${layer}`);
      }, {
        firstLayer,
        nextWeights: from ? (_layer, weights, linears) => {
          const block = maskedBlock(model, weights, linears, layerMasks);
          layerMasks = [];
          return block;
        } : undefined,
        onInputs: async (layer, hidden) => {
          await writeArrays(hiddenFile(dir), { kind: 'hidden', layer }, Object.fromEntries(hidden.map((h, i) => [`window${i}`, h])));
        },
      });
    }
  } finally {
    await statsEngine.release();
    await plainEngine.release();
  }
  manifest.complete = true;
  manifest.layersDone = spec.numLayers;
  await writeManifest(dir, manifest);
  rmSync(hiddenFile(dir), { force: true });
  return layersBuilt;
}

/**
 * The arrays statisticsMask selects into, reused from layer to layer (fresh memory costs more to
 * touch first than the selection): one score array, and one mask per linear of a block.
 */
class MaskBuffers {
  private scores = new Float32Array(0);
  private readonly masks: Uint8Array[] = [];

  /** The arrays for the block's `linear`-th linear, of `n` weights. */
  of(linear: number, n: number): { scores: Float32Array; mask: Uint8Array } {
    if (this.scores.length < n) this.scores = new Float32Array(n);
    if (this.masks[linear]?.length !== n) this.masks[linear] = new Uint8Array(n);
    return { scores: this.scores.subarray(0, n), mask: this.masks[linear] };
  }
}

/**
 * A linear's mask in the prune the statistics follow: crepeScores with the statistics'
 * configuration on its weights and input statistics, then selectMask, as `crepe prune --method
 * crepe` selects it; into `buffers` when given (the scores and the mask, dOut·dIn each).
 */
function statisticsMask(from: StatisticsFrom, weight: Float32Array, dOut: number, dIn: number, sqNorm: Float64Array, buffers?: { scores: Float32Array; mask: Uint8Array }): Uint8Array {
  return selectMask(crepeScores(weight, dOut, dIn, sqNorm, from.params, buffers?.scores), dOut, dIn, from.target, from.selection, buffers?.mask);
}

/**
 * The block a prune with the statistics' configuration makes of a layer read from `model`: each
 * linear's weights masked by the masks statisticsMask selected from the layer's own statistics, as
 * maskedRead masks them (in place where the read arrays are the caller's: nothing reads the dense
 * weights after, the evaluators' build of the layer being awaited before and a worker building
 * from its own copy), the other tensors as they are.
 */
function maskedBlock(model: BlockSource, weights: BlockWeights, linears: DenseLinear[], masks: Uint8Array[]): BlockWeights {
  const block = { ...weights };
  linears.forEach(({ name, weight }, i) => {
    block[`${name}.weight`] = maskedRead(model, weight, masks[i]);
  });
  return block;
}

/** Where the dense pass keeps the masks of the prune its statistics follow, the last layer's statistics (removed when its context closes). */
function statisticsMasksDir(dir: string): string {
  return path.join(dir, 'statistics-masks');
}

function statisticsMasksFile(dir: string, layer: number): string {
  return path.join(statisticsMasksDir(dir), `layer-${String(layer).padStart(5, '0')}.bin`);
}

/** A mask (one byte per weight, 1 = pruned) as bits, eight weights a byte, the first in the lowest bit. */
function packMask(mask: Uint8Array): Uint8Array {
  const bits = new Uint8Array(Math.ceil(mask.length / 8));
  for (let p = 0; p < mask.length; p++) bits[p >> 3] |= mask[p] << (p & 7);
  return bits;
}

/** packMask's bits back into `mask` (every entry written). */
function unpackMask(bits: Uint8Array, mask: Uint8Array): Uint8Array {
  for (let p = 0; p < mask.length; p++) mask[p] = (bits[p >> 3] >> (p & 7)) & 1;
  return mask;
}

/**
 * The calibration activations entering the first layer to build and that layer: the embeddings
 * for layer 0, else the saved activations of an interrupted build, carried through the dense
 * blocks up to `layer` when they were saved for an earlier one (or recomputed from the embeddings
 * when none are usable). Without `plainEngine` (a pruned model's inputs, which dense blocks would
 * not make) only activations saved for `layer` itself are used, else the build starts at layer 0.
 */
async function layerInputs(
  model: BlockSource,
  windows: Int32Array[],
  seqlen: number,
  layer: number,
  dir: string,
  plainEngine: BlockEngine | null,
  rope: { cos: Float32Array; sin: Float32Array },
): Promise<{ hidden: Float32Array[]; layer: number }> {
  const { spec } = model;
  let from = 0;
  let hidden: Float32Array[] | null = null;
  if (layer > 0 && existsSync(hiddenFile(dir))) {
    const saved = readArrays(hiddenFile(dir), dir, true);
    const savedLayer = Number(saved.meta.layer);
    const arrays = windows.map((_, i) => saved.arrays[`window${i}`]);
    const usable = plainEngine ? savedLayer <= layer : savedLayer === layer;
    if (usable && arrays.every((a) => a instanceof Float32Array && a.length === seqlen * spec.hiddenSize)) {
      hidden = arrays as Float32Array[];
      from = savedLayer;
    }
  }
  if (!hidden) hidden = embedWindows(model, windows);
  if (!plainEngine) return { hidden, layer: from };
  for (let l = from; l < layer; l++) hidden = await plainEngine.runSequences(hidden, model.readBlock(l), rope);
  return { hidden, layer };
}
