/**
 * PHO's proxies (ALGORITHMS.md §7.3): cheap stand-ins for perplexity, each one number per linear
 * taken from a candidate's mask (the proxy of a model is the mean over its linears):
 *   gini-own     Gini index of the candidate's own scores on the pruned set (scale-free);
 *   gini-ref     Gini index of a fixed reference importance (Wanda's |W|·‖X‖) on the pruned set;
 *   pruned-mass  the share of the reference importance that the mask removes;
 *   column-gini  Gini index, over input channels, of the reference importance each channel loses:
 *                high when the damage piles onto few channels (what RIA's column term prevents);
 *   output-error the relative output error of the pruned linear on the calibration inputs,
 *                tr(ΔW·XᵀX·ΔWᵀ) / tr(W·XᵀX·Wᵀ) (needs XᵀX: only for models whose grams fit).
 * gini-own can be exact or taken on a fixed random subsample of positions (the same positions for
 * every candidate).
 *
 * A proxy sees one linear through a CandidateView: the candidate's scores and mask in the terms'
 * position order (ascending reference importance, see proxy-terms.ts), the walk of the mask along
 * that order (shared by the reference-based proxies), and the row-major mask and weights on demand
 * (for proxies defined on the matrix layout, such as a per-N:M-group measure). Terms of the natural
 * layout serve masks alone (naturalMask), for calib-nll and pruned perplexities. A new proxy is a
 * name in LINEAR_PROXY_NAMES and an entry in PROXIES. The model-level proxy calib-nll is in proxy-e2e.ts.
 *
 * The proxies that need only the walk (gini-ref, pruned-mass: `walkOnly`) of a per-matrix mask,
 * asked for on their own as a search does, take a shorter road: one pass per linear that scores
 * and walks at once, with no score or mask array (perMatrixWalk).
 */
import { checkMaskTarget, perMatrixThreshold, selectMask } from '../prune/mask.ts';
import { crepeScores, type CrepeParams } from '../prune/scores/crepe.ts';
import type { PruneTarget, Selection } from '../prune/settings.ts';
import { checkInteger, checkNumber } from '../util/fields.ts';
import { gini, subsampleIndices } from './gini.ts';
import { kthSmallest } from '../util/select.ts';
import {
  candidateScores, candidateScoresDirect, float16Table, magnitudeSource, naturalLayout, float32Weights, naturalScores, pickPositions, positionCount, quadraticForm, referenceNorms, rowCount, rowSlots,
  scoreAndWalkMany, type BandedWalk, type LinearTerms, type NaturalTerms, type ThresholdBand, type WalkCandidate, type WindowTerm,
} from './proxy-terms.ts';

import { LINEAR_PROXY_NAMES, PROXY_NAMES, type LinearProxyName, type ProxyName } from './proxy-defaults.ts';

export { LINEAR_PROXY_NAMES, PROXY_NAMES, type LinearProxyName, type ProxyName };

export interface ProxyOptions {
  target: PruneTarget;
  selection: Selection;
  /** Positions per matrix for gini-own's Gini index; null = exact (every pruned entry). */
  giniSubsample: number | null;
  seed: number;
  /** Fraction of each linear's rows the proxies are computed on (a fixed random subset); 1 or absent = all. */
  rows?: number;
}

/** Refuses proxy options a caller got wrong, naming the field (rows of 0 made every proxy NaN). */
export function checkProxyOptions(options: ProxyOptions): void {
  checkMaskTarget(options.target, options.selection);
  if (options.giniSubsample !== undefined && options.giniSubsample !== null) checkInteger('giniSubsample', options.giniSubsample, 1);
  checkInteger('seed', options.seed, 0);
  if (options.rows !== undefined) checkNumber('rows', options.rows, [0, 1], { min: true });
}

