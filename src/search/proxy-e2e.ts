/**
 * The end-to-end proxy calib-nll: the mean next-token NLL, on the first few calibration windows,
 * of the model pruned with the candidate's masks. The masks are those the other proxies see (the
 * candidate's CRePE scores from the dense pass's input statistics, selected with the run's
 * target), computed by the proxy cache's evaluator threads from the terms they keep, so no
 * statistics pass runs per candidate and no weight is scored on the calling thread; the pruned
 * model runs layer by layer on the windows (one decoder block and its masks in memory at a time),
 * and its error propagates through the blocks as it does in the pruned model. The per-linear
 * proxies measure each linear's damage on its dense inputs; this one measures what the damage
 * does to the model's predictions.
 *
 * Cost per candidate: the CRePE scores and selection of every linear (as for every proxy, spread
 * over the evaluator threads) plus a forward pass of `windows` × seqlen tokens, against a real
 * trial's two passes over all calibration windows (statistics, then pruned) plus the held-out
 * perplexity.
 */
import { perplexity, type PerplexityResult } from '../eval/perplexity.ts';
import type { EngineOptions } from '../engine/session.ts';
import type { BlockEngine } from '../engine/block-engine.ts';
import type { HeadEngine } from '../engine/head-engine.ts';
import { withBlocks, type AsyncBlockModel, type ModelSource } from '../model/source.ts';
import { LINEAR_NAMES, type BlockWeights, type LinearName } from '../model/spec.ts';
import { applyMask } from '../prune/mask.ts';

/** Default number of calibration windows calib-nll runs on. */
export const CALIB_NLL_WINDOWS = 8;

/** A linear pruned by a candidate: its mask (row-major, 1 = pruned), or its pruned weights (row-major float32, pruned entries 0). */
export type PrunedLinear = { mask: Uint8Array } | { weight: Float32Array };

/**
 * The pruning of each decoder layer's linears, by linear name; `weights`: every linear comes as its
 * pruned weights (the model's are then not read), else as its mask. `giveBack` takes back what
 * `of(layer)` gave once no longer referenced, to fill its arrays again.
 */
export interface LayerPruning<L extends PrunedLinear = PrunedLinear> {
  weights: boolean;
  of(layer: number): Promise<Record<LinearName, L>>;
  giveBack(linears: Record<LinearName, L>): void;
}

const LINEAR_WEIGHTS: ReadonlySet<string> = new Set(LINEAR_NAMES.map((name) => `${name}.weight`));

/** A source that may take arrays of blocks it handed out back, to fill them on later reads (ModelCheckpoint). */
type RecyclingSource = ModelSource & { recycleBlock?(block: BlockWeights): void };

/**
 * A weight of a block read from `model`, with `mask` applied: in place when the source hands out
 * arrays its caller owns (one that recycles them, as ModelCheckpoint), else on a copy, the
 * source's array left as it is.
 */
export function maskedRead(model: Pick<RecyclingSource, 'spec' | 'recycleBlock'>, weight: Float32Array, mask: Uint8Array): Float32Array {
  const out = model.recycleBlock ? weight : weight.slice();
  applyMask(out, mask);
  return out;
}

/**
 * The model with every linear pruned as `pruning` gives: a block is pruned when read, and the next
 * layer's pruning is asked for as soon as this one's is in (the evaluators compute it while the
 * reader runs this block), so a layer-major pass holds one pruned block and the next one's pruning.
 * Pruned weights handed over replace the linears, which are then not read from the model; masks
 * are applied to the model's. A block's arrays are handed back when the next block is read and by
 * `release()` (the pruned weights to `pruning`, those read to a source that recycles arrays), so
 * the view's reader must hold one block at a time and read them in layer order, as the
 * layer-major pass does. The masks are applied as maskedRead applies them.
 */
