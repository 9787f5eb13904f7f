/**
 * A whole pruning run: check every input, draw the calibration windows, run the resumable
 * layer-by-layer pipeline into `<out>.crepe-partial`, measure perplexity there when asked, write
 * crepe-report.json, and only then move the finished directory to `out`.
 *
 * With an evaluation text, the dense model's perplexity is measured first on the same windows, so
 * the report, the model card (README.md, prune-report.ts) and crepe-report.md show both.
 *
 * Every input is checked before the first expensive step: the request's fields and settings, the
 * files (calibration, evaluation text, CRePE configuration), the output rule, the window lengths
 * against the model's context, N:M widths, and the evaluation text's length.
 */
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { ModelCheckpoint } from '../model/checkpoint.ts';
import { LINEAR_NAMES, type ModelSpec } from '../model/spec.ts';
import { windowsSha256 } from '../data/calibration.ts';
import { runPrunePipeline, publishOutput, workDirFor, type OutputOptions, type PipelineResult } from '../prune/pipeline.ts';
import { WorkDir } from '../prune/work-dir.ts';
import { parseByteSize, SAVE_FORMATS, type SaveFormat } from '../io/checkpoint-writer.ts';
import { parseHubId } from '../hub/hub-id.ts';
import { checkCrepeWindowFits, dsnotCycleNote, validateAgainstModel } from '../prune/layer-loop.ts';
import { pruneSettings, type PruneSettings } from '../prune/settings.ts';
import { describeTarget, type PruneTarget, type Selection } from '../prune/target.ts';
import type { MethodName } from '../prune/methods.ts';
import { resolveCrepeParams, type CrepeParams } from '../prune/scores/crepe.ts';
import { PACKAGE_ROOT, checkCrepeConfigName, loadCrepeConfig } from '../search/crepe-config.ts';
import { defaultConfigFile, defaultCrepeConfigFor } from '../search/crepe-defaults.ts';
import { runAutoCrepe, type AutoOptions, type AutoReport, type AutoResult } from './auto-crepe.ts';
import { masksFit } from '../prune/mask-replay.ts';
import { atomicWriteFile, atomicWriteJson } from '../io/atomic.ts';
import { readInputJson, readInputText } from '../io/input-file.ts';
import type { CopiedModelFiles } from '../io/model-files.ts';
import type { StorageOrder } from '../prune/storage-order.ts';
import { crepeVersion } from '../util/version.ts';
import { modelCard, reportMarkdown } from './prune-report.ts';
import { checkOutputDir } from '../io/output-dir.ts';
import { lockOutput } from '../io/output-lock.ts';
import { sha256File } from '../util/hash.ts';
import { UserError, checkField } from '../util/errors.ts';
import { checkKnownFields, describeValue, type FieldSpec } from '../util/fields.ts';
import type { Progress } from '../util/progress.ts';
import {
  CONTROL_FIELDS, ENGINE_FIELDS, HUB_FIELDS, checkRequest, engineOptions, resolveModel, stageProgress, type EngineRequest, type HubRequest, type RunControl,
} from './common.ts';
import { measurePerplexity, type EvalResult } from './eval.ts';
import { TEXTS_FIELDS, checkTextsRequest, planTexts, readTexts, type TextsRequest } from './texts.ts';
import { autoExtraWindows, autoOptionsOf, checkAutoAgainstModel } from './auto-crepe.ts';
import { measureTasks, prepareTasks, selectTasks, type TaskSelection } from './zeroshot.ts';
import type { ZeroShotReport } from '../eval/zeroshot.ts';

