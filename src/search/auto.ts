/**
 * `prune --method crepe --auto`: PHO on this model and target, then a confirmation by real
 * perplexity on held-out calibration windows (drawn from the calibration source, disjoint from the
 * windows that feed the statistics) of the best few PHO candidates and the RIA point. The lowest
 * confirmation perplexity wins and the RIA point wins ties, so the choice is never worse than RIA on
 * that check.
 */
import { resolveCrepeParams, type CrepeParams } from '../prune/scores/crepe.ts';
import type { CalibrationSet } from '../data/calibration.ts';
import { RIA_POINT } from './crepe-defaults.ts';
import { FieldError, checkField } from '../util/errors.ts';
import { checkFunction, checkInteger, checkKnownFields, describeValue } from '../util/fields.ts';

export interface AutoCandidate {
  /** Where the candidate comes from: 'ria-point', 'pho k=3', or a caller's label. */
  source: string;
  params: CrepeParams;
  /** PHO's objective (sign · proxy); null for candidates PHO did not score. */
  objective: number | null;
  /** Perplexity on the confirmation windows. */
  confirmationPpl: number;
  seconds: number;
}

/**
 * Measures every candidate (the RIA point first, then `candidates` in order) with `trial` and
 * returns them all with the chosen one: the lowest confirmation PPL; a candidate replaces the RIA
 * point only when strictly lower. `onMeasured` hears of each candidate as it is measured, with the
 * index of the choice so far.
 */
export async function chooseByConfirmation(
  candidates: ReadonlyArray<{ source: string; params: CrepeParams; objective: number | null }>,
  trial: (params: CrepeParams) => Promise<{ ppl: number; seconds: number }>,
  onMeasured?: (candidate: AutoCandidate, index: number, total: number, chosenIndex: number) => void | Promise<void>,
): Promise<{ chosen: AutoCandidate; candidates: AutoCandidate[] }> {
  checkField(Array.isArray(candidates), 'candidates', () => `must be a list of { source, params, objective }, got ${describeValue(candidates)}`);
  // Each candidate's parameters checked, with defaults for those left out (as crepeScores takes them).
  const resolved = candidates.map((candidate, i): { source: string; params: CrepeParams; objective: number | null } => {
    checkKnownFields(candidate, `candidates[${i}]`, ['source', 'params', 'objective']);
    checkField(typeof candidate.source === 'string', `candidates[${i}].source`, () => `must be a label, got ${describeValue(candidate.source)}`);
    checkField(candidate.objective === null || typeof candidate.objective === 'number', `candidates[${i}].objective`, () => `must be a number or null, got ${describeValue(candidate.objective)}`);
    const { source, objective, params } = candidate as { source: string; objective: number | null; params: Partial<CrepeParams> };
    return { source, params: resolveCrepeParams(params, { field: `candidates[${i}].params` }), objective };
  });
  checkFunction('trial', trial, { optional: false, what: 'a function from CRePE parameters to a promise of { ppl, seconds }' });
  checkFunction('onMeasured', onMeasured);
  const list = [{ source: 'ria-point', params: RIA_POINT, objective: null }, ...resolved];
  const measured: AutoCandidate[] = [];
  let chosen = 0;
  for (const candidate of list) {
    const result = await trial(candidate.params);
    // NaN is a measurement (a diverged model) and never wins; anything but a number would never win unnoticed.
    checkField(typeof result?.ppl === 'number' && typeof result.seconds === 'number', 'trial', () => `must resolve to { ppl: number, seconds: number }, got ${describeValue(result)}`);
    const { ppl, seconds } = result;
    const entry = { ...candidate, confirmationPpl: ppl, seconds };
    measured.push(entry);
    // NaN never wins: only a strictly lower finite PPL replaces the current choice.
    if (entry.confirmationPpl < measured[chosen].confirmationPpl) chosen = measured.length - 1;
    await onMeasured?.(entry, measured.length - 1, list.length, chosen);
  }
  return { chosen: measured[chosen], candidates: measured };
}

/**
 * Confirmation windows: the calibration draw continued past the statistics windows (same source,
 * same seed, so `all`'s first `nsamples` windows are the statistics windows), keeping the first
 * `count` windows that overlap no statistics window nor each other (same document, token ranges
 * that intersect).
 *
 * When the draw runs out first the result holds fewer than `count` windows, possibly none: callers
 * check `windows.length` and say what the text lacks. Arguments that cannot describe such a draw
 * (a count or seqlen below 1, nsamples past `all`, windows of another length than seqlen, which
 * would let overlapping windows through) are refused with a FieldError naming them.
 */
export function confirmationWindows(all: CalibrationSet, nsamples: number, count: number, seqlen: number): CalibrationSet {
  checkConfirmationArguments(all, nsamples, count, seqlen);
  const taken: Array<[number, number]> = all.draws.slice(0, nsamples);
  const overlaps = ([doc, start]: [number, number]) => taken.some(([d, s]) => d === doc && Math.abs(s - start) < seqlen);
  const windows: Int32Array[] = [];
  const draws: Array<[number, number]> = [];
  for (let i = nsamples; i < all.windows.length && windows.length < count; i++) {
    if (overlaps(all.draws[i])) continue;
    taken.push(all.draws[i]);
    windows.push(all.windows[i]);
    draws.push(all.draws[i]);
  }
  return { kind: all.kind, windows, draws };
}

/**
 * The confirmation windows `held` (confirmationWindows' result) against the `count` wanted: a
 * `count` the caller gave (`field`, when given) that the text cannot supply is refused, naming how
 * many it holds, since a confirmation on fewer windows is another measurement than the one asked
 * for; a default `count` takes what there is, and the note to show when that is fewer is returned
 * (null when the count is reached).
 */
export function checkHeldCalibration(held: CalibrationSet, nsamples: number, count: number, field: string | null): string | null {
  if (held.windows.length >= count) return null;
  const holds = `${held.windows.length} windows of ${held.windows[0]?.length ?? 0} tokens beyond the ${nsamples} statistics windows (overlapping none of them)`;
  if (field !== null) throw new FieldError(field, `${count} is more than the calibration text yields: ${holds}`);
  return `confirmation on ${held.windows.length} held-out calibration windows, fewer than the default ${count}: the calibration text yields ${holds}`;
}

function checkConfirmationArguments(all: CalibrationSet, nsamples: unknown, count: unknown, seqlen: unknown): void {
  const isSet = typeof all === 'object' && all !== null && Array.isArray(all.windows) && Array.isArray(all.draws) && all.windows.length === all.draws.length;
  checkField(isSet, 'all', () => `must be a calibration set (windows with one draw each, as sampleCalibrationFile returns), got ${describeValue(all)}`);
  checkInteger('nsamples', nsamples, 0, all.windows.length);
  checkInteger('count', count, 1);
  checkInteger('seqlen', seqlen, 1);
  all.windows.forEach((window, i) => {
    checkField(window instanceof Int32Array && window.length === seqlen, `all.windows[${i}]`, () => `must be an Int32Array of seqlen = ${seqlen} tokens, got ${window instanceof Int32Array ? `${window.length} tokens` : describeValue(window)}`);
  });
}

/** Windows of one length as one token stream whose consecutive chunks of that length are the windows. */
export function concatWindows(windows: readonly Int32Array[]): Int32Array {
  const out = new Int32Array(windows.reduce((n, w) => n + w.length, 0));
  let offset = 0;
  for (const w of windows) {
    out.set(w, offset);
    offset += w.length;
  }
  return out;
}
