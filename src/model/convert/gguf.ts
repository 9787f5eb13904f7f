/** GGUF (llama.cpp) checkpoints of the "llama" architecture as a converter source. */
import { GgufFile, type GgufValue } from '../../io/gguf.ts';
import { UserError } from '../../util/errors.ts';
import { checkLayerCount } from '../layer-count.ts';
import { EMBED_NAME, FINAL_NORM_NAME, layerPrefix, LM_HEAD_NAME, type ModelSpec } from '../spec.ts';
import { vocabularyFromGguf } from '../tokenizer-build.ts';
import {
  BLOCK_TENSORS, TORCH_DTYPE, TensorReader, expectedShape,
  type SourceModel, type SourceTensor,
} from './source.ts';

function ggufNumberOrNull(gguf: GgufFile, key: string): number | null {
  const value = gguf.metadata.get(key);
  return value === undefined ? null : gguf.number(key);
}

/** Opens `input` as a GGUF source; the file stays open until the source is closed. */
export function openGgufSource(input: string): SourceModel {
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

  const reader = new TensorReader(spec);
  const tensors = plan.map(({ from, to, rotary }): SourceTensor => {
    const info = gguf.tensors.get(from) ?? fail(`tensor ${from} is missing`);
    const expected = expectedShape(spec, to);
    if (info.shape.join() !== expected.join()) fail(`tensor ${from} has shape [${info.shape}], expected [${expected}] for this model`);
    return {
      name: to,
      dtype: info.dtype,
      shape: info.shape,
      read: () => reader.read(info.byteLength, (scratch) => gguf.readRaw(from, scratch), rotary),
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
