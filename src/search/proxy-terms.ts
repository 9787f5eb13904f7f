/**
 * The part of CRePE's score that does not depend on the candidate, per linear, for PHO's proxies.
 *
 * CRePE (prune/scores/crepe.ts) scores a weight matrix W, A = |W|, x_j^a = sqrt(s_j)^a, as
 *   normalized: S_ij = (β·A_ij/C_j + α·A_ij/R_i + γ·B_ij)·x_j^a
 *   smooth:     S_ij = (β·A_ij/C_j + α·A_ij/R_i)·x_j^a + γ·B_ij
 * where C and R are column and row sums of A and B is the neighbourhood term of window size k.
 * A candidate changes α, β, γ (and a when it is searched); A, 1/C, 1/R and s are computed once per
 * linear, B once per window size k (per k and a for smooth, whose B contains x^a). The per-column
 * factor x^a is one array of dIn values per candidate.
 *
 * Two layouts of the per-weight terms:
 *  - position (LinearTerms): every per-weight term in ascending order of the reference importance
 *    |W_ij|·sqrt(s_j) (Wanda's score: the values of the gini-ref proxy), with the row and column of
 *    each position. A candidate's per-linear proxies are then sequential passes over arrays: score
 *    each position, select (per-matrix selection is blind to the order), and walk the mask along
 *    the reference order: no sort and no random access into matrix-sized arrays.
 *  - natural (NaturalTerms): the weights and neighbourhood terms row-major, as the matrix holds
 *    them, for a cache that serves masks alone (calib-nll, pruned perplexities): a candidate's
 *    mask is one row-major pass of scores and the selection, with no reference order to sort in
 *    the dense pass, no row/column arrays to read, and no scatter of the mask into the matrix.
 * Both score a weight with the same float64 operations in the same order (crepeScore), so their
 * scores, and so their masks, are equal bit for bit.
 *
 * Precision: the weights are stored exactly (float16 bits when every value of the matrix is a
 * float16, as in F16 checkpoints, else float32) and 1/C, 1/R, s are crepeScores' own float64
 * values, so a candidate's score equals crepeScores' bit for bit when γ = 0 or B is kept in
 * float64. By default B is stored as float32 (half the bytes): a score can then differ from
 * crepeScores' by one float32 ulp, and a mask by the few entries that tie with the threshold
 * within that ulp.
 */
import { crepeScores, type CrepeParams, type CrepeVariant } from '../prune/scores/crepe.ts';
import { forEachNeighbourhoodRow, relativeImportanceTerm } from '../util/kernels.ts';
import { activationFactors, relativeImportanceSetup, type RelativeImportanceSetup } from '../prune/scores/ria.ts';
import { wandaScores } from '../prune/scores/wanda.ts';
import { argsortNonNegative } from '../util/argsort.ts';
import { f16ToF32, f32ToF16 } from '../util/float16.ts';
import { Rng, sampleWithoutReplacement } from '../util/rng.ts';

export type IndexArray = Uint16Array | Uint32Array;
export type WindowTerm = Float32Array | Float64Array;
export type WindowPrecision = 'float32' | 'float64';

/** The per-linear terms, positions in ascending reference order. */
export interface LinearTerms {
  dOut: number;
  dIn: number;
  /** The weight at each position: float16 bits when every value is a float16, else null (see weightF32). */
  weightF16: Uint16Array | null;
  weightF32: Float32Array | null;
  row: IndexArray;
  col: IndexArray;
  /** 1/R_i and 1/C_j of the whole matrix (crepeScores' values, zero sums guarded). */
  inverseRowSums: Float64Array;
  inverseColSums: Float64Array;
  /** Input-channel squared norms s_j. */
  sqNorm: Float64Array;
  /** Σ of the reference importance over the positions. */
  referenceTotal: number;
  /** The kept rows (ascending) when the terms cover a subset of rows; null = all rows. */
  rows: Uint32Array | null;
  /** For a row subset: each position's position in the full terms; null = all rows. */
  basePositions: Uint32Array | null;
  /** XᵀX of the linear's input, for the output-error proxy. */
  gram: Float64Array | null;
  /** tr(W·XᵀX·Wᵀ) over the kept rows (NaN without a gram). */
  outputEnergy: number;
}

/** Which neighbourhood term: the window size, the variant, and for smooth the exponent inside it. */
export interface WindowKey {
  k: number;
  variant: CrepeVariant;
  /** Only for smooth (its B contains x^a); null for normalized. */
  a: number | null;
}

export function windowKey(params: Pick<CrepeParams, 'k' | 'variant' | 'a'>): WindowKey {
  return { k: params.k, variant: params.variant, a: params.variant === 'smooth' ? params.a : null };
}

export const sameWindow = (x: WindowKey, y: WindowKey): boolean => x.k === y.k && x.variant === y.variant && Object.is(x.a, y.a);

/** Number of positions (weights) the terms cover. */
export const positionCount = (terms: LinearTerms): number => terms.row.length;

