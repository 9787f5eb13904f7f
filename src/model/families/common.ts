/**
 * What the four supported families share: reading typed fields out of a Hugging Face config.json
 * with clear errors, and the Llama-style decoder fields every family has. A family adapter adds
 * only its defaults and its differences (biases, q/k norm).
 */
import { UserError } from '../../util/errors.ts';
import type { Family, Llama3RopeScaling, ModelSpec } from '../spec.ts';

/** A parsed config.json (or one of its nested objects). */
export type HfConfig = Record<string, unknown>;

export function isHfConfig(value: unknown): value is HfConfig {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Typed access to config fields; every bad or missing value is a UserError naming the field. */
export class ConfigFields {
  constructor(
    readonly config: HfConfig,
    /** Where the config came from, for messages (usually the config.json path). */
    readonly source: string,
    /** Prefix of field names in messages, for nested objects such as `rope_scaling.`. */
    private readonly prefix = '',
  ) {}

  /** True when the field is present and not null (HF writes absent optionals as null). */
  has(field: string): boolean {
    return this.config[field] !== undefined && this.config[field] !== null;
  }

  fail(field: string, expected: string): never {
    const value = this.config[field];
    const got = value === undefined ? 'nothing' : JSON.stringify(value);
    throw new UserError(`${this.source}: "${this.prefix}${field}" must be ${expected}, got ${got}`);
  }

  private value(field: string, fallback: unknown): unknown {
    if (this.has(field)) return this.config[field];
    if (fallback === undefined) throw new UserError(`${this.source}: missing required field "${this.prefix}${field}"`);
    return fallback;
  }

  positiveInt(field: string, fallback?: number): number {
    const value = this.value(field, fallback);
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) this.fail(field, 'a positive integer');
    return value as number;
  }

  positiveNumber(field: string, fallback?: number): number {
    const value = this.value(field, fallback);
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) this.fail(field, 'a positive number');
    return value as number;
  }

  boolean(field: string, fallback?: boolean): boolean {
    const value = this.value(field, fallback);
    if (typeof value !== 'boolean') this.fail(field, 'true or false');
    return value as boolean;
  }

  string(field: string, fallback?: string): string {
    const value = this.value(field, fallback);
    if (typeof value !== 'string') this.fail(field, 'a string');
    return value as string;
  }

  /**
   * A token id: a non-negative integer, or null. A list (Llama 3 instruct lists several EOS ids)
   * yields its first entry, which is the id the base model ends text with.
   */
  tokenId(field: string, fallback: number | null): number | null {
    if (!this.has(field)) return fallback;
    const raw = this.config[field];
    const value = Array.isArray(raw) ? raw[0] : raw;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
      this.fail(field, 'a non-negative integer token id (or a list of them)');
    }
    return value as number;
  }
}

/** HF defaults that differ between families. */
export interface FamilyDefaults {
  maxPositionEmbeddings: number;
  bosTokenId: number | null;
  eosTokenId: number | null;
  /** Used when config.json has no head_dim; otherwise head_dim = hidden_size / num_attention_heads. */
  headDim?: number;
}

const DEFAULT_ROPE_THETA = 10000;
const DEFAULT_RMS_NORM_EPS = 1e-6;

/**
 * rope_scaling: null, or type "llama3". ("default" means plain RoPE.) Also reads the
 * `rope_parameters` object that newer transformers write in place of rope_theta/rope_scaling.
 */
function readRope(fields: ConfigFields): { ropeTheta: number; ropeScaling: Llama3RopeScaling | null } {
  const ropeParameters = isHfConfig(fields.config.rope_parameters) ? fields.config.rope_parameters : null;
  const ropeTheta = fields.has('rope_theta')
    ? fields.positiveNumber('rope_theta')
    : ropeParameters
      ? new ConfigFields(ropeParameters, fields.source, 'rope_parameters.').positiveNumber('rope_theta', DEFAULT_ROPE_THETA)
      : DEFAULT_ROPE_THETA;

  const scalingField = fields.has('rope_scaling') ? 'rope_scaling' : ropeParameters ? 'rope_parameters' : null;
  if (scalingField === null) return { ropeTheta, ropeScaling: null };
  const scalingObject = fields.config[scalingField];
  if (!isHfConfig(scalingObject)) fields.fail(scalingField, 'null or an object');
  const scaling = new ConfigFields(scalingObject as HfConfig, fields.source, `${scalingField}.`);
  const type = scaling.has('rope_type') ? scaling.string('rope_type') : scaling.has('type') ? scaling.string('type') : 'default';
  if (type === 'default') return { ropeTheta, ropeScaling: null };
  if (type !== 'llama3') {
    throw new UserError(`${fields.source}: ${scalingField} of type "${type}" is not supported (supported: llama3, or none)`);
  }
  const lowFreqFactor = scaling.positiveNumber('low_freq_factor');
  const highFreqFactor = scaling.positiveNumber('high_freq_factor');
  if (highFreqFactor <= lowFreqFactor) scaling.fail('high_freq_factor', `greater than low_freq_factor (${lowFreqFactor})`);
  return {
    ropeTheta,
    ropeScaling: {
      type: 'llama3',
      factor: scaling.positiveNumber('factor'),
      lowFreqFactor,
      highFreqFactor,
      originalMaxPositionEmbeddings: scaling.positiveInt('original_max_position_embeddings'),
    },
  };
}

