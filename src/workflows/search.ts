/**
 * A search for CRePE's coefficients on one model: PHO (CMA-ES on a proxy computed from one cached
 * dense calibration pass), hill climbing on real held-out perplexity (the slow baseline), or a
 * validation of the proxies against real perplexity. The outputs (a CRePE configuration with its
 * provenance and a search log, or validation.json with one scatter plot per proxy) are written to
 * a temporary directory and moved to `out` when complete.
 */
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ModelCheckpoint } from '../model/checkpoint.ts';
import type { ModelSpec } from '../model/spec.ts';
import { windowsSha256, type CalibrationSet } from '../data/calibration.ts';
import type { EngineOptions } from '../engine/session.ts';
import { checkWindowSizes, crepeParamsOf, crepeVariantProblem, isCrepeVariant, type CrepeParams, type CrepeVariant } from '../prune/scores/crepe.ts';
import { activationExponentProblem, isActivationExponent } from '../prune/scores/ria.ts';
import { pruneSettings, type PruneSettings } from '../prune/settings.ts';
import { validateTarget, type PruneTarget, type Selection } from '../prune/target.ts';
import { CREPE_CONFIG_FORMAT, loadCrepeConfig, type CrepeConfigFile } from '../search/crepe-config.ts';
import { ProxyContext, PROXY_NAMES, type ProxyName, type ProxyOptions } from '../search/proxy.ts';
import { windowKey } from '../search/proxy-terms.ts';
import { readManifest, type RowSubset, type StatisticsFrom } from '../search/proxy-cache.ts';
import { CALIB_NLL_WINDOWS } from '../search/proxy-e2e.ts';
import { calibNllSearchFlops, checkProxyName, defaultProxy, defaultProxyRows, isLinearProxy, linearWeights, PER_LINEAR_DEFAULT_MAX_VISITS, rowsPercent } from '../search/proxy-defaults.ts';
import { confirmationShortlist, confirmationTrial, confirmOnHeldOut, phoEvaluations, runPho, type Confirmation, type PhoResult } from '../search/pho.ts';
import { checkHeldCalibration, concatWindows, confirmationWindows } from '../search/auto.ts';
import { runHillClimb } from '../search/hillclimb.ts';
import { randomConfigurations, validateProxies, type ProxyCorrelation, type SubsampleFidelity } from '../search/validate.ts';
import { pruneAndMeasure } from '../search/trial.ts';
import { checkCrepeWindowFits, smallestPrunedDimension } from '../prune/layer-loop.ts';
import { windowCount } from '../eval/perplexity.ts';
import { checkLogStep, startParams, type SearchSpace } from '../search/space.ts';
import { readInputJson } from '../io/input-file.ts';
import { checkOutputDir, pathIsInside, publishOutputDir } from '../io/output-dir.ts';
import { lockOutput, type OutputLock } from '../io/output-lock.ts';
import { makeDirectory, writingToSync } from '../io/write-error.ts';
import { scatterSvg } from '../util/svg-scatter.ts';
import { sha256Bytes, sha256File } from '../util/hash.ts';
import { crepeVersion } from '../util/version.ts';
import { checkField } from '../util/errors.ts';
import { checkFields, checkInteger, describeValue, type FieldSpec } from '../util/fields.ts';
import {
  CONTROL_FIELDS, ENGINE_FIELDS, HUB_FIELDS, checkInputFile, checkRequest, engineOptions, resolveModel, secondsSince, stageProgress,
  type EngineRequest, type HubRequest, type RunControl,
} from './common.ts';
import { TEXTS_FIELDS, checkTextsRequest, planTexts, readTexts, type TextsRequest } from './texts.ts';
import type { EvalText } from './eval.ts';

/**
 * A search; the calibration text and the held-out text (`evalText`) are `TextsRequest` fields, and
 * `seed` seeds the search as well as the calibration draw.
 */
