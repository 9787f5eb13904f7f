/**
 * How everything that runs a model reads it: block by block, so no more than one decoder layer's
 * weights need to be in memory. ModelCheckpoint is the file-backed source; a search's pruned
 * blocks and the tests' random models are others.
 */
import { checkField } from '../util/errors.ts';
import { describeValue, hasMethods } from '../util/fields.ts';
import type { BlockWeights, ModelSpec } from './spec.ts';

export interface ModelSource {
  readonly spec: ModelSpec;
  /**
   * Every tensor of decoder block `layer`, keyed by its name inside the block, as float32; a source
   * may leave out those named in `without` (the caller has them from elsewhere).
   */
  readBlock(layer: number, without?: ReadonlySet<string>): BlockWeights;
  /** The token embedding [vocab, hidden]. */
  readEmbedding(): Float32Array;
  /**
   * Rows `ids` of the token embedding, [ids.length, hidden], when the source can read them without
   * the rest (a checkpoint on disk); embedWindows uses it.
   */
  readEmbeddingRows?(ids: Int32Array): Float32Array;
  readFinalNorm(): Float32Array;
  /** The lm_head matrix [vocab, hidden]; the embedding itself when embeddings are tied. */
  readLmHead(): Float32Array;
}

/**
 * A model whose blocks take asynchronous work to read, such as a pruned view whose masks come from
 * worker threads: perplexity's layer-major pass reads it (one block at a time, as a ModelSource).
 */
export interface AsyncBlockModel extends Omit<ModelSource, 'readBlock'> {
  readBlock(layer: number): Promise<BlockWeights>;
}

/**
 * `model` with its decoder blocks read by `readBlock` instead (a pruned model kept in memory, a
 * pruned view); the embedding, final norm and head are the model's.
 */
export function withBlocks<B extends BlockWeights | Promise<BlockWeights>>(model: ModelSource, readBlock: (layer: number) => B): Omit<ModelSource, 'readBlock'> & { readBlock(layer: number): B } {
  return {
    spec: model.spec,
    readBlock,
    readEmbedding: () => model.readEmbedding(),
    readFinalNorm: () => model.readFinalNorm(),
    readLmHead: () => model.readLmHead(),
  };
}

/** What the layer loop reads: the decoder blocks and the embedding that feeds the first. */
export type BlockSource = Pick<ModelSource, 'spec' | 'readBlock' | 'readEmbedding' | 'readEmbeddingRows'>;

/** Refuses `model` unless it reads like a BlockSource (a ModelCheckpoint, or an object with a spec, readBlock and readEmbedding). */
export function checkBlockSource(field: string, model: unknown): asserts model is BlockSource {
  checkSource(field, model, ['readBlock', 'readEmbedding']);
}

/** Refuses `model` unless it reads like a whole ModelSource: a BlockSource with readFinalNorm and readLmHead. */
export function checkModelSource(field: string, model: unknown): asserts model is ModelSource {
  checkSource(field, model, ['readBlock', 'readEmbedding', 'readFinalNorm', 'readLmHead']);
}

function checkSource(field: string, model: unknown, methods: readonly string[]): void {
  const spec = (model as Partial<BlockSource> | null)?.spec;
  checkField(
    hasMethods(model, methods) && typeof spec === 'object' && spec !== null,
    field,
    () => `must be a model such as a ModelCheckpoint (spec, ${methods.join(', ')}), got ${describeValue(model)}`,
  );
}