/** A pruning run; the calibration text and the optional evaluation text are `TextsRequest` fields. */
export interface PruneRequest extends EngineRequest, RunControl, TextsRequest, HubRequest {
  /** Hugging Face model directory to prune (it is only read), or a Hub id (org/name[@revision]). */
  model: string;
  /** Output model directory; must not exist unless `overwrite`. */
  out: string;
  /** magnitude, wanda, sparsegpt, ria or crepe (METHOD_NAMES). */
  method: MethodName;
  /** What to prune (see `parseTarget` for "0.5" / "2:4" text). */
  target: PruneTarget;
  /** Unstructured selection rule (default: the method's reference rule). */
  selection?: Selection;
  /** RIA's activation exponent (default 0.5). */
  riaA?: number;
  /**
   * CRePE configuration file; method crepe only. Default: the shipped configuration for the target
   * (configs/crepe-50|60|70|2of4|4of8.json: the nearest sparsity, an N:M pattern's own).
   */
  crepeConfig?: string;
  /**
   * Method crepe: search this model's coefficients (PHO) and keep the best of the top candidates and
   * the RIA point by perplexity on held-out calibration windows; `true` for the defaults.
   */
  auto?: boolean | AutoOptions;
  /** CRePE coefficients that override the configuration's. */
  crepe?: Partial<Omit<CrepeParams, 'border'>>;
  /** Collect statistics group by group on the partly pruned block. */
  trueSequential?: boolean;
  /** SparseGPT's column block (default 128) and dampening (default 0.01). */
  sparsegpt?: { blockSize?: number; percdamp?: number };
  /** SparseGPT's weight update under the method's fixed mask. */
  reconstruct?: boolean;
  /** Outlier-weighted layer-wise sparsity (M default 5, λ default 0.08). */
  owl?: { m?: number; lambda?: number } | null;
  /** DSnoT prune-and-grow (maxCycles 50, updateThreshold 0.1, skip 'mlp' by default). */
  dsnot?: { maxCycles?: number; updateThreshold?: number; skip?: 'mlp' | 'none'; sameSign?: boolean } | null;
  /** Channel permutation for N:M targets (blocks default 1). */
  permute?: { strategy: 'reallocation' | 'lsa'; blocks?: number } | null;
  /** Linears left dense in every layer: full names (mlp.down_proj) or their last part (down_proj). */
  exclude?: readonly string[];
  overwrite?: boolean;
  /** How the pruned weights are stored: 'dense' (default) or compressed-tensors' 'sparse-bitmask'. */
  saveFormat?: SaveFormat;
  /** Largest weight file: bytes, or text such as "2GB" / "500MiB" (default "5GB", as transformers). */
  maxShardSize?: number | string;
  /**
   * Write compressed-tensors' `quantization_config.sparsity_config` into config.json (default true), which
   * vLLM and llm-compressor read; transformers then needs the compressed-tensors package to load the model.
   * false keeps config.json as the input's (a dense save only).
   */
  sparsityMetadata?: boolean;
  /** Continue an interrupted run from its last finished layer (same request required). */
  resume?: boolean;
  /** The command line that asked for the run, recorded in the report. */
  command?: string;
  /** Hub id of the input model, written as base_model in the model card (default: config.json's _name_or_path when it is a Hub id). */
  baseModel?: string;
  /** Zero-shot tasks to evaluate the pruned model on (see ZeroShotRequest.tasks), checked before pruning. */
  evalTasks?: string | readonly string[];
  /** The directory of the task files (with evalTasks). */
  evalTaskDir?: string;
  /** Only the first evalLimit documents of each task. */
  evalLimit?: number;
}

/** What crepe-report.json holds. */
export interface PruneReport {
  tool: 'crepe';
  crepeVersion: string;
  command: string | null;
  model: { dir: string; spec: ModelSpec; inputSha256: Record<string, string>; baseModel: string | null };
  settings: PruneSettings;
  calibration: { windows: number; windowsSha256: string; draws: Array<[number, number]> };
  layerTargets: PruneTarget[];
  layers: PipelineResult['layers'];
  totals: { linearSparsity: number; prunedWeights: number; linearWeights: number; pipelineSeconds: number; seconds: number };
  /** The dense model's perplexity on the evaluation windows, measured before pruning. */
  baseline: EvalResult | null;
  /** The pruned model's perplexity on the same windows. */
  evaluation: EvalResult | null;
  /** With a channel permutation: which linears are N:M as stored and which need a runtime permutation. */
  storage: StorageOrder | null;
  /** The input's non-weight files copied to the output, and those left out. */
  files: CopiedModelFiles;
  /** Method crepe: the configuration used and why (given, the target's shipped default, or --auto's choice). */
  crepeConfig?: { file: string | null; source: 'given' | 'default' | 'auto'; reason: string };
  /** Method crepe with auto: every candidate, the confirmation perplexities and the cost. */
  auto?: AutoReport;
  /** Zero-shot accuracy of the pruned model (evalTasks). */
  zeroShot: ZeroShotReport | null;
}