export interface SearchRequest extends EngineRequest, RunControl, TextsRequest, HubRequest {
  /** Hugging Face model directory (only read). */
  model: string;
  /** Output directory; must not exist unless `overwrite`. */
  out: string;
  overwrite?: boolean;
  /** 'pho' (default): CMA-ES on a proxy; 'hillclimb': coordinate search on real held-out PPL. */
  strategy?: 'pho' | 'hillclimb';
  /** Instead of searching, measure every proxy against real PPL on this many random configurations. */
  validate?: number;
  target: PruneTarget;
  /** Unstructured selection rule (default per-matrix). */
  selection?: Selection;
  /** Window sizes to search (default 1, 3, 5, 7, 9 where they fit the model's linears, or the configuration's k); each must fit them. */
  kSet?: readonly number[];
  /** Start from this CRePE configuration instead of the RIA point. */
  crepeConfig?: string;
  /**
   * Per window size: proxy evaluations (pho, default 60; rounded up to whole CMA-ES generations of 6
   * candidates, 7 with `searchA`) or real trials (hillclimb, default 12).
   */
  budget?: number;
  /**
   * PHO: race the window sizes — after one CMA-ES generation at every k, only this many window
   * sizes (those with the best proxy so far) continue to `budget` (default: all continue).
   */
  race?: number;
  /** PHO's proxy (default: the validated one, or the one `proxyFrom` names). */
  proxy?: ProxyName;
  /** +1 minimises the proxy, −1 maximises it (default: the validated sign). */
  proxySign?: 1 | -1;
  /** A validation.json from an earlier `validate` run: use its most correlated proxy and that sign. */
  proxyFrom?: string;
  /** Positions per matrix for the Gini index, or null for the exact index (default 65536). */
  giniSubsample?: number | null;
  /** Windows calib-nll runs on (the first of the statistics windows, or of `evalText` with nllOn 'heldout'; default 8). */
  nllWindows?: number;
  /**
   * What calib-nll measures: 'calibration' (default) the first statistics windows; 'heldout' the
   * first windows of `evalText`, the text hill climbing climbs on (so PHO sees what it sees).
   */
  nllOn?: 'calibration' | 'heldout';
  /**
   * The input statistics the proxies (and dense confirmations) prune with: 'dense' (default) the
   * dense model's; 'start' those of the model pruned layer by layer by the search's start
   * configuration (`crepeConfig`, else β = γ = α at k = 3), nearer to what a real prune sees.
   */
  proxyStatistics?: 'dense' | 'start';
  /**
   * Fraction of each linear's rows a per-linear proxy is computed on, in (0, 1]. Default: all rows,
   * or where they would visit too many weights over the search, defaultProxyRows (proxy-defaults.ts).
   * Refused with calib-nll, which prunes every row.
   */
  proxyRows?: number;
  /**
   * Proxy cache directory: the dense pass's per-linear terms, reused by later searches and
   * validations on the same model and calibration windows (default: `<out>.proxy-cache`).
   */
  proxyCache?: string;
  /** MiB of proxy terms kept in memory between candidates, all threads together (default 1024). */
  proxyCacheBudget?: number;
  /** Also search the activation exponent a. */
  searchA?: boolean;
  /** The activation exponent when not searched and the neighbourhood variant (default: the start configuration's, else 0.5 and normalized). */
  crepe?: { a?: number; variant?: CrepeVariant };
  /** CMA-ES initial step in log-ratio units (default 1.5). */
  sigma0?: number;
  /** PHO: give the best candidates of this many window sizes one real held-out trial each (default 0); needs `evalText`. */
  confirm?: number;
  /**
   * How a confirmation trial prunes: 'sequential' (default) the full prune a `crepe prune` runs;
   * 'dense' with the dense pass's statistics that PHO searched on (no statistics pass: cheaper, but
   * its perplexity can rank candidates differently, see RESULTS.md "Searched configurations").
   */
  confirmStatistics?: 'dense' | 'sequential';
  /**
   * Where a confirmation trial measures perplexity: 'heldout' (default) the first windows of
   * `evalText`; 'calibration' held-out calibration windows — the calibration draw continued past the
   * statistics windows and disjoint from them — so that the text a report uses chooses nothing.
   */
  confirmOn?: 'heldout' | 'calibration';
  /** Windows a confirmation trial measures, refused when more than the text holds (default: heldout all, up to `evalMaxChunks`; calibration 32, or as many as the calibration text yields, with a note). */
  confirmWindows?: number;
}

/** What a proxy-based run also reports: the dense pass's seconds and the peak resident memory. */
interface ProxyCost { denseSeconds: number; peakRssBytes: number }

export type SearchResult =
  | ({ kind: 'validation'; out: string; correlations: ProxyCorrelation[]; subsample: SubsampleFidelity | null; seconds: number } & ProxyCost)
  | ({ kind: 'pho'; out: string; config: CrepeConfigFile; seconds: number; perEvaluationSeconds: number } & ProxyCost)
  | { kind: 'hillclimb'; out: string; config: CrepeConfigFile; seconds: number };

/** Largest total size of the per-layer Hessians a search keeps for the output-error proxy. */
const GRAM_BUDGET_BYTES = 2 ** 30;
const DEFAULT_K_SET = [1, 3, 5, 7, 9];
const DEFAULT_CALIBRATION_CONFIRM_WINDOWS = 32;

/** The proxy a validation run found most informative (largest |Spearman ρ|) and its sign. */
function proxyFromValidation(file: string): { proxy: ProxyName; sign: 1 | -1 } {
  checkInputFile('proxyFrom', file, 'validation result');
  const json = readInputJson(file, 'json');
  const correlations: unknown = (json as { correlations?: unknown } | null)?.correlations;
  checkField(Array.isArray(correlations) && correlations.length > 0, 'proxyFrom', `${file}: no "correlations" (expected the validation.json of a validate run)`);
  const entries = correlations.map((entry: unknown, i) => {
    const { proxy, spearman } = (typeof entry === 'object' && entry !== null ? entry : {}) as { proxy?: unknown; spearman?: { estimate?: unknown } | null };
    const estimate = spearman?.estimate;
    checkField(typeof proxy === 'string' && typeof estimate === 'number' && Number.isFinite(estimate), 'proxyFrom',
      () => `${file}: correlations[${i}] is not a proxy's entry (an object with "proxy" and "spearman".estimate), got ${JSON.stringify(entry)}`);
    return { proxy, estimate };
  });
  const best = entries.reduce((a, b) => (Math.abs(b.estimate) > Math.abs(a.estimate) ? b : a));
  checkField((PROXY_NAMES as readonly string[]).includes(best.proxy), 'proxyFrom', `${file}: unknown proxy "${best.proxy}"`);
  return { proxy: best.proxy as ProxyName, sign: best.estimate >= 0 ? 1 : -1 };
}

/** Writes the outputs into a temporary directory and publishes it when complete; a failed write leaves nothing. */
function writeOutputs(outDir: string, files: Record<string, string>, overwrite: boolean | undefined): void {
  const temp = `${outDir}.crepe-partial`;
  rmSync(temp, { recursive: true, force: true });
  try {
    makeDirectory(temp);
    for (const [name, content] of Object.entries(files)) {
      const file = path.join(temp, name);
      writingToSync(file, () => writeFileSync(file, content));
    }
  } catch (error) {
    rmSync(temp, { recursive: true, force: true });
    throw error;
  }
  publishOutputDir(temp, outDir, { command: 'search', overwrite });
}

const json = (value: unknown): string => `${JSON.stringify(value, null, 2)}\n`;