/** The fields of a Llama-style decoder (RMSNorm, RoPE, SwiGLU MLP, grouped-query attention). */
export function decoderSpec(
  fields: ConfigFields,
  family: Family,
  structure: { attentionBias: boolean; qkNorm: boolean },
  defaults: FamilyDefaults,
): ModelSpec {
  const activation = fields.string('hidden_act', 'silu');
  if (activation !== 'silu') fields.fail('hidden_act', '"silu" (the SwiGLU MLP crepe implements)');

  const hiddenSize = fields.positiveInt('hidden_size');
  const numHeads = fields.positiveInt('num_attention_heads');
  const numKvHeads = fields.positiveInt('num_key_value_heads', numHeads);
  if (numHeads % numKvHeads !== 0) {
    fields.fail('num_key_value_heads', `a divisor of num_attention_heads (${numHeads})`);
  }
  let headDim: number;
  if (fields.has('head_dim') || defaults.headDim !== undefined) {
    headDim = fields.positiveInt('head_dim', defaults.headDim);
  } else {
    if (hiddenSize % numHeads !== 0) {
      fields.fail('num_attention_heads', `a divisor of hidden_size (${hiddenSize}) when head_dim is not given`);
    }
    headDim = hiddenSize / numHeads;
  }
  const { ropeTheta, ropeScaling } = readRope(fields);

  return {
    family,
    hiddenSize,
    intermediateSize: fields.positiveInt('intermediate_size'),
    numLayers: fields.positiveInt('num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: fields.positiveInt('vocab_size'),
    rmsNormEps: fields.positiveNumber('rms_norm_eps', DEFAULT_RMS_NORM_EPS),
    ropeTheta,
    ropeScaling,
    maxPositionEmbeddings: fields.positiveInt('max_position_embeddings', defaults.maxPositionEmbeddings),
    tieWordEmbeddings: fields.boolean('tie_word_embeddings', false),
    attentionBias: structure.attentionBias,
    qkNorm: structure.qkNorm,
    bosTokenId: fields.tokenId('bos_token_id', defaults.bosTokenId),
    eosTokenId: fields.tokenId('eos_token_id', defaults.eosTokenId),
    // Newer transformers write "dtype"; PyTorch's default dtype is float32.
    torchDtype: fields.has('torch_dtype') ? fields.string('torch_dtype') : fields.string('dtype', 'float32'),
  };
}

/**
 * Holds the spec's context to `limit` (config.json's `field`) when that is not longer. A sliding
 * attention window is the usual limit: key j is visible to query i when i − j < window, so a
 * window no longer than it is plain causal attention (what crepe computes), and a longer one is
 * not.
 */
export function limitContext(spec: ModelSpec, limit: number, field: string): void {
  if (limit > spec.maxPositionEmbeddings) return;
  spec.maxPositionEmbeddings = limit;
  spec.contextField = field;
}

/** Holds the context to config.json's `sliding_window` when it gives one (Mistral, Phi-3). */
export function limitToSlidingWindow(spec: ModelSpec, fields: ConfigFields): void {
  if (fields.has('sliding_window')) limitContext(spec, fields.positiveInt('sliding_window'), 'sliding_window');
}

/**
 * Qwen2/Qwen3's sliding window, on when `use_sliding_window` is true. transformers applies it to
 * the layers from `max_window_layers` on (older versions to the others), so the context is held to
 * it whichever layers slide.
 */
export function limitToQwenSlidingWindow(spec: ModelSpec, fields: ConfigFields): void {
  if (fields.boolean('use_sliding_window', false)) limitToSlidingWindow(spec, fields);
}

/** Refuses a boolean option the family's HF code has but crepe's block does not implement. */
export function refuseIfTrue(fields: ConfigFields, field: string, family: Family, what: string): void {
  if (fields.boolean(field, false)) {
    throw new UserError(`${fields.source}: ${family} with "${field}": true (${what}) is not supported`);
  }
}
