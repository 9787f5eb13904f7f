/**
 * Channel permutations moved into the stored weights where that is free, so N:M holds as written.
 *
 * A permuted N:M linear keeps N:M only in its permuted input order (permute.ts); its input must be
 * permuted at run time unless the permutation can be folded into the weights that produce it:
 *   - mlp.down_proj: its inputs are the MLP's intermediate channels, h = act(gate·x) ⊙ (up·x). One
 *     permutation P of those channels applied to the ROWS of gate_proj and up_proj and to the
 *     COLUMNS of down_proj leaves the block's function unchanged (down·h is the same sum in another
 *     order), and down_proj is then N:M as stored. Free, and done.
 *   - q/k/v_proj, gate/up_proj: their input is the residual stream (after a norm whose weight is
 *     per channel). Permuting it means permuting every layer's residual, embeddings, norms and
 *     lm_head with one shared order, while each linear chose its own: not free.
 *   - o_proj: its inputs are the attention heads' value channels. A channel may move only within
 *     its head (or whole heads with their q/k/v rows), and with grouped-query attention a value
 *     head is shared by several query heads, so the same permutation must serve all of them. The
 *     permutation search is unconstrained across heads, so o_proj keeps a runtime permutation.
 */
import type { BlockWeights } from '../model/spec.ts';
import type { LayerReport } from './layer-loop.ts';

const GATE = 'mlp.gate_proj.weight';
const UP = 'mlp.up_proj.weight';
const DOWN = 'mlp.down_proj.weight';

/** What the report says about storage order: module names (model.layers.L.<linear>). */
export interface StorageOrder {
  /** Permuted linears whose permutation was folded into the stored weights: N:M as written. */
  foldedIntoWeights: string[];
  /** Permuted linears that are N:M only after permuting their input at run time, with that order in the layer report. */
  needRuntimePermutation: string[];
}

const isIdentity = (order: readonly number[]): boolean => order.every((v, i) => v === i);

/** `order[p]` = the old row that becomes row p, of a row-major `rows`×`cols` matrix. */
function permuteRows(matrix: Float32Array, rows: number, cols: number, order: readonly number[]): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let p = 0; p < rows; p++) out.set(matrix.subarray(order[p] * cols, (order[p] + 1) * cols), p * cols);
  return out;
}

/** `order[p]` = the old column that becomes column p. */
function permuteColumns(matrix: Float32Array, rows: number, cols: number, order: readonly number[]): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    const row = i * cols;
    for (let p = 0; p < cols; p++) out[row + p] = matrix[row + order[p]];
  }
  return out;
}

/**
 * The layer's weights as they are stored: when down_proj was pruned under a channel permutation,
 * that permutation applied to gate/up rows and down columns (new arrays; `weights` is untouched).
 */
export function foldMlpPermutation(weights: BlockWeights, report: LayerReport): BlockWeights {
  const down = report.linears.find((linear) => linear.name === 'mlp.down_proj');
  const order = down?.permutation?.order;
  if (!down || !order || isIdentity(order)) return weights;
  const [hidden, intermediate] = down.shape;
  return {
    ...weights,
    [GATE]: permuteRows(weights[GATE], intermediate, hidden, order),
    [UP]: permuteRows(weights[UP], intermediate, hidden, order),
    [DOWN]: permuteColumns(weights[DOWN], hidden, intermediate, order),
  };
}

/** Which permuted linears are N:M as stored and which still need their input permuted at run time. */
export function storageOrder(layers: readonly LayerReport[]): StorageOrder {
  const result: StorageOrder = { foldedIntoWeights: [], needRuntimePermutation: [] };
  for (const layer of layers) {
    for (const linear of layer.linears) {
      const order = linear.permutation?.order;
      if (!order || isIdentity(order)) continue;
      const name = `model.layers.${layer.layer}.${linear.name}`;
      (linear.name === 'mlp.down_proj' ? result.foldedIntoWeights : result.needRuntimePermutation).push(name);
    }
  }
  return result;
}
