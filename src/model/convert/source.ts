/**
 * What a checkpoint format hands the converter: a model spec, its tensors under Hugging Face names
 * (read one at a time, Q/K rows already in Hugging Face's rotary layout) and its vocabulary.
 *
 * Both supported formats store Q and K rows for interleaved rotary (pairs (2i, 2i+1) of a head
 * rotate together — Meta's original layout, kept by llama2.c and by llama.cpp's converters), while
 * the Hugging Face Llama rotates pairs (i, i + headDim/2) ("rotate_half"). The rows are permuted on
 * the way, so the converted model gives the same logits. Weights keep their stored dtype.
 */
import type { DType } from '../../io/safetensors.ts';
import { blockTensorShape, EMBED_NAME, FINAL_NORM_NAME, LM_HEAD_NAME, type ModelSpec } from '../spec.ts';
import type { SentencePieceVocabulary } from '../tokenizer-build.ts';
import { invariant } from '../../util/errors.ts';

export type SourceFormat = 'gguf' | 'llama2c';

/** One tensor of the output, read from the source on demand. */
export interface SourceTensor {
  name: string;
  dtype: DType;
  shape: number[];
  /** Bytes as they go into model.safetensors (Q/K rows already permuted); valid until the next read of a tensor of the source. */
  read(): Uint8Array;
}

/** An open checkpoint of some format, as the Hugging Face writer reads it; `close` releases its file. */
export interface SourceModel {
  format: SourceFormat;
  /** GGUF version (1, 2, 3); 0 for llama2.c's legacy format. */
  formatVersion: number;
  spec: ModelSpec;
  tensors: SourceTensor[];
  vocab: SentencePieceVocabulary;
  /** Where the vocabulary came from: the checkpoint itself, or a separate tokenizer file. */
  tokenizerSource: string;
  /** Things the source decided that a user may want to know. */
  notes: string[];
  close(): void;
}

/**
 * Per-block tensors: Hugging Face name (inside the block) ← GGUF name (after `blk.N.`) ← llama2.c
 * array. `rotary` marks Q (numHeads heads) and K (numKvHeads heads), whose rows get permuted.
 */
export const BLOCK_TENSORS: readonly { hf: string; gguf: string; llama2c: string; rotary?: 'q' | 'k' }[] = [
  { hf: 'input_layernorm.weight', gguf: 'attn_norm.weight', llama2c: 'rms_att_weight' },
  { hf: 'self_attn.q_proj.weight', gguf: 'attn_q.weight', llama2c: 'wq', rotary: 'q' },
  { hf: 'self_attn.k_proj.weight', gguf: 'attn_k.weight', llama2c: 'wk', rotary: 'k' },
  { hf: 'self_attn.v_proj.weight', gguf: 'attn_v.weight', llama2c: 'wv' },
  { hf: 'self_attn.o_proj.weight', gguf: 'attn_output.weight', llama2c: 'wo' },
  { hf: 'post_attention_layernorm.weight', gguf: 'ffn_norm.weight', llama2c: 'rms_ffn_weight' },
  { hf: 'mlp.gate_proj.weight', gguf: 'ffn_gate.weight', llama2c: 'w1' },
  { hf: 'mlp.up_proj.weight', gguf: 'ffn_up.weight', llama2c: 'w3' },
  { hf: 'mlp.down_proj.weight', gguf: 'ffn_down.weight', llama2c: 'w2' },
];

/**
 * Reorders the rows of a Q or K weight ([numHeads·headDim, d_in], raw bytes of any dtype) from
 * interleaved rotary to rotate_half: within each head, row 2i goes to i and row 2i+1 to
 * i + headDim/2 (Hugging Face's convert_llama_weights_to_hf `permute`, inverted). The rows go into
 * `out` (as long as `data`, another buffer), a fresh one when not given.
 */
export function interleavedToRotateHalfRows(data: Uint8Array, numHeads: number, headDim: number, out = new Uint8Array(data.byteLength)): Uint8Array {
  const rows = numHeads * headDim;
  invariant(headDim % 2 === 0 && data.byteLength % rows === 0, () => `cannot permute ${data.byteLength} bytes as ${numHeads} heads × ${headDim} rows`);
  invariant(out.byteLength === data.byteLength && out.buffer !== data.buffer, () => `rows of ${data.byteLength} bytes go into another buffer of that length, not ${out.byteLength} bytes`);
  const rowBytes = data.byteLength / rows;
  const half = headDim / 2;
  for (let head = 0; head < numHeads; head++) {
    const base = head * headDim;
    for (let i = 0; i < half; i++) {
      for (const [from, to] of [[2 * i, i], [2 * i + 1, i + half]]) {
        const source = (base + from) * rowBytes;
        out.set(data.subarray(source, source + rowBytes), (base + to) * rowBytes);
      }
    }
  }
  return out;
}

/**
 * Reads a source's tensors one after another through two buffers, each grown to the largest tensor
 * so far, rather than fresh ones per tensor: one the stored bytes are read into, one Q and K rows
 * are permuted into. What `read` returns is valid until its next call.
 */
export class TensorReader {
  private stored = new Uint8Array(0);
  private permuted = new Uint8Array(0);

  constructor(private readonly spec: ModelSpec) {}

  /** `byteLength` bytes that `readInto` places at the start of the buffer it is given, Q/K (`rotary`) rows permuted. */
  read(byteLength: number, readInto: (scratch: Uint8Array<ArrayBuffer>) => Uint8Array, rotary?: 'q' | 'k'): Uint8Array {
    if (this.stored.byteLength < byteLength) this.stored = new Uint8Array(byteLength);
    const raw = readInto(this.stored);
    if (!rotary) return raw;
    if (this.permuted.byteLength < byteLength) this.permuted = new Uint8Array(byteLength);
    const heads = rotary === 'q' ? this.spec.numHeads : this.spec.numKvHeads;
    return interleavedToRotateHalfRows(raw, heads, this.spec.headDim, this.permuted.subarray(0, byteLength));
  }
}

export const TORCH_DTYPE: Record<DType, string> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

/** The shape a Hugging Face tensor of `spec` must have. */
export function expectedShape(spec: ModelSpec, name: string): number[] {
  if (name === EMBED_NAME || name === LM_HEAD_NAME) return [spec.vocabSize, spec.hiddenSize];
  if (name === FINAL_NORM_NAME) return [spec.hiddenSize];
  return blockTensorShape(spec, name.replace(/^model\.layers\.\d+\./, ''));
}
