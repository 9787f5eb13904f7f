/**
 * llama2.c checkpoint and tokenizer files (Karpathy's `run.c` formats).
 *
 * Checkpoint (the legacy `.bin` that `run.c` reads): a header of 7 int32
 *   dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
 * (vocab_size < 0 means an untied classifier follows the weights), then float32 arrays, each kind
 * for all layers together, every matrix in nn.Linear layout [out, in]:
 *   token_embedding [vocab, dim]
 *   rms_att [L, dim] · wq [L, H·hd, dim] · wk [L, KV·hd, dim] · wv [L, KV·hd, dim] · wo [L, dim, H·hd]
 *   rms_ffn [L, dim] · w1 [L, hidden, dim] · w2 [L, dim, hidden] · w3 [L, hidden, dim]
 *   rms_final [dim] · freq_cis_real, freq_cis_imag [seq_len, hd/2] each (unused by run.c)
 *   wcls [vocab, dim] (only when untied)
 * Q and K rows are in the interleaved-rotary order of Meta's original checkpoints.
 *
 * Tokenizer (`tokenizer.bin`, `tok512.bin`): int32 max_token_length, then per token
 *   float32 score · int32 byte length · bytes (UTF-8, spaces as ' ' rather than '▁').
 */
import { closeSync } from 'node:fs';
import { UserError } from '../util/errors.ts';
import { openForReading, readBytesAt } from './read-at.ts';
import { readInputFile } from './input-file.ts';

export interface Llama2cConfig {
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  vocabSize: number;
  seqLen: number;
  /** The classifier is the token-embedding matrix (header vocab_size > 0). */
  sharedClassifier: boolean;
}

/** A weight array of the checkpoint: one kind for all layers, as `run.c` lays it out. */
export interface Llama2cArray {
  /** `run.c`'s field name: token_embedding_table, rms_att_weight, wq, …, wcls. */
  kind: string;
  /** Shape of the whole array; per-layer kinds lead with n_layers. */
  shape: number[];
  /** Absolute byte position in the file. */
  byteOffset: number;
  byteLength: number;
}

const HEADER_INTS = 7;
const HEADER_BYTES = HEADER_INTS * 4;
/** Magic of llama2.c's newer `export.py --version 1/2` files, which are a different layout. */
const NEW_EXPORT_MAGIC = 0x616b3432; // "ak42"

/** The arrays of a checkpoint with this header, in file order (freq_cis included, to be skipped). */
export function llama2cLayout(config: Llama2cConfig): Llama2cArray[] {
  const { dim, hiddenDim, nLayers: L, nHeads, nKvHeads, vocabSize, seqLen } = config;
  const headDim = dim / nHeads;
  const shapes: [string, number[]][] = [
    ['token_embedding_table', [vocabSize, dim]],
    ['rms_att_weight', [L, dim]],
    ['wq', [L, nHeads * headDim, dim]],
    ['wk', [L, nKvHeads * headDim, dim]],
    ['wv', [L, nKvHeads * headDim, dim]],
    ['wo', [L, dim, nHeads * headDim]],
    ['rms_ffn_weight', [L, dim]],
    ['w1', [L, hiddenDim, dim]],
    ['w2', [L, dim, hiddenDim]],
    ['w3', [L, hiddenDim, dim]],
    ['rms_final_weight', [dim]],
    ['freq_cis_real', [seqLen, headDim / 2]],
    ['freq_cis_imag', [seqLen, headDim / 2]],
  ];
  if (!config.sharedClassifier) shapes.push(['wcls', [vocabSize, dim]]);
  const arrays: Llama2cArray[] = [];
  let byteOffset = HEADER_BYTES;
  for (const [kind, shape] of shapes) {
    const byteLength = shape.reduce((a, b) => a * b, 1) * 4;
    arrays.push({ kind, shape, byteOffset, byteLength });
    byteOffset += byteLength;
  }
  return arrays;
}

/** Total file size a checkpoint with this header has. */
export function llama2cFileSize(config: Llama2cConfig): number {
  const last = llama2cLayout(config).at(-1)!;
  return last.byteOffset + last.byteLength;
}

