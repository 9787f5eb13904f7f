/**
 * The layer loop every pruning run shares (ALGORITHMS.md §1.3): for each decoder layer, collect
 * the linears' input statistics on the dense block, prune the linears, run the pruned block to make
 * the next layer's inputs. Where the pruned layers go (a work directory on disk, or memory for a
 * search) is the caller's business, through `onLayerDone`.
 */
import {
  LINEAR_NAMES, LINEAR_INPUT_GROUP, checkSeqlen, checkWindows, linearShape,
  type BlockWeights, type LinearInputGroup, type LinearName, type ModelSpec,
} from '../model/spec.ts';
import { ropeTables, type RopeTables } from '../model/rope.ts';
import { checkBlockSource, type BlockSource } from '../model/source.ts';
import { BlockEngine } from '../engine/block-engine.ts';
import type { StatsMode } from '../engine/block-graph.ts';
import { embedWindows } from '../engine/forward.ts';
import { checkEngineOptions, type EngineOptions } from '../engine/session.ts';
import { FieldError, UserError, checkField } from '../util/errors.ts';
import { checkFlag, checkFunction, checkInteger, checkKnownFields } from '../util/fields.ts';
import { checkProgress, type Progress } from '../util/progress.ts';
import { collectStatistics } from './calibration-stats.ts';
import { LinearScratch, pruneLinear, type LinearReport } from './prune-linear.ts';
import { requiredStatistics } from './methods.ts';
import { HessianFactors } from './sparsegpt.ts';
import { owlLayerTargets } from './owl-pass.ts';
import { checkPruneSettings, dsnotApplies, type PruneSettings, type PruneTarget } from './settings.ts';
import { targetSparsity, validateTarget } from './target.ts';

export type { BlockSource };

export interface LayerReport {
  layer: number;
  target: PruneTarget;
  linears: LinearReport[];
  seconds: { statistics: number; pruning: number; forward: number };
}

/** Where a run starts: from scratch (layer 0, embedded windows) or from a saved state. */
export interface LoopStart {
  firstLayer: number;
  /** Activations entering `firstLayer`, one array per calibration window. */
  hidden: Float32Array[];
  layerTargets: PruneTarget[];
}

export interface LayerLoopRequest {
  model: BlockSource;
  settings: PruneSettings;
  windows: Int32Array[];
  engine: EngineOptions;
  /** Continue a saved run; when absent the loop embeds the windows and starts at layer 0. */
  start?: LoopStart;
  /** Called when the run's per-layer targets are fixed (after OWL's pass), before layer 0. */
  onTargets?: (targets: PruneTarget[], hidden: Float32Array[]) => Promise<void>;
  /** Receives each pruned layer (weights as the model will store them) and the next layer's inputs. */
  onLayerDone: (layer: number, weights: BlockWeights, report: LayerReport, hidden: Float32Array[]) => Promise<void>;
  /**
   * Whether the last pruned layer runs on the calibration windows, its outputs handed to
   * onLayerDone (default true); false: that forward pass is skipped and onLayerDone gets no
   * arrays, for a caller that never reads them (a trial).
   */
  lastLayerOutputs?: boolean;
  /** Rounds a pruned/updated weight to the dtype it will be stored in (so propagation sees stored values). */
  roundWeight?: (layer: number, name: string, weight: Float32Array) => Float32Array;
  progress?: Progress;
}

/** Linear-input groups whose statistics are collected together (one stage each when true-sequential). */
function statisticStages(settings: PruneSettings): LinearInputGroup[][] {
  return settings.trueSequential ? [['qkv'], ['o'], ['gateup'], ['down']] : [['qkv', 'o', 'gateup', 'down']];
}

/**
 * What the statistics engine computes for the statistics the run needs (prune/methods.ts): nothing,
 * Σx² only, or also Σx and XᵀX; the gram is summed only when something reads it.
 */
function statisticsPlan(settings: PruneSettings): { mode: StatsMode; withGram: boolean } {
  const needed = requiredStatistics(settings);
  const mode: StatsMode = needed.has('gram') || needed.has('moments') ? 'full' : needed.has('sqnorm') ? 'sqnorm' : 'none';
  return { mode, withGram: needed.has('gram') };
}