/** What one linear's proxies are computed from. */
export interface CandidateView {
  terms: LinearTerms;
  /** The candidate's scores, position order. */
  scores: Float32Array;
  /** 1 = pruned, position order. */
  mask: Uint8Array;
  options: ProxyOptions;
  /** The pruned reference importance walked in ascending order (computed once per view). */
  referenceWalk(): ReferenceWalk;
  /** The reference importance each input column loses (computed once per view). */
  lostPerColumn(): Float64Array;
  /** Row-major mask and weights of the rows the terms cover (computed once per view). */
  natural(): { mask: Uint8Array; weight: Float32Array };
  /** Candidate-independent values a proxy derives from the terms, kept for this linear across candidates. */
  memo: Map<string, unknown>;
}

export interface ReferenceWalk {
  /** Pruned count, Σ of their reference importance, Σ rank·value (rank among the pruned, from 1). */
  count: number;
  total: number;
  rankWeighted: number;
}

export interface ProxyDefinition {
  /** Needs XᵀX of the linear's input (kept only for models whose grams fit). */
  needsGram: boolean;
  /** A function of the reference walk (and the terms) alone: needs neither the scores nor the mask. */
  walkOnly?: boolean;
  measure(view: CandidateView): number;
}

export const PROXIES: Record<LinearProxyName, ProxyDefinition> = {
  'gini-own': { needsGram: false, measure: giniOwn },
  'gini-ref': {
    needsGram: false,
    walkOnly: true,
    measure(view) {
      // G = Σᵢ (2i − n − 1)·sᵢ / (n·Σ s), i the 1-based rank among the n pruned values.
      const { count: n, total, rankWeighted } = view.referenceWalk();
      if (n <= 1 || total === 0) return 0;
      return (2 * rankWeighted - (n + 1) * total) / (n * total);
    },
  },
  'pruned-mass': { needsGram: false, walkOnly: true, measure: (view) => view.referenceWalk().total / view.terms.referenceTotal },
  'column-gini': { needsGram: false, measure: (view) => gini(view.lostPerColumn()) },
  'output-error': {
    needsGram: true,
    measure(view) {
      const { gram, outputEnergy, dIn } = view.terms;
      if (!gram) throw new Error('internal: output-error needs terms built with grams');
      const { mask, weight } = view.natural();
      return quadraticForm(weight, mask, gram, rowCount(view.terms), dIn) / outputEnergy;
    },
  },
};

/** Gini of the candidate's own scores over the pruned entries (all, or those at fixed subsample positions). */
function giniOwn(view: CandidateView): number {
  const { scores, mask, terms, options } = view;
  const n = positionCount(terms);
  const positions = options.giniSubsample !== null && options.giniSubsample < n ? subsamplePositions(view, options.giniSubsample, options.seed) : null;
  const count = positions ? positions.length : n;
  const pruned = new Float64Array(count);
  let picked = 0;
  for (let s = 0; s < count; s++) {
    const p = positions ? positions[s] : s;
    if (mask[p]) pruned[picked++] = scores[p];
  }
  return gini(pruned.subarray(0, picked));
}

/**
 * The positions of gini-own's fixed subsample: `size` row-major indices drawn with `seed`
 * (subsampleIndices), located in position order. Computed once per terms and (size, seed).
 */
function subsamplePositions({ terms, memo, options }: CandidateView, size: number, seed: number): Uint32Array {
  const key = `gini-own subsample ${size} ${seed} rows ${options.rows ?? 1}`;
  let positions = memo.get(key) as Uint32Array | undefined;
  if (!positions) {
    const n = positionCount(terms);
    const sampled = new Uint8Array(n);
    for (const index of subsampleIndices(n, size, seed)) sampled[index] = 1;
    const out: number[] = [];
    forEachNaturalIndex(terms, (p, index) => {
      if (sampled[index]) out.push(p);
    });
    positions = Uint32Array.from(out);
    memo.set(key, positions);
  }
  return positions;
}

/** Calls `visit(p, index)` with the row-major index (over the covered rows) of every position. */
function forEachNaturalIndex(terms: LinearTerms, visit: (p: number, index: number) => void): void {
  const { row, col, dIn } = terms;
  const slot = rowSlots(terms);
  const n = positionCount(terms);
  for (let p = 0; p < n; p++) visit(p, (slot ? slot[row[p]] : row[p]) * dIn + col[p]);
}

