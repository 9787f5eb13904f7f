/**
 * WikiText-2-style perplexity (ALGORITHMS.md §1.2): the token stream is cut into non-overlapping
 * windows of `seqlen` tokens (tail dropped), each window runs from position 0 with no cache, and
 * PPL = exp(mean over windows of the window's mean next-token NLL).
 *
 * A small model runs as one graph (ModelEngine): each run takes a batch of windows from token ids
 * to NLL. A larger one goes through the model layer-major in groups: a group of windows' hidden
 * states is held, each decoder block is read once per group and applied to every window of it,
 * several windows per engine run (the engine's batch size). Memory is then one block's weights
 * plus the group's activations, whatever the model size.
 */
import { checkModelSource, type AsyncBlockModel, type ModelSource } from '../model/source.ts';
import { checkSeqlen, checkTokenIds, type BlockWeights, type ModelSpec } from '../model/spec.ts';
import { ropeTables, type RopeTables } from '../model/rope.ts';
import { BlockEngine } from '../engine/block-engine.ts';
import { HeadEngine } from '../engine/head-engine.ts';
import { ModelEngine } from '../engine/model-engine.ts';
import { embed } from '../engine/forward.ts';
import { checkEngineOptions, type EngineOptions } from '../engine/session.ts';
import { check, checkField } from '../util/errors.ts';
import { checkInteger, describeValue } from '../util/fields.ts';
import { checkProgress, type Progress } from '../util/progress.ts';

export interface PerplexityOptions extends EngineOptions {
  seqlen: number;
  /** Evaluate only the first K windows (quick checks). */
  maxChunks?: number;
  /**
   * 'whole-model': one graph from token ids to NLL; 'layer-major': block by block. Default 'auto':
   * the whole model when its weights fit ModelEngine's bound.
   */
  mode?: 'auto' | 'whole-model' | 'layer-major';
  /**
   * Layer-major engines for this seqlen to use instead of creating (and releasing) new ones: for a
   * caller that measures many models of one shape (PHO's calib-nll). Their owner releases them.
   */
  engines?: { block: BlockEngine; head: HeadEngine };
  /** Upper bound on the activations held for one batch of windows. */
  activationBudgetBytes?: number;
  progress?: Progress;
}

/** PerplexityOptions' own fields, beside EngineOptions'. */
const PERPLEXITY_OPTIONS = ['seqlen', 'maxChunks', 'mode', 'engines', 'activationBudgetBytes', 'progress'];
const PERPLEXITY_MODES: readonly string[] = ['auto', 'whole-model', 'layer-major'];

export interface PerplexityResult {
  ppl: number;
  /** Mean over windows of the per-window mean NLL (nats). */
  meanNll: number;
  windows: number;
  seqlen: number;
  tokens: number;
  /** Per-window mean NLL, for statistics across windows. */
  windowNll: number[];
}

/** Progress units of a perplexity run: one per window per block, plus one per window for the head. */
export const perplexityWorkUnits = (spec: ModelSpec, windows: number): number => windows * (spec.numLayers + 1);

/** Number of full windows the protocol takes from `tokenCount` tokens. */
export function windowCount(tokenCount: number, seqlen: number, maxChunks?: number): number {
  const all = Math.floor(tokenCount / seqlen);
  return maxChunks === undefined ? all : Math.min(all, maxChunks);
}

export async function perplexity(model: ModelSource, tokens: Int32Array, opts: PerplexityOptions): Promise<PerplexityResult>;
/** A model whose blocks are read asynchronously runs layer-major only. */
export async function perplexity(model: AsyncBlockModel, tokens: Int32Array, opts: PerplexityOptions & { mode: 'layer-major' }): Promise<PerplexityResult>;
export async function perplexity(model: ModelSource | AsyncBlockModel, tokens: Int32Array, opts: PerplexityOptions): Promise<PerplexityResult> {
  checkModelSource('model', model);
  checkPerplexityInput(model.spec, tokens, opts);
  const { seqlen } = opts;
  const windows = windowCount(tokens.length, seqlen, opts.maxChunks);
  check(windows >= 1, `the evaluation text has ${tokens.length} tokens, fewer than one window of seqlen ${seqlen}`);
  const wholeModel = opts.mode === 'whole-model' || ((opts.mode ?? 'auto') === 'auto' && ModelEngine.fits(model as ModelSource));
  const windowNll = wholeModel
    ? await wholeModelNll(model as ModelSource, tokens, windows, opts)
    : await layerMajorNll(model, tokens, windows, opts);
  return { ...perplexityOf(windowNll), windows, seqlen, tokens: tokens.length, windowNll };
}