export interface PruneResult extends PruneReport {
  /** The published output directory (absolute). */
  out: string;
}

const PRUNE_FIELDS: FieldSpec<PruneRequest> = {
  ...CONTROL_FIELDS, ...ENGINE_FIELDS, ...HUB_FIELDS, ...TEXTS_FIELDS,
  model: 'checked', out: 'checked', method: 'checked', target: 'checked', selection: 'checked', riaA: 'checked', crepeConfig: 'checked',
  auto: 'checked', crepe: 'checked', trueSequential: 'flag', sparsegpt: 'checked', reconstruct: 'flag', owl: 'nullable', dsnot: 'nullable',
  permute: 'nullable', exclude: 'checked', overwrite: 'flag', saveFormat: 'checked', maxShardSize: 'checked', sparsityMetadata: 'flag',
  resume: 'flag', command: 'text', baseModel: 'checked', evalTasks: 'checked', evalTaskDir: 'checked', evalLimit: 'checked',
};

/** The CRePE coefficients a request may override (the border comes from the configuration). */
const CREPE_OVERRIDES = ['k', 'alpha', 'beta', 'gamma', 'a', 'variant'] as const;

/**
 * The run's settings: the request's fields through pruneSettings (which checks every one of them).
 * Method crepe starts from `autoParams` (--auto's choice) when given, else from `configFile`.
 */
function settingsFor(request: PruneRequest, calibration: PruneSettings['calibration'], configFile: string | null, autoParams?: CrepeParams): PruneSettings {
  let crepe: Partial<CrepeParams> | null = null;
  if (request.method === 'crepe') {
    // The configuration's parameters (a file, or --auto's choice), each overridden by the request's own.
    const base = autoParams ?? loadCrepeConfig(configFile!);
    const given: Partial<CrepeParams> = request.crepe ?? {};
    const merged: Partial<CrepeParams> = { border: base.border };
    for (const name of CREPE_OVERRIDES) Object.assign(merged, { [name]: given[name] ?? base[name] });
    crepe = resolveCrepeParams(merged, { field: 'crepe' });
  } else {
    checkField(request.crepeConfig === undefined, 'crepeConfig', 'applies to method crepe only');
    checkField(!request.auto, 'auto', 'applies to method crepe only');
    for (const [name, value] of Object.entries(request.crepe ?? {})) {
      checkField(value === undefined, `crepe.${name}`, 'applies to method crepe only');
    }
  }
  // Short names (down_proj) stand for the block linear they end (mlp.down_proj).
  const excluded = request.exclude ?? [];
  const exclude = !Array.isArray(excluded) ? excluded : excluded.map((wanted) => LINEAR_NAMES.find((name) => name.endsWith(`.${wanted}`)) ?? wanted);
  const { method, target, selection, riaA, trueSequential, sparsegpt, reconstruct, owl, dsnot, permute } = request;
  return pruneSettings({ method, target, selection, riaA, crepe, calibration, trueSequential, sparsegpt, reconstruct, owl, dsnot, permute, exclude });
}

/** The save format and shard size of a request, validated. */
function outputOptions(request: PruneRequest): OutputOptions {
  const format = request.saveFormat ?? 'dense';
  checkField(SAVE_FORMATS.includes(format), 'saveFormat', `must be one of ${SAVE_FORMATS.join(', ')}, got ${JSON.stringify(format)}`);
  const size = request.maxShardSize;
  const maxShardSize = size === undefined
    ? undefined
    : typeof size === 'number' ? (Number.isSafeInteger(size) && size > 0 ? size : null) : parseByteSize(size);
  checkField(maxShardSize !== null, 'maxShardSize', () => `must be a positive size such as 5GB, 500MB or 2GiB, got ${describeValue(size)}`);
  const sparsityMetadata = request.sparsityMetadata ?? true;
  checkField(typeof sparsityMetadata === 'boolean', 'sparsityMetadata', `must be true or false, got ${JSON.stringify(sparsityMetadata)}`);
  checkField(sparsityMetadata || format === 'dense', 'sparsityMetadata', 'cannot be combined with saveFormat sparse-bitmask, whose readers find the format in config.json\'s sparsity_config');
  return { format, maxShardSize, sparsityMetadata };
}

