/**
 * SparseGPT (ALGORITHMS.md §4): prune a linear layer column by column while compensating the
 * remaining weights with Optimal Brain Surgeon updates from the inverse Hessian of its inputs.
 *
 *   H = 2·gram/nsamples (gram = Σ X·Xᵀ over the calibration samples)
 *   dead inputs (H_jj = 0): H_jj ← 1 and W[:, j] ← 0;  H ← H + percdamp·mean(diag H)·I
 *   U = upper Cholesky factor of H⁻¹ (engine/cholesky.ts)
 *   per block of B columns: choose the block's mask (adaptive: saliency W²/U_cc² over the whole
 *   dOut×B block, prune ≤ the value at floor(dOut·B·s); N:M: at each c ≡ 0 mod m, the n smallest
 *   of W²/U_cc² per row on the updated weights), then for each column c:
 *     q = w_c with pruned rows zeroed, err = (w_c − q)/U_cc, W[:, c:] −= err ⊗ U[c, c:]
 *   and after the block the lazy batch update W[:, i2:] −= Err · U[i1:i2, i2:].
 *
 * `sparsegptFixedMask` runs the same update with a given mask: RIA's `--reconstruction` (§3.5).
 * The weights are updated in float64 and written back as float32, in place.
 *
 * Wide layers (dIn ≥ `ortMinWidth`) move the O(d³) and O(dOut·d²) work into ONNX Runtime: U comes
 * from the blocked Cholesky chain, and the lazy update is gathered per block instead of scattered
 * (left-looking: W[:, i1:i2] −= Err[:, :i1] · U[:i1, i1:i2] right before the block), one float32
 * GEMM with a thin output, as the reference runs it in fp32. Narrow layers stay in float64 here.
 */
import { lazyBlockUpdate, type LinalgPrecision } from '../engine/linalg-graphs.ts';
import { NotPositiveDefiniteError, choleskyInverseUpperBlocked } from '../engine/cholesky.ts';
import type { EngineOptions } from '../engine/session.ts';
import { UserError, invariant } from '../util/errors.ts';
import { kthSmallest } from '../util/select.ts';
import type { PruneTarget } from './target.ts';

export interface SparseGptOptions {
  /** Columns per block (reference default 128; a multiple of m for N:M). */
  blockSize?: number;
  /** Dampening as a fraction of the mean Hessian diagonal (reference default 0.01). */
  percdamp?: number;
  /** Names the layer in error messages. */
  layerName?: string;
  /** Input width from which the GEMMs run in ONNX Runtime (default 512). */
  ortMinWidth?: number;
  /** Element type of the ORT Cholesky chain (default float64: the same U as the in-process path). */
  choleskyPrecision?: LinalgPrecision;
  /** Where the ORT GEMMs run (execution provider, threads); default: CPU with ORT's thread count. */
  engine?: EngineOptions;
  /** Factors already computed for this gram by linears that share it; without it U is computed afresh. */
  factors?: HessianFactors;
}

export interface SparseGptResult {
  /** The pruned and updated weights (the array passed in). */
  weight: Float32Array;
  /** 1 = pruned. */
  mask: Uint8Array;
  /** Σ (w − q)² / U_cc² / 2 over all pruned weights. */
  loss: number;
  /** The dampening that was used (RIA's reconstruction retries with 0.1). */
  percdamp: number;
  timings: { factorizationMs: number; updateMs: number };
}

/** The references' column block and dampening. */
export const SPARSEGPT_DEFAULTS = { blockSize: 128, percdamp: 0.01 } as const;
/** Below this input width ORT round trips cost more than the in-process loops. */
const DEFAULT_ORT_MIN_WIDTH = 512;
/** RIA's reconstruction retries a failed factorization with this dampening. */
const RECONSTRUCTION_RETRY_PERCDAMP = 0.1;