/**
 * The model's weight files read once: every stored value checked finite (the search's later reads
 * then skip that scan) and each file hashed. Returns the sha256 over `name:sha256` of every weight
 * file, sorted by name (what the proxy cache is keyed on), and the sha256 of the file of the first
 * tensor (the configuration's provenance records it, and every file's sha256 by name).
 */
function hashWeights(model: ModelCheckpoint): { all: string; first: string; files: Record<string, string> } {
  const hashes = model.hashAndCheckFinite();
  const files = Object.keys(hashes).sort();
  return {
    all: sha256Bytes(files.map((file) => `${file}:${hashes[file]}`).join('\n')),
    first: hashes[path.basename(model.weights.info(model.weights.names()[0]).file)],
    files: Object.fromEntries(files.map((file) => [file, hashes[file]])),
  };
}

/** Peak resident memory of this process so far (workers included: they are threads), in bytes. */
const peakRssBytes = (): number => process.resourceUsage().maxRSS * 1024;

const SEARCH_FIELDS: FieldSpec<SearchRequest> = {
  ...CONTROL_FIELDS, ...ENGINE_FIELDS, ...HUB_FIELDS, ...TEXTS_FIELDS,
  model: 'checked', out: 'checked', overwrite: 'flag', strategy: 'checked', validate: 'checked', target: 'checked', selection: 'checked',
  kSet: 'checked', crepeConfig: 'checked', budget: 'checked', race: 'checked', proxy: 'checked', proxySign: 'checked', proxyFrom: 'checked',
  giniSubsample: 'nullable', nllWindows: 'checked', nllOn: 'checked', proxyStatistics: 'checked', proxyRows: 'checked', proxyCache: 'checked', proxyCacheBudget: 'checked', searchA: 'flag',
  crepe: 'checked', sigma0: 'checked', confirm: 'checked', confirmStatistics: 'checked', confirmOn: 'checked', confirmWindows: 'checked',
};
const SEARCH_CREPE_FIELDS: FieldSpec<NonNullable<SearchRequest['crepe']>> = { a: 'checked', variant: 'checked' };

/** Request fields of PHO's proxy and CMA-ES, which hill climbing does not use. */
const PHO_ONLY = ['race', 'sigma0', 'confirm', 'proxy', 'proxySign', 'proxyFrom', 'proxyRows', 'giniSubsample', 'nllWindows', 'nllOn', 'proxyStatistics', 'proxyCache', 'proxyCacheBudget'] as const;
/** Request fields of a search that a validation (every proxy on random configurations) does not use. */
const SEARCH_ONLY = ['budget', 'race', 'sigma0', 'confirm', 'proxy', 'proxySign', 'proxyFrom'] as const;

/** The request's search options, validated, with their defaults (a and the variant: those of the start configuration when it is given). */
function searchOptions(request: SearchRequest, start: CrepeParams | undefined) {
  const strategy = request.strategy ?? 'pho';
  checkField(strategy === 'pho' || strategy === 'hillclimb', 'strategy', `must be "pho" or "hillclimb", got ${JSON.stringify(strategy)}`);
  if (request.validate !== undefined) checkInteger('validate', request.validate, 3);
  const budget = request.budget ?? (strategy === 'pho' ? 60 : 12);
  checkInteger('budget', budget, 1);
  if (request.race !== undefined) checkInteger('race', request.race, 1);
  const sigma0 = request.sigma0 ?? 1.5;
  checkLogStep('sigma0', sigma0);
  const confirm = request.confirm ?? 0;
  checkInteger('confirm', confirm, 0);
  const confirmStatistics = request.confirmStatistics ?? 'sequential';
  checkField(confirmStatistics === 'dense' || confirmStatistics === 'sequential', 'confirmStatistics', `must be "dense" or "sequential", got ${JSON.stringify(confirmStatistics)}`);
  if (request.confirmWindows !== undefined) checkInteger('confirmWindows', request.confirmWindows, 1);
  const confirmOn = request.confirmOn ?? 'heldout';
  checkField(confirmOn === 'heldout' || confirmOn === 'calibration', 'confirmOn', `must be "heldout" or "calibration", got ${JSON.stringify(confirmOn)}`);
  // Held-out calibration windows: the draw continues by 4× as many (room for windows that overlap).
  const calibrationConfirm = confirm > 0 && confirmOn === 'calibration' ? request.confirmWindows ?? DEFAULT_CALIBRATION_CONFIRM_WINDOWS : 0;
  if (request.nllWindows !== undefined) checkInteger('nllWindows', request.nllWindows, 1);
  const proxyStatistics = request.proxyStatistics ?? 'dense';
  checkField(proxyStatistics === 'dense' || proxyStatistics === 'start', 'proxyStatistics', `must be "dense" or "start", got ${JSON.stringify(proxyStatistics)}`);
  const nllOn = request.nllOn ?? 'calibration';
  checkField(nllOn === 'calibration' || nllOn === 'heldout', 'nllOn', `must be "calibration" or "heldout", got ${JSON.stringify(nllOn)}`);
  const giniSubsample = request.giniSubsample === undefined ? 65536 : request.giniSubsample;
  if (giniSubsample !== null) checkInteger('giniSubsample', giniSubsample, 1);
  if (request.crepe !== undefined) checkFields(request.crepe, SEARCH_CREPE_FIELDS, 'crepe');
  const a = request.crepe?.a ?? start?.a ?? 0.5;
  checkField(isActivationExponent(a), 'crepe.a', () => activationExponentProblem(a));
  const variant = request.crepe?.variant ?? start?.variant ?? 'normalized';
  checkField(isCrepeVariant(variant), 'crepe.variant', () => crepeVariantProblem(variant));
  if (request.proxy !== undefined) checkProxyName('proxy', request.proxy);
  if (request.proxySign !== undefined) checkField(request.proxySign === 1 || request.proxySign === -1, 'proxySign', `must be 1 or -1, got ${describeValue(request.proxySign)}`);
  const proxyRows = request.proxyRows;
  checkField(proxyRows === undefined || (typeof proxyRows === 'number' && proxyRows > 0 && proxyRows <= 1), 'proxyRows', () => `expects a fraction of rows in (0, 1], got ${describeValue(proxyRows)}`);
  const proxyCacheBudget = request.proxyCacheBudget ?? 1024;
  checkInteger('proxyCacheBudget', proxyCacheBudget, 0);
  const selection = request.selection ?? 'per-matrix';
  checkField(selection === 'per-row' || selection === 'per-matrix', 'selection', `must be "per-row" or "per-matrix", got ${JSON.stringify(selection)}`);
  // Options that hill climbing or a search without confirmation would ignore.
  if (strategy === 'hillclimb' && request.validate === undefined) {
    for (const field of PHO_ONLY) checkField(request[field] === undefined, field, 'applies to PHO and validate only (hill climbing measures each trial for real)');
  }
  if (request.validate !== undefined) {
    checkField(strategy === 'pho', 'strategy', 'hillclimb does not combine with validate (which measures every proxy on random configurations)');
    for (const field of SEARCH_ONLY) checkField(request[field] === undefined, field, 'applies to a search, not to validate (which measures every proxy on random configurations)');
  }
  // How confirmations are run means nothing without them.
  const confirmDetail = { confirmStatistics: 'how each confirmation trial prunes', confirmOn: 'what each confirmation trial measures', confirmWindows: 'the windows each confirmation trial measures' } as const;
  for (const [field, detail] of Object.entries(confirmDetail) as Array<[keyof typeof confirmDetail, string]>) {
    checkField(request[field] === undefined || confirm > 0, field, `applies to confirm only (${detail})`);
  }
  const space: SearchSpace = { searchA: Boolean(request.searchA), fixedA: a, variant };
  return { strategy, budget, race: request.race, sigma0, confirm, confirmStatistics, confirmOn, calibrationConfirm, nllOn, proxyStatistics, giniSubsample, space, selection, proxyRows, proxyCacheBudget };
}

