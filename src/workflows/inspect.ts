/** Per-tensor and total sparsity of a checkpoint, and whether its block linears follow an N:M pattern. */
import { DTYPE_BYTES, SafetensorsWeights, elementCount, scanRaw } from '../io/safetensors.ts';
import { RawRowsNM } from '../prune/sparsity-config.ts';
import { parsePattern, validateTarget, type PruneTarget } from '../prune/target.ts';
import { checkField } from '../util/errors.ts';
import { isBlockLinearWeight } from '../model/spec.ts';
import type { FieldSpec } from '../util/fields.ts';
import { CONTROL_FIELDS, HUB_FIELDS, checkRequest, resolveModel, type HubRequest, type RunControl } from './common.ts';

export interface InspectRequest extends RunControl, HubRequest {
  /** Model directory (model.safetensors, or shards with their index), or a Hub id (org/name[@revision]). */
  model: string;
  /** Check each block linear against this N:M pattern: "2:4" or { kind: 'nm', n: 2, m: 4 }. */
  pattern?: string | PruneTarget;
}

export interface TensorSparsity {
  name: string;
  dtype: string;
  shape: number[];
  zeros: number;
  sparsity: number;
  /**
   * Whether the tensor follows the requested N:M pattern along its input dimension; null for a
   * block linear whose width m does not divide (no verdict); absent for other tensors.
   */
  satisfiesPattern?: boolean | null;
}

export interface InspectResult {
  dir: string;
  /** The pattern as "n:m", or null. */
  pattern: string | null;
  tensors: TensorSparsity[];
  total: { parameters: number; zeros: number; sparsity: number };
  /** Totals over the 2-D weights of the decoder blocks (what pruning targets). */
  linear: { parameters: number; zeros: number; sparsity: number };
}

const INSPECT_FIELDS: FieldSpec<InspectRequest> = { ...CONTROL_FIELDS, ...HUB_FIELDS, model: 'checked', pattern: 'checked' };

/** Counts the zeros of every tensor of `request.model`, one tensor at a time; an aborted signal stops it between tensors. */
export async function inspectModel(request: InspectRequest): Promise<InspectResult> {
  checkRequest(request, INSPECT_FIELDS);
  request = { ...request, model: await resolveModel('model', request.model, request, 'model-dir') };
  const pattern = request.pattern === undefined
    ? null
    : typeof request.pattern === 'string' ? parsePattern(request.pattern, 'pattern') : validateTarget(request.pattern, 'pattern');
  checkField(pattern === null || pattern.kind === 'nm', 'pattern', `expects n:m (e.g. 2:4), got ${JSON.stringify(request.pattern)}`);
  const weights = SafetensorsWeights.open(request.model);
  try {
    const tensors: TensorSparsity[] = [];
    const total = { parameters: 0, zeros: 0, sparsity: 0 };
    const linear = { parameters: 0, zeros: 0, sparsity: 0 };
    // The stored bytes of every tensor go through one buffer, grown to the largest (first touches
    // of fresh memory would cost more than the counting); zeros are counted on the bit patterns.
    let scratch = new Uint8Array(0);
    const rowsNM = new RawRowsNM();
    for (const name of weights.names()) {
      request.signal?.throwIfAborted();
      const info = weights.info(name);
      const count = elementCount(info.shape);
      const bytes = count * DTYPE_BYTES[info.dtype];
      if (scratch.length < bytes) scratch = new Uint8Array(bytes);
      const raw = weights.readRaw(name, scratch);
      const { zeros } = scanRaw(raw, info.dtype);
      const entry: TensorSparsity = { name, dtype: info.dtype, shape: info.shape, zeros, sparsity: count ? zeros / count : 0 };
      const isBlockLinear = isBlockLinearWeight(name, info.shape);
      if (pattern?.kind === 'nm' && isBlockLinear) {
        const [, dIn] = info.shape;
        entry.satisfiesPattern = dIn % pattern.m === 0 ? rowsNM.follows(raw, info.dtype, dIn, pattern.n, pattern.m) : null;
      }
      tensors.push(entry);
      total.parameters += count;
      total.zeros += zeros;
      if (isBlockLinear) {
        linear.parameters += count;
        linear.zeros += zeros;
      }
    }
    total.sparsity = total.parameters ? total.zeros / total.parameters : 0;
    linear.sparsity = linear.parameters ? linear.zeros / linear.parameters : 0;
    return { dir: request.model, pattern: pattern?.kind === 'nm' ? `${pattern.n}:${pattern.m}` : null, tensors, total, linear };
  } finally {
    weights.close();
  }
}
