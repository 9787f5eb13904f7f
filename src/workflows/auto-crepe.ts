/**
 * The `auto` step of a CRePE pruning run: PHO on this model and target (from the run's own
 * calibration windows, through a proxy cache beside the output that is removed afterwards), then a
 * confirmation by real perplexity on held-out calibration windows — the calibration draw continued,
 * disjoint from the statistics windows — of the RIA point, the configuration the run falls back to
 * (the target's shipped default, unless it is the RIA point) and the best PHO candidates; the lowest
 * wins and an earlier one wins ties, the RIA point first (search/auto.ts). Each confirmation prune
 * records its masks (prune/mask-replay.ts; the choice so far and the candidate in hand are kept,
 * each an eighth of a byte per weight), so that the chosen model is written without pruning again.
 */
import os from 'node:os';
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { ModelCheckpoint } from '../model/checkpoint.ts';
import type { ModelSpec } from '../model/spec.ts';
import type { CalibrationSet } from '../data/calibration.ts';
import type { EngineOptions } from '../engine/session.ts';
import { checkWindowSizes, resolveCrepeParams, type CrepeParams } from '../prune/scores/crepe.ts';
import type { PruneSettings } from '../prune/settings.ts';
import { checkCrepeWindowFits, smallestPrunedDimension } from '../prune/layer-loop.ts';
import { ProxyContext } from '../search/proxy.ts';
import { windowKey } from '../search/proxy-terms.ts';
import { DEFAULT_PROXY, defaultProxyRows, rowsPercent } from '../search/proxy-defaults.ts';
import { confirmationShortlist, phoEvaluations, runPho } from '../search/pho.ts';
import { pruneAndMeasure } from '../search/trial.ts';
import { checkHeldCalibration, chooseByConfirmation, concatWindows, confirmationWindows, type AutoCandidate } from '../search/auto.ts';
import type { SearchSpace } from '../search/space.ts';
import { isRiaPoint } from '../search/crepe-defaults.ts';
import { checkField } from '../util/errors.ts';
import { checkFields, checkInteger, describeValue, type FieldSpec } from '../util/fields.ts';
import { secondsSince, stageProgress, type RunControl } from './common.ts';
import { discardOnSignal } from '../io/atomic.ts';
import { masksReproduce, writeLayerMasks, type RecordedMasks } from '../prune/mask-replay.ts';

export interface AutoOptions {
  /** PHO's proxy evaluations per window size (default 12), rounded up to whole CMA-ES generations of 6. */
  budget?: number;
  /** Window sizes PHO searches (default 1, 3, 5, 7, 9). */
  kSet?: readonly number[];
  /** How many of PHO's best candidates (the best of each of the best window sizes) are confirmed (default 3). */
  confirm?: number;
  /** Held-out calibration windows for the confirmation (default 8). */
  windows?: number;
  /** Extra candidates confirmed beside PHO's (labelled 'given'): for experiments and tests. */
  extraCandidates?: readonly CrepeParams[];
}

export interface AutoReport {
  chosen: AutoCandidate;
  /** The RIA point first, then the fallback configuration (unless it is the RIA point), PHO's shortlist, any extra candidates. */
  candidates: AutoCandidate[];
  /**
   * rows: the fraction of each linear's rows the proxy ran on (defaultProxyRows); a and variant: the
   * activation exponent and neighbourhood variant PHO held fixed, the fallback configuration's.
   */
  pho: {
    proxy: string; sign: 1 | -1; rows: number; a: number; variant: CrepeParams['variant']; kSet: number[]; budgetPerK: number; evaluations: number;
    bestPerK: Array<{ k: number; params: CrepeParams; objective: number }>;
  };
  confirmation: { windows: number; seqlen: number; draws: Array<[number, number]>; statisticsDraws: Array<[number, number]> };
  seconds: { pho: number; confirmation: number; total: number };
  /**
   * Whether the pruned model was written from the chosen candidate's confirmation masks (the bytes
   * pruning it again would write) rather than pruned again: false where pruning does more than zero
   * weights (reconstruction, a channel permutation) or the run's settings differ from the trial's.
   */
  outputFromMasks: boolean;
}

/** The auto step's report (the output's part filled in by the run), and the chosen candidate's masks until `release()` (null when not recorded). */
export interface AutoResult {
  report: Omit<AutoReport, 'outputFromMasks'>;
  masks: RecordedMasks | null;
  release(): void;
}

const defaults = (options: AutoOptions) => ({
  budget: options.budget ?? 12,
  kSet: [...new Set(options.kSet ?? [1, 3, 5, 7, 9])],
  confirm: options.confirm ?? 3,
  windows: options.windows ?? 8,
});

