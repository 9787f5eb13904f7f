/**
 * Prunes one linear sublayer from its input statistics: score → (optional channel permutation) →
 * mask → (optional DSnoT re-pruning) → (optional reconstruction) → zero the pruned weights.
 * SparseGPT is its own path: it chooses the mask while it updates the weights.
 */
import type { LinearName } from '../model/spec.ts';
import type { EngineOptions } from '../engine/session.ts';
import type { LinearInputStats } from './calibration-stats.ts';
import { applyMask, selectMask } from './mask.ts';
import { scoreMatrix } from './methods.ts';
import { sparsegpt, sparsegptFixedMask, type HessianFactors } from './sparsegpt.ts';
import { permuteForNM } from './permute.ts';
import { dsnot } from './dsnot.ts';
import { checkReachedSparsity, checkScores, checkUpdatedWeights, countZeros } from './selection-check.ts';
import { dsnotApplies, type PruneSettings, type PruneTarget } from './settings.ts';
import { invariant } from '../util/errors.ts';
import { markBuffer } from '../util/select.ts';
import { scoreBuffer } from './scores/ria.ts';

export interface LinearReport {
  name: LinearName;
  shape: [number, number];
  pruned: number;
  sparsity: number;
  seconds: { score: number; select: number; update: number };
  /** Channel permutation: retained score before/after, and the permutation (new position → old column). */
  permutation?: { retainedBefore: number; retainedAfter: number; order: number[] };
  dsnot?: { swaps: number; cycles: number };
  /** Left dense by --exclude. */
  excluded?: boolean;
  /** SparseGPT / reconstruction: the OBS loss Σ (w − q)² / U_cc² / 2. */
  reconstructionLoss?: number;
}

export interface LinearPruneRequest {
  name: LinearName;
  weight: Float32Array;
  dOut: number;
  dIn: number;
  /** Input statistics; null only for magnitude pruning, which needs none. */
  stats: LinearInputStats | null;
  settings: PruneSettings;
  /** This layer's target (OWL may move it away from the global one). */
  target: PruneTarget;
  /** The decoder layer, for messages. */
  layer?: number;
  /** Where SparseGPT's ORT graphs run (the run's --device/--threads); default: CPU. */
  engine?: EngineOptions;
  /**
   * Buffers for the scores and the mask, reused from one linear to the next; the returned mask is
   * then one of them, valid until the next call with the same scratch.
   */
  scratch?: LinearScratch;
  /** SparseGPT's factors of the grams in `stats`, shared by the linears that read the same inputs. */
  factors?: HessianFactors;
}

/**
 * One score buffer and one mask buffer per matrix size, reused by every linear of a layer loop.
 * Fresh ones per linear (5 bytes per weight) are garbage that V8 frees only at its next full
 * collection, several layers later: the loop's peak memory then grew with the number of layers
 * instead of staying at one layer's worth.
 */
export class LinearScratch {
  private readonly scores = new Map<number, Float32Array>();
  private readonly masks = new Map<number, Uint8Array>();

  /** The score buffer for `length` weights (shared with the worker threads when large). */
  scoresFor(length: number): Float32Array {
    let buffer = this.scores.get(length);
    if (!buffer) this.scores.set(length, (buffer = scoreBuffer(length, undefined)));
    return buffer;
  }

  /** The mask buffer for `scores` (shared when the marking over them is split over threads). */
  maskFor(scores: Float32Array): Uint8Array {
    let buffer = this.masks.get(scores.length);
    if (!buffer) this.masks.set(scores.length, (buffer = markBuffer(scores)));
    return buffer;
  }
}

function requireStats(request: LinearPruneRequest): LinearInputStats {
  invariant(request.stats, () => `${request.name} needs calibration statistics`);
  return request.stats;
}

function requireGram(stats: LinearInputStats): Float64Array {
  invariant(stats.gram, 'the Hessian (XᵀX) was not collected');
  return stats.gram;
}