/** `name` when it is a plain Hub id (org/name, no revision or file). */
const isRepoId = (name: string): boolean => parseHubId(name)?.repo === name;

/**
 * The model card's base_model: the request's; the Hub id the model was fetched by; or config.json's
 * _name_or_path when that is a Hub id and no local path.
 */
function baseModelOf(request: PruneRequest, fetchedFrom: string | null): string | null {
  if (request.baseModel !== undefined) {
    checkField(typeof request.baseModel === 'string' && isRepoId(request.baseModel), 'baseModel', () => `must be a Hub id such as org/name, got ${describeValue(request.baseModel)}`);
    return request.baseModel;
  }
  if (fetchedFrom !== null) return fetchedFrom;
  const config = readInputJson(path.join(request.model, 'config.json'), 'json') as { _name_or_path?: unknown };
  const name = config?._name_or_path;
  return typeof name === 'string' && isRepoId(name) && !existsSync(name) ? name : null;
}

/**
 * Writes README.md (the input's card with its Pruning section) and crepe-report.md into `dir`. An
 * input README.md that is not UTF-8 text stays as copied, with a note.
 */
async function writeDocuments(dir: string, report: PruneReport, outDir: string, progress: Progress): Promise<void> {
  const readme = path.join(dir, 'README.md');
  let input: string | null = null;
  try {
    if (report.files.copied.includes('README.md')) input = readInputText(readme, 'text');
  } catch (error) {
    if (!(error instanceof UserError)) throw error;
    progress.log(`${error.message}: README.md copied as it is, without a Pruning section (see crepe-report.md)`);
  }
  if (input !== null || !report.files.copied.includes('README.md')) {
    await atomicWriteFile(readme, modelCard(input, report, { title: path.basename(outDir), baseModel: report.model.baseModel }));
  }
  await atomicWriteFile(path.join(dir, 'crepe-report.md'), reportMarkdown(report));
}

function readSpec(modelDir: string): ModelSpec {
  const model = ModelCheckpoint.open(modelDir);
  model.close();
  return model.spec;
}

/**
 * What a prune into `out` stopped by a signal leaves behind, in one sentence for its user, or
 * null when there is nothing to continue.
 */
export function interruptedPruneNote(out: string): string | null {
  return WorkDir.resumable(out) ? `the finished layers stay in ${workDirFor(out)}: the same command with --resume continues it, --overwrite starts again` : null;
}

/**
 * The request with its onProgress watched: a throwing onProgress stops the run as a cancellation
 * does (a fresh run leaves nothing behind), so `failed` tells the run's cleanup it happened.
 */
function watchCallback(request: PruneRequest): { request: PruneRequest; failed: () => boolean } {
  let failed = false;
  const onProgress = request.onProgress;
  if (!onProgress) return { request, failed: () => failed };
  const watched: PruneRequest = {
    ...request,
    onProgress: (event) => {
      try {
        onProgress(event);
      } catch (error) {
        failed = true;
        throw error;
      }
    },
  };
  return { request: watched, failed: () => failed };
}

/** The zero-shot tasks to measure on the pruned model (evalTasks), checked before pruning; null without evalTasks. */
function zeroShotSelection(request: PruneRequest): TaskSelection | null {
  if (request.evalTasks === undefined) {
    checkField(request.evalTaskDir === undefined, 'evalTaskDir', 'applies to evalTasks only (the zero-shot tasks to measure)');
    checkField(request.evalLimit === undefined, 'evalLimit', 'applies to evalTasks only (the zero-shot tasks to measure)');
    return null;
  }
  return selectTasks({ tasks: 'evalTasks', taskDir: 'evalTaskDir', limit: 'evalLimit' }, request.evalTasks, request.evalTaskDir, request.evalLimit);
}