/** Rows of the matrix the terms cover (all, or the kept subset). */
export const rowCount = (terms: LinearTerms): number => terms.rows?.length ?? terms.dOut;

let f16Values: Float32Array | null = null;
/** The float32 value of every float16 bit pattern (256 KiB, built once). */
export function float16Table(): Float32Array {
  return (f16Values ??= f16ToF32(Uint16Array.from({ length: 65536 }, (_, bits) => bits)));
}

const indexArray = (length: number, limit: number): IndexArray => (limit <= 65536 ? new Uint16Array(length) : new Uint32Array(length));

/**
 * The terms of one linear from its weights (row-major [dOut, dIn]) and input statistics, and the
 * natural index of each position (`order`, the reference's stable ascending argsort).
 */
export function buildLinearTerms(
  weight: Float32Array,
  dOut: number,
  dIn: number,
  sqNorm: Float64Array,
  gram: Float64Array | null,
): { terms: LinearTerms; order: Uint32Array; setup: RelativeImportanceSetup } {
  const reference = wandaScores(weight, dOut, dIn, sqNorm);
  let referenceTotal = 0;
  for (let i = 0; i < reference.length; i++) referenceTotal += reference[i];
  const order = argsortNonNegative(reference);
  const setup = relativeImportanceSetup(weight, dOut, dIn, sqNorm, 0, 'proxy');
  const n = weight.length;
  const half = float16Bits(weight);
  const weightF16 = half ? new Uint16Array(n) : null;
  const weightF32 = half ? null : new Float32Array(n);
  const row = indexArray(n, dOut);
  const col = indexArray(n, dIn);
  for (let p = 0; p < n; p++) {
    const index = order[p];
    if (weightF16) weightF16[p] = half![index];
    else weightF32![p] = weight[index];
    const i = Math.floor(index / dIn);
    row[p] = i;
    col[p] = index - i * dIn;
  }
  const terms: LinearTerms = {
    dOut, dIn, weightF16, weightF32, row, col,
    inverseRowSums: setup.inverseRowSums, inverseColSums: setup.inverseColSums, sqNorm,
    referenceTotal, rows: null, basePositions: null, gram,
    outputEnergy: gram ? quadraticForm(weight, null, gram, dOut, dIn) : Number.NaN,
  };
  return { terms, order, setup };
}

/** The per-linear terms in row-major order (the natural layout): what a candidate's mask needs, no more. */
export interface NaturalTerms {
  dOut: number;
  dIn: number;
  /** The weights, row-major: float16 bits when every value is a float16, else null (see weightF32). */
  weightF16: Uint16Array | null;
  weightF32: Float32Array | null;
  /** 1/R_i and 1/C_j (crepeScores' values, zero sums guarded). */
  inverseRowSums: Float64Array;
  inverseColSums: Float64Array;
  /** Input-channel squared norms s_j. */
  sqNorm: Float64Array;
}

/** The natural-layout terms of one linear from its weights (row-major [dOut, dIn]) and input statistics. */
export function buildNaturalTerms(weight: Float32Array, dOut: number, dIn: number, sqNorm: Float64Array): { terms: NaturalTerms; setup: RelativeImportanceSetup } {
  const setup = relativeImportanceSetup(weight, dOut, dIn, sqNorm, 0, 'proxy');
  const weightF16 = float16Bits(weight);
  const terms: NaturalTerms = {
    dOut, dIn, weightF16, weightF32: weightF16 ? null : Float32Array.from(weight),
    inverseRowSums: setup.inverseRowSums, inverseColSums: setup.inverseColSums, sqNorm,
  };
  return { terms, setup };
}

/** The float16 bits of every value when all of them are float16 values (as in F16 checkpoints), else null. */
function float16Bits(weight: Float32Array): Uint16Array | null {
  const table = float16Table();
  const bits = new Uint16Array(weight.length);
  const chunk = 1 << 16;
  for (let start = 0; start < weight.length; start += chunk) {
    const part = weight.subarray(start, Math.min(weight.length, start + chunk));
    const half = f32ToF16(part);
    for (let i = 0; i < part.length; i++) if (table[half[i]] !== part[i]) return null;
    bits.set(half, start);
  }
  return bits;
}

/**
 * The neighbourhood term of `key` for every weight, from the row-major weights: in position order
 * (`positionOf`: the position of each natural index), or row-major when `positionOf` is null. Into
 * `out` when given (an array of `precision`, one entry per weight, every entry written): a caller
 * that writes the term out and drops it reuses one array, since fresh memory costs more to touch
 * first than the term costs to compute.
 */