/** SparseGPT with its adaptive per-block mask (unstructured) or N:M mask on the updated weights. */
export async function sparsegpt(
  weight: Float32Array,
  dOut: number,
  dIn: number,
  gram: Float32Array | Float64Array,
  nsamples: number,
  options: SparseGptOptions & { target: PruneTarget },
): Promise<SparseGptResult> {
  const blockSize = options.blockSize ?? SPARSEGPT_DEFAULTS.blockSize;
  const percdamp = options.percdamp ?? SPARSEGPT_DEFAULTS.percdamp;
  const { target } = options;
  if (target.kind === 'nm') {
    const { m } = target;
    invariant(blockSize % m === 0 && dIn % m === 0, () => `sparsegpt: block size ${blockSize} and width ${dIn} must be multiples of m=${m}`);
  }
  const start = performance.now();
  const inverseFactor = await explained(inverseHessianFactor(weight, dOut, dIn, gram, nsamples, percdamp, options), options, percdamp);
  const factorized = performance.now();
  const { mask, loss } = await obsPrune(weight, dOut, dIn, inverseFactor, blockSize, target.kind === 'nm'
    ? { kind: 'nm', n: target.n, m: target.m }
    : { kind: 'adaptive', sparsity: target.sparsity }, ortEngine(dIn, options));
  return { weight, mask, loss, percdamp, timings: { factorizationMs: factorized - start, updateMs: performance.now() - factorized } };
}

/** The OBS update with a given mask (RIA --reconstruction); retries with percdamp 0.1 as RIA does. */
export async function sparsegptFixedMask(
  weight: Float32Array,
  dOut: number,
  dIn: number,
  gram: Float32Array | Float64Array,
  nsamples: number,
  mask: Uint8Array,
  options: SparseGptOptions = {},
): Promise<SparseGptResult> {
  invariant(mask.length === dOut * dIn, () => `sparsegptFixedMask: mask has ${mask.length} entries, expected ${dOut * dIn}`);
  const blockSize = options.blockSize ?? SPARSEGPT_DEFAULTS.blockSize;
  let percdamp = options.percdamp ?? SPARSEGPT_DEFAULTS.percdamp;
  const start = performance.now();
  let inverseFactor: Float64Array;
  try {
    inverseFactor = await inverseHessianFactor(weight, dOut, dIn, gram, nsamples, percdamp, options);
  } catch (error) {
    if (!(error instanceof NotPositiveDefiniteError)) throw error;
    percdamp = RECONSTRUCTION_RETRY_PERCDAMP;
    inverseFactor = await explained(inverseHessianFactor(weight, dOut, dIn, gram, nsamples, percdamp, options), options, percdamp);
  }
  const factorized = performance.now();
  const { loss } = await obsPrune(weight, dOut, dIn, inverseFactor, blockSize, { kind: 'fixed', mask }, ortEngine(dIn, options));
  return { weight, mask, loss, percdamp, timings: { factorizationMs: factorized - start, updateMs: performance.now() - factorized } };
}

/** The engine the ORT paths run on, or null when the layer is narrow enough for the in-process loops. */
function ortEngine(dIn: number, options: SparseGptOptions): EngineOptions | null {
  return dIn >= (options.ortMinWidth ?? DEFAULT_ORT_MIN_WIDTH) ? options.engine ?? { device: 'cpu' } : null;
}

/** `factor` (an inverseHessianFactor), with a Hessian that is not positive definite refused as a UserError that names the layer and the dampening. */
async function explained(factor: Promise<Float64Array>, options: SparseGptOptions, percdamp: number): Promise<Float64Array> {
  try {
    return await factor;
  } catch (error) {
    if (error instanceof NotPositiveDefiniteError) throw notPositiveDefinite(options.layerName, percdamp, error);
    throw error;
  }
}

/**
 * Zeroes the weight columns of dead inputs (H_jj = 0), then returns U, the upper Cholesky factor
 * of the dampened H⁻¹, from `options.factors` when a linear with the same gram computed it.
 */