/** Reused buffers of one evaluator (sized to its largest linear). */
export class Scratch {
  scores = new Float32Array(0);
  mask = new Uint8Array(0);
  naturalScores = new Float32Array(0);
  naturalMask = new Uint8Array(0);
  /** One band per candidate of a multi-candidate pass. */
  bands: ThresholdBand[] = [];

  ensure(n: number): void {
    if (this.scores.length < n) {
      this.scores = new Float32Array(n);
      this.mask = new Uint8Array(n);
    }
  }

  /** Candidate `index`'s band, of at least `capacity` entries (its bounds are set by the caller). */
  ensureBand(index: number, capacity: number): ThresholdBand {
    const band = this.bands[index];
    if (band && band.score.length >= capacity) return band;
    return (this.bands[index] = {
      lo: 0, hi: 0, score: new Float32Array(capacity), reference: new Float32Array(capacity), countBefore: new Float64Array(capacity), totalBefore: new Float64Array(capacity),
    });
  }

  ensureNatural(n: number): void {
    if (this.naturalScores.length < n) {
      this.naturalScores = new Float32Array(n);
      this.naturalMask = new Uint8Array(n);
    }
  }
}

export interface LinearEvaluation {
  values: Partial<Record<LinearProxyName, number>>;
  seconds: { score: number; select: number; gini: number };
}

/** How a candidate's scores are computed for one linear. */
export type ScoreSource =
  | { kind: 'terms'; window: WindowTerm | null }
  /** crepeScores on the reconstructed matrix: `base` = the terms of all rows. */
  | { kind: 'direct'; base: LinearTerms };

/** One candidate on one linear: how its scores are computed, its parameters, and what to measure. */
export interface LinearRequest {
  source: ScoreSource;
  params: CrepeParams;
  options: ProxyOptions;
  which: readonly LinearProxyName[];
}

/** Scores, mask and the proxies in `which` of one candidate on one linear. */
export function evaluateLinear(
  terms: LinearTerms,
  source: ScoreSource,
  params: CrepeParams,
  options: ProxyOptions,
  which: readonly LinearProxyName[],
  scratch: Scratch,
  memo: Map<string, unknown> = new Map(),
): LinearEvaluation {
  return evaluateLinearMany(terms, [{ source, params, options, which }], scratch, memo)[0];
}

/**
 * evaluateLinear for several candidates on the same linear, each result equal bit for bit to its
 * own evaluateLinear: the candidates that take the one-pass walk (walk-only proxies of a
 * per-matrix mask) share one pass over the terms (scoreAndWalkMany) and the sample that brackets
 * their thresholds (from `sampleOf`); that pass's seconds are split evenly among them.
 */
export function evaluateLinearMany(
  terms: LinearTerms,
  requests: readonly LinearRequest[],
  scratch: Scratch,
  memo: Map<string, unknown> = new Map(),
  sampleOf: SampleSource = (window) => thresholdSample(terms, window),
): LinearEvaluation[] {
  const results: LinearEvaluation[] = new Array(requests.length);
  const walking = requests.flatMap((request, i) => (walksInOnePass(request) ? [i] : []));
  const walks = perMatrixWalks(terms, walking.map((i) => requests[i]), scratch, sampleOf);
  const walkOf = new Map(walking.map((i, w) => [i, w]));
  for (const [w, i] of walking.entries()) {
    const { walk, seconds } = walks[w];
    if (!walk) continue;
    const view: CandidateView = {
      terms, options: requests[i].options, memo,
      get scores(): Float32Array { throw new Error('internal: a walk-only proxy read the scores'); },
      get mask(): Uint8Array { throw new Error('internal: a walk-only proxy read the mask'); },
      referenceWalk: () => walk,
      lostPerColumn: () => { throw new Error('internal: a walk-only proxy read the mask'); },
      natural: () => { throw new Error('internal: a walk-only proxy read the mask'); },
    };
    const t = performance.now();
    const values: Partial<Record<ProxyName, number>> = {};
    for (const name of requests[i].which) values[name] = PROXIES[name].measure(view);
    seconds.gini += (performance.now() - t) / 1000;
    results[i] = { values, seconds };
  }
  for (const [i, request] of requests.entries()) {
    if (results[i]) continue;
    // Seconds of a one-pass attempt that fell back to the general path are counted with it.
    const w = walkOf.get(i);
    results[i] = evaluateGeneral(terms, request, scratch, memo, w !== undefined ? walks[w].seconds : { score: 0, select: 0, gini: 0 });
  }
  return results;
}