export function windowTerm(
  weight: Float32Array,
  setup: RelativeImportanceSetup,
  sqNorm: Float64Array,
  key: WindowKey,
  positionOf: Uint32Array | null,
  precision: WindowPrecision,
  out: WindowTerm = precision === 'float64' ? new Float64Array(weight.length) : new Float32Array(weight.length),
): WindowTerm {
  const { dIn } = setup;
  if (out.length !== weight.length || (out instanceof Float64Array) !== (precision === 'float64')) {
    throw new Error(`internal: a ${precision} neighbourhood term of ${weight.length} weights into a ${out.constructor.name} of ${out.length}`);
  }
  const withActivation = key.variant === 'smooth' ? { ...setup, activation: activationFactors(sqNorm, key.a ?? Number.NaN) } : setup;
  forEachNeighbourhoodRow({ ...withActivation, weights: weight }, key.k, key.variant === 'smooth', false, (i, values) => {
    const rowStart = i * dIn;
    if (positionOf) for (let j = 0; j < dIn; j++) out[positionOf[rowStart + j]] = values[j];
    else out.set(values, rowStart);
  });
  return out;
}

/** The neighbourhood term of `key` from natural-layout terms, row-major (for keys not built with the cache). */
export function naturalWindowTerm(terms: NaturalTerms, key: WindowKey, precision: WindowPrecision): WindowTerm {
  const setup: RelativeImportanceSetup = { dOut: terms.dOut, dIn: terms.dIn, inverseRowSums: terms.inverseRowSums, inverseColSums: terms.inverseColSums, activation: activationFactors(terms.sqNorm, 0) };
  return windowTerm(float32Weights(terms), setup, terms.sqNorm, key, null, precision);
}

/** The inverse of `order`: the position of each natural index. */
export function positionsOf(order: Uint32Array): Uint32Array {
  const positionOf = new Uint32Array(order.length);
  for (let p = 0; p < order.length; p++) positionOf[order[p]] = p;
  return positionOf;
}

/** Stored weights (float16 bits or float32, in the terms' order: row-major in the natural layout) as float32. */
export function float32Weights(terms: Pick<LinearTerms, 'weightF16' | 'weightF32'>): Float32Array {
  if (terms.weightF32) return terms.weightF32;
  const table = float16Table();
  const bits = terms.weightF16!;
  const out = new Float32Array(bits.length);
  for (let p = 0; p < bits.length; p++) out[p] = table[bits[p]];
  return out;
}

/**
 * Row-major weights of the rows the terms cover (kept rows compacted in order) and the natural
 * index of each position in that layout.
 */
export function naturalLayout(terms: LinearTerms): { weight: Float32Array; naturalIndex: Uint32Array } {
  const { dIn, row, col } = terms;
  const slot = rowSlots(terms);
  const values = float32Weights(terms);
  const n = positionCount(terms);
  const weight = new Float32Array(rowCount(terms) * dIn);
  const naturalIndex = new Uint32Array(n);
  for (let p = 0; p < n; p++) {
    const index = (slot ? slot[row[p]] : row[p]) * dIn + col[p];
    naturalIndex[p] = index;
    weight[index] = values[p];
  }
  return { weight, naturalIndex };
}

/** For a row subset: the compacted row of each kept row (−1 for the others); null for all rows. */
export function rowSlots(terms: LinearTerms): Int32Array | null {
  if (!terms.rows) return null;
  const slot = new Int32Array(terms.dOut).fill(-1);
  terms.rows.forEach((r, s) => { slot[r] = s; });
  return slot;
}

/** The neighbourhood term of `key`, computed from the terms of all rows (for keys not built with the cache). */
export function windowTermFromTerms(terms: LinearTerms, key: WindowKey, precision: WindowPrecision): WindowTerm {
  if (terms.rows) throw new Error('internal: neighbourhood terms are computed from the terms of all rows');
  const { weight, naturalIndex } = naturalLayout(terms);
  return windowTerm(weight, relativeSetup(terms, 0), terms.sqNorm, key, positionsOf(naturalIndex), precision);
}

function relativeSetup(terms: LinearTerms, a: number): RelativeImportanceSetup {
  return { dOut: terms.dOut, dIn: terms.dIn, inverseRowSums: terms.inverseRowSums, inverseColSums: terms.inverseColSums, activation: activationFactors(terms.sqNorm, a) };
}

/**
 * The weights' magnitudes for the hot loops: |W| at position p is `table[f16[p] & 0x7fff]`
 * (clearing a float16's sign bit gives its magnitude's bits) when the weights are stored as
 * float16, else `Math.abs(f32[p])`. Reading the 2-byte bits through a 256 KiB table beats a
 * separate decoded float32 copy: the passes are bound by memory traffic.
 */
export function magnitudeSource(terms: LinearTerms): { f16: Uint16Array | null; f32: Float32Array | null; table: Float32Array } {
  return { f16: terms.weightF16, f32: terms.weightF32, table: float16Table() };
}

/**
 * The candidate's CRePE scores at every position: one pass over the stored terms. `window` is
 * the neighbourhood term of the candidate's k (and a, for smooth); unused, and may be null, when
 * γ = 0. Same float64 operations, in the same order, as crepeScores.
 */