function inverseHessianFactor(
  weight: Float32Array,
  dOut: number,
  dIn: number,
  gram: Float32Array | Float64Array,
  nsamples: number,
  percdamp: number,
  options: SparseGptOptions,
): Promise<Float64Array> {
  invariant(gram.length === dIn * dIn, () => `sparsegpt: gram has ${gram.length} entries, expected ${dIn}×${dIn}`);
  invariant(nsamples > 0, () => `sparsegpt: nsamples must be positive, got ${nsamples}`);
  for (let j = 0; j < dIn; j++) {
    if (gram[j * dIn + j] === 0) for (let i = 0; i < dOut; i++) weight[i * dIn + j] = 0;
  }
  const compute = () => dampedInverseFactor(dIn, gram, nsamples, percdamp, options);
  if (!options.factors) return compute();
  const key = `${nsamples}:${percdamp}:${options.ortMinWidth ?? DEFAULT_ORT_MIN_WIDTH}:${options.choleskyPrecision ?? ''}:${options.engine?.device ?? ''}:${options.engine?.threads ?? ''}`;
  return options.factors.factor(gram, key, compute);
}

/**
 * U per gram, for the linears that read the same inputs (q/k/v, gate/up) and so share one gram:
 * the first computes it, the others reuse it. A cache knows a gram by its array, not its values,
 * so it must not outlive the statistics it was made for: the layer loop makes one per set of
 * statistics and drops it with them, and a gram array refilled with other statistics (a reused
 * buffer) needs a new cache, else it would get the old gram's U.
 */
export class HessianFactors {
  private readonly byGram = new Map<Float32Array | Float64Array, Map<string, Promise<Float64Array>>>();

  /** The factor of `gram` under the settings `key`, from `compute` the first time. */
  factor(gram: Float32Array | Float64Array, key: string, compute: () => Promise<Float64Array>): Promise<Float64Array> {
    let factors = this.byGram.get(gram);
    if (!factors) this.byGram.set(gram, (factors = new Map()));
    let factor = factors.get(key);
    if (!factor) {
      factor = compute();
      factors.set(key, factor);
      // A failed factorization is not kept: the caller may retry with more dampening.
      factor.catch(() => factors.delete(key));
    }
    return factor;
  }

  /** Drops the factors of `gram`, whose linears are done. */
  forget(gram: Float32Array | Float64Array): void {
    this.byGram.delete(gram);
  }
}

/** H = 2·gram/nsamples, dead inputs H_jj ← 1, H ← H + percdamp·mean(diag H)·I, then U of H⁻¹. */
function dampedInverseFactor(dIn: number, gram: Float32Array | Float64Array, nsamples: number, percdamp: number, options: SparseGptOptions): Promise<Float64Array> {
  const hessian = new Float64Array(dIn * dIn);
  const scale = 2 / nsamples;
  for (let p = 0; p < hessian.length; p++) hessian[p] = gram[p] * scale;
  let diagonalSum = 0;
  for (let j = 0; j < dIn; j++) {
    const diagonal = j * dIn + j;
    if (hessian[diagonal] === 0) hessian[diagonal] = 1;
    diagonalSum += hessian[diagonal];
  }
  const damp = (percdamp * diagonalSum) / dIn;
  for (let j = 0; j < dIn; j++) hessian[j * dIn + j] += damp;
  return choleskyInverseUpperBlocked(hessian, dIn, {
    minOrtWidth: options.ortMinWidth ?? DEFAULT_ORT_MIN_WIDTH,
    precision: options.choleskyPrecision,
    engine: options.engine,
  });
}

type MaskRule =
  | { kind: 'adaptive'; sparsity: number }
  | { kind: 'nm'; n: number; m: number }
  | { kind: 'fixed'; mask: Uint8Array };

/** Columns of the in-process lazy update handled together, so the U tile stays in cache across rows. */
const LAZY_TILE = 256;