/** Whether the candidate's proxies come from the one-pass walk of a per-matrix mask (perMatrixWalks). */
function walksInOnePass({ source, options, which }: LinearRequest): boolean {
  return source.kind === 'terms' && selectsInPositionOrder(options) && which.every((name) => PROXIES[name].walkOnly);
}

/** The candidate's scores in position order, in `scratch`'s buffer. */
function scoresOf(terms: LinearTerms, source: ScoreSource, params: CrepeParams, scratch: Scratch): Float32Array {
  const n = positionCount(terms);
  scratch.ensure(n);
  const scores = scratch.scores.subarray(0, n);
  if (source.kind === 'terms') return candidateScores(terms, source.window, params, scores);
  return candidateScoresDirect(source.base, terms, params, scores);
}

/** The candidate's scores and mask (1 = pruned) in position order, in `scratch`'s buffers, with the seconds of each step. */
function scoreAndSelect(terms: LinearTerms, source: ScoreSource, params: CrepeParams, options: ProxyOptions, scratch: Scratch): { scores: Float32Array; mask: Uint8Array; score: number; select: number } {
  let t = performance.now();
  const scores = scoresOf(terms, source, params, scratch);
  const score = (performance.now() - t) / 1000;
  t = performance.now();
  const mask = scratch.mask.subarray(0, scores.length);
  selectPositions(terms, scores, options, mask, scratch);
  return { scores, mask, score, select: (performance.now() - t) / 1000 };
}

/**
 * The candidate's mask of the linear, row-major over the rows the terms cover (1 = pruned): the
 * mask its proxies see, for a pruned model built from the cache (calib-nll, confirmations). A
 * selection that sees the row-major layout selects there directly.
 */
export function candidateMask(terms: LinearTerms, source: ScoreSource, params: CrepeParams, options: ProxyOptions, scratch: Scratch): Uint8Array {
  const natural = new Uint8Array(rowCount(terms) * terms.dIn);
  if (!selectsInPositionOrder(options)) return selectNatural(terms, scoresOf(terms, source, params, scratch), options, scratch, natural);
  return toNatural(terms, scoreAndSelect(terms, source, params, options, scratch).mask, natural);
}

/** How a candidate's scores of natural-layout terms are computed: from the row-major neighbourhood term, or crepeScores on the weights. */
export type NaturalSource = { kind: 'terms'; window: WindowTerm | null } | { kind: 'direct' };

/**
 * The candidate's mask of a linear from natural-layout terms, row-major (1 = pruned): its scores
 * in row order and prune/mask.ts's selection on them, with no position order to scatter from.
 * The scores are candidateMask's, each at its weight's natural index, so the mask is candidateMask's
 * bit for bit (a per-matrix threshold does not depend on where the scores sit). Into `out` (every
 * entry written) when given: a caller that uses the mask at once can pass scratch memory.
 */
export function naturalMask(terms: NaturalTerms, source: NaturalSource, params: CrepeParams, options: ProxyOptions, scratch: Scratch, out?: Uint8Array): Uint8Array {
  const scores = naturalCandidateScores(terms, source, params, scratch);
  return selectMask(scores, terms.dOut, terms.dIn, options.target, options.selection, out ?? new Uint8Array(scores.length));
}