export async function pruneLinear(request: LinearPruneRequest): Promise<{ weight: Float32Array; mask: Uint8Array; report: LinearReport }> {
  const { name, weight, dOut, dIn, settings, target, layer } = request;
  const zerosBefore = countZeros(weight);
  const seconds = { score: 0, select: 0, update: 0 };
  const report: Omit<LinearReport, 'pruned' | 'sparsity'> = { name, shape: [dOut, dIn], seconds };
  let t = performance.now();
  const lap = (): number => {
    const now = performance.now();
    const elapsed = (now - t) / 1000;
    t = now;
    return elapsed;
  };

  let mask: Uint8Array;
  if (settings.method === 'sparsegpt') {
    const stats = requireStats(request);
    const result = await sparsegpt(weight, dOut, dIn, requireGram(stats), stats.nsamples, {
      target,
      blockSize: settings.sparsegpt.blockSize,
      percdamp: settings.sparsegpt.percdamp,
      engine: request.engine,
      factors: request.factors,
    });
    mask = result.mask;
    report.reconstructionLoss = result.loss;
    checkReachedSparsity(mask, { target, selection: 'column-blocks', dOut, dIn, blockSize: settings.sparsegpt.blockSize }, zerosBefore, name, layer);
    checkUpdatedWeights(weight, dIn, name, layer);
    seconds.update = lap();
  } else {
    const scores = scoreMatrix(settings.method, weight, dOut, dIn, request.stats?.sqNorm ?? null, {
      riaA: settings.riaA,
      crepe: settings.crepe,
    }, request.scratch?.scoresFor(weight.length));
    checkScores(scores, weight, dIn, name, layer);
    seconds.score = lap();
    if (target.kind === 'nm' && settings.permute) {
      const permuted = permuteForNM(scores, dOut, dIn, target.n, target.m, settings.permute);
      mask = permuted.mask;
      report.permutation = {
        retainedBefore: permuted.retainedBefore,
        retainedAfter: permuted.retainedAfter,
        order: Array.from(permuted.permutation),
      };
    } else {
      mask = selectMask(scores, dOut, dIn, target, settings.selection, request.scratch?.maskFor(scores));
    }
    seconds.select = lap();

    if (dsnotApplies(settings, name)) {
      const dsnotSettings = settings.dsnot;
      const stats = requireStats(request);
      const result = dsnot(weight, mask, {
        sqNorm: Float32Array.from(stats.sqNorm),
        mean: Float32Array.from(stats.mean),
        variance: Float32Array.from(stats.variance),
      }, dOut, dIn, {
        maxCycles: dsnotSettings.maxCycles,
        updateThreshold: dsnotSettings.updateThreshold,
        // The reference's same-sign check is off in its unstructured path (an argparse quirk); --dsnot-same-sign turns it on.
        withoutSameSign: !dsnotSettings.sameSign,
        pattern: target.kind === 'nm' ? { n: target.n, m: target.m } : undefined,
      });
      mask = result.mask;
      report.dsnot = { swaps: result.swaps, cycles: result.cyclesRun };
    }
    checkReachedSparsity(mask, { target, selection: settings.selection, dOut, dIn }, zerosBefore, name, layer);
    if (settings.reconstruct) {
      const stats = requireStats(request);
      const result = await sparsegptFixedMask(weight, dOut, dIn, requireGram(stats), stats.nsamples, mask, {
        blockSize: settings.sparsegpt.blockSize,
        percdamp: settings.sparsegpt.percdamp,
        engine: request.engine,
        factors: request.factors,
      });
      report.reconstructionLoss = result.loss;
      checkUpdatedWeights(weight, dIn, name, layer);
    }
    seconds.update = lap();
  }

  applyMask(weight, mask);
  let pruned = 0;
  for (let i = 0; i < mask.length; i++) pruned += mask[i];
  return { weight, mask, report: { ...report, pruned, sparsity: pruned / mask.length } };
}
