/**
 * Import of GGUF and llama2.c checkpoints into a Hugging Face model directory:
 * config.json, generation_config.json, model.safetensors, tokenizer.json, tokenizer_config.json,
 * tokenizer.model.
 *
 * Both formats store Q and K rows for interleaved rotary (pairs (2i, 2i+1) of a head rotate
 * together — Meta's original layout, kept by llama2.c and by llama.cpp's converters), while the
 * Hugging Face Llama rotates pairs (i, i + headDim/2) ("rotate_half"). The rows are permuted on
 * the way, so the converted model gives the same logits. Weights keep their stored dtype.
 *
 * The directory is written under a temporary name beside `outDir` and published (marked as
 * crepe's output, renamed into place) at the end: a failed conversion leaves nothing that looks
 * like a model.
 */
import { existsSync, readdirSync, readSync, closeSync, statSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { tempPathFor } from '../io/atomic.ts';
import { openInputFile } from '../io/input-file.ts';
import { checkOutputDir, publishOutputDir } from '../io/output-dir.ts';
import { lockOutput, type OutputLock } from '../io/output-lock.ts';
import { writingTo } from '../io/write-error.ts';
import { GgufFile, hasGgufMagic, type GgufValue } from '../io/gguf.ts';
import { Llama2cCheckpoint, readLlama2cTokenizer } from '../io/llama2c.ts';
import { elementCount, type DType } from '../io/safetensors.ts';
import { SafetensorsStreamWriter } from '../io/safetensors-writer.ts';
import { UserError } from '../util/errors.ts';
import { specToConfigJson } from './config.ts';
import { checkLayerCount } from './layer-count.ts';
import { blockTensorShape, EMBED_NAME, FINAL_NORM_NAME, layerPrefix, LM_HEAD_NAME, type ModelSpec } from './spec.ts';
import { vocabularyFromGguf, vocabularyFromLlama2c, writeTokenizerFiles, type SentencePieceVocabulary } from './tokenizer-build.ts';

export interface ConvertOptions {
  /** llama2.c tokenizer file (tok512.bin, tokenizer.bin) for a `.bin` checkpoint. */
  tokenizer?: string;
  /** Replace an existing output directory. */
  overwrite?: boolean;
}

export interface ConvertReport {
  format: 'gguf' | 'llama2c';
  /** GGUF version (1, 2, 3); 0 for llama2.c's legacy format. */
  formatVersion: number;
  input: string;
  /** Where the vocabulary came from: the GGUF file itself, or the llama2.c tokenizer file. */
  tokenizerSource: string;
  outDir: string;
  tensors: number;
  parameters: number;
  /** Dtype of the token embedding (1-D tensors may be stored wider, as in the source). */
  dtype: DType;
  spec: ModelSpec;
  /** Things the converter decided that a user may want to know. */
  notes: string[];
}

/** One tensor of the output, read from the source on demand. */
interface SourceTensor {
  name: string;
  dtype: DType;
  shape: number[];
  /** Bytes as they go into model.safetensors (Q/K rows already permuted). */
  read(): Uint8Array;
}

interface SourceModel {
  format: ConvertReport['format'];
  formatVersion: number;
  spec: ModelSpec;
  tensors: SourceTensor[];
  vocab: SentencePieceVocabulary;
  tokenizerSource: string;
  notes: string[];
  close(): void;
}

/**
 * Per-block tensors: Hugging Face name (inside the block) ← GGUF name (after `blk.N.`) ← llama2.c
 * array. `rotary` marks Q (numHeads heads) and K (numKvHeads heads), whose rows get permuted.
 */
const BLOCK_TENSORS: readonly { hf: string; gguf: string; llama2c: string; rotary?: 'q' | 'k' }[] = [
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
 * i + headDim/2 (Hugging Face's convert_llama_weights_to_hf `permute`, inverted).
 */
export function interleavedToRotateHalfRows(data: Uint8Array, numHeads: number, headDim: number): Uint8Array {
  const rows = numHeads * headDim;
  if (headDim % 2 !== 0 || data.byteLength % rows !== 0) throw new Error(`cannot permute ${data.byteLength} bytes as ${numHeads} heads × ${headDim} rows`);
  const rowBytes = data.byteLength / rows;
  const half = headDim / 2;
  const out = new Uint8Array(data.byteLength);
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

function rotaryHeads(spec: ModelSpec, rotary: 'q' | 'k' | undefined): number {
  return rotary === 'q' ? spec.numHeads : spec.numKvHeads;
}

// ————————————————————————————————————————— GGUF —————————————————————————————————————————

function ggufNumberOrNull(gguf: GgufFile, key: string): number | null {
  const value = gguf.metadata.get(key);
  return value === undefined ? null : gguf.number(key);
}

function openGgufSource(input: string): SourceModel {
  const gguf = GgufFile.open(input);
  try {
    return ggufSource(gguf, input);
  } catch (error) {
    gguf.close();
    throw error;
  }
}

function ggufSource(gguf: GgufFile, input: string): SourceModel {
  const fail = (problem: string): never => {
    throw new UserError(`${input}: ${problem}`);
  };
  const arch = gguf.string('general.architecture');
  if (arch !== 'llama') fail(`GGUF architecture "${arch}" is not supported (crepe converts "llama" GGUF files)`);
  const key = (name: string) => `${arch}.${name}`;
  const notes: string[] = [];

  const hiddenSize = gguf.number(key('embedding_length'));
  const numHeads = gguf.number(key('attention.head_count'));
  const headDim = ggufNumberOrNull(gguf, key('attention.key_length')) ?? hiddenSize / numHeads;
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) fail(`head size ${headDim} (embedding_length ${hiddenSize} / head_count ${numHeads}) is not an even integer`);
  const ropeDims = ggufNumberOrNull(gguf, key('rope.dimension_count'));
  if (ropeDims !== null && ropeDims !== headDim) fail(`rope.dimension_count ${ropeDims} differs from the head size ${headDim} (partial rotary is not supported)`);
  const scalingType = gguf.metadata.get(key('rope.scaling.type'));
  if (scalingType !== undefined && scalingType !== 'none') fail(`rope scaling "${String(scalingType)}" is not supported`);

  const embedding = gguf.tensors.get('token_embd.weight') ?? fail('has no token_embd.weight tensor');
  const vocabSize = embedding.shape[0];
  const output = gguf.tensors.get('output.weight');
  // llama.cpp's llama2.c converter stores the shared classifier again as output.weight; a
  // bit-identical copy is the tied matrix, and dropping it keeps the model's true structure.
  let tieWordEmbeddings = output === undefined;
  if (output !== undefined && output.dtype === embedding.dtype && output.shape.join() === embedding.shape.join()) {
    if (Buffer.from(gguf.readRaw('output.weight')).equals(gguf.readRaw('token_embd.weight'))) {
      tieWordEmbeddings = true;
      notes.push('output.weight is bit-identical to token_embd.weight: written as tied embeddings (no lm_head.weight)');
    }
  }

  const spec: ModelSpec = {
    family: 'llama',
    hiddenSize,
    intermediateSize: gguf.number(key('feed_forward_length')),
    numLayers: gguf.number(key('block_count')),
    numHeads,
    numKvHeads: gguf.number(key('attention.head_count_kv'), numHeads),
    headDim,
    vocabSize,
    rmsNormEps: gguf.number(key('attention.layer_norm_rms_epsilon'), 1e-5),
    ropeTheta: gguf.number(key('rope.freq_base'), 10000),
    ropeScaling: null,
    maxPositionEmbeddings: gguf.number(key('context_length'), 2048),
    tieWordEmbeddings,
    attentionBias: false,
    qkNorm: false,
    bosTokenId: gguf.number('tokenizer.ggml.bos_token_id', 1),
    eosTokenId: gguf.number('tokenizer.ggml.eos_token_id', 2),
    torchDtype: TORCH_DTYPE[embedding.dtype],
  };
  if (spec.numHeads % spec.numKvHeads !== 0) fail(`head_count ${spec.numHeads} is not a multiple of head_count_kv ${spec.numKvHeads}`);

  checkLayerCount(spec.numLayers, gguf.tensors.keys(), /^blk\.(\d+)\./, input, `${key('block_count')}`);
  // Source tensor name → output name, with the rotary permutation where it applies.
  const plan: { from: string; to: string; rotary?: 'q' | 'k' }[] = [{ from: 'token_embd.weight', to: EMBED_NAME }];
  for (let layer = 0; layer < spec.numLayers; layer++) {
    for (const t of BLOCK_TENSORS) plan.push({ from: `blk.${layer}.${t.gguf}`, to: layerPrefix(layer) + t.hf, rotary: t.rotary });
  }
  plan.push({ from: 'output_norm.weight', to: FINAL_NORM_NAME });
  if (!spec.tieWordEmbeddings) plan.push({ from: 'output.weight', to: LM_HEAD_NAME });

  const used = new Set(plan.map((p) => p.from));
  if (spec.tieWordEmbeddings && output !== undefined) used.add('output.weight');
  const unexpected = [...gguf.tensors.keys()].filter((name) => !used.has(name));
  if (unexpected.length > 0) fail(`unexpected tensors for a llama model: ${unexpected.slice(0, 5).join(', ')}${unexpected.length > 5 ? ', …' : ''}`);

  const tensors = plan.map(({ from, to, rotary }): SourceTensor => {
    const info = gguf.tensors.get(from) ?? fail(`tensor ${from} is missing`);
    const expected = expectedShape(spec, to);
    if (info.shape.join() !== expected.join()) fail(`tensor ${from} has shape [${info.shape}], expected [${expected}] for this model`);
    return {
      name: to,
      dtype: info.dtype,
      shape: info.shape,
      read: () => (rotary ? interleavedToRotateHalfRows(gguf.readRaw(from), rotaryHeads(spec, rotary), headDim) : gguf.readRaw(from)),
    };
  });

  const tokenizerModel = gguf.string('tokenizer.ggml.model', 'llama');
  if (tokenizerModel !== 'llama') fail(`tokenizer.ggml.model "${tokenizerModel}" is not supported (crepe converts SentencePiece "llama" vocabularies)`);
  const tokens = gguf.require('tokenizer.ggml.tokens');
  if (!isStringArray(tokens)) fail('tokenizer.ggml.tokens is not an array of strings');
  const scores = gguf.metadata.get('tokenizer.ggml.scores');
  const types = gguf.metadata.get('tokenizer.ggml.token_type');
  const vocab = vocabularyFromGguf(
    {
      tokens: tokens as string[],
      scores: scores === undefined ? null : asFloat32Array(scores, 'tokenizer.ggml.scores', input),
      types: types === undefined ? null : asInt32Array(types, 'tokenizer.ggml.token_type', input),
      unkId: gguf.number('tokenizer.ggml.unknown_token_id', 0),
      bosId: spec.bosTokenId ?? 1,
      eosId: spec.eosTokenId ?? 2,
    },
    input,
  );
  if (vocab.pieces.length > vocabSize) fail(`the vocabulary has ${vocab.pieces.length} tokens but token_embd.weight only ${vocabSize} rows`);

  return { format: 'gguf', formatVersion: gguf.version, spec, tensors, vocab, tokenizerSource: input, notes, close: () => gguf.close() };
}

function isStringArray(value: GgufValue): boolean {
  return Array.isArray(value) && value.every((v) => typeof v === 'string');
}

function asFloat32Array(value: GgufValue, key: string, input: string): Float32Array {
  if (value instanceof Float32Array) return value;
  if (value instanceof Float64Array) return Float32Array.from(value);
  throw new UserError(`${input}: ${key} is not an array of floats`);
}

function asInt32Array(value: GgufValue, key: string, input: string): Int32Array {
  if (value instanceof Int32Array) return value;
  if (value instanceof Uint32Array || value instanceof Uint8Array || value instanceof Int8Array) return Int32Array.from(value);
  throw new UserError(`${input}: ${key} is not an array of integers`);
}

const TORCH_DTYPE: Record<DType, string> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

function expectedShape(spec: ModelSpec, name: string): number[] {
  if (name === EMBED_NAME || name === LM_HEAD_NAME) return [spec.vocabSize, spec.hiddenSize];
  if (name === FINAL_NORM_NAME) return [spec.hiddenSize];
  return blockTensorShape(spec, name.replace(/^model\.layers\.\d+\./, ''));
}

// ——————————————————————————————————————— llama2.c ———————————————————————————————————————

/** The tokenizer of a llama2.c checkpoint: the given path, or the one tok*.bin / tokenizer.bin beside it. */
function findLlama2cTokenizer(input: string, given: string | undefined): string {
  if (given !== undefined) {
    if (!existsSync(given)) throw new UserError(`--tokenizer ${given}: no such file`);
    return given;
  }
  const dir = path.dirname(input);
  const candidates = readdirSync(dir)
    .filter((name) => /^tok.*\.bin$/.test(name) || name === 'tokenizer.bin')
    .map((name) => path.join(dir, name))
    .filter((candidate) => path.resolve(candidate) !== path.resolve(input) && statSync(candidate).isFile());
  if (candidates.length === 1) return candidates[0];
  const found = candidates.length === 0 ? 'none is beside it' : `several are beside it: ${candidates.map((c) => path.basename(c)).join(', ')}`;
  throw new UserError(`${input}: a llama2.c checkpoint needs its tokenizer file; pass --tokenizer <tok*.bin> (${found})`);
}

function llama2cSource(checkpoint: Llama2cCheckpoint, input: string, tokenizerOption: string | undefined): SourceModel {
  try {
    const config = checkpoint.config;
    const headDim = config.dim / config.nHeads;
    const spec: ModelSpec = {
      family: 'llama',
      hiddenSize: config.dim,
      intermediateSize: config.hiddenDim,
      numLayers: config.nLayers,
      numHeads: config.nHeads,
      numKvHeads: config.nKvHeads,
      headDim,
      vocabSize: config.vocabSize,
      rmsNormEps: 1e-5, // run.c's rmsnorm
      ropeTheta: 10000, // run.c's RoPE base
      ropeScaling: null,
      maxPositionEmbeddings: config.seqLen,
      tieWordEmbeddings: config.sharedClassifier,
      attentionBias: false,
      qkNorm: false,
      bosTokenId: 1,
      eosTokenId: 2,
      torchDtype: 'float32',
    };
    const tensor = (name: string, kind: string, layer?: number, rotary?: 'q' | 'k'): SourceTensor => ({
      name,
      dtype: 'F32',
      shape: expectedShape(spec, name),
      read: () => {
        const raw = checkpoint.readRaw(kind, layer);
        return rotary ? interleavedToRotateHalfRows(raw, rotaryHeads(spec, rotary), headDim) : raw;
      },
    });
    const tensors: SourceTensor[] = [tensor(EMBED_NAME, 'token_embedding_table')];
    for (let layer = 0; layer < spec.numLayers; layer++) {
      for (const t of BLOCK_TENSORS) tensors.push(tensor(layerPrefix(layer) + t.hf, t.llama2c, layer, t.rotary));
    }
    tensors.push(tensor(FINAL_NORM_NAME, 'rms_final_weight'));
    if (!spec.tieWordEmbeddings) tensors.push(tensor(LM_HEAD_NAME, 'wcls'));

    const tokenizerPath = findLlama2cTokenizer(input, tokenizerOption);
    const rawVocab = readLlama2cTokenizer(tokenizerPath, config.vocabSize);
    const vocab = vocabularyFromLlama2c(rawVocab.pieces, rawVocab.scores, tokenizerPath);
    return {
      format: 'llama2c', formatVersion: 0, spec, tensors, vocab, tokenizerSource: tokenizerPath, notes: [], close: () => checkpoint.close(),
    };
  } catch (error) {
    checkpoint.close();
    throw error;
  }
}

// ———————————————————————————————————————— output ————————————————————————————————————————

function readMagic(input: string): Uint8Array {
  const { fd } = openInputFile(input, 'checkpoint (GGUF or llama2.c .bin)');
  try {
    const magic = new Uint8Array(4);
    const n = readSync(fd, magic, 0, 4, 0);
    return magic.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

function openSource(input: string, options: ConvertOptions): SourceModel {
  if (hasGgufMagic(readMagic(input))) return openGgufSource(input);
  if (input.toLowerCase().endsWith('.gguf')) throw new UserError(`${input}: not a GGUF file (it does not start with "GGUF")`);
  let checkpoint: Llama2cCheckpoint;
  try {
    checkpoint = Llama2cCheckpoint.open(input);
  } catch (error) {
    // Anything that is not GGUF is read as llama2.c: when its header makes no sense, say both.
    if (!(error instanceof UserError) || !error.message.startsWith(`${input}: `)) throw error;
    const problem = error.message.slice(input.length + 2);
    throw new UserError(`${input}: not a GGUF file (no "GGUF" magic) and not a valid llama2.c checkpoint: ${problem}`);
  }
  return llama2cSource(checkpoint, input, options.tokenizer);
}

const jsonText = (value: unknown): string => `${JSON.stringify(value, null, 2)}\n`;

async function writeModelDirectory(source: SourceModel, dir: string): Promise<number> {
  const { spec, vocab } = source;
  const writeJson = (name: string, value: unknown) => writingTo(path.join(dir, name), () => writeFile(path.join(dir, name), jsonText(value)));
  await writeJson('config.json', specToConfigJson(spec));
  await writeJson('generation_config.json', { bos_token_id: spec.bosTokenId, eos_token_id: spec.eosTokenId });
  await writeTokenizerFiles(dir, vocab, spec.maxPositionEmbeddings);

  // One tensor in memory at a time, whatever the model size.
  const writer = await SafetensorsStreamWriter.create(
    path.join(dir, 'model.safetensors'),
    source.tensors.map(({ name, dtype, shape }) => ({ name, dtype, shape })),
  );
  let parameters = 0;
  try {
    for (const tensor of source.tensors) {
      await writer.write(tensor.name, tensor.read());
      parameters += elementCount(tensor.shape);
    }
    await writer.finish();
  } catch (error) {
    await writer.abort();
    throw error;
  }
  return parameters;
}

/** Converts a GGUF or llama2.c checkpoint to a Hugging Face model directory at `outDir`. */
export async function convertToHuggingFace(input: string, outDir: string, options: ConvertOptions = {}): Promise<ConvertReport> {
  if (!existsSync(input)) throw new UserError(`${input}: no such file`);
  const target = checkOutputDir(outDir, { overwrite: options.overwrite, inputs: [input, options.tokenizer] });
  const source = openSource(input, options);
  let lock: OutputLock | undefined;
  try {
    lock = lockOutput(target);
    const tmpDir = tempPathFor(target);
    let parameters: number;
    try {
      await writingTo(tmpDir, () => mkdir(tmpDir));
      parameters = await writeModelDirectory(source, tmpDir);
    } catch (error) {
      await rm(tmpDir, { recursive: true, force: true });
      throw error;
    }
    publishOutputDir(tmpDir, target, { command: 'convert', overwrite: options.overwrite });
    const embedding = source.tensors.find((t) => t.name === EMBED_NAME)!;
    return {
      format: source.format,
      formatVersion: source.formatVersion,
      input,
      tokenizerSource: source.tokenizerSource,
      outDir,
      tensors: source.tensors.length,
      parameters,
      dtype: embedding.dtype,
      spec: source.spec,
      notes: source.notes,
    };
  } finally {
    lock?.release();
    source.close();
  }
}
