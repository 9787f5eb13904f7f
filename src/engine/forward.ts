/**
 * The full forward pass of one sequence on the ONNX engine: embedding gather (JS), every decoder
 * block through one BlockEngine session, then the head. Used by conversion checks and tests.
 */
import { BlockEngine } from './block-engine.ts';
import { HeadEngine } from './head-engine.ts';
import type { EngineOptions } from './session.ts';
import { ropeTables } from '../model/rope.ts';
import type { BlockSource, ModelSource } from '../model/source.ts';
import { invariant } from '../util/errors.ts';

/** Rows of `embedding` [vocab, hiddenSize] for each token: [tokens.length, hiddenSize]. */
export function embed(tokens: Int32Array, embedding: Float32Array, hiddenSize: number): Float32Array {
  const vocab = embedding.length / hiddenSize;
  const out = new Float32Array(tokens.length * hiddenSize);
  for (let t = 0; t < tokens.length; t++) {
    const id = tokens[t];
    invariant(id >= 0 && id < vocab, () => `token id ${id} outside the vocabulary [0, ${vocab})`);
    out.set(embedding.subarray(id * hiddenSize, (id + 1) * hiddenSize), t * hiddenSize);
  }
  return out;
}

/**
 * Each window embedded, [window length, hiddenSize]. A source that reads embedding rows alone is
 * asked for the distinct ids only: a calibration set uses a fraction of a 32k–150k vocabulary, whose
 * whole table would otherwise be read and widened to float32 first.
 */
export function embedWindows(source: BlockSource, windows: readonly Int32Array[]): Float32Array[] {
  const { hiddenSize, vocabSize } = source.spec;
  if (!source.readEmbeddingRows) {
    const embedding = source.readEmbedding();
    return windows.map((tokens) => embed(tokens, embedding, hiddenSize));
  }
  // Each used id's row in the compact table of distinct ids (in increasing order); -1 if unused.
  const row = new Int32Array(vocabSize).fill(-1);
  for (const tokens of windows) {
    for (const id of tokens) {
      invariant(id >= 0 && id < vocabSize, () => `token id ${id} outside the vocabulary [0, ${vocabSize})`);
      row[id] = 0;
    }
  }
  const ids: number[] = [];
  for (let id = 0; id < vocabSize; id++) if (row[id] === 0) row[id] = ids.push(id) - 1;
  const rows = source.readEmbeddingRows(Int32Array.from(ids));
  return windows.map((tokens) => embed(tokens.map((id) => row[id]), rows, hiddenSize));
}

/** Logits [tokens.length, vocab] of one sequence. */
export async function forwardLogits(source: ModelSource, tokens: Int32Array, opts: EngineOptions): Promise<Float32Array> {
  const { spec } = source;
  const seqLen = tokens.length;
  const rope = ropeTables(spec, seqLen);
  const block = await BlockEngine.create(spec, seqLen, { ...opts, stats: 'none' });
  const head = await HeadEngine.create(spec, seqLen, { ...opts, output: 'logits' });
  try {
    let hidden = embed(tokens, source.readEmbedding(), spec.hiddenSize);
    for (let layer = 0; layer < spec.numLayers; layer++) {
      hidden = (await block.run(hidden, source.readBlock(layer), rope)).hidden;
    }
    return await head.logits(hidden, source.readFinalNorm(), source.readLmHead());
  } finally {
    await block.release();
    await head.release();
  }
}
