/**
 * The paper's slow baseline: coordinate hill climbing on real perplexity. For each window size k,
 * from the RIA-like start, try ±step along each coordinate of the search space, keep any move that
 * lowers held-out PPL, halve the step when no move helps, stop below the smallest step or at the
 * trial budget. Every candidate costs a full prune and a perplexity measurement.
 */
import type { CrepeParams } from '../prune/scores/crepe.ts';
import { dimension, startPoint, toParams, type SearchSpace } from './space.ts';

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

export async function runHillClimb(
  trial: (params: CrepeParams) => Promise<{ ppl: number }>,
  opts: HillClimbOptions,
  onCandidate?: (c: HillClimbCandidate) => void,
): Promise<HillClimbResult> {
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
      const ppl = (await trial(params)).ppl;
      trials++;
      const candidate: HillClimbCandidate = { k, params, ppl, seconds: (performance.now() - t) / 1000, accepted: false };
      candidates.push(candidate);
      return candidate;
    };

    let x = startPoint(opts.space, opts.start);
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