/** The candidate's scores of natural-layout terms, row-major, in `scratch`'s buffer. */
function naturalCandidateScores(terms: NaturalTerms, source: NaturalSource, params: CrepeParams, scratch: Scratch): Float32Array {
  const { dOut, dIn } = terms;
  scratch.ensureNatural(dOut * dIn);
  const buffer = scratch.naturalScores.subarray(0, dOut * dIn);
  return source.kind === 'terms'
    ? naturalScores(terms, source.window, params, buffer)
    : crepeScores(float32Weights(terms), dOut, dIn, terms.sqNorm, params, buffer);
}

/**
 * The candidate's pruned weights of a linear from natural-layout terms, into `out` (every entry
 * written): maskedNaturalWeights(terms, naturalMask(…)) bit for bit. A per-matrix unstructured
 * target needs no mask array: the weights are widened and zeroed where the score is at most the
 * matrix's threshold (perMatrixMask's rule) in the same pass.
 */
export function prunedNaturalWeights(terms: NaturalTerms, source: NaturalSource, params: CrepeParams, options: ProxyOptions, scratch: Scratch, out: Float32Array): Float32Array {
  if (!selectsInPositionOrder(options)) {
    scratch.ensureNatural(terms.dOut * terms.dIn);
    return maskedNaturalWeights(terms, naturalMask(terms, source, params, options, scratch, scratch.naturalMask.subarray(0, terms.dOut * terms.dIn)), out);
  }
  const scores = naturalCandidateScores(terms, source, params, scratch);
  checkNaturalOut(terms, scores.length, out);
  const threshold = perMatrixThreshold(scores, options.target.sparsity);
  const bits = storedBits(out);
  if (terms.weightF16) weightsAboveF16(terms.weightF16, storedBits(float16Table()), scores, threshold, bits);
  else weightsAboveF32(storedBits(terms.weightF32!), scores, threshold, bits);
  return out;
}

/** bits[p] = the weight's float32 bits where scores[p] > threshold, else +0 (branch-free). */
function weightsAboveF16(half: Uint16Array, tableBits: Uint32Array, scores: Float32Array, threshold: number, bits: Uint32Array): void {
  for (let p = 0; p < bits.length; p++) bits[p] = tableBits[half[p]] & (+(scores[p] <= threshold) - 1);
}

function weightsAboveF32(stored: Uint32Array, scores: Float32Array, threshold: number, bits: Uint32Array): void {
  for (let p = 0; p < bits.length; p++) bits[p] = stored[p] & (+(scores[p] <= threshold) - 1);
}

const storedBits = (values: Float32Array): Uint32Array => new Uint32Array(values.buffer, values.byteOffset, values.length);

function checkNaturalOut(terms: NaturalTerms, entries: number, out: Float32Array): void {
  const n = terms.dOut * terms.dIn;
  if (out.length !== n || entries !== n) throw new Error(`internal: ${out.length} values and ${entries} mask or score entries for a ${terms.dOut}×${terms.dIn} linear`);
}

/**
 * The float32 weights of natural-layout terms pruned by `mask` (row-major, 1 = pruned), into `out`
 * (every entry written): the widened weights (float16 to float32 is exact) with applyMask's zeros
 * (`bits & (mask - 1)`), in one pass: what a checkpoint's readBlock and applyMask give, bit for bit.
 */
export function maskedNaturalWeights(terms: NaturalTerms, mask: Uint8Array, out: Float32Array): Float32Array {
  checkNaturalOut(terms, mask.length, out);
  const bits = storedBits(out);
  if (terms.weightF16) {
    const tableBits = storedBits(float16Table());
    const half = terms.weightF16;
    for (let p = 0; p < bits.length; p++) bits[p] = tableBits[half[p]] & (mask[p] - 1);
  } else {
    const stored = storedBits(terms.weightF32!);
    for (let p = 0; p < bits.length; p++) bits[p] = stored[p] & (mask[p] - 1);
  }
  return out;
}

