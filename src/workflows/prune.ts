/**
 * A whole pruning run: check every input, draw the calibration windows, run the resumable
 * layer-by-layer pipeline into `<out>.crepe-partial`, measure perplexity there when asked, write
 * crepe-report.json, and only then move the finished directory to `out`.
 *
 * Every input is checked before the first expensive step: the request's fields and settings, the
 * files (calibration, evaluation text, CRePE configuration), the output rule, the window lengths
 * against the model's context, N:M widths, and the evaluation text's length.
 */
import { rmSync } from 'node:fs';
import path from 'node:path';
import { ModelCheckpoint } from '../model/checkpoint.ts';
import { LINEAR_NAMES, type ModelSpec } from '../model/spec.ts';
import { windowsSha256 } from '../data/calibration.ts';
import { runPrunePipeline, publishOutput, workDirFor, type PipelineResult } from '../prune/pipeline.ts';
import { validateAgainstModel } from '../prune/layer-loop.ts';
import { pruneSettings, type PruneSettings } from '../prune/settings.ts';
import { describeTarget, type PruneTarget, type Selection } from '../prune/target.ts';
import type { MethodName } from '../prune/methods.ts';
import { resolveCrepeParams, type CrepeParams } from '../prune/scores/crepe.ts';
import { DEFAULT_CREPE_CONFIG_PATH, loadCrepeConfig } from '../search/crepe-config.ts';
import { atomicWriteJson } from '../io/atomic.ts';
import { checkOutputDir } from '../io/output-dir.ts';
import { lockOutput } from '../io/output-lock.ts';
import { sha256File } from '../util/hash.ts';
import { checkField } from '../util/errors.ts';
import { engineOptions, stageProgress, type EngineRequest, type RunControl } from './common.ts';
import { measurePerplexity, type EvalResult } from './eval.ts';
import { checkTextsRequest, planTexts, readTexts, type TextsRequest } from './texts.ts';

/** A pruning run; the calibration text and the optional evaluation text are `TextsRequest` fields. */
export interface PruneRequest extends EngineRequest, RunControl, TextsRequest {
  /** Hugging Face model directory to prune (it is only read). */
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
  /** CRePE configuration file (default: the shipped configs/crepe-default.json); method crepe only. */
  crepeConfig?: string;
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
  /** Continue an interrupted run from its last finished layer (same request required). */
  resume?: boolean;
  /** The command line that asked for the run, recorded in the report. */
  command?: string;
}

/** What crepe-report.json holds. */
export interface PruneReport {
  tool: 'crepe';
  command: string | null;
  model: { dir: string; spec: ModelSpec; inputSha256: Record<string, string> };
  settings: PruneSettings;
  calibration: { windows: number; windowsSha256: string; draws: Array<[number, number]> };
  layerTargets: PruneTarget[];
  layers: PipelineResult['layers'];
  totals: { linearSparsity: number; prunedWeights: number; linearWeights: number; pipelineSeconds: number; seconds: number };
  evaluation: EvalResult | null;
}

export interface PruneResult extends PruneReport {
  /** The published output directory (absolute). */
  out: string;
}

/** The run's settings: the request's fields through pruneSettings (which checks every one of them). */
function settingsFor(request: PruneRequest, calibration: PruneSettings['calibration']): PruneSettings {
  let crepe: Partial<CrepeParams> | null = null;
  if (request.method === 'crepe') {
    // The configuration file's parameters, each overridden by the request's own.
    const base = loadCrepeConfig(request.crepeConfig ?? DEFAULT_CREPE_CONFIG_PATH);
    const given = request.crepe ?? {};
    crepe = resolveCrepeParams(
      {
        k: given.k ?? base.k,
        alpha: given.alpha ?? base.alpha,
        beta: given.beta ?? base.beta,
        gamma: given.gamma ?? base.gamma,
        a: given.a ?? base.a,
        variant: given.variant ?? base.variant,
        border: base.border,
      },
      'CRePE options',
    );
  } else {
    checkField(request.crepeConfig === undefined, 'crepeConfig', 'applies to method crepe only');
    for (const [name, value] of Object.entries(request.crepe ?? {})) {
      checkField(value === undefined, `crepe.${name}`, 'applies to method crepe only');
    }
  }
  // Short names (down_proj) stand for the block linear they end (mlp.down_proj).
  const exclude = (request.exclude ?? []).map((wanted) => LINEAR_NAMES.find((name) => name.endsWith(`.${wanted}`)) ?? wanted);
  return pruneSettings({ ...request, crepe, calibration, exclude });
}

function readSpec(modelDir: string): ModelSpec {
  const model = ModelCheckpoint.open(modelDir);
  model.close();
  return model.spec;
}

/** Prunes `request.model` and publishes the pruned checkpoint with its report at `request.out`. */
export async function pruneModel(request: PruneRequest): Promise<PruneResult> {
  const started = Date.now();
  const engine = engineOptions(request);
  const counts = checkTextsRequest(request);
  const outDir = checkOutputDir(request.out, {
    overwrite: request.overwrite,
    inputs: [request.model, request.calib, request.evalText, request.crepeConfig],
  });
  const spec = readSpec(request.model);
  const plan = planTexts(request, spec, counts);
  const { nsamples, seqlen, seed } = plan;
  const calibration = { file: path.resolve(request.calib), sha256: sha256File(request.calib), nsamples, seqlen, seed };
  const settings = settingsFor(request, calibration);
  validateAgainstModel(spec, settings);
  const { evalText, calibration: windows } = readTexts(request, request.model, spec, plan);

  const workDir = workDirFor(outDir);
  const lock = lockOutput(outDir, (note) => request.onProgress?.({ kind: 'note', stage: 'output', done: 0, total: 0, detail: note }));
  let finished = false;
  try {
    const progress = stageProgress(request, `prune ${settings.method} ${describeTarget(settings.target)}`, spec.numLayers);
    const result = await runPrunePipeline({
      modelDir: request.model,
      outDir,
      settings,
      windows: windows.windows,
      engine,
      resume: Boolean(request.resume),
      overwrite: Boolean(request.overwrite),
      progress,
    });
    progress.done(`linear sparsity ${(result.linearSparsity * 100).toFixed(3)}%`);
    finished = true;
    const evaluation = evalText ? await measurePerplexity(workDir, evalText, engine, request) : null;
    const report: PruneReport = {
      tool: 'crepe',
      command: request.command ?? null,
      model: { dir: path.resolve(request.model), spec, inputSha256: result.inputSha256 },
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
      evaluation,
    };
    await atomicWriteJson(path.join(workDir, 'crepe-report.json'), report);
    publishOutput(outDir, request.overwrite);
    return { ...report, out: outDir };
  } catch (error) {
    // A finished model that was not published cannot be resumed (its state is gone), and a
    // cancelled fresh run keeps nothing; an interrupted resumable run keeps its work directory.
    if (finished || (request.signal?.aborted && !request.resume)) rmSync(workDir, { recursive: true, force: true });
    throw error;
  } finally {
    lock.release();
  }
}