function kSetOf(request: SearchRequest, start: CrepeParams | undefined): number[] {
  const kSet = request.kSet ?? (start ? [start.k] : DEFAULT_K_SET);
  checkWindowSizes('kSet', kSet);
  return [...new Set(kSet)];
}

/** The proxy cache directory of a search into `out`: the one given, else `<out>.proxy-cache`. */
function proxyCacheDir(out: string, proxyCache: string | undefined): string {
  return path.resolve(proxyCache ?? `${path.resolve(out)}.proxy-cache`);
}

/**
 * What a search into `out` stopped by a signal leaves behind, in one sentence for its user, or null
 * when it had not started its proxy cache: the cache stays, and the same command continues or reuses it.
 */
export function interruptedSearchNote(out: string, proxyCache?: string): string | null {
  const dir = proxyCacheDir(out, proxyCache);
  const manifest = existsSync(dir) ? readManifest(dir) : null;
  if (!manifest) return null;
  return manifest.complete
    ? `the proxy cache ${dir} is complete and stays: the same command reuses it`
    : `the proxy cache ${dir} keeps ${manifest.layersDone} of ${manifest.numLayers} layers of the dense pass: the same command continues it`;
}

/** Runs the search (or the validation) that `request` describes and writes its outputs. */
export async function searchCoefficients(request: SearchRequest): Promise<SearchResult> {
  const started = performance.now();
  // ─── Everything checked before any work ───
  checkRequest(request, SEARCH_FIELDS);
  const engine = engineOptions(request);
  const target = validateTarget(request.target, 'target');
  const start = request.crepeConfig !== undefined ? loadCrepeConfig(request.crepeConfig) : undefined;
  if (start) {
    checkField(start.alpha > 0, 'crepeConfig', `${request.crepeConfig}: "alpha" must be positive to start a search (the search runs over ratios to alpha)`);
    checkField(start.border === 'zero', 'crepeConfig', `${request.crepeConfig}: border "mean" cannot be searched (the search's candidates pad the window with zeros); start from a copy with border "zero"`);
  }
  const options = searchOptions(request, start);
  const { strategy, confirm, confirmOn, nllOn } = options;
  const counts = checkTextsRequest(request);
  const givenKSet = kSetOf(request, start);
  const needsHeldOut = strategy === 'hillclimb' || request.validate !== undefined || (confirm > 0 && confirmOn === 'heldout');
  if (needsHeldOut) checkField(request.evalText !== undefined, 'evalText', 'is needed: hill climbing, validate and confirm (unless on held-out calibration windows) measure real perplexity on held-out text');
  if (nllOn === 'heldout') checkField(request.evalText !== undefined, 'nllOn', 'heldout needs evalText (calib-nll is then measured on its first windows)');
  const measured = request.proxyFrom !== undefined ? proxyFromValidation(request.proxyFrom) : null;
  if (request.proxyCache !== undefined) {
    // An empty name would resolve to the working directory.
    checkField(typeof request.proxyCache === 'string' && request.proxyCache.trim() !== '', 'proxyCache', 'must name a directory');
    checkField(!pathIsInside(request.proxyCache, request.out), 'proxyCache',
      `${path.resolve(request.proxyCache)} is inside the output directory ${path.resolve(request.out)}, which is replaced when the search ends; name a directory outside it`);
  }
  request = { ...request, model: await resolveModel('model', request.model, request, 'model-dir') };
  // Every file of a model directory travels with the models pruned from it: a cache there would be copied into each.
  if (request.proxyCache !== undefined) {
    checkField(!pathIsInside(request.proxyCache, request.model), 'proxyCache',
      `${path.resolve(request.proxyCache)} is inside the model directory ${path.resolve(request.model)}, whose files are copied into every model pruned from it; name a directory outside it`);
  }
  const outDir = checkOutputDir(request.out, {
    overwrite: request.overwrite,
    inputs: [request.model, request.calib, request.evalText, request.crepeConfig, request.proxyFrom, request.proxyCache],
  });

  // ─── The model, its texts and the proxy: then one of the three runs ───
  const model = ModelCheckpoint.open(request.model);
  let lock: OutputLock | undefined;
  try {
    // Every window searched must fit the model, as the prune that applies the result checks; the default set keeps those that do.
    const kSet = request.kSet === undefined && !start ? givenKSet.filter((k) => k <= smallestPrunedDimension(model.spec)) : givenKSet;
    checkCrepeWindowFits(model.spec, Math.max(...kSet), undefined, 'kSet', request.kSet === undefined ? request.crepeConfig : undefined);
    lock = lockOutput(outDir, (note) => request.onProgress?.({ kind: 'note', stage: 'output', done: 0, total: 0, detail: note }));
    const run = prepareRun({ request, started, outDir, model, engine, target, options, counts, start, kSet, measured });
    if (request.validate !== undefined) return await validationRun(run, request.validate);
    return strategy === 'pho' ? await phoRun(run) : await hillClimbRun(run);
  } finally {
    model.close();
    lock?.release();
  }
}