/** `values` (position order) into `out` (row-major over the covered rows): forEachNaturalIndex's walk as one loop over typed arrays. */
function toNatural<T extends Uint8Array | Float32Array>(terms: LinearTerms, values: T, out: T): T {
  const { row, col, dIn } = terms;
  const slot = rowSlots(terms);
  if (slot) for (let p = 0; p < values.length; p++) out[slot[row[p]] * dIn + col[p]] = values[p];
  else for (let p = 0; p < values.length; p++) out[row[p] * dIn + col[p]] = values[p];
  return out;
}

/** Scores, mask and proxies of one candidate: the general path, for any proxy, selection and score source. */
function evaluateGeneral(terms: LinearTerms, { source, params, options, which }: LinearRequest, scratch: Scratch, memo: Map<string, unknown>, before: LinearEvaluation['seconds']): LinearEvaluation {
  const { scores, mask, score, select } = scoreAndSelect(terms, source, params, options, scratch);
  const t = performance.now();
  let walk: ReferenceWalk | null = null;
  let lost: Float64Array | null = null;
  let natural: { mask: Uint8Array; weight: Float32Array } | null = null;
  const view: CandidateView = {
    terms, scores, mask, options, memo,
    referenceWalk: () => (walk ??= walkReference(terms, mask)),
    lostPerColumn: () => (lost ??= lostPerColumn(terms, mask)),
    natural: () => (natural ??= naturalMaskAndWeights(terms, mask)),
  };
  const values: Partial<Record<LinearProxyName, number>> = {};
  for (const name of which) values[name] = PROXIES[name].measure(view);
  return { values, seconds: { score: before.score + score, select: before.select + select, gini: before.gini + (performance.now() - t) / 1000 } };
}

/** Positions of the sample that brackets a per-matrix threshold before the pass (perMatrixWalks). */
const THRESHOLD_SAMPLE = 1 << 16;

/**
 * The weights, rows, columns and neighbourhood term at the sample's positions: the same for every
 * candidate. It holds no per-row or per-column array of the terms (those may be reused for another
 * linear once the terms are released): they are taken from the terms at each use.
 */
export interface ThresholdSample {
  weightF16: Uint16Array | null;
  weightF32: Float32Array | null;
  row: LinearTerms['row'];
  col: LinearTerms['col'];
  window: WindowTerm | null;
}
/** The sample of the linear's terms with a neighbourhood term (null when γ = 0); a caller may keep them across candidates. */
export type SampleSource = (window: WindowTerm | null) => ThresholdSample;

/** The sample of `terms` and `window`: min(n, THRESHOLD_SAMPLE) positions evenly spaced along the reference order. */
export function thresholdSample(terms: LinearTerms, window: WindowTerm | null): ThresholdSample {
  const n = positionCount(terms);
  const m = Math.min(n, THRESHOLD_SAMPLE);
  const positions = new Uint32Array(m);
  for (let i = 0; i < m; i++) positions[i] = Math.floor(((2 * i + 1) * n) / (2 * m));
  const sample = pickPositions(terms, window, positions);
  const { weightF16, weightF32, row, col } = sample.terms;
  return { weightF16, weightF32, row, col, window: sample.window };
}

export function sampleBytes(sample: ThresholdSample): number {
  return (sample.weightF16 ?? sample.weightF32)!.byteLength + sample.row.byteLength + sample.col.byteLength + (sample.window?.byteLength ?? 0);
}
/** Half-width of the bracket around the threshold's rank in the sample, in standard deviations of that rank. */
const BRACKET_SIGMAS = 5;

/**
 * The reference walk of each candidate's per-matrix mask (prune every score ≤ t, t = the score of
 * rank floor(n·sparsity), as perMatrixMask) in ONE pass over the terms for all of them, without
 * storing scores or masks: the scores of a fixed sample of positions (evenly spaced along the
 * reference order; gathered once for the candidates that share a neighbourhood term) bracket t in
 * [lo, hi]; the pass walks the entries below lo as it scores them and records those in the
 * bracket; the exact t is then selected among the recorded ones and the walk completed with them.
 * A candidate's walk is null, and the caller takes the general path, when t is not in its bracket
 * (or a score is NaN); the walk is the same as the general path's up to float64 rounding (the sums
 * are added in another order).
 */