/** The smallest dimension of the linears that are pruned (not in `exclude`): the largest CRePE window k that fits them all. */
export function smallestPrunedDimension(spec: ModelSpec, exclude?: readonly LinearName[]): number {
  return Math.min(...LINEAR_NAMES.filter((l) => !exclude?.includes(l)).flatMap((l) => linearShape(spec, l)));
}

/**
 * Refuses a CRePE window size k larger than a dimension of a linear that is pruned (not in
 * `exclude`), naming the request's `field`, or the configuration file `configFile` (and its field
 * k) when the k was read from it.
 */
export function checkCrepeWindowFits(spec: ModelSpec, k: number, exclude: readonly LinearName[] | undefined, field: string, configFile?: string): void {
  const smallest = smallestPrunedDimension(spec, exclude);
  if (k <= smallest) return;
  const problem = `${k} is larger than the smallest pruned matrix dimension of this model (${smallest})`;
  throw configFile === undefined ? new FieldError(field, problem) : new UserError(`${configFile}: k ${problem}`);
}

/** Checks the settings against the model before any work: CRePE's k×k window and the N:M pattern fit every pruned linear. */
export function validateAgainstModel(spec: ModelSpec, settings: PruneSettings): void {
  if (settings.crepe) checkCrepeWindowFits(spec, settings.crepe.k, settings.exclude, 'crepe.k');
  if (settings.target.kind !== 'nm') return;
  const { n, m } = settings.target;
  for (const linear of LINEAR_NAMES) {
    if (settings.exclude?.includes(linear)) continue;
    const [, dIn] = linearShape(spec, linear);
    checkField(dIn % m === 0, 'target', `${n}:${m}: ${linear} has ${dIn} inputs, not a multiple of ${m} (leave it dense with exclude ${linear})`);
  }
}

/**
 * A note when DSnoT's cycle limit is large next to what a re-pruned row keeps; null otherwise.
 * Each cycle swaps one kept weight of a row for a pruned one. The reference's 50 cycles were made
 * for rows of thousands (LLaMA-7B: at most 50 of the 2048 weights a 4096-wide row keeps at 50 %);
 * on a row that keeps a few dozen, the same limit can rewrite most of its mask (stories260K's
 * 64-wide rows: perplexity several times higher, RESULTS.md "Combinations"). The note names the
 * narrowest re-pruned linear once the limit reaches a quarter of what its rows keep (on average,
 * at the run's target).
 */
export function dsnotCycleNote(spec: ModelSpec, settings: PruneSettings): string | null {
  if (!settings.dsnot) return null;
  const reprunable = LINEAR_NAMES.filter((name) => !settings.exclude?.includes(name) && dsnotApplies(settings, name));
  if (reprunable.length === 0) return null;
  const narrowest = reprunable.reduce((a, b) => (linearShape(spec, b)[1] < linearShape(spec, a)[1] ? b : a));
  const width = linearShape(spec, narrowest)[1];
  const kept = Math.round(width * (1 - targetSparsity(settings.target)));
  const { maxCycles } = settings.dsnot;
  if (4 * maxCycles < kept) return null;
  return `DSnoT: up to ${maxCycles} swaps per row, on rows that keep about ${kept} weights (${narrowest}, ${width} inputs): enough to rewrite most of a row's mask. `
    + `The reference's limit suits rows of thousands; --dsnot-cycles ${Math.max(1, Math.ceil(kept / 4) - 1)} or fewer (dsnot.maxCycles) keeps the swaps under a quarter of what a row keeps`;
}

const LAYER_LOOP_FIELDS: readonly (keyof LayerLoopRequest)[] = ['model', 'settings', 'windows', 'engine', 'start', 'onTargets', 'onLayerDone', 'roundWeight', 'lastLayerOutputs', 'progress'];

/**
 * A caller's request, checked before any work: its fields, the model, settings as pruneSettings
 * makes them, windows of the calibration length the model can take, the engine options, the
 * callbacks, and a saved start that fits the model and the windows.
 */
