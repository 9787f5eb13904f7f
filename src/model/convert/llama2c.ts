/** llama2.c checkpoints (the legacy `.bin` that run.c reads) with their tokenizer file as a converter source. */
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { Llama2cCheckpoint, readLlama2cTokenizer } from '../../io/llama2c.ts';
import { DTYPE_BYTES, elementCount } from '../../io/safetensors.ts';
import { FieldError } from '../../util/errors.ts';
import { EMBED_NAME, FINAL_NORM_NAME, layerPrefix, LM_HEAD_NAME, type ModelSpec } from '../spec.ts';
import { vocabularyFromLlama2c } from '../tokenizer-build.ts';
import { BLOCK_TENSORS, TensorReader, expectedShape, type SourceModel, type SourceTensor } from './source.ts';

/** The tokenizer of a llama2.c checkpoint: the given path, or the one tok*.bin / tokenizer.bin beside it. */
function findLlama2cTokenizer(input: string, given: string | undefined): string {
  if (given !== undefined) {
    if (!existsSync(given)) throw new FieldError('tokenizer', `${given}: no such file`);
    return given;
  }
  const dir = path.dirname(input);
  const candidates = readdirSync(dir)
    .filter((name) => /^tok.*\.bin$/.test(name) || name === 'tokenizer.bin')
    .map((name) => path.join(dir, name))
    .filter((candidate) => path.resolve(candidate) !== path.resolve(input) && statSync(candidate).isFile());
  if (candidates.length === 1) return candidates[0];
  const found = candidates.length === 0 ? 'none is beside it' : `several are beside it: ${candidates.map((c) => path.basename(c)).join(', ')}`;
  throw new FieldError('tokenizer', `is needed for the llama2.c checkpoint ${input}: name its tok*.bin file (${found})`);
}

/** `checkpoint` (open; closed by the source, or here on failure) with its tokenizer as a source. */
export function llama2cSource(checkpoint: Llama2cCheckpoint, input: string, tokenizerOption: string | undefined): SourceModel {
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
    const reader = new TensorReader(spec);
    const tensor = (name: string, kind: string, layer?: number, rotary?: 'q' | 'k'): SourceTensor => {
      const shape = expectedShape(spec, name);
      return { name, dtype: 'F32', shape, read: () => reader.read(elementCount(shape) * DTYPE_BYTES.F32, (scratch) => checkpoint.readRaw(kind, layer, scratch), rotary) };
    };
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