/** A search's proxy, its sign and row fraction, each with where it came from. */
interface ProxyChoiceMade {
  proxy: ProxyName;
  sign: 1 | -1;
  signSource: string;
  rows: number;
  rowsSource: string;
}

/**
 * The proxy a search uses: the one named, else the one `proxyFrom`'s validation measured best,
 * else the target's default (defaultProxy, cost-aware); its sign likewise; and the fraction of rows
 * a per-linear proxy runs on (defaultProxyRows unless given). Notes say when a default departs
 * from the validated choice because of its cost.
 */
function chooseProxy(
  request: SearchRequest, spec: ModelSpec, target: PruneTarget, strategy: 'pho' | 'hillclimb', candidates: number, nllTokens: number,
  measured: { proxy: ProxyName; sign: 1 | -1 } | null,
): ProxyChoiceMade {
  const note = (detail: string) => request.onProgress?.({ kind: 'note', stage: 'proxy', done: 0, total: 0, detail });
  const fallback = defaultProxy(target, calibNllSearchFlops(spec, nllTokens, candidates));
  const proxy = request.proxy ?? measured?.proxy ?? fallback.name;
  if (proxy === fallback.name && request.proxy === undefined && !measured && fallback.name !== defaultProxy(target).name) {
    note(`proxy ${fallback.name}: ${fallback.evidence} (--proxy calib-nll to use it anyway)`);
  }
  const fromValidation = measured !== null && measured.proxy === proxy;
  const sign: 1 | -1 = request.proxySign ?? (fromValidation ? measured.sign : proxy === fallback.name ? fallback.sign : 1);
  const signSource = request.proxySign !== undefined
    ? 'given (proxySign)'
    : fromValidation ? path.resolve(request.proxyFrom ?? '') : proxy === fallback.name ? `default: ${fallback.evidence}` : 'default (+1)';
  if (request.validate === undefined) {
    for (const field of ['nllOn', 'nllWindows'] as const) checkField(request[field] === undefined || proxy === 'calib-nll', field, `applies to the calib-nll proxy only (this search's proxy is ${proxy})`);
    checkField(request.proxyRows === undefined || isLinearProxy(proxy), 'proxyRows', 'applies to the per-linear proxies only (calib-nll prunes every row of every linear)');
  }
  // A PHO search with a per-linear proxy runs on a subset of the rows where all of them would take too long.
  const rowsByDefault = strategy === 'pho' && request.validate === undefined && isLinearProxy(proxy) ? defaultProxyRows(spec, candidates) : 1;
  if (request.proxyRows === undefined && rowsByDefault < 1) {
    const visits = (n: number, digits: number) => n.toExponential(digits).replace('e+', 'e');
    note(`proxy rows ${rowsByDefault}: ${proxy} on a fixed random ${rowsPercent(rowsByDefault)} of each linear's rows; `
      + `all rows would visit ${visits(linearWeights(spec) * candidates, 1)} weights in this search, more than the ${visits(PER_LINEAR_DEFAULT_MAX_VISITS, 0)} a default may (--proxy-rows 1 for all rows)`);
  }
  return {
    proxy, sign, signSource,
    rows: request.proxyRows ?? rowsByDefault,
    rowsSource: request.proxyRows !== undefined ? 'given (proxyRows)' : rowsByDefault < 1 ? `default: all rows would visit more than ${PER_LINEAR_DEFAULT_MAX_VISITS} weights` : 'default (all rows)',
  };
}

/** What the validation, PHO and hill climbing share once the model is open: its texts, proxy, trial and proxy cache. */
interface SearchRun {
  request: SearchRequest;
  started: number;
  outDir: string;
  model: ModelCheckpoint;
  engine: EngineOptions;
  options: ReturnType<typeof searchOptions>;
  kSet: number[];
  start: CrepeParams | undefined;
  plan: { nsamples: number; seqlen: number; seed: number };
  heldOut: EvalText | null;
  calibration: CalibrationSet;
  /** Held-out calibration windows for `confirmOn: 'calibration'`, else null. */
  heldCalibration: CalibrationSet | null;
  choice: ProxyChoiceMade;
  proxyOptions: ProxyOptions;
  /** The start configuration the proxy statistics come from with `proxyStatistics: 'start'`, else null. */
  statisticsFrom: StatisticsFrom | null;
  provenanceBase: Record<string, unknown>;
  settingsFor: (params: CrepeParams) => PruneSettings;
  /** A real trial: the full prune and its perplexity on the held-out text. */
  trial: (params: CrepeParams) => Promise<{ ppl: number; seconds: number }>;
  /**
   * Opens (building, continuing or reusing) the proxy cache of this search; `rowsOnly`: the run uses
   * that row subset alone; `proxies`: the only proxies it asks for (calib-nll alone: the natural layout).
   */
  denseContext: (rowsOnly?: RowSubset, proxies?: ProxyName[]) => Promise<ProxyContext>;
}