const AUTO_FIELDS: FieldSpec<AutoOptions> = { budget: 'checked', kSet: 'checked', confirm: 'checked', windows: 'checked', extraCandidates: 'checked' };

/**
 * The `auto` field of a prune request, checked before any work: true for the defaults, an
 * AutoOptions object, or null when left out or false.
 */
export function autoOptionsOf(auto: unknown): AutoOptions | null {
  if (auto === undefined || auto === false) return null;
  if (auto === true) return {};
  checkField(typeof auto === 'object' && auto !== null && !Array.isArray(auto), 'auto', () => `must be true, false or an object of options, got ${describeValue(auto)}`);
  checkFields<AutoOptions>(auto, AUTO_FIELDS, 'auto');
  if (auto.kSet !== undefined) checkWindowSizes('auto.kSet', auto.kSet);
  const { budget, confirm, windows } = defaults(auto);
  checkInteger('auto.budget', budget, 1);
  checkInteger('auto.confirm', confirm, 0);
  checkInteger('auto.windows', windows, 1);
  if (auto.extraCandidates === undefined) return auto;
  const extra: unknown = auto.extraCandidates;
  checkField(Array.isArray(extra), 'auto.extraCandidates', 'must be a list of CRePE parameters');
  // Each checked now, not after the search that precedes their confirmation.
  return { ...auto, extraCandidates: extra.map((params: unknown, i) => resolveCrepeParams(params as Partial<CrepeParams>, { field: `auto.extraCandidates[${i}]` })) };
}

/**
 * Refuses, before any work, an `auto.kSet` window or an extra candidate's k larger than a linear of
 * the model: the prune that applies the choice would refuse it after the search. (The default set
 * keeps the sizes that fit.)
 */
export function checkAutoAgainstModel(spec: ModelSpec, options: AutoOptions): void {
  if (options.kSet !== undefined) checkCrepeWindowFits(spec, Math.max(...options.kSet), undefined, 'auto.kSet');
  options.extraCandidates?.forEach((params, i) => checkCrepeWindowFits(spec, params.k, undefined, `auto.extraCandidates[${i}].k`));
}

/** How many windows past the statistics windows the calibration draw continues (room for overlaps). */
export function autoExtraWindows(options: AutoOptions): number {
  return 4 * defaults(options).windows;
}