export function candidateScores(terms: LinearTerms, window: WindowTerm | null, params: CrepeParams, out: Float32Array): Float32Array {
  const n = positionCount(terms);
  if (out.length < n) throw new Error(`internal: a score buffer of ${out.length} for ${n} positions`);
  scorePass(terms, window, params, out, null);
  return out;
}

/**
 * The candidate's CRePE scores of natural-layout terms, row-major: one pass in row order with
 * crepeScore's float64 operations (candidateScores' values, each at its weight's natural index).
 * `window` is row-major; unused, and may be null, when γ = 0.
 */
export function naturalScores(terms: NaturalTerms, window: WindowTerm | null, params: CrepeParams, out: Float32Array): Float32Array {
  const { dOut, dIn, weightF16, weightF32, inverseRowSums, inverseColSums } = terms;
  const n = dOut * dIn;
  if (out.length < n) throw new Error(`internal: a score buffer of ${out.length} for ${n} weights`);
  const { gN, gS, w } = windowWeights(params, window, n);
  const activation = activationFactors(terms.sqNorm, params.a);
  const { alpha, beta } = params;
  const f16 = weightF16 !== null ? { f16: weightF16, table: float16Table() } : null;
  // γ = 0: the loops without the term (its zero weights leave every score as it is, see crepeScore).
  if (params.gamma === 0) {
    if (f16) naturalPlainF16(dOut, dIn, alpha, beta, f16.f16, f16.table, inverseRowSums, inverseColSums, activation, out);
    else naturalPlainF32(dOut, dIn, alpha, beta, weightF32!, inverseRowSums, inverseColSums, activation, out);
  } else if (f16) naturalLoopF16(dOut, dIn, alpha, beta, gN, gS, f16.f16, f16.table, inverseRowSums, inverseColSums, activation, w, out);
  else naturalLoopF32(dOut, dIn, alpha, beta, gN, gS, weightF32!, inverseRowSums, inverseColSums, activation, w, out);
  return out;
}

/**
 * A per-matrix threshold known to lie in [lo, hi], for a score pass that walks the mask as it
 * scores (scoreAndWalk): entries scoring below lo are pruned, above hi kept, and those in between
 * recorded here (in position order) to be settled once the exact threshold is known.
 */
export interface ThresholdBand {
  lo: number;
  hi: number;
  /** Per recorded entry: its score, its reference importance, and the walk's count and Σ of the definitely pruned entries before it. */
  score: Float32Array;
  reference: Float32Array;
  countBefore: Float64Array;
  totalBefore: Float64Array;
}

/** What scoreAndWalk found: the walk of the entries below the band, the band's size (may exceed its capacity) and the count above it. */
export interface BandedWalk {
  count: number;
  total: number;
  rankWeighted: number;
  inBand: number;
  above: number;
}

/**
 * The candidate's scores, not stored, walked along the reference order against `band` in the same
 * pass (see ThresholdBand): the reference importance of a position is fround(|W|·norms[col]) as
 * in the reference walk, the sums are float64 in position order.
 */
function scoreAndWalk(terms: LinearTerms, window: WindowTerm | null, params: CrepeParams, band: ThresholdBand): BandedWalk {
  const sums = scorePass(terms, window, params, NO_SCORES, band);
  return { count: sums[0], total: sums[1], rankWeighted: sums[2], inBand: sums[3], above: sums[4] };
}

const NO_SCORES = new Float32Array(0);
/** The neighbourhood term read when γ = 0 (index masked to 0): its weight is 0. */
const ZERO_WINDOW = new Float32Array(1);

/**
 * The neighbourhood term's weights in the score (see crepeScore: gN for normalized, gS for smooth,
 * both 0 when γ = 0) and the term read at p & wMask (a one-entry zero term when γ = 0).
 */
function windowWeights(params: CrepeParams, window: WindowTerm | null, n: number): { gN: number; gS: number; w: WindowTerm; wMask: number } {
  const plain = params.gamma === 0;
  if (!plain && (!window || window.length !== n)) throw new Error('internal: a neighbourhood term for every position is needed when γ > 0');
  const normalized = !plain && params.variant === 'normalized';
  return { gN: normalized ? params.gamma : 0, gS: plain || normalized ? 0 : params.gamma, w: plain ? ZERO_WINDOW : window!, wMask: plain ? 0 : -1 };
}

function scorePass(terms: LinearTerms, window: WindowTerm | null, params: CrepeParams, out: Float32Array, band: ThresholdBand | null): Float64Array {
  const n = positionCount(terms);
  const { gN, gS, w, wMask } = windowWeights(params, window, n);
  const { f16, f32, table } = magnitudeSource(terms);
  const activation = activationFactors(terms.sqNorm, params.a);
  const { row, col, inverseRowSums: ir, inverseColSums: ic } = terms;
  const sums = new Float64Array(5);
  if (!band) {
    scoreLoop(n, params.alpha, params.beta, gN, gS, f16, f32, table, row, col, ir, ic, activation, w, wMask, out);
    return sums;
  }
  const walk = [n, params.alpha, params.beta, gN, gS, row, col, ir, ic, activation, w, wMask, referenceNorms(terms), band.lo, band.hi,
    band.score, band.reference, band.countBefore, band.totalBefore, sums] as const;
  if (f16) walkLoopF16(f16, table, ...walk);
  else walkLoopF32(f32!, ...walk);
  return sums;
}

