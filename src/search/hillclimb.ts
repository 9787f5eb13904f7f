/**
 * The paper's slow baseline: coordinate hill climbing on real perplexity. For each window size k,
 * from the RIA-like start, try ±step along each coordinate of the search space, keep any move that
 * lowers held-out PPL, halve the step when no move helps, stop below the smallest step or at the
 * trial budget. Every candidate costs a full prune and a perplexity measurement.
 */
import { checkWindowSizes, type CrepeParams } from '../prune/scores/crepe.ts';
import { checkField } from '../util/errors.ts';
import { checkFunction, checkInteger, checkKnownFields, describeValue } from '../util/fields.ts';
import { checkLogStep, checkSearchSpace, checkSearchStart, dimension, startPoint, toParams, type SearchSpace } from './space.ts';

export interface HillClimbOptions {
  kSet: number[];
  space: SearchSpace;
  /** Real trials (prune + PPL) allowed per window size. */
  budgetPerK: number;
  initialStep: number;
  minStep: number;
  /** Start from this configuration's point instead of the RIA-like default. */
  start?: CrepeParams;
}

export interface HillClimbCandidate {
  k: number;
  params: CrepeParams;
  ppl: number;
  seconds: number;
  accepted: boolean;
}

export interface HillClimbResult {
  best: HillClimbCandidate;
  bestPerK: HillClimbCandidate[];
  candidates: HillClimbCandidate[];
  seconds: number;
}

const HILL_CLIMB_OPTIONS: readonly (keyof HillClimbOptions)[] = ['kSet', 'space', 'budgetPerK', 'initialStep', 'minStep', 'start'];

/**
 * A caller's arguments, checked before the first trial: with a minStep of 0 the step would be
 * halved for ever once every move had been measured, an empty kSet would fail at the end, and a
 * NaN budget or step would return the start point as the best.
 */
function checkHillClimb(trial: unknown, opts: HillClimbOptions, onCandidate: unknown): CrepeParams | undefined {
  checkFunction('trial', trial, { optional: false, what: 'a function from CRePE parameters to a promise of { ppl }' });
  checkKnownFields(opts, '', HILL_CLIMB_OPTIONS);
  checkWindowSizes('kSet', opts.kSet);
  checkSearchSpace('space', opts.space);
  checkInteger('budgetPerK', opts.budgetPerK, 1);
  checkLogStep('initialStep', opts.initialStep);
  checkLogStep('minStep', opts.minStep, opts.initialStep);
  checkFunction('onCandidate', onCandidate);
  return opts.start === undefined ? undefined : checkSearchStart('start', opts.start);
}

export async function runHillClimb(
  trial: (params: CrepeParams) => Promise<{ ppl: number }>,
  opts: HillClimbOptions,
  onCandidate?: (c: HillClimbCandidate) => void,
): Promise<HillClimbResult> {
  const start = checkHillClimb(trial, opts, onCandidate);
  const started = performance.now();
  const candidates: HillClimbCandidate[] = [];
  const bestPerK: HillClimbCandidate[] = [];

  for (const k of opts.kSet) {
    const seen = new Map<string, number>();
    let trials = 0;
    // Points are remembered by the configuration they map to: moves past the box's edge clip to
    // an already measured configuration and are skipped.
    const keyOf = (x: Float64Array): string => JSON.stringify(toParams(x, k, opts.space));
    const measure = async (x: Float64Array): Promise<HillClimbCandidate> => {
      const params = toParams(x, k, opts.space);
      const t = performance.now();
      const ppl = ((await trial(params)) as { ppl?: unknown } | null | undefined)?.ppl;
      // A NaN never compares lower: the climb would stay at its start and call it the best.
      checkField(typeof ppl === 'number' && !Number.isNaN(ppl), 'trial', () => `must resolve to { ppl: number }, got ppl ${describeValue(ppl)}`);
      trials++;
      const candidate: HillClimbCandidate = { k, params, ppl, seconds: (performance.now() - t) / 1000, accepted: false };
      candidates.push(candidate);
      return candidate;
    };

    let x = startPoint(opts.space, start);
    let current = await measure(x);
    current.accepted = true;
    onCandidate?.(current);
    seen.set(keyOf(x), current.ppl);
    let step = opts.initialStep;
    while (step >= opts.minStep && trials < opts.budgetPerK) {
      let moved = false;
      for (let d = 0; d < dimension(opts.space) && !moved && trials < opts.budgetPerK; d++) {
        for (const direction of [1, -1]) {
          const next = Float64Array.from(x);
          next[d] += direction * step;
          const key = keyOf(next);
          if (seen.has(key) || trials >= opts.budgetPerK) continue;
          const candidate = await measure(next);
          seen.set(key, candidate.ppl);
          if (candidate.ppl < current.ppl) {
            candidate.accepted = true;
            x = next;
            current = candidate;
            moved = true;
          }
          onCandidate?.(candidate);
          if (moved) break;
        }
      }
      if (!moved) step /= 2;
    }
    bestPerK.push(current);
  }
  const best = bestPerK.reduce((a, b) => (b.ppl < a.ppl ? b : a));
  return { best, bestPerK, candidates, seconds: (performance.now() - started) / 1000 };
}