/**
 * Confirmation windows the text cannot supply: confirmWindows asked for more is refused, naming
 * how many the text holds (a confirmation on fewer would be another measurement than the one
 * asked for); the default takes what there is, the held-out text's all, and the calibration draw's
 * up to DEFAULT_CALIBRATION_CONFIRM_WINDOWS, with a note when that is fewer.
 */
function checkConfirmWindows(
  request: SearchRequest, options: ReturnType<typeof searchOptions>, heldOut: EvalText | null, heldCalibration: CalibrationSet | null, nsamples: number,
): void {
  if (options.confirm === 0) return;
  const asked = request.confirmWindows;
  if (heldCalibration) {
    const note = checkHeldCalibration(heldCalibration, nsamples, asked ?? DEFAULT_CALIBRATION_CONFIRM_WINDOWS, asked === undefined ? null : 'confirmWindows');
    if (note) request.onProgress?.({ kind: 'note', stage: 'confirmation', done: 0, total: 0, detail: note });
  } else if (heldOut && asked !== undefined) {
    const held = windowCount(heldOut.tokens.length, heldOut.seqlen, heldOut.maxChunks);
    const limit = heldOut.maxChunks !== undefined && held === heldOut.maxChunks ? ` (evalMaxChunks ${held})` : '';
    checkField(held >= asked, 'confirmWindows', `${asked} is more than the held-out text holds: ${held} windows of ${heldOut.seqlen} tokens${limit}`);
  }
}

function prepareRun(given: {
  request: SearchRequest; started: number; outDir: string; model: ModelCheckpoint; engine: EngineOptions; target: PruneTarget;
  options: ReturnType<typeof searchOptions>; counts: ReturnType<typeof checkTextsRequest>; start: CrepeParams | undefined; kSet: number[];
  measured: { proxy: ProxyName; sign: 1 | -1 } | null;
}): SearchRun {
  const { request, outDir, model, engine, target, options, start, kSet } = given;
  const { strategy, budget, calibrationConfirm, nllOn, proxyStatistics, giniSubsample, space, selection, proxyCacheBudget } = options;
  const { spec } = model;
  const plan = planTexts(request, spec, given.counts);
  const { nsamples, seqlen, seed } = plan;
  const nllTokens = (nllOn === 'heldout' ? plan.evalSeqlen : seqlen) * Math.min(request.nllWindows ?? CALIB_NLL_WINDOWS, nllOn === 'heldout' ? Infinity : nsamples);
  const choice = chooseProxy(request, spec, target, strategy, budget * kSet.length, nllTokens, given.measured);
  // output-error needs every layer's XᵀX; affordable for small models only.
  const gramsFit = ProxyContext.gramBytes(spec) <= GRAM_BUDGET_BYTES;
  if (choice.proxy === 'output-error') {
    checkField(gramsFit, 'proxy', `output-error needs ${(ProxyContext.gramBytes(spec) / 2 ** 30).toFixed(1)} GiB of Hessians for this model; use a gini proxy`);
  }

  const { evalText: heldOut, calibration, continued } = readTexts(request, request.model, spec, plan, 4 * calibrationConfirm);
  const heldCalibration = calibrationConfirm > 0 ? confirmationWindows(continued, nsamples, calibrationConfirm, seqlen) : null;
  if (heldCalibration) {
    checkField(heldCalibration.windows.length > 0, 'confirmOn', `the calibration text has no window beyond the ${nsamples} statistics windows for the held-out confirmation`);
  }
  checkConfirmWindows(request, options, heldOut, heldCalibration, nsamples);
  const weightsSha256 = hashWeights(model);
  // The start configuration, pruned to this run's target.
  const statisticsFrom = proxyStatistics === 'start' ? { params: startParams(space, kSet, start), target, selection }
    : null;
  const calibrationSettings = { file: path.resolve(request.calib), sha256: '', nsamples, seqlen, seed };
  const settingsFor = (params: CrepeParams): PruneSettings => pruneSettings({ method: 'crepe', target, selection, crepe: params, calibration: calibrationSettings });
  return {
    request, started: given.started, outDir, model, engine, options, kSet, start, plan, heldOut, calibration, heldCalibration, choice,
    proxyOptions: { target, selection, giniSubsample, seed, rows: choice.rows },
    statisticsFrom,
    // What the search ran on, so that it can be reproduced and its inputs recognised.
    provenanceBase: {
      crepeVersion: crepeVersion(),
      model: path.resolve(request.model),
      modelSha256: weightsSha256.first,
      modelFilesSha256: weightsSha256.files,
      calibration: { file: path.resolve(request.calib), sha256: sha256File(request.calib), nsamples, seqlen, seed, windowsSha256: windowsSha256(calibration.windows) },
      target,
      selection,
      heldout: request.evalText !== undefined ? path.resolve(request.evalText) : null,
      heldoutText: heldOut ? { textSha256: heldOut.textSha256, seqlen: heldOut.seqlen, maxChunks: heldOut.maxChunks ?? null } : null,
      start: start && request.crepeConfig !== undefined ? { file: path.resolve(request.crepeConfig), ...crepeParamsOf(start) } : null,
      searchA: options.space.searchA,
      date: new Date().toISOString(),
    },
    settingsFor,
    trial: (params) => {
      if (!heldOut) throw new Error('internal: a real trial without held-out text');
      return pruneAndMeasure(model, settingsFor(params), calibration.windows, { tokens: heldOut.tokens, seqlen: heldOut.seqlen, maxChunks: heldOut.maxChunks }, engine);
    },
    denseContext: async (rowsOnly, proxies) => {
      const progress = stageProgress(request, 'dense statistics', spec.numLayers, { name: 'layers' });
      const context = await ProxyContext.open(model, calibration.windows, seqlen, engine, {
        cacheDir: proxyCacheDir(outDir, request.proxyCache),
        cacheBudgetBytes: proxyCacheBudget * 2 ** 20,
        threads: request.threads ?? os.availableParallelism(),
        modelSha256: weightsSha256.all,
        calibrationFile: path.resolve(request.calib),
        calibrationSeed: seed,
        // Kept whenever they fit, so that one proxy cache serves searches and validations alike.
        withGram: gramsFit,
        nllWindows: request.nllWindows,
        nllText: nllOn === 'heldout' && heldOut ? { tokens: heldOut.tokens, seqlen: heldOut.seqlen } : undefined,
        statisticsFrom: statisticsFrom ?? undefined,
        windows: kSet.map((k) => windowKey({ k, variant: space.variant, a: space.fixedA })),
        rowsOnly,
        proxies,
        progress,
      });
      const { cache } = context;
      try {
        progress.done(cache.layersBuilt > 0
          ? `proxy cache ${cache.dir}: ${cache.layersBuilt} of ${cache.numLayers} layers computed`
          : `reusing the proxy cache ${cache.dir}`);
      } catch (error) {
        // An onProgress that throws: the context's threads and the cache's lock go with it.
        await context.close();
        throw error;
      }
      return context;
    },
  };
}