/**
 * Where the weights live between blocks. `load` fills `block` (float64, [dOut, count]) with
 * columns [i1, i2) carrying every earlier block's update; `store` takes the block back with the
 * errors Err [dOut, count] it produced.
 */
interface WeightStore {
  load(i1: number, i2: number, block: Float64Array): Promise<void> | void;
  store(i1: number, i2: number, block: Float64Array, errors: Float64Array): void;
  finish(): void;
}

/**
 * In process, float64, right-looking: after each block, W[:, i2:] −= Err·U[i1:i2, i2:] on a float64
 * copy of the weights, written back as float32 at the end.
 */
function inProcessStore(weight: Float32Array, dOut: number, dIn: number, U: Float64Array): WeightStore {
  const work = new Float64Array(weight);
  return {
    load(i1, i2, block) {
      const count = i2 - i1;
      for (let r = 0; r < dOut; r++) block.set(work.subarray(r * dIn + i1, r * dIn + i2), r * count);
    },
    store(i1, i2, block, errors) {
      const count = i2 - i1;
      for (let r = 0; r < dOut; r++) work.set(block.subarray(r * count, (r + 1) * count), r * dIn + i1);
      for (let t0 = i2; t0 < dIn; t0 += LAZY_TILE) {
        const t1 = Math.min(dIn, t0 + LAZY_TILE);
        for (let r = 0; r < dOut; r++) {
          const rowStart = r * dIn;
          for (let c = 0; c < count; c++) {
            const err = errors[r * count + c];
            if (err === 0) continue;
            const uRow = (i1 + c) * dIn;
            for (let t = t0; t < t1; t++) work[rowStart + t] -= err * U[uRow + t];
          }
        }
      }
    },
    finish() {
      weight.set(work);
    },
  };
}

/**
 * ONNX Runtime, float32, left-looking: the weights stay float32 in place; each block is loaded as
 * W[:, i1:i2] − Err[:, :i1]·U[:i1, i1:i2] (one GEMM, thin output), with the errors kept transposed
 * (Errᵀ [dIn, dOut]) so that Err[:, :i1] is a prefix.
 */
function ortStore(weight: Float32Array, dOut: number, dIn: number, U: Float64Array, engine: EngineOptions): WeightStore {
  const factor = Float32Array.from(U);
  const errorsTransposed = new Float32Array(dIn * dOut);
  let packed = new Float32Array(0);
  return {
    async load(i1, i2, block) {
      const count = i2 - i1;
      if (packed.length !== dOut * count) packed = new Float32Array(dOut * count);
      for (let r = 0; r < dOut; r++) packed.set(weight.subarray(r * dIn + i1, r * dIn + i2), r * count);
      block.set(i1 === 0 ? packed : await lazyBlockUpdate(packed, dOut, errorsTransposed, factor, dIn, i1, i2, engine));
    },
    store(i1, i2, block, errors) {
      const count = i2 - i1;
      for (let r = 0; r < dOut; r++) {
        const rowStart = r * dIn + i1;
        for (let c = 0; c < count; c++) {
          weight[rowStart + c] = block[r * count + c];
          errorsTransposed[(i1 + c) * dOut + r] = errors[r * count + c];
        }
      }
    },
    finish() {},
  };
}