/**
 * One weight's CRePE score from its terms (m = |W|, B the neighbourhood term), rounded to
 * float32 as crepeScores stores it, with crepeScores' float64 operations in its order:
 *   normalized: (β·m/C + α·m/R + γ·B)·x^a      (gN = γ, gS = 0)
 *   smooth:     (β·m/C + α·m/R)·x^a + γ·B      (gN = 0, gS = γ)
 *   γ = 0:      (β·m/C + α·m/R)·x^a            (gN = gS = 0)
 * Adding the zero terms leaves every sum as it is: the one expression covers all three, without
 * a branch in the loops that call it.
 */
function crepeScore(m: number, inverseCol: number, inverseRow: number, activation: number, b: number, alpha: number, beta: number, gN: number, gS: number): number {
  return scoreOfProducts(m * inverseCol, m * inverseRow, activation, b, alpha, beta, gN, gS);
}

/** crepeScore from its candidate-independent products m/C and m/R (the multi-candidate pass computes them once per weight). */
function scoreOfProducts(byCol: number, byRow: number, activation: number, b: number, alpha: number, beta: number, gN: number, gS: number): number {
  return Math.fround((beta * byCol + alpha * byRow + gN * b) * activation + gS * b);
}

/*
 * The loops below stand on their own, over numbers and typed arrays only: a loop of tens of
 * millions of iterations is entered through on-stack replacement, and property reads or code after
 * the loop in the same function would run without type feedback and discard the optimised code on
 * every call. They take float16 bits or float32 weights in separate loops (a per-weight branch on
 * the storage costs a quarter of the time); the neighbourhood term is read at p & wMask (0 when
 * γ = 0, when there is none).
 */

function scoreLoop(
  n: number, alpha: number, beta: number, gN: number, gS: number, f16: Uint16Array | null, f32: Float32Array | null, table: Float32Array,
  row: IndexArray, col: IndexArray, ir: Float64Array, ic: Float64Array, activation: Float64Array, window: WindowTerm, wMask: number, out: Float32Array,
): void {
  for (let p = 0; p < n; p++) {
    const m = f16 !== null ? table[f16[p] & 0x7fff] : Math.abs(f32![p]);
    const j = col[p];
    out[p] = crepeScore(m, ic[j], ir[row[p]], activation[j], window[p & wMask], alpha, beta, gN, gS);
  }
}

/**
 * naturalScores' passes, row i's 1/R_i read once and the per-column factors in order: over float16
 * weights or float32 ones, with the neighbourhood term `window` (row-major) or, for γ = 0, without
 * (relativeImportanceTerm·x^a: crepeScore less its zero terms, whose +0 changes no bit of its
 * non-negative sums). The term is read at p, not p & wMask as in the position-order loops: a
 * fifth faster here.
 */
function naturalLoopF16(
  dOut: number, dIn: number, alpha: number, beta: number, gN: number, gS: number, f16: Uint16Array, table: Float32Array,
  ir: Float64Array, ic: Float64Array, activation: Float64Array, window: WindowTerm, out: Float32Array,
): void {
  for (let i = 0, p = 0; i < dOut; i++) {
    const inverseRow = ir[i];
    for (let j = 0; j < dIn; j++, p++) out[p] = crepeScore(table[f16[p] & 0x7fff], ic[j], inverseRow, activation[j], window[p], alpha, beta, gN, gS);
  }
}

function naturalLoopF32(
  dOut: number, dIn: number, alpha: number, beta: number, gN: number, gS: number, f32: Float32Array,
  ir: Float64Array, ic: Float64Array, activation: Float64Array, window: WindowTerm, out: Float32Array,
): void {
  for (let i = 0, p = 0; i < dOut; i++) {
    const inverseRow = ir[i];
    for (let j = 0; j < dIn; j++, p++) out[p] = crepeScore(Math.abs(f32[p]), ic[j], inverseRow, activation[j], window[p], alpha, beta, gN, gS);
  }
}

function naturalPlainF16(
  dOut: number, dIn: number, alpha: number, beta: number, f16: Uint16Array, table: Float32Array,
  ir: Float64Array, ic: Float64Array, activation: Float64Array, out: Float32Array,
): void {
  for (let i = 0, p = 0; i < dOut; i++) {
    const inverseRow = ir[i];
    for (let j = 0; j < dIn; j++, p++) out[p] = Math.fround(relativeImportanceTerm(table[f16[p] & 0x7fff], ic[j], inverseRow, alpha, beta) * activation[j]);
  }
}