type CrepeConfigChoice = NonNullable<PruneReport['crepeConfig']>;

/** Method crepe: the configuration file the run starts from (given, or the target's shipped default); undefined for other methods. */
function crepeConfigChoice(request: PruneRequest): (CrepeConfigChoice & { file: string }) | undefined {
  checkField(!(request.auto && request.crepeConfig !== undefined), 'auto', 'searches the configuration itself: give crepeConfig or auto, not both');
  // PHO searches k, β and γ over ratios to α = 1: an override of one would replace the choice after its confirmation.
  for (const name of ['k', 'alpha', 'beta', 'gamma'] as const) {
    checkField(!(request.auto && request.crepe?.[name] !== undefined), `crepe.${name}`, 'is what auto searches (k, β and γ, with α = 1): give it or auto, not both');
  }
  if (request.method !== 'crepe') return undefined;
  if (request.crepeConfig !== undefined) {
    checkCrepeConfigName(request.crepeConfig);
    return { file: path.resolve(request.crepeConfig), source: 'given', reason: `${request.crepeConfig} (given)` };
  }
  const chosen = defaultCrepeConfigFor(request.target);
  return { file: chosen.file, source: 'default', reason: `${defaultConfigFile(chosen.name)}, ${chosen.reason}` };
}

/** The report's configuration when --auto chose the coefficients. */
function autoCrepeConfig(auto: AutoReport): CrepeConfigChoice {
  return {
    file: null,
    source: 'auto',
    reason: `auto: ${auto.chosen.source}, confirmation PPL ${auto.chosen.confirmationPpl.toFixed(3)} (RIA point ${auto.candidates[0].confirmationPpl.toFixed(3)})`,
  };
}