/** The protocol's PPL from the windows' mean NLLs: exp of their mean. */
export function perplexityOf(windowNll: readonly number[]): { ppl: number; meanNll: number } {
  const meanNll = windowNll.reduce((a, b) => a + b, 0) / windowNll.length;
  return { ppl: Math.exp(meanNll), meanNll };
}

/**
 * A caller's tokens and windows, checked as the workflows check theirs: token ids in the model's
 * vocabulary, windows of 2 tokens up to its context (a longer window runs positions the model was
 * never trained on and measures nonsense), a whole number of windows.
 */
function checkPerplexityInput(spec: ModelSpec, tokens: unknown, opts: PerplexityOptions): asserts tokens is Int32Array {
  checkTokenIds('tokens', tokens, spec);
  checkEngineOptions('', opts, PERPLEXITY_OPTIONS);
  checkSeqlen('seqlen', opts.seqlen, spec);
  if (opts.maxChunks !== undefined) checkInteger('maxChunks', opts.maxChunks, 1);
  checkField(opts.mode === undefined || PERPLEXITY_MODES.includes(opts.mode), 'mode', () => `must be one of ${PERPLEXITY_MODES.join(', ')}, got ${describeValue(opts.mode)}`);
  checkActivationBudget(opts.activationBudgetBytes);
  checkProgress('progress', opts.progress);
}

/**
 * Throws a FieldError unless `bytes` (activationBudgetBytes) is left out or a whole number of
 * bytes ≥ 1: a NaN budget would make the batch groups NaN windows long, so that no window is measured.
 */
export function checkActivationBudget(bytes: unknown): void {
  if (bytes !== undefined) checkInteger('activationBudgetBytes', bytes, 1);
}

/** Targets of `count` windows from `first`: position t predicts token t+1; the last position of a window has none (left 0). */
function windowTargets(tokens: Int32Array, seqlen: number, first: number, count: number): Int32Array {
  const targets = new Int32Array(count * seqlen);
  for (let w = 0; w < count; w++) {
    const start = (first + w) * seqlen;
    targets.set(tokens.subarray(start + 1, start + seqlen), w * seqlen);
  }
  return targets;
}

/** Appends each window's mean NLL over its seqlen − 1 predicted positions to `out`. */
function pushWindowMeans(nll: Float32Array, count: number, seqlen: number, out: number[]): void {
  for (let w = 0; w < count; w++) {
    let sum = 0;
    for (let t = 0; t < seqlen - 1; t++) sum += nll[w * seqlen + t];
    out.push(sum / (seqlen - 1));
  }
}

async function wholeModelNll(model: ModelSource, tokens: Int32Array, windows: number, opts: PerplexityOptions): Promise<number[]> {
  const { seqlen } = opts;
  const units = model.spec.numLayers + 1;
  const engine = await ModelEngine.create(model, seqlen, opts);
  const windowNll: number[] = [];
  try {
    for (let first = 0; first < windows; first += engine.maxBatch) {
      const count = Math.min(engine.maxBatch, windows - first);
      const nll = await engine.nll(tokens.subarray(first * seqlen, (first + count) * seqlen), windowTargets(tokens, seqlen, first, count));
      pushWindowMeans(nll, count, seqlen, windowNll);
      opts.progress?.update((first + count) * units, 'model');
    }
  } finally {
    await engine.release();
  }
  return windowNll;
}