// ─── Validation: every proxy against real perplexity on random configurations ───
async function validationRun(run: SearchRun, count: number): Promise<SearchResult> {
  const { request, outDir, kSet, plan, proxyOptions, trial, provenanceBase } = run;
  const context = await run.denseContext();
  const configurations = randomConfigurations(count, kSet, run.options.space, plan.seed + 1);
  let progress: ReturnType<typeof stageProgress>;
  let result: Awaited<ReturnType<typeof validateProxies>>;
  try {
    progress = stageProgress(request, 'validate', configurations.length, { name: 'configurations' });
    result = await validateProxies(context, configurations, proxyOptions, trial, {
      bootstrapSeed: plan.seed,
      rows: run.choice.rows,
      onPoint: (p, i) => progress.update(i + 1, `PPL ${p.ppl.toFixed(2)}, proxies ${p.proxySeconds.toFixed(2)} s`),
    });
  } finally {
    await context.close();
  }
  progress.done();
  const proxyCache = { ...context.cache, threads: context.threads };
  const files: Record<string, string> = { 'validation.json': json({ provenance: provenanceBase, ...result, proxyCache, peakRssBytes: peakRssBytes() }) };
  for (const c of result.correlations) {
    files[`proxy-${c.proxy}.svg`] = scatterSvg(result.points.map((p) => ({ x: p.proxies[c.proxy], y: p.ppl })), {
      title: `${c.proxy} vs PPL (Spearman ${c.spearman.estimate.toFixed(2)} [${c.spearman.lower.toFixed(2)}, ${c.spearman.upper.toFixed(2)}])`,
      xLabel: c.proxy,
      yLabel: 'held-out PPL',
      logY: true,
    });
  }
  writeOutputs(outDir, files, request.overwrite);
  return {
    kind: 'validation', out: outDir, correlations: result.correlations, subsample: result.subsample,
    seconds: secondsSince(run.started), denseSeconds: context.denseSeconds, peakRssBytes: peakRssBytes(),
  };
}