/** Prunes `request.model` and publishes the pruned checkpoint with its report at `request.out`. */
export async function pruneModel(request: PruneRequest): Promise<PruneResult> {
  const started = Date.now();
  checkRequest(request, PRUNE_FIELDS);
  if (request.crepe !== undefined) checkKnownFields(request.crepe, 'crepe', CREPE_OVERRIDES);
  const autoOptions = autoOptionsOf(request.auto);
  const callback = watchCallback(request);
  request = callback.request;
  const engine = engineOptions(request);
  const counts = checkTextsRequest(request);
  const taskSelection = zeroShotSelection(request);
  const output = outputOptions(request);
  // The model is fetched (when it is a Hub id) once the request's own fields are known to be good.
  const given = request.model;
  request = { ...request, model: await resolveModel('model', request.model, request, 'model-dir') };
  const fetchedFrom = request.model !== given ? parseHubId(given)!.repo : null;
  const outDir = checkOutputDir(request.out, {
    overwrite: request.overwrite,
    inputs: [request.model, request.calib, request.evalText, request.crepeConfig],
  });
  const spec = readSpec(request.model);
  const plan = planTexts(request, spec, counts);
  const { nsamples, seqlen, seed } = plan;
  const calibration = { file: path.resolve(request.calib), sha256: sha256File(request.calib), nsamples, seqlen, seed };
  const crepeConfig = crepeConfigChoice(request);
  // Checked with the configuration the run would fall back to; --auto replaces its coefficients.
  let settings = settingsFor(request, calibration, crepeConfig?.file ?? null);
  // A k read from the configuration file is refused naming the file, not the override.
  if (crepeConfig && request.crepe?.k === undefined) checkCrepeWindowFits(spec, settings.crepe!.k, settings.exclude, 'crepe.k', request.crepeConfig ?? crepeConfig.file);
  validateAgainstModel(spec, settings);
  if (autoOptions) checkAutoAgainstModel(spec, autoOptions);
  const dsnotNote = dsnotCycleNote(spec, settings);
  if (dsnotNote) request.onProgress?.({ kind: 'note', stage: 'prune', done: 0, total: 0, detail: dsnotNote });
  const baseModel = baseModelOf(request, fetchedFrom);
  const { evalText, calibration: windows, continued } = readTexts(request, request.model, spec, plan, autoOptions ? autoExtraWindows(autoOptions) : 0);
  const tasks = taskSelection ? prepareTasks(taskSelection, request.model, spec) : null;
  const workDir = workDirFor(outDir);
  // Taken before --auto's search, whose scratch cache beside the output is then this run's alone.
  const lock = lockOutput(outDir, (note) => request.onProgress?.({ kind: 'note', stage: 'output', done: 0, total: 0, detail: note }));
  let finished = false;
  let auto: AutoReport | undefined;
  let autoMasks: AutoResult | undefined;
  try {
    if (autoOptions) {
      // With auto the configuration is always the target's shipped default (a given one is refused).
      const fallback = `default ${path.relative(PACKAGE_ROOT, crepeConfig!.file)}`;
      autoMasks = await runAutoCrepe(request, autoOptions, { spec, outDir, settings, fallback, windows, continued, seqlen, engine });
      settings = settingsFor(request, calibration, null, autoMasks.report.chosen.params);
    }
    // The chosen candidate's confirmation prune had these settings and windows: its masks are this model.
    const replay = autoMasks?.masks && masksFit(autoMasks.masks, settings, spec.numLayers) ? autoMasks.masks : undefined;
    if (autoMasks) auto = { ...autoMasks.report, outputFromMasks: replay !== undefined };
    // The dense baseline on the same windows, before anything is pruned.
    const baseline = evalText ? await measurePerplexity(request.model, evalText, engine, request, 'eval dense') : null;
    // Written from recorded masks, no calibration token goes through the model.
    const progress = stageProgress(
      request, `prune ${settings.method} ${describeTarget(settings.target)}${replay ? ' (the masks of its confirmation)' : ''}`, spec.numLayers,
      { name: 'layers', ...(replay ? {} : { tokens: windows.windows.length * seqlen }) },
    );
    const result = await runPrunePipeline({
      modelDir: request.model,
      outDir,
      settings,
      windows: windows.windows,
      engine,
      resume: Boolean(request.resume),
      overwrite: Boolean(request.overwrite),
      progress,
      output,
      replay,
    });
    progress.done(`linear sparsity ${(result.linearSparsity * 100).toFixed(3)}%`);
    finished = true;
    const evaluation = evalText ? await measurePerplexity(workDir, evalText, engine, request, 'eval pruned') : null;
    const zeroShot = tasks ? { ...(await measureTasks(workDir, tasks, engine, request)), model: outDir } : null;
    const report: PruneReport = {
      tool: 'crepe',
      crepeVersion: crepeVersion(),
      command: request.command ?? null,
      model: { dir: path.resolve(request.model), spec, inputSha256: result.inputSha256, baseModel },
      settings,
      calibration: { windows: windows.windows.length, windowsSha256: windowsSha256(windows.windows), draws: windows.draws },
      layerTargets: result.layerTargets,
      layers: result.layers,
      totals: {
        linearSparsity: result.linearSparsity,
        prunedWeights: result.prunedWeights,
        linearWeights: result.linearWeights,
        pipelineSeconds: result.seconds,
        seconds: (Date.now() - started) / 1000,
      },
      baseline,
      evaluation,
      storage: settings.permute ? result.storage : null,
      files: result.files,
      ...(crepeConfig ? { crepeConfig: auto ? autoCrepeConfig(auto) : crepeConfig } : {}),
      ...(auto ? { auto } : {}),
      zeroShot,
    };
    await atomicWriteJson(path.join(workDir, 'crepe-report.json'), report);
    await writeDocuments(workDir, report, outDir, progress);
    publishOutput(outDir, request.overwrite);
    return { ...report, out: outDir };
  } catch (error) {
    // A finished model that was not published cannot be resumed (its state is gone), and a fresh
    // run cancelled (by its signal or its onProgress) keeps nothing; an interrupted resumable run
    // keeps its work directory.
    if (finished || ((request.signal?.aborted || callback.failed()) && !request.resume)) rmSync(workDir, { recursive: true, force: true });
    throw error;
  } finally {
    autoMasks?.release();
    lock.release();
  }
}