function checkLayerLoopRequest(request: LayerLoopRequest): void {
  checkKnownFields(request, '', LAYER_LOOP_FIELDS);
  checkBlockSource('model', request.model);
  const { spec } = request.model;
  checkPruneSettings(request.settings);
  const { seqlen } = request.settings.calibration;
  checkSeqlen('settings.calibration.seqlen', seqlen, spec);
  checkWindows('windows', request.windows, seqlen, spec);
  checkEngineOptions('engine', request.engine);
  checkFunction('onLayerDone', request.onLayerDone, { optional: false });
  checkFunction('onTargets', request.onTargets);
  checkFunction('roundWeight', request.roundWeight);
  if (request.lastLayerOutputs !== undefined) checkFlag('lastLayerOutputs', request.lastLayerOutputs);
  checkProgress('progress', request.progress);
  const { start } = request;
  if (start === undefined) return;
  checkKnownFields(start, 'start', ['firstLayer', 'hidden', 'layerTargets']);
  checkInteger('start.firstLayer', start.firstLayer, 0, spec.numLayers);
  const width = seqlen * spec.hiddenSize;
  checkField(
    Array.isArray(start.hidden) && start.hidden.length === request.windows.length && start.hidden.every((h) => h instanceof Float32Array && h.length === width),
    'start.hidden',
    `must hold one Float32Array of ${seqlen}×${spec.hiddenSize} activations per window (${request.windows.length})`,
  );
  checkField(Array.isArray(start.layerTargets) && start.layerTargets.length === spec.numLayers, 'start.layerTargets', `must hold one target per layer (${spec.numLayers})`);
  start.layerTargets.forEach((target, layer) => validateTarget(target, `start.layerTargets[${layer}]`));
}

export async function pruneLayers(request: LayerLoopRequest): Promise<LayerReport[]> {
  checkLayerLoopRequest(request);
  const { model, settings, progress } = request;
  const { spec } = model;
  validateAgainstModel(spec, settings);
  const seqlen = settings.calibration.seqlen;
  const rope = ropeTables(spec, seqlen);
  const statistics = statisticsPlan(settings);
  const statsEngine = statistics.mode === 'none' ? null : await BlockEngine.create(spec, seqlen, { ...request.engine, stats: statistics.mode });
  const plainEngine = await BlockEngine.create(spec, seqlen, { ...request.engine, stats: 'none' });

  try {
    let start = request.start;
    if (!start) {
      const hidden = embedWindows(model, request.windows);
      const layerTargets = settings.owl
        ? await owlLayerTargets(model, hidden, rope, statsEngine ?? plainEngine, plainEngine, settings, progress)
        : Array.from({ length: spec.numLayers }, () => settings.target);
      start = { firstLayer: 0, hidden, layerTargets };
      await request.onTargets?.(layerTargets, hidden);
    }
    const { layerTargets } = start;
    let hidden = start.hidden;
    const reports: LayerReport[] = [];
    const tools: StageTools = { statsEngine, withGram: statistics.withGram, rope, scratch: new LinearScratch() };

    for (let layer = start.firstLayer; layer < spec.numLayers; layer++) {
      const seconds = { statistics: 0, pruning: 0, forward: 0 };
      const weights = model.readBlock(layer);
      const linears: LinearReport[] = [];
      for (const stage of statisticStages(settings)) {
        await pruneStage(request, tools, { layer, stage, target: layerTargets[layer], weights, hidden, linears, seconds });
      }

      const t = performance.now();
      hidden = layer + 1 < spec.numLayers || request.lastLayerOutputs !== false ? await plainEngine.runSequences(hidden, weights, rope) : [];
      seconds.forward += (performance.now() - t) / 1000;

      const report: LayerReport = { layer, target: layerTargets[layer], linears, seconds };
      reports.push(report);
      await request.onLayerDone(layer, weights, report, hidden);
      const { pruned, total } = prunedWeightCount([report]);
      progress?.update(layer + 1, `layer ${layer}: ${(pruned / total * 100).toFixed(2)}% pruned`);
    }
    return reports;
  } finally {
    await statsEngine?.release();
    await plainEngine.release();
  }
}

/** What every stage of a run uses. */
interface StageTools {
  /** Null when the method needs no statistics (magnitude). */
  statsEngine: BlockEngine | null;
  withGram: boolean;
  rope: RopeTables;
  scratch: LinearScratch;
}