/** Parses and checks the 28-byte header; `fileSize` must match the weights it announces. */
export function parseLlama2cHeader(header: Uint8Array, fileSize: number, filePath: string): Llama2cConfig {
  const fail = (problem: string): never => {
    throw new UserError(`${filePath}: ${problem}`);
  };
  if (header.byteLength < HEADER_BYTES) fail(`file is ${header.byteLength} bytes, too short for the 28-byte llama2.c header`);
  const view = new DataView(header.buffer, header.byteOffset, HEADER_BYTES);
  const ints = Array.from({ length: HEADER_INTS }, (_, i) => view.getInt32(i * 4, true));
  if (view.getUint32(0, true) === NEW_EXPORT_MAGIC) {
    fail('is a llama2.c "ak42" export (export.py --version 1/2); crepe reads the legacy format (export.py --version 0)');
  }
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, signedVocab, seqLen] = ints;
  const headerText = `dim=${dim} hidden_dim=${hiddenDim} n_layers=${nLayers} n_heads=${nHeads} n_kv_heads=${nKvHeads} vocab_size=${signedVocab} seq_len=${seqLen}`;
  const positive = [dim, hiddenDim, nLayers, nHeads, nKvHeads, seqLen].every((v) => v > 0) && signedVocab !== 0;
  if (!positive) fail(`not a llama2.c checkpoint: header ${headerText} has non-positive sizes`);
  if (dim % nHeads !== 0 || (dim / nHeads) % 2 !== 0) fail(`header ${headerText}: dim must be n_heads × an even head size`);
  if (nHeads % nKvHeads !== 0) fail(`header ${headerText}: n_heads must be a multiple of n_kv_heads`);
  const config: Llama2cConfig = {
    dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize: Math.abs(signedVocab), seqLen, sharedClassifier: signedVocab > 0,
  };
  const expected = llama2cFileSize(config);
  if (expected !== fileSize) {
    fail(
      `file is ${fileSize} bytes but its header (${headerText}) announces ${expected} ` +
        `(28-byte header + float32 weights)${fileSize < expected ? '; truncated?' : ''}`,
    );
  }
  return config;
}

/** A llama2.c `.bin` checkpoint, open for reading weight arrays by offset. */
export class Llama2cCheckpoint {
  private fd: number;
  private readonly arrays: Map<string, Llama2cArray>;

  private constructor(
    readonly path: string,
    fd: number,
    readonly config: Llama2cConfig,
  ) {
    this.fd = fd;
    this.arrays = new Map(llama2cLayout(config).map((array) => [array.kind, array]));
  }

  static open(filePath: string): Llama2cCheckpoint {
    return openForReading(filePath, 'llama2.c checkpoint', (fd, fileSize) => {
      const header = readBytesAt(fd, 0, Math.min(HEADER_BYTES, fileSize), filePath);
      return new Llama2cCheckpoint(filePath, fd, parseLlama2cHeader(header, fileSize, filePath));
    });
  }

  array(kind: string): Llama2cArray {
    const array = this.arrays.get(kind);
    if (!array) throw new Error(`${this.path}: no weight array "${kind}"`);
    return array;
  }

  /**
   * Bytes of one array, or of one layer's slice of a per-layer array (little-endian float32): in a
   * fresh buffer, or at the start of `scratch` when it is given and large enough.
   */
  readRaw(kind: string, layer?: number, scratch?: Uint8Array<ArrayBuffer>): Uint8Array {
    const array = this.array(kind);
    let { byteOffset, byteLength } = array;
    if (layer !== undefined) {
      const layers = array.shape[0];
      if (!(layer >= 0 && layer < layers) || array.shape.length < 2) throw new Error(`${kind} has no layer ${layer}`);
      byteLength /= layers;
      byteOffset += layer * byteLength;
    }
    if (this.fd < 0) throw new Error(`${this.path}: read after close`);
    return readBytesAt(this.fd, byteOffset, byteLength, this.path, scratch);
  }

  readF32(kind: string, layer?: number): Float32Array {
    const raw = this.readRaw(kind, layer);
    return new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

export interface Llama2cVocabulary {
  maxTokenLength: number;
  /** Token strings exactly as stored (spaces as ' '; ids 1/2 are "\n<s>\n", "\n</s>\n"). */
  pieces: string[];
  scores: Float32Array;
}

/**
 * Reads a llama2.c tokenizer file. The format does not store the token count (run.c takes it from
 * the model), so it is passed in; the file must end exactly after that many tokens.
 */
export function readLlama2cTokenizer(filePath: string, vocabSize: number): Llama2cVocabulary {
  const bytes = readInputFile(filePath, 'llama2cTokenizer');
  const fail = (problem: string): never => {
    throw new UserError(`${filePath}: ${problem}`);
  };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const decoder = new TextDecoder('utf-8', { fatal: true });
  if (bytes.byteLength < 4) fail('file is too short for a llama2.c tokenizer');
  const maxTokenLength = view.getInt32(0, true);
  if (maxTokenLength <= 0) fail(`max_token_length is ${maxTokenLength}; not a llama2.c tokenizer`);
  const pieces: string[] = [];
  const scores = new Float32Array(vocabSize);
  let position = 4;
  for (let id = 0; id < vocabSize; id++) {
    if (position + 8 > bytes.byteLength) fail(`holds only ${id} tokens, the model expects ${vocabSize} (wrong tokenizer for this model, or truncated?)`);
    scores[id] = view.getFloat32(position, true);
    const length = view.getInt32(position + 4, true);
    position += 8;
    if (length < 0 || length > maxTokenLength || position + length > bytes.byteLength) {
      fail(`token ${id} has byte length ${length} (max_token_length ${maxTokenLength}, ${bytes.byteLength - position} bytes left)`);
    }
    try {
      pieces.push(decoder.decode(bytes.subarray(position, position + length)));
    } catch {
      fail(`token ${id} is not valid UTF-8`);
    }
    position += length;
  }
  if (position !== bytes.byteLength) {
    fail(`has ${bytes.byteLength - position} bytes after the model's ${vocabSize} tokens (wrong tokenizer for this model?)`);
  }
  return { maxTokenLength, pieces, scores };
}
