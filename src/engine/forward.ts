/**
 * The full forward pass of one sequence on the ONNX engine: embedding gather (JS), every decoder
 * block through one BlockEngine session, then the head. Used by conversion checks and tests.
 */
import { BlockEngine } from './block-engine.ts';
import { HeadEngine } from './head-engine.ts';
import type { EngineOptions } from './session.ts';
import { ropeTables } from '../model/rope.ts';
import type { ModelSource } from '../model/source.ts';
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