export async function runAutoCrepe(
  control: RunControl & { model: string; threads?: number },
  options: AutoOptions,
  run: {
    spec: ModelSpec; outDir: string; windows: CalibrationSet; continued: CalibrationSet; seqlen: number; engine: EngineOptions;
    /** The settings the run falls back to, their CRePE configuration named by `fallback` (e.g. "default configs/crepe-60.json"). */
    settings: PruneSettings; fallback: string;
  },
): Promise<AutoResult> {
  const started = performance.now();
  // The options were checked by autoOptionsOf before any work.
  const { budget, confirm, windows: count } = defaults(options);
  const kSet = options.kSet === undefined ? defaults(options).kSet.filter((k) => k <= smallestPrunedDimension(run.spec)) : defaults(options).kSet;
  const { settings, seqlen, engine } = run;
  checkField(!settings.exclude?.length, 'auto', 'PHO prunes every linear: give exclude or auto, not both');
  const held = confirmationWindows(run.continued, run.windows.windows.length, count, seqlen);
  checkField(held.windows.length > 0, 'auto', `the calibration text has no window beyond the ${run.windows.windows.length} statistics windows for the held-out confirmation`);
  const shortNote = checkHeldCalibration(held, run.windows.windows.length, count, options.windows === undefined ? null : 'auto.windows');
  if (shortNote) control.onProgress?.({ kind: 'note', stage: 'auto', done: 0, total: 0, detail: shortNote });
  // PHO searches k, β and γ; the exponent a and the variant stay the fallback configuration's.
  const space: SearchSpace = { searchA: false, fixedA: settings.crepe?.a ?? 0.5, variant: settings.crepe?.variant ?? 'normalized' };

  const model = ModelCheckpoint.open(control.model);
  const cacheDir = `${run.outDir}.crepe-auto-cache`;
  // Scratch for this run alone (it holds the output's lock): one left by a killed run is not
  // reused, and this one is removed at the end, and by a Ctrl-C (the command line's handler).
  // The masks outlive this call, until the caller has written the chosen model.
  const masksDir = `${run.outDir}.crepe-auto-masks`;
  const recordMasks = masksReproduce(settings);
  for (const dir of [cacheDir, masksDir]) rmSync(dir, { recursive: true, force: true });
  const kept = discardOnSignal(cacheDir);
  const keptMasks = discardOnSignal(masksDir);
  const release = () => {
    rmSync(masksDir, { recursive: true, force: true });
    keptMasks();
  };
  try {
    // PHO on the run's statistics windows.
    const rows = defaultProxyRows(run.spec, budget * kSet.length);
    const fixed = `${space.variant} with a = ${space.fixedA}, from the ${run.fallback}`;
    const progress = stageProgress(control, `auto: PHO (${DEFAULT_PROXY.name}${rows < 1 ? ` on ${rowsPercent(rows)} of the rows` : ''}; ${fixed})`, phoEvaluations(budget, space, kSet.length));
    const context = await ProxyContext.open(model, run.windows.windows, seqlen, engine, {
      cacheDir,
      cacheBudgetBytes: 256 * 2 ** 20,
      threads: control.threads ?? os.availableParallelism(),
      modelSha256: 'auto',
      calibrationSeed: settings.calibration.seed,
      withGram: false,
      windows: kSet.map((k) => windowKey({ k, variant: space.variant, a: space.fixedA })),
      // The confirmations prune for real: the cache need not hold more than the rows PHO runs on.
      ...(rows < 1 ? { rowsOnly: { fraction: rows, seed: settings.calibration.seed } } : {}),
    });
    let evaluated = 0;
    const pho = await runPho(context, {
      target: settings.target, selection: settings.selection, giniSubsample: 65536, seed: settings.calibration.seed, rows,
      kSet, budgetPerK: budget, proxy: DEFAULT_PROXY.name, sign: DEFAULT_PROXY.sign, space, sigma0: 1.5,
    }, () => progress.update(++evaluated)).finally(() => context.close());
    progress.done();
    const phoSeconds = secondsSince(started);

    // Confirmation on the held-out calibration windows.
    const fallback = settings.crepe && !isRiaPoint(settings.crepe) ? [{ source: run.fallback, params: settings.crepe, objective: null }] : [];
    const candidates = [
      ...fallback,
      ...confirmationShortlist(pho, confirm).map((c) => ({ source: `pho k=${c.params.k}`, params: c.params, objective: c.objective })),
      ...(options.extraCandidates ?? []).map((params) => ({ source: 'given', params, objective: null })),
    ];
    const heldOut = { tokens: concatWindows(held.windows), seqlen, maxChunks: held.windows.length };
    const confirmProgress = stageProgress(control, 'auto: confirm on held-out calibration windows', candidates.length + 1);
    const confirmStarted = performance.now();
    // Trial i records candidate i's masks (the RIA point first, as chooseByConfirmation measures them).
    const recorded: Array<RecordedMasks | null> = [];
    const trial = (params: CrepeParams) => {
      const trialSettings = { ...settings, crepe: params };
      const masks: RecordedMasks | null = recordMasks ? { dir: path.join(masksDir, String(recorded.length)), settings: trialSettings, layers: [] } : null;
      if (masks) {
        recorded.push(masks);
        mkdirSync(masks.dir, { recursive: true });
      }
      return pruneAndMeasure(model, trialSettings, run.windows.windows, heldOut, engine, masks ? async (layer, weights, report) => {
        masks.layers.push(report);
        await writeLayerMasks(masks.dir, layer, weights, report);
      } : undefined);
    };
    const { chosen, candidates: measured } = await chooseByConfirmation(candidates, trial, (c, i, _total, chosenIndex) => {
      confirmProgress.update(i + 1, `${c.source} PPL ${c.confirmationPpl.toFixed(3)}`);
      // Only the choice so far can still be written: the other masks go.
      recorded.forEach((masks, j) => {
        if (j === chosenIndex || masks === null) return;
        rmSync(masks.dir, { recursive: true, force: true });
        recorded[j] = null;
      });
    });
    confirmProgress.done(`chose ${chosen.source}`);
    const report: AutoResult['report'] = {
      chosen,
      candidates: measured,
      pho: {
        proxy: DEFAULT_PROXY.name, sign: DEFAULT_PROXY.sign, rows, a: space.fixedA, variant: space.variant, kSet, budgetPerK: budget, evaluations: pho.candidates.length,
        bestPerK: pho.bestPerK.map((b) => ({ k: b.k, params: b.params, objective: b.objective })),
      },
      confirmation: { windows: held.windows.length, seqlen, draws: held.draws, statisticsDraws: run.windows.draws },
      seconds: { pho: phoSeconds, confirmation: secondsSince(confirmStarted), total: secondsSince(started) },
    };
    return { report, masks: recordMasks ? recorded[measured.indexOf(chosen)] : null, release };
  } catch (error) {
    release();
    throw error;
  } finally {
    model.close();
    rmSync(cacheDir, { recursive: true, force: true });
    kept();
  }
}