function naturalPlainF32(
  dOut: number, dIn: number, alpha: number, beta: number, f32: Float32Array,
  ir: Float64Array, ic: Float64Array, activation: Float64Array, out: Float32Array,
): void {
  for (let i = 0, p = 0; i < dOut; i++) {
    const inverseRow = ir[i];
    for (let j = 0; j < dIn; j++, p++) out[p] = Math.fround(relativeImportanceTerm(Math.abs(f32[p]), ic[j], inverseRow, alpha, beta) * activation[j]);
  }
}

/**
 * scoreAndWalk's pass: each score against the band (see ThresholdBand); the reference importance
 * is fround(m·norms[col]) as in the reference walk; branch-free but for the rare band entries.
 */
function walkLoopF16(
  f16: Uint16Array, table: Float32Array,
  n: number, alpha: number, beta: number, gN: number, gS: number, row: IndexArray, col: IndexArray, ir: Float64Array, ic: Float64Array,
  activation: Float64Array, window: WindowTerm, wMask: number, norms: Float64Array, lo: number, hi: number,
  bandScore: Float32Array, bandReference: Float32Array, bandCount: Float64Array, bandTotal: Float64Array, sums: Float64Array,
): void {
  const capacity = bandScore.length;
  let count = 0;
  let total = 0;
  let rankWeighted = 0;
  let inBand = 0;
  let above = 0;
  for (let p = 0; p < n; p++) {
    const m = table[f16[p] & 0x7fff];
    const j = col[p];
    const score = crepeScore(m, ic[j], ir[row[p]], activation[j], window[p & wMask], alpha, beta, gN, gS);
    const reference = Math.fround(m * norms[j]);
    const pruned = +(score < lo);
    const value = pruned * reference;
    count += pruned;
    total += value;
    rankWeighted += count * value;
    above += +(score > hi);
    if (score >= lo && score <= hi) {
      if (inBand < capacity) {
        bandScore[inBand] = score;
        bandReference[inBand] = reference;
        bandCount[inBand] = count;
        bandTotal[inBand] = total;
      }
      inBand++;
    }
  }
  sums[0] = count;
  sums[1] = total;
  sums[2] = rankWeighted;
  sums[3] = inBand;
  sums[4] = above;
}

/** walkLoopF16 for weights stored as float32. */
function walkLoopF32(
  f32: Float32Array,
  n: number, alpha: number, beta: number, gN: number, gS: number, row: IndexArray, col: IndexArray, ir: Float64Array, ic: Float64Array,
  activation: Float64Array, window: WindowTerm, wMask: number, norms: Float64Array, lo: number, hi: number,
  bandScore: Float32Array, bandReference: Float32Array, bandCount: Float64Array, bandTotal: Float64Array, sums: Float64Array,
): void {
  const capacity = bandScore.length;
  let count = 0;
  let total = 0;
  let rankWeighted = 0;
  let inBand = 0;
  let above = 0;
  for (let p = 0; p < n; p++) {
    const m = Math.abs(f32[p]);
    const j = col[p];
    const score = crepeScore(m, ic[j], ir[row[p]], activation[j], window[p & wMask], alpha, beta, gN, gS);
    const reference = Math.fround(m * norms[j]);
    const pruned = +(score < lo);
    const value = pruned * reference;
    count += pruned;
    total += value;
    rankWeighted += count * value;
    above += +(score > hi);
    if (score >= lo && score <= hi) {
      if (inBand < capacity) {
        bandScore[inBand] = score;
        bandReference[inBand] = reference;
        bandCount[inBand] = count;
        bandTotal[inBand] = total;
      }
      inBand++;
    }
  }
  sums[0] = count;
  sums[1] = total;
  sums[2] = rankWeighted;
  sums[3] = inBand;
  sums[4] = above;
}

/** One candidate of a multi-candidate pass: its neighbourhood term (null when γ = 0), parameters and band. */
export interface WalkCandidate {
  window: WindowTerm | null;
  params: CrepeParams;
  band: ThresholdBand;
}

/**
 * Positions per chunk of the multi-candidate pass: the chunk's candidate-independent values
 * (m/C, m/R, the reference importance, x^a: 4 × 8 bytes a position) stay in L2 while every
 * candidate is walked over them.
 */
const CHUNK = 4096;

/**
 * scoreAndWalk for several candidates in one pass over the terms, chunk by chunk: per chunk, the
 * products m/C and m/R, the reference importance and (per distinct exponent a) x^a of each
 * position are computed once, then each candidate scores and walks the chunk from them, its walk
 * carried from chunk to chunk. Every candidate's result is scoreAndWalk's bit for bit (the same
 * float64 operations on the same values, its sums added in position order).
 */