// ─── PHO: CMA-ES on the proxy, then the optional confirmation by real trials ───
async function phoRun(run: SearchRun): Promise<SearchResult> {
  const { request, outDir, model, engine, kSet, start, plan, heldOut, calibration, heldCalibration, choice, proxyOptions, statisticsFrom, settingsFor } = run;
  const { budget, race, sigma0, confirm, confirmStatistics, confirmOn, nllOn, space } = run.options;
  const { proxy, sign } = choice;
  // On a row subset, with nothing that needs whole matrices (calib-nll, dense confirmations), the cache holds that subset alone.
  const wholeMatrices = !isLinearProxy(proxy) || (confirm > 0 && confirmStatistics === 'dense');
  const context = await run.denseContext(choice.rows < 1 && !wholeMatrices ? { fraction: choice.rows, seed: plan.seed } : undefined, [proxy]);
  let evaluated = 0;
  let phoSeconds = 0;
  let confirmations: Confirmation[] = [];
  const confirmText = heldCalibration
    ? { tokens: concatWindows(heldCalibration.windows), seqlen: plan.seqlen, maxChunks: heldCalibration.windows.length }
    : heldOut && { tokens: heldOut.tokens, seqlen: heldOut.seqlen, maxChunks: Math.min(heldOut.maxChunks ?? Infinity, request.confirmWindows ?? Infinity) };
  let result: PhoResult;
  try {
    const progress = stageProgress(request, `PHO (${proxy}, sign ${sign > 0 ? '+' : '−'})`, phoEvaluations(budget, space, kSet.length, race), { name: 'candidates' });
    const phoStarted = performance.now();
    result = await runPho(context, { ...proxyOptions, kSet, budgetPerK: budget, race, proxy, sign, space, sigma0, start }, (c) =>
      progress.update(++evaluated, `k=${c.k} ${proxy}=${c.proxies[proxy].toFixed(5)}, ${c.seconds.toFixed(2)} s/candidate`),
    );
    phoSeconds = secondsSince(phoStarted);
    progress.done(`best k=${result.best.k} β=${result.best.params.beta.toPrecision(4)} γ=${result.best.params.gamma.toPrecision(4)}`);
    if (confirm > 0 && confirmText) {
      // The start configuration is confirmed too (the search never returns worse than its start).
      const shortlist = confirmationShortlist(result, confirm, startParams(space, kSet, start));
      const confirmProgress = stageProgress(request, `confirm on ${heldCalibration ? 'held-out calibration windows' : 'held-out text'} (${confirmStatistics} statistics)`, shortlist.length, { name: 'trials' });
      const confirmTrial = confirmationTrial(context, confirmStatistics, { model, settingsFor, windows: calibration.windows, text: confirmText, engine, options: proxyOptions });
      confirmations = await confirmOnHeldOut(shortlist, confirmTrial, (c, i) => confirmProgress.update(i + 1, `${c.source} k=${c.params.k} PPL ${c.ppl.toFixed(3)}${c.prune ? ' (the dense pass\'s prune)' : ''}`));
      confirmProgress.done();
    }
  } finally {
    await context.close();
  }
  const perEvaluationSeconds = result.candidates.reduce((sum, c) => sum + c.seconds, 0) / result.candidates.length;
  const confirmSeconds = confirmations.reduce((sum, c) => sum + c.seconds, 0);
  const chosen = confirmations.length ? confirmations.reduce((a, b) => (b.ppl < a.ppl ? b : a)).params : result.best.params;
  const seconds = secondsSince(run.started);
  const config: CrepeConfigFile = {
    format: CREPE_CONFIG_FORMAT,
    ...chosen,
    provenance: {
      ...run.provenanceBase,
      strategy: confirmations.length ? 'pho+confirm' : 'pho',
      confirmations: confirmations.map((c) => ({ source: c.source, k: c.params.k, beta: c.params.beta, gamma: c.params.gamma, a: c.params.a, heldoutPpl: c.ppl })),
      confirmation: confirmations.length ? {
        on: confirmOn,
        statistics: confirmStatistics,
        windows: confirmText ? windowCount(confirmText.tokens.length, confirmText.seqlen, confirmText.maxChunks) : 0,
        ...(heldCalibration ? { draws: heldCalibration.draws } : {}),
        seconds: confirmSeconds,
      } : null,
      proxy,
      proxySign: sign,
      proxySignSource: choice.signSource,
      proxyValue: result.best.proxies[proxy],
      ...(proxy === 'calib-nll' ? { nllOn, nllWindows: request.nllWindows ?? CALIB_NLL_WINDOWS } : {}),
      proxyStatistics: statisticsFrom ? { from: statisticsFrom.params } : 'dense',
      kSet,
      budgetPerK: budget,
      ...(race !== undefined ? { race } : {}),
      evaluations: result.candidates.length,
      sigma0,
      giniSubsample: run.options.giniSubsample,
      proxyRows: choice.rows,
      proxyRowsSource: choice.rowsSource,
      // Wall time this run spent building the proxy cache: the dense forward passes that collect the
      // statistics and the proxy terms derived from them (0 when the cache was complete).
      denseStatisticsSeconds: context.denseSeconds,
      // Only the proxy terms' part of the build (derived from each layer's weights and statistics, and
      // written), summed over every run that built the cache, as its manifest records it; without the
      // forward passes, so less than denseStatisticsSeconds when this run built the whole cache.
      cacheTermsSeconds: context.cache.totalDenseSeconds,
      perEvaluationSeconds,
      searchSeconds: seconds,
    },
  };
  writeOutputs(outDir, {
    'crepe-config.json': json(config),
    'search-log.json': json({
      strategy: 'pho',
      seconds: { ...result.seconds, wall: seconds, denseStatistics: context.denseSeconds, perEvaluation: perEvaluationSeconds, pho: phoSeconds, confirmation: confirmSeconds },
      peakRssBytes: peakRssBytes(),
      proxyCache: { ...context.cache, threads: context.threads, rows: choice.rows },
      bestPerK: result.bestPerK,
      confirmations,
      candidates: result.candidates,
    }),
  }, request.overwrite);
  return { kind: 'pho', out: outDir, config, seconds, denseSeconds: context.denseSeconds, perEvaluationSeconds, peakRssBytes: peakRssBytes() };
}

// ─── Hill climbing: coordinate steps, each measured by a real trial ───
async function hillClimbRun(run: SearchRun): Promise<SearchResult> {
  const { request, outDir, kSet, start } = run;
  const { budget, space } = run.options;
  const progress = stageProgress(request, 'hill climbing', budget * kSet.length, { name: 'trials' });
  let trials = 0;
  const result = await runHillClimb(run.trial, { kSet, space, budgetPerK: budget, initialStep: 1, minStep: 0.25, start }, (c) =>
    progress.update(++trials, `k=${c.k} PPL ${c.ppl.toFixed(3)}${c.accepted ? ' (accepted)' : ''}`),
  );
  progress.done(`best k=${result.best.k} PPL ${result.best.ppl.toFixed(3)}`);
  const seconds = secondsSince(run.started);
  const config: CrepeConfigFile = {
    format: CREPE_CONFIG_FORMAT,
    ...result.best.params,
    provenance: { ...run.provenanceBase, strategy: 'hillclimb', heldoutPpl: result.best.ppl, kSet, budgetPerK: budget, trials: result.candidates.length, searchSeconds: seconds },
  };
  writeOutputs(outDir, {
    'crepe-config.json': json(config),
    'search-log.json': json({ strategy: 'hillclimb', seconds, bestPerK: result.bestPerK, candidates: result.candidates }),
  }, request.overwrite);
  return { kind: 'hillclimb', out: outDir, config, seconds };
}