function perMatrixWalks(terms: LinearTerms, requests: readonly LinearRequest[], scratch: Scratch, sampleOf: SampleSource): Array<{ walk: ReferenceWalk | null; seconds: LinearEvaluation['seconds'] }> {
  const n = positionCount(terms);
  const seconds = requests.map(() => ({ score: 0, select: 0, gini: 0 }));
  if (n === 0) return requests.map((_, i) => ({ walk: { count: 0, total: 0, rankWeighted: 0 }, seconds: seconds[i] }));
  const m = Math.min(n, THRESHOLD_SAMPLE);
  const samples = new Map<WindowTerm | null, ThresholdSample>();
  const ranks: number[] = [];
  const candidates: WalkCandidate[] = requests.map(({ source, params, options }, c) => {
    const t = performance.now();
    const window = source.kind === 'terms' ? source.window : null;
    const sparsity = (options.target as { sparsity: number }).sparsity;
    const rank = Math.min(Math.floor(n * sparsity), n - 1);
    ranks.push(rank);
    const key = params.gamma === 0 ? null : window;
    let sample = samples.get(key);
    if (!sample) samples.set(key, (sample = sampleOf(key)));
    const { weightF16, weightF32, row, col } = sample;
    const sampleScores = candidateScores({ ...terms, weightF16, weightF32, row, col, basePositions: null }, sample.window, params, new Float32Array(m));
    const q = (rank + 0.5) / n;
    const spread = BRACKET_SIGMAS * Math.sqrt(m * q * (1 - q)) + 2;
    const loRank = Math.floor(q * m - spread);
    const hiRank = Math.ceil(q * m + spread);
    const band = scratch.ensureBand(c, Math.min(n, Math.ceil((1.5 * (hiRank - loRank + 1) * n) / m) + 1024));
    band.lo = loRank < 0 ? Number.NEGATIVE_INFINITY : kthSmallest(sampleScores, loRank);
    band.hi = hiRank >= m ? Number.POSITIVE_INFINITY : kthSmallest(sampleScores, hiRank);
    seconds[c].select += (performance.now() - t) / 1000;
    return { window, params, band };
  });

  const t = performance.now();
  const passes = scoreAndWalkMany(terms, candidates);
  const passSeconds = (performance.now() - t) / 1000 / candidates.length;
  return candidates.map(({ band }, c) => {
    seconds[c].score += passSeconds;
    const started = performance.now();
    const walk = settle(band, passes[c], ranks[c], n);
    seconds[c].select += (performance.now() - started) / 1000;
    return { walk, seconds: seconds[c] };
  });
}

/**
 * A candidate's walk completed with its band's entries (see perMatrixWalks), or null when its
 * threshold of `rank` is not in the band (or a score is NaN, or the band overflowed).
 */
function settle(band: ThresholdBand, pass: BandedWalk, rank: number, n: number): ReferenceWalk | null {
  const below = pass.count;
  const inBand = pass.inBand;
  if (inBand > band.score.length || below + inBand + pass.above !== n || rank < below || rank >= below + inBand) return null;
  const threshold = kthSmallest(band.score.subarray(0, inBand), rank - below);
  // Each recorded entry at or under the threshold is pruned: its rank is the count of pruned
  // entries up to it, and every definitely pruned entry after it moves one rank up.
  let extra = 0;
  let total = 0;
  let rankWeighted = 0;
  for (let e = 0; e < inBand; e++) {
    if (band.score[e] > threshold) continue;
    extra++;
    const value = band.reference[e];
    total += value;
    rankWeighted += (band.countBefore[e] + extra) * value + (pass.total - band.totalBefore[e]);
  }
  return { count: below + extra, total: pass.total + total, rankWeighted: pass.rankWeighted + rankWeighted };
}

/**
 * The mask of the candidate's scores with prune/mask.ts's selection. One threshold per matrix
 * does not depend on where the scores sit, so it runs on the position order directly; per-row and
 * N:M selection see the row-major layout (scores scattered there, the mask gathered back).
 */