export function scoreAndWalkMany(terms: LinearTerms, candidates: readonly WalkCandidate[]): BandedWalk[] {
  if (candidates.length === 1) return [scoreAndWalk(terms, candidates[0].window, candidates[0].params, candidates[0].band)];
  const n = positionCount(terms);
  const { f16, f32, table } = magnitudeSource(terms);
  const { row, col, inverseRowSums: ir, inverseColSums: ic } = terms;
  const norms = referenceNorms(terms);
  const byCol = new Float64Array(CHUNK);
  const byRow = new Float64Array(CHUNK);
  const reference = new Float64Array(CHUNK);
  // One x^a chunk per distinct exponent (a search has one unless it searches a).
  const exponents = [...new Set(candidates.map((c) => c.params.a))];
  // Set's equality (SameValueZero: NaN equals NaN), which indexOf lacks.
  const exponentIndex = (a: number): number => exponents.findIndex((e) => e === a || (e !== e && a !== a));
  const activations = exponents.map((a) => activationFactors(terms.sqNorm, a));
  const activationChunks = exponents.map(() => new Float64Array(CHUNK));
  const runs = candidates.map(({ window, params, band }) => {
    const { gN, gS, w, wMask } = windowWeights(params, window, n);
    return { ...params, gN, gS, w, wMask, band, activation: activationChunks[exponentIndex(params.a)], sums: new Float64Array(5) };
  });
  for (let start = 0; start < n; start += CHUNK) {
    const end = Math.min(n, start + CHUNK);
    if (f16) productsF16(f16, table, start, end, row, col, ir, ic, norms, byCol, byRow, reference);
    else productsF32(f32!, start, end, row, col, ir, ic, norms, byCol, byRow, reference);
    for (let e = 0; e < exponents.length; e++) gatherColumns(activations[e], col, start, end, activationChunks[e]);
    for (const r of runs) {
      walkChunk(start, end, byCol, byRow, reference, r.activation, r.alpha, r.beta, r.gN, r.gS, r.w, r.wMask, r.band.lo, r.band.hi,
        r.band.score, r.band.reference, r.band.countBefore, r.band.totalBefore, r.sums);
    }
  }
  return runs.map(({ sums }) => ({ count: sums[0], total: sums[1], rankWeighted: sums[2], inBand: sums[3], above: sums[4] }));
}

/** The chunk's candidate-independent values from float16 weights: m/C, m/R and the reference importance fround(m·norms[col]). */
function productsF16(
  f16: Uint16Array, table: Float32Array, start: number, end: number, row: IndexArray, col: IndexArray, ir: Float64Array, ic: Float64Array, norms: Float64Array,
  byCol: Float64Array, byRow: Float64Array, reference: Float64Array,
): void {
  for (let p = start, q = 0; p < end; p++, q++) {
    const m = table[f16[p] & 0x7fff];
    const j = col[p];
    byCol[q] = m * ic[j];
    byRow[q] = m * ir[row[p]];
    reference[q] = Math.fround(m * norms[j]);
  }
}

/** productsF16 for weights stored as float32. */
function productsF32(
  f32: Float32Array, start: number, end: number, row: IndexArray, col: IndexArray, ir: Float64Array, ic: Float64Array, norms: Float64Array,
  byCol: Float64Array, byRow: Float64Array, reference: Float64Array,
): void {
  for (let p = start, q = 0; p < end; p++, q++) {
    const m = Math.abs(f32[p]);
    const j = col[p];
    byCol[q] = m * ic[j];
    byRow[q] = m * ir[row[p]];
    reference[q] = Math.fround(m * norms[j]);
  }
}

function gatherColumns(perColumn: Float64Array, col: IndexArray, start: number, end: number, out: Float64Array): void {
  for (let p = start, q = 0; p < end; p++, q++) out[q] = perColumn[col[p]];
}

/**
 * One candidate's score and walk over a chunk (walkLoopF16's body on the chunk's products), its
 * walk read from and written back to `sums` (count, total, rankWeighted, inBand, above).
 */
function walkChunk(
  start: number, end: number, byCol: Float64Array, byRow: Float64Array, referenceOf: Float64Array, activation: Float64Array,
  alpha: number, beta: number, gN: number, gS: number, window: WindowTerm, wMask: number, lo: number, hi: number,
  bandScore: Float32Array, bandReference: Float32Array, bandCount: Float64Array, bandTotal: Float64Array, sums: Float64Array,
): void {
  const capacity = bandScore.length;
  let count = sums[0] | 0;
  let total = sums[1];
  let rankWeighted = sums[2];
  let inBand = sums[3] | 0;
  let above = sums[4] | 0;
  for (let p = start, q = 0; p < end; p++, q++) {
    const score = scoreOfProducts(byCol[q], byRow[q], activation[q], window[p & wMask], alpha, beta, gN, gS);
    const reference = referenceOf[q];
    const pruned = +(score < lo);
    const value = pruned * reference;
    count += pruned;
    total += value;
    rankWeighted += count * value;
    above += +(score > hi);
    if (score >= lo && score <= hi) {
      if (inBand < capacity) {
        bandScore[inBand] = score;
        bandReference[inBand] = reference;
        bandCount[inBand] = count;
        bandTotal[inBand] = total;
      }
      inBand++;
    }
  }
  sums[0] = count;
  sums[1] = total;
  sums[2] = rankWeighted;
  sums[3] = inBand;
  sums[4] = above;
}