/** One stage of one layer; the stage adds its linears' reports to `linears` and its times to `seconds`. */
interface StageWork {
  layer: number;
  stage: LinearInputGroup[];
  target: PruneTarget;
  /** The layer's weights, pruned in place. */
  weights: BlockWeights;
  /** The layer's inputs. */
  hidden: Float32Array[];
  linears: LinearReport[];
  seconds: LayerReport['seconds'];
}

/** The last linear (in LINEAR_NAMES order) that reads each input group. */
const LAST_LINEAR_OF = Object.fromEntries(LINEAR_NAMES.map((name) => [LINEAR_INPUT_GROUP[name], name])) as Record<LinearInputGroup, LinearName>;

/**
 * Collects the statistics of the stage's input groups on the block as it is now and prunes their
 * linears. The statistics and SparseGPT's factors of their grams (four XᵀX and four U, 680 MiB in
 * float64 on TinyLlama's layers) live in this call only: as locals of the loop, its suspended
 * state would keep them referenced until the next layer's were made, one layer's worth more.
 * Each group's are dropped after its last linear, so that down_proj's (the largest) are not joined
 * by those of q/k/v, o and gate/up (190 MiB there).
 */
async function pruneStage(request: LayerLoopRequest, tools: StageTools, work: StageWork): Promise<void> {
  const { model: { spec }, settings } = request;
  const { layer, stage, weights, linears, seconds } = work;
  let t = performance.now();
  const stats = tools.statsEngine ? await collectStatistics(spec, tools.statsEngine, work.hidden, weights, tools.rope, stage, tools.withGram) : null;
  seconds.statistics += (performance.now() - t) / 1000;
  t = performance.now();
  const factors = new HessianFactors();
  for (const name of LINEAR_NAMES) {
    const group = LINEAR_INPUT_GROUP[name];
    if (!stage.includes(group)) continue;
    const [dOut, dIn] = linearShape(spec, name);
    if (settings.exclude?.includes(name)) {
      linears.push(denseLinearReport(name, dOut, dIn));
    } else {
      const key = `${name}.weight`;
      const result = await pruneLinear({
        name, weight: weights[key], dOut, dIn, stats: stats?.get(group) ?? null, settings, target: work.target, layer,
        engine: request.engine, scratch: tools.scratch, factors,
      });
      weights[key] = request.roundWeight ? request.roundWeight(layer, key, result.weight) : result.weight;
      linears.push(result.report);
    }
    if (name === LAST_LINEAR_OF[group]) {
      const gram = stats?.get(group)?.gram;
      stats?.delete(group);
      if (gram) factors.forget(gram);
    }
  }
  seconds.pruning += (performance.now() - t) / 1000;
}

/** The report entry of a linear left dense by --exclude. */
function denseLinearReport(name: LinearName, dOut: number, dIn: number): LinearReport {
  return { name, shape: [dOut, dIn], pruned: 0, sparsity: 0, seconds: { score: 0, select: 0, update: 0 }, excluded: true };
}

/** Pruned weights and all weights of the layers' block linears (a linear left dense counts in `total`). */
export function prunedWeightCount(layers: readonly LayerReport[]): { pruned: number; total: number } {
  let pruned = 0;
  let total = 0;
  for (const layer of layers) {
    for (const linear of layer.linears) {
      pruned += linear.pruned;
      total += linear.shape[0] * linear.shape[1];
    }
  }
  return { pruned, total };
}

/**
 * A run's seconds per stage, summed over its layers (statistics, pruning, forward) and their
 * linears (score, select, update; parts of pruning), in layer order.
 */
export function stageTotals(layers: readonly LayerReport[]): LayerReport['seconds'] & LinearReport['seconds'] {
  const sum = { statistics: 0, pruning: 0, forward: 0, score: 0, select: 0, update: 0 };
  for (const layer of layers) {
    sum.statistics += layer.seconds.statistics;
    sum.pruning += layer.seconds.pruning;
    sum.forward += layer.seconds.forward;
    for (const linear of layer.linears) {
      sum.score += linear.seconds.score;
      sum.select += linear.seconds.select;
      sum.update += linear.seconds.update;
    }
  }
  return sum;
}