async function layerMajorNll(model: ModelSource | AsyncBlockModel, tokens: Int32Array, windows: number, opts: PerplexityOptions): Promise<number[]> {
  const { spec } = model;
  const { seqlen } = opts;
  const rope = ropeTables(spec, seqlen);
  const blockEngine = opts.engines?.block ?? await BlockEngine.create(spec, seqlen, { ...opts, stats: 'none' });
  const headEngine = opts.engines?.head ?? await HeadEngine.create(spec, seqlen, { ...opts, output: 'nll' });
  const batchSize = blockEngine.maxBatch;
  // Whole engine batches per group, as many as the activation budget holds (at least one).
  const budget = opts.activationBudgetBytes ?? 1 << 30;
  const groupSize = batchSize * Math.max(1, Math.floor(budget / WindowPass.bytes(batchSize, seqlen, spec.hiddenSize)));

  const embedding = model.readEmbedding();
  const finalNorm = model.readFinalNorm();
  const lmHead = model.readLmHead();
  const windowNll: number[] = [];
  let doneUnits = 0;
  try {
    for (let groupFirst = 0; groupFirst < windows; groupFirst += groupSize) {
      const pass = new WindowPass(tokens, seqlen, groupFirst, Math.min(windows, groupFirst + groupSize), embedding, spec.hiddenSize, batchSize);
      for (let layer = 0; layer < spec.numLayers; layer++) {
        await pass.applyBlock(blockEngine, await model.readBlock(layer), rope, (count) => opts.progress?.update((doneUnits += count), `layer ${layer + 1}/${spec.numLayers}`));
      }
      await pass.finish(headEngine, finalNorm, lmHead, windowNll, (count) => opts.progress?.update((doneUnits += count), 'head'));
    }
  } finally {
    if (!opts.engines) {
      await blockEngine.release();
      await headEngine.release();
    }
  }
  return windowNll;
}

/**
 * Windows [first, end) of a token stream on their way through a model layer-major, as engine
 * batches of `batchSize` windows: embedded once, then each decoder block applied to every batch in
 * layer order (`applyBlock`), then the head's NLL (`finish`). Holds the windows' hidden states
 * ([windows·seqlen, hidden] floats), never weights: a caller that produces the blocks one at a
 * time (a pruning run) measures its model with one block in memory.
 */
export class WindowPass {
  private readonly batches: { first: number; count: number; hidden: Float32Array }[] = [];

  constructor(
    private readonly tokens: Int32Array,
    private readonly seqlen: number,
    first: number,
    end: number,
    embedding: Float32Array,
    private readonly hiddenSize: number,
    batchSize: number,
  ) {
    for (let at = first; at < end; at += batchSize) {
      const count = Math.min(batchSize, end - at);
      this.batches.push({ first: at, count, hidden: embed(tokens.subarray(at * seqlen, (at + count) * seqlen), embedding, hiddenSize) });
    }
  }

  /** Bytes of hidden states a pass over `windows` windows holds. */
  static bytes(windows: number, seqlen: number, hiddenSize: number): number {
    return 4 * windows * seqlen * hiddenSize;
  }

  /** Runs every batch through one block (its weights in the form that suits their number: BlockEngine.withWeights). */
  async applyBlock(engine: BlockEngine, weights: BlockWeights, rope: RopeTables, onBatch?: (windows: number) => void): Promise<void> {
    const windows = this.batches.reduce((sum, b) => sum + b.count, 0);
    await engine.withWeights(weights, windows, async (form) => {
      for (const batch of this.batches) {
        batch.hidden = (await engine.run(batch.hidden, form, rope)).hidden;
        onBatch?.(batch.count);
      }
    });
  }

  /** Appends each window's mean next-token NLL to `out`, in window order. */
  async finish(engine: HeadEngine, finalNorm: Float32Array, lmHead: Float32Array, out: number[], onWindows?: (windows: number) => void): Promise<void> {
    const windowSize = this.seqlen * this.hiddenSize;
    for (const { first, count, hidden } of this.batches) {
      for (let w = 0; w < count; w += engine.maxBatch) {
        const n = Math.min(engine.maxBatch, count - w);
        const nll = await engine.nll(n === count ? hidden : hidden.slice(w * windowSize, (w + n) * windowSize), finalNorm, lmHead, windowTargets(this.tokens, this.seqlen, first + w, n));
        pushWindowMeans(nll, n, this.seqlen, out);
        onWindows?.(n);
      }
    }
  }
}