/** The terms (and neighbourhood term) at the given positions only, in their order: a sample to estimate a threshold from. */
export function pickPositions(terms: LinearTerms, window: WindowTerm | null, positions: Uint32Array): { terms: LinearTerms; window: WindowTerm | null } {
  return {
    terms: {
      ...terms,
      weightF16: terms.weightF16 ? gather(terms.weightF16, positions) : null,
      weightF32: terms.weightF32 ? gather(terms.weightF32, positions) : null,
      row: gather(terms.row, positions),
      col: gather(terms.col, positions),
      basePositions: null,
    },
    window: window && window.length > 0 ? gather(window, positions) : window,
  };
}

/**
 * The candidate's scores through crepeScores itself (row-major, then gathered into position
 * order): for what the stored terms do not cover (border 'mean'; smooth with an exponent a other
 * than the one its term was built with). `base` = the terms of all rows.
 */
export function candidateScoresDirect(base: LinearTerms, subset: LinearTerms, params: CrepeParams, out: Float32Array): Float32Array {
  const { weight, naturalIndex } = naturalLayout(base);
  const scores = crepeScores(weight, base.dOut, base.dIn, base.sqNorm, params);
  const n = positionCount(subset);
  for (let q = 0; q < n; q++) {
    const p = subset.basePositions ? subset.basePositions[q] : q;
    out[q] = scores[naturalIndex[p]];
  }
  return out;
}

/**
 * wandaScores' per-column factor fround(sqrt(s_j)): the reference importance at position p is
 * fround(magnitude[p]·norms[col[p]]), ascending in p.
 */
export function referenceNorms(terms: LinearTerms): Float64Array {
  return terms.sqNorm.map((s) => Math.fround(Math.sqrt(s)));
}

/**
 * The terms restricted to a fixed random subset of rows: round(fraction·dOut) rows (at least one)
 * drawn with `seed`, positions kept in reference order. Proxies over the subset estimate those
 * over the matrix at `fraction` of the cost.
 */
export function subsetRows(base: LinearTerms, fraction: number, seed: number): LinearTerms {
  if (base.rows) throw new Error('internal: a row subset of a row subset');
  const count = Math.min(base.dOut, Math.max(1, Math.round(fraction * base.dOut)));
  const rows = sampleWithoutReplacement(base.dOut, count, new Rng(seed));
  const keep = new Uint8Array(base.dOut);
  for (const r of rows) keep[r] = 1;
  const n = positionCount(base);
  let kept = 0;
  for (let p = 0; p < n; p++) kept += keep[base.row[p]];
  const basePositions = new Uint32Array(kept);
  for (let p = 0, q = 0; p < n; p++) if (keep[base.row[p]]) basePositions[q++] = p;
  const subset: LinearTerms = {
    ...pickPositions(base, null, basePositions).terms,
    rows,
    basePositions,
    referenceTotal: 0,
    outputEnergy: Number.NaN,
  };
  const norms = referenceNorms(subset);
  const { f16, f32, table } = magnitudeSource(subset);
  let total = 0;
  for (let q = 0; q < kept; q++) total += Math.fround((f16 !== null ? table[f16[q] & 0x7fff] : Math.abs(f32![q])) * norms[subset.col[q]]);
  subset.referenceTotal = total;
  if (subset.gram) subset.outputEnergy = quadraticForm(naturalLayout(subset).weight, null, subset.gram, count, subset.dIn);
  return subset;
}

/** A base neighbourhood term restricted to a subset's positions. */
export function subsetWindow(window: WindowTerm, subset: LinearTerms): WindowTerm {
  return subset.basePositions ? gather(window, subset.basePositions) : window;
}

type StoredValues = Uint16Array | Uint32Array | Float32Array | Float64Array;

/** values[positions[q]] for every q, in an array of the same type. */
function gather<T extends StoredValues>(values: T, positions: Uint32Array): T {
  const out = new (values.constructor as new (length: number) => T)(positions.length);
  for (let q = 0; q < positions.length; q++) out[q] = values[positions[q]];
  return out;
}

/**
 * Σ_i w_i·G·w_iᵀ over the rows of W, restricted to the masked entries when a mask is given
 * (then it is the squared output error of pruning them on the calibration inputs).
 */
export function quadraticForm(weight: Float32Array, mask: Uint8Array | null, gram: Float64Array, dOut: number, dIn: number): number {
  let total = 0;
  const columns: number[] = [];
  for (let i = 0; i < dOut; i++) {
    const row = i * dIn;
    columns.length = 0;
    for (let j = 0; j < dIn; j++) if ((!mask || mask[row + j]) && weight[row + j] !== 0) columns.push(j);
    for (const a of columns) {
      const wa = weight[row + a];
      const gramRow = a * dIn;
      let inner = 0;
      for (const b of columns) inner += gram[gramRow + b] * weight[row + b];
      total += wa * inner;
    }
  }
  return total;
}