/** The block loop; updates `weight` in place and returns the mask used and the loss. */
async function obsPrune(
  weight: Float32Array,
  dOut: number,
  dIn: number,
  U: Float64Array,
  blockSize: number,
  rule: MaskRule,
  ort: EngineOptions | null,
): Promise<{ mask: Uint8Array; loss: number }> {
  const store = ort ? ortStore(weight, dOut, dIn, U, ort) : inProcessStore(weight, dOut, dIn, U);
  const mask = rule.kind === 'fixed' ? rule.mask : new Uint8Array(dOut * dIn);
  let loss = 0;
  const width = Math.min(blockSize, dIn); // a block never holds more than the layer's columns
  const block = new Float64Array(dOut * width); // W[r, i1 + c] of the current block
  const errors = new Float64Array(dOut * width); // Err[r, c] of the current block
  const saliency = new Float32Array(dOut * width);

  for (let i1 = 0; i1 < dIn; i1 += blockSize) {
    const i2 = Math.min(i1 + blockSize, dIn);
    const count = i2 - i1;
    const current = block.subarray(0, dOut * count);
    const blockErrors = errors.subarray(0, dOut * count);
    await store.load(i1, i2, current);

    if (rule.kind === 'adaptive') {
      // One threshold over the whole dOut × count block, from the weights as they are now.
      const blockSaliency = saliency.subarray(0, dOut * count);
      for (let r = 0; r < dOut; r++) {
        for (let c = 0; c < count; c++) {
          const w = current[r * count + c];
          const u = U[(i1 + c) * dIn + i1 + c];
          blockSaliency[r * count + c] = (w * w) / (u * u);
        }
      }
      const threshold = kthSmallest(blockSaliency, Math.floor(dOut * count * rule.sparsity));
      for (let r = 0; r < dOut; r++) {
        for (let c = 0; c < count; c++) if (blockSaliency[r * count + c] <= threshold) mask[r * dIn + i1 + c] = 1;
      }
    }

    blockErrors.fill(0);
    for (let c = 0; c < count; c++) {
      const col = i1 + c;
      const uRow = col * dIn;
      const pivot = U[uRow + col];
      if (rule.kind === 'nm' && c % rule.m === 0) selectNMGroup(current, dOut, count, c, dIn, i1, U, rule.n, rule.m, mask);
      for (let r = 0; r < dOut; r++) {
        if (!mask[r * dIn + col]) continue; // q = w: no error, no update
        const rowStart = r * count;
        const w = current[rowStart + c];
        const err = w / pivot;
        loss += (err * err) / 2;
        blockErrors[rowStart + c] = err;
        current[rowStart + c] = 0;
        for (let t = c + 1; t < count; t++) current[rowStart + t] -= err * U[uRow + i1 + t];
      }
    }
    store.store(i1, i2, current, blockErrors);
  }
  store.finish();
  return { mask, loss };
}

/**
 * N:M mask of the group of m columns starting at block column `c` (global column i1 + c), on the
 * current weights: per row, prune the n smallest W²/U_cc² (ties: lower column first; the
 * reference's topk leaves ties unspecified).
 */
function selectNMGroup(
  block: Float64Array, dOut: number, count: number, c: number, dIn: number, i1: number, U: Float64Array,
  n: number, m: number, mask: Uint8Array,
): void {
  const col = i1 + c;
  const inversePivotSq = new Float64Array(m);
  for (let b = 0; b < m; b++) {
    const u = U[(col + b) * dIn + col + b];
    inversePivotSq[b] = 1 / (u * u);
  }
  const values = new Float64Array(m);
  for (let r = 0; r < dOut; r++) {
    const blockStart = r * count + c;
    for (let b = 0; b < m; b++) {
      const w = block[blockStart + b];
      values[b] = Math.fround(w * w * inversePivotSq[b]);
    }
    const maskStart = r * dIn + col;
    for (let a = 0; a < m; a++) {
      let rank = 0;
      for (let b = 0; b < m; b++) if (values[b] < values[a] || (values[b] === values[a] && b < a)) rank++;
      if (rank < n) mask[maskStart + a] = 1;
    }
  }
}

function notPositiveDefinite(layerName: string | undefined, percdamp: number, error: NotPositiveDefiniteError): UserError {
  const where = layerName ? `${layerName}: ` : '';
  return new UserError(
    `${where}SparseGPT cannot factor the input Hessian: with dampening percdamp=${percdamp} it is not positive definite ` +
      `(Cholesky pivot ${error.pivotIndex} is ${error.pivot}). The calibration inputs are degenerate or not finite; ` +
      'use more or different calibration samples, or a larger percdamp.',
  );
}
