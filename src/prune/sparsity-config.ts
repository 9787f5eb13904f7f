/**
 * What a pruned model's config.json says about its sparsity, in the layout of compressed-tensors
 * (read by vLLM, llm-compressor and transformers' CompressedTensorsHfQuantizer):
 *
 *   "quantization_config": {
 *     "quant_method": "compressed-tensors",
 *     "config_groups": {},                 (no quantization; vLLM indexes the key)
 *     "sparsity_config": {
 *       "format": "dense" | "sparse-bitmask",
 *       "global_sparsity": zeros / parameters over every tensor (llm-compressor's definition),
 *       "sparsity_structure": "2:4" (N nonzeros of every M, in storage order) | "unstructured",
 *       "targets": ["Linear"],
 *       "ignore": ["lm_head", block linears left dense],
 *       "registry_requires_subclass": false
 *     }
 *   }
 *
 * The structure is read from the stored weights, not from the request: a linear that satisfies
 * N:M only in a permuted column order makes the model "unstructured" here, since vLLM's 2:4 kernel
 * reads the weights as stored. Note that transformers asks for the compressed-tensors package to
 * load a model with this config.
 */
import { atomicWriteJson } from '../io/atomic.ts';
import { readInputJson } from '../io/input-file.ts';
import { SAVE_FORMATS, type SaveFormat } from '../io/checkpoint-writer.ts';
import { DTYPE_BYTES, decodeInto, scanRaw, type DType } from '../io/safetensors.ts';
import { modulePrefix } from '../io/sparse-bitmask.ts';
import { satisfiesNM } from './mask.ts';
import { validateTarget, type PruneTarget } from './target.ts';
import { UserError, checkField, invariant } from '../util/errors.ts';
import { checkFields, checkNumber, describeValue, type FieldSpec } from '../util/fields.ts';
import { isHfConfig, type HfConfig } from '../model/families/common.ts';
import { isBlockLinearWeight } from '../model/spec.ts';

export interface SparsityMetadata {
  format: SaveFormat;
  /** Zeros over all parameters, in [0, 1]. */
  globalSparsity: number;
  /** "n:m" with n nonzeros of every m consecutive inputs, or "unstructured". */
  structure: string;
  /** Modules (names without ".weight") stored dense among the targets: lm_head first. */
  ignore: string[];
}

const SPARSITY_FIELDS: FieldSpec<SparsityMetadata> = { format: 'checked', globalSparsity: 'checked', structure: 'checked', ignore: 'checked' };
const NM_STRUCTURE = /^(\d+):(\d+)$/;

/**
 * Throws a FieldError naming the field of `meta` that compressed-tensors could not read: a format
 * other than SAVE_FORMATS, a global sparsity outside [0, 1], a structure other than "unstructured"
 * or "n:m" (0 < n < m), an ignore list of other than module names.
 */
function checkSparsityMetadata(meta: unknown): asserts meta is SparsityMetadata {
  checkFields<SparsityMetadata>(meta, SPARSITY_FIELDS, 'meta');
  const { format, globalSparsity, structure, ignore } = meta;
  checkField(SAVE_FORMATS.includes(format), 'meta.format', () => `must be one of ${SAVE_FORMATS.join(', ')}, got ${describeValue(format)}`);
  checkNumber('meta.globalSparsity', globalSparsity, [0, 1]);
  const nm = typeof structure === 'string' ? NM_STRUCTURE.exec(structure) : null;
  checkField(
    structure === 'unstructured' || (nm !== null && Number(nm[1]) > 0 && Number(nm[1]) < Number(nm[2])),
    'meta.structure',
    () => `must be "unstructured" or "n:m" with 0 < n < m (n nonzeros of every m consecutive weights, as "2:4"), got ${describeValue(structure)}`,
  );
  checkField(
    Array.isArray(ignore) && ignore.every((name) => typeof name === 'string' && name !== ''),
    'meta.ignore',
    () => `must list module names (non-empty strings, such as "lm_head"), got ${describeValue(ignore)}`,
  );
}

/** compressed-tensors' sparsity_config object; refuses (FieldError naming the field) metadata it could not read. */
export function sparsityConfig(meta: SparsityMetadata): Record<string, unknown> {
  checkSparsityMetadata(meta);
  return {
    format: meta.format,
    global_sparsity: meta.globalSparsity,
    ignore: meta.ignore,
    registry_requires_subclass: false,
    sparsity_structure: meta.structure,
    targets: ['Linear'],
  };
}

/**
 * `config` with its quantization_config describing `meta`. A config that is already quantized by
 * another method is refused (crepe never writes one; a quantized input is refused on read).
 */