function prunedView<L extends PrunedLinear>(model: RecyclingSource, pruning: LayerPruning<L>): AsyncBlockModel & { release(): void } {
  const recycle = model.recycleBlock?.bind(model);
  let held: { read: BlockWeights; linears: Record<LinearName, L> | null } | null = null;
  let next: { layer: number; pending: Promise<Record<LinearName, L>> } | null = null;
  const release = (): void => {
    if (held && recycle) recycle(held.read);
    if (held?.linears) pruning.giveBack(held.linears);
    held = null;
  };
  // A pruning asked for that no block will use (the pass failed or stopped): its arrays go back when it comes.
  const unused = (pending: Promise<Record<LinearName, L>>): void => {
    pending.then((linears) => pruning.giveBack(linears), () => {});
  };
  const pruningOf = (layer: number): Promise<Record<LinearName, L>> => {
    const prefetched = next;
    next = null;
    if (prefetched?.layer === layer) return prefetched.pending;
    if (prefetched) unused(prefetched.pending);
    return pruning.of(layer);
  };
  const view = withBlocks(model, async (layer: number): Promise<BlockWeights> => {
    release();
    const pending = pruningOf(layer);
    let read: BlockWeights;
    try {
      read = model.readBlock(layer, pruning.weights ? LINEAR_WEIGHTS : undefined);
    } catch (error) {
      unused(pending);
      throw error;
    }
    held = { read, linears: null };
    const block = { ...read };
    const linears = await pending;
    held.linears = linears;
    if (layer + 1 < model.spec.numLayers) {
      next = { layer: layer + 1, pending: pruning.of(layer + 1) };
      // A pass that fails before reading it leaves it unread: no unhandled rejection.
      next.pending.catch(() => {});
    }
    for (const name of LINEAR_NAMES) {
      const key = `${name}.weight`;
      const pruned = linears[name];
      if ('weight' in pruned) {
        block[key] = pruned.weight;
        continue;
      }
      if (!(key in read)) throw new Error(`internal: the mask of ${key} came for a block read without it`);
      block[key] = maskedRead(model, block[key], pruned.mask);
    }
    return block;
  });
  const releaseAll = (): void => {
    release();
    if (next) unused(next.pending);
    next = null;
  };
  return { ...view, release: releaseAll };
}

/**
 * `model` with its embedding, final norm and head read once and then kept: every pruned model of a
 * search shares them (pruning touches the decoder blocks' linears only), and each layer-major pass
 * holds them anyway, so keeping them between candidates saves their reading (and widening) per
 * candidate without raising the peak. A tied head is the embedding array itself.
 */
export function keepingEnds(model: RecyclingSource): RecyclingSource {
  let embedding: Float32Array | undefined;
  let finalNorm: Float32Array | undefined;
  let lmHead: Float32Array | undefined;
  const readEmbedding = (): Float32Array => (embedding ??= model.readEmbedding());
  return {
    spec: model.spec,
    readBlock: (layer, without) => model.readBlock(layer, without),
    recycleBlock: model.recycleBlock ? (block) => model.recycleBlock!(block) : undefined,
    readEmbedding,
    readFinalNorm: () => (finalNorm ??= model.readFinalNorm()),
    readLmHead: () => (lmHead ??= model.spec.tieWordEmbeddings ? readEmbedding() : model.readLmHead()),
  };
}

/**
 * Perplexity on `tokens` (whole windows of `seqlen`, the first `maxChunks` when given) of the
 * model pruned by `pruning`: calib-nll is its mean NLL on calibration windows, PHO's confirmation
 * its perplexity on held-out text.
 */
export async function prunedPerplexity<L extends PrunedLinear>(
  model: RecyclingSource,
  pruning: LayerPruning<L>,
  tokens: Int32Array,
  text: { seqlen: number; maxChunks?: number },
  engine: EngineOptions,
  engines?: { block: BlockEngine; head: HeadEngine } | null,
): Promise<PerplexityResult> {
  const view = prunedView(model, pruning);
  try {
    return await perplexity(view, tokens, { ...engine, seqlen: text.seqlen, maxChunks: text.maxChunks, mode: 'layer-major', engines: engines ?? undefined });
  } finally {
    view.release();
  }
}
