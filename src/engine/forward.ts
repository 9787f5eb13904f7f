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
  const out = new Float32Array(tokens.length * hiddenSize);
  embedInto(tokens, embedding, hiddenSize, out);
  return out;
}

/** embed into `out` ([tokens.length, hiddenSize]). */
function embedInto(tokens: Int32Array, embedding: Float32Array, hiddenSize: number, out: Float32Array): void {
  const vocab = embedding.length / hiddenSize;
  for (let t = 0; t < tokens.length; t++) {
    const id = tokens[t];
    invariant(id >= 0 && id < vocab, () => `token id ${id} outside the vocabulary [0, ${vocab})`);
    out.set(embedding.subarray(id * hiddenSize, (id + 1) * hiddenSize), t * hiddenSize);
  }
}

/** Most float32 values of one buffer of embedded windows (1 GiB). */
const EMBED_BUFFER_VALUES = 2 ** 28;

/**
 * Each window embedded, [window length, hiddenSize]: views laid end to end in as few buffers as
 * can hold them (1 GiB each), so that a batch of windows reaches the engine without a copy
 * (concatSequences). A source that reads embedding rows alone is asked for the distinct ids only:
 * a calibration set uses a fraction of a 32k–150k vocabulary, whose whole table would otherwise be
 * read and widened to float32 first.
 */
export function embedWindows(source: BlockSource, windows: readonly Int32Array[]): Float32Array[] {
  const { hiddenSize, vocabSize } = source.spec;
  let table: Float32Array;
  let rowOf: (tokens: Int32Array) => Int32Array;
  if (source.readEmbeddingRows) {
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
    table = source.readEmbeddingRows(Int32Array.from(ids));
    rowOf = (tokens) => tokens.map((id) => row[id]);
  } else {
    table = source.readEmbedding();
    rowOf = (tokens) => tokens;
  }
  const out: Float32Array[] = [];
  for (let first = 0; first < windows.length;) {
    // The windows that share the next buffer: at least one, then as many as fit.
    let values = windows[first].length * hiddenSize;
    let end = first + 1;
    while (end < windows.length && values + windows[end].length * hiddenSize <= EMBED_BUFFER_VALUES) values += windows[end++].length * hiddenSize;
    const buffer = new Float32Array(values);
    let offset = 0;
    for (let w = first; w < end; w++) {
      const view = buffer.subarray(offset, offset + windows[w].length * hiddenSize);
      embedInto(rowOf(windows[w]), table, hiddenSize, view);
      out.push(view);
      offset += view.length;
    }
    first = end;
  }
  return out;
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