export function withSparsityConfig(config: HfConfig, meta: SparsityMetadata, source: string): HfConfig {
  checkField(isHfConfig(config), 'config', () => `must be a config.json object, got ${describeValue(config)}`);
  const existing = config.quantization_config;
  if (existing !== undefined && existing !== null) {
    if (!isHfConfig(existing) || existing.quant_method !== 'compressed-tensors') {
      throw new UserError(`${source}: has a quantization_config of another method (${JSON.stringify(isHfConfig(existing) ? existing.quant_method : existing)}); crepe cannot add its sparsity_config to it`);
    }
  }
  const base = isHfConfig(existing) ? existing : {};
  return {
    ...config,
    quantization_config: { config_groups: {}, ...base, quant_method: 'compressed-tensors', sparsity_config: sparsityConfig(meta) },
  };
}

/** Rewrites `<dir>/config.json` (atomically) with the sparsity_config of `meta`. */
export async function writeSparsityConfig(configPath: string, meta: SparsityMetadata): Promise<void> {
  const config = readInputJson(configPath, 'json');
  if (!isHfConfig(config)) throw new UserError(`${configPath}: expected a JSON object`);
  await atomicWriteJson(configPath, withSparsityConfig(config, meta, configPath));
}

/**
 * Whether raw weight rows follow an N:M pattern (satisfiesNM on their values), for callers that
 * hold a tensor's stored bytes: the rows are widened into one float32 buffer kept across calls.
 */
export class RawRowsNM {
  private values = new Float32Array(0);

  /** Whether `raw` (whole rows of `dIn` values of `dtype`) has at least n pruned of every m consecutive weights of a row. */
  follows(raw: Uint8Array, dtype: DType, dIn: number, n: number, m: number): boolean {
    const count = raw.byteLength / DTYPE_BYTES[dtype];
    invariant(count % dIn === 0, () => `a piece of ${count} values is not whole rows of ${dIn}`);
    if (this.values.length < count) this.values = new Float32Array(count);
    const values = this.values.subarray(0, count);
    decodeInto(raw, dtype, values);
    return satisfiesNM(values, count / dIn, dIn, n, m);
  }
}

/**
 * Counts, while a checkpoint is written, what its sparsity metadata needs: zeros of every tensor
 * and, for the block linears (the Linear modules crepe prunes), whether each is left dense and
 * whether each follows the run's N:M pattern in storage order. A tensor may come whole or in
 * pieces of whole rows, in order: the counts are the same.
 */
export class SparsityTally {
  private parameters = 0;
  private zeros = 0;
  /** Per block linear, in the order first seen: its zeros so far, and whether every piece so far follows the N:M pattern. */
  private readonly linears = new Map<string, { zeros: number; nm: boolean }>();
  private readonly rowsNM = new RawRowsNM();

  /** `target`: the run's target, whose N:M pattern (n pruned of every m) the linears are checked against. */
  constructor(private readonly target: PruneTarget) {
    validateTarget(target);
  }

  /** Counts `raw`: tensor `name` whole, or its next piece of whole rows. */
  observe(name: string, raw: Uint8Array, dtype: DType, shape: readonly number[]): void {
    const { zeros } = scanRaw(raw, dtype);
    const count = raw.byteLength / DTYPE_BYTES[dtype];
    this.parameters += count;
    this.zeros += zeros;
    if (!isBlockLinearWeight(name, shape)) return;
    let linear = this.linears.get(name);
    if (!linear) this.linears.set(name, (linear = { zeros: 0, nm: true }));
    linear.zeros += zeros;
    const { target } = this;
    if (target.kind !== 'nm' || !linear.nm) return;
    const [, dIn] = shape;
    // Groups of m never straddle rows, so the pieces follow the pattern exactly when the whole does.
    linear.nm = zeros > 0 && dIn % target.m === 0 && this.rowsNM.follows(raw, dtype, dIn, target.n, target.m);
  }

  metadata(format: SaveFormat): SparsityMetadata {
    const { target } = this;
    const dense: string[] = [];
    let pruned = 0;
    let allNM = true;
    for (const [name, { zeros, nm }] of this.linears) {
      if (zeros === 0) {
        dense.push(modulePrefix(name));
      } else {
        pruned++;
        allNM &&= nm;
      }
    }
    const structure = target.kind === 'nm' && pruned > 0 && allNM ? `${target.m - target.n}:${target.m}` : 'unstructured';
    return {
      format,
      globalSparsity: this.parameters ? this.zeros / this.parameters : 0,
      structure,
      ignore: ['lm_head', ...dense],
    };
  }
}