function selectPositions(terms: LinearTerms, scores: Float32Array, options: ProxyOptions, mask: Uint8Array, scratch: Scratch): void {
  if (selectsInPositionOrder(options)) {
    selectMask(scores, rowCount(terms), terms.dIn, options.target, options.selection, mask);
    return;
  }
  scratch.ensureNatural(scores.length);
  const naturalMask = selectNatural(terms, scores, options, scratch, scratch.naturalMask.subarray(0, scores.length));
  forEachNaturalIndex(terms, (p, index) => { mask[p] = naturalMask[index]; });
}

/** Whether the selection is blind to where the scores sit (one threshold per matrix), so that it runs on the position order. */
const selectsInPositionOrder = (options: ProxyOptions): options is ProxyOptions & { target: Extract<PruneTarget, { kind: 'unstructured' }> } =>
  options.target.kind === 'unstructured' && options.selection === 'per-matrix';

/** The row-major mask (into `out`) of a selection that sees the row-major layout: the scores scattered there, then selected. */
function selectNatural(terms: LinearTerms, scores: Float32Array, options: ProxyOptions, scratch: Scratch, out: Uint8Array): Uint8Array {
  scratch.ensureNatural(scores.length);
  const natural = toNatural(terms, scores, scratch.naturalScores.subarray(0, scores.length));
  return selectMask(natural, rowCount(terms), terms.dIn, options.target, options.selection, out);
}

/**
 * One pass along the reference order: count, Σ and rank-weighted Σ of the pruned entries'
 * reference importance. Branch-free (a kept entry adds exact zeros), so the sums are those of the
 * pruned entries alone, in order.
 */
function walkReference(terms: LinearTerms, mask: Uint8Array): ReferenceWalk {
  const { f16, f32, table } = magnitudeSource(terms);
  const sums = new Float64Array(3);
  walkLoop(mask, f16, f32, table, referenceNorms(terms), terms.col, positionCount(terms), sums);
  return { count: sums[0], total: sums[1], rankWeighted: sums[2] };
}

/**
 * The walk's loop on its own, over typed arrays only: a loop of tens of millions of iterations is
 * entered through on-stack replacement, and code after it in the same function would run without
 * type feedback and throw the optimised code away on every call.
 */
function walkLoop(
  mask: Uint8Array, f16: Uint16Array | null, f32: Float32Array | null, table: Float32Array, norms: Float64Array, col: Uint16Array | Uint32Array, n: number,
  out: Float64Array,
): void {
  let count = 0;
  let total = 0;
  let rankWeighted = 0;
  for (let p = 0; p < n; p++) {
    const pruned = mask[p];
    const magnitude = f16 !== null ? table[f16[p] & 0x7fff] : Math.abs(f32![p]);
    const value = pruned * Math.fround(magnitude * norms[col[p]]);
    count += pruned;
    total += value;
    rankWeighted += count * value;
  }
  out[0] = count;
  out[1] = total;
  out[2] = rankWeighted;
}

function lostPerColumn(terms: LinearTerms, mask: Uint8Array): Float64Array {
  const norms = referenceNorms(terms);
  const { col } = terms;
  const { f16, f32, table } = magnitudeSource(terms);
  const lost = new Float64Array(terms.dIn);
  const n = positionCount(terms);
  for (let p = 0; p < n; p++) {
    if (mask[p]) lost[col[p]] += Math.fround((f16 !== null ? table[f16[p] & 0x7fff] : Math.abs(f32![p])) * norms[col[p]]);
  }
  return lost;
}

function naturalMaskAndWeights(terms: LinearTerms, mask: Uint8Array): { mask: Uint8Array; weight: Float32Array } {
  const { weight, naturalIndex } = naturalLayout(terms);
  const naturalMask = new Uint8Array(weight.length);
  for (let p = 0; p < naturalIndex.length; p++) naturalMask[naturalIndex[p]] = mask[p];
  return { mask: naturalMask, weight };
}
