/**
 * Log-likelihood of continuations given contexts, as lm-evaluation-harness's HFLM scores them
 * (`_loglikelihood_tokens`, lm_eval/models/huggingface.py): the model reads
 * (context + continuation)[−(window+1):][:−1] — cut from the left when too long, BOS included in
 * what is cut — and the score is Σ_j log p(continuation_j | everything before it), with
 * is_greedy = every continuation token is the argmax of its log-probabilities.
 *
 * Requests come in groups (one group per document: its choices). Within a group the inputs are
 * merged into a prefix tree of tokens, so a context the choices share — or the common start of
 * WinoGrande's two contexts — runs through the model once. A tree is laid out in one packed row,
 * parents before children: each token attends to its ancestors and itself only (an additive mask)
 * and sits at its own depth as rotary position, so every request sees exactly the attention and
 * positions of its own unpacked sequence. A group whose tree would not fit one row is split into
 * several trees (the shared prefix then runs once per row).
 *
 * Rows are padded to a few lengths (2^k and 1.5·2^k), one packed engine per length, several rows
 * per run (the engine's batch size). Rows go through the model layer-major in groups held within an
 * activation budget (each block is read once per group); after the last block only the hidden rows
 * that predict a continuation token are gathered and sent through the head, which returns
 * log p(target) and the argmax flag per row, so no [tokens, vocab] array reaches JavaScript.
 * The plan (rows, padding, batches) depends only on the requests and the model shape, never on
 * the machine, so the same inputs give the same numbers.
 */
import { checkModelSource, type ModelSource } from '../model/source.ts';
import { checkSeqlen, checkTokenIds, type ModelSpec } from '../model/spec.ts';
import { ropeTables, rotaryDim, type RopeTables } from '../model/rope.ts';
import { BlockEngine } from '../engine/block-engine.ts';
import { HeadEngine } from '../engine/head-engine.ts';
import { MASKED } from '../engine/block-graph.ts';
import { blockBatchSize, headBatchSize } from '../engine/batch-size.ts';
import { embed } from '../engine/forward.ts';
import { checkDevice, checkThreads, type EngineOptions } from '../engine/session.ts';
import { checkProgress, type Progress } from '../util/progress.ts';
import { UserError, checkField } from '../util/errors.ts';
import { checkFlag, checkInteger, checkKnownFields, describeValue } from '../util/fields.ts';
import { checkActivationBudget } from './perplexity.ts';

export interface LoglikelihoodRequest {
  /** Context token ids, BOS first. */
  context: Int32Array;
  /** Continuation token ids (at least one). */
  continuation: Int32Array;
}

export interface LoglikelihoodScore {
  /** Σ log p(continuation token | preceding tokens), nats. */
  logLikelihood: number;
  /** Every continuation token is the model's argmax. */
  isGreedy: boolean;
  /** The input was cut from the left to fit the window. */
  truncated: boolean;
}

export interface PlanOptions {
  /** Most tokens the model reads at once (the harness's max_length). */
  window: number;
  /** Merge each group's requests into shared rows (default); false gives every request its own row. */
  share?: boolean;
}

/** One packed row: a forest of token trees, parents before children. */
interface PackedRow {
  tokens: Int32Array;
  /** Row index of each token's parent, −1 for a root. */
  parents: Int32Array;
  /** Rotary position (depth in its tree). */
  positions: Int32Array;
  /** Per continuation token: the row index that predicts it, the token, and its request. */
  predictors: Int32Array;
  targets: Int32Array;
  owners: Int32Array;
  /** Padded length (the engine's sequence length). */
  length: number;
}

export interface LoglikelihoodPlan {
  window: number;
  /** Requests per group, in order (results come back in the same shape). */
  groupSizes: number[];
  truncated: boolean[];
  /** Rows sorted by padded length (stable). */
  rows: PackedRow[];
  /** Tokens the requests hold unpacked (inputs only), and the tokens of the packed rows before padding. */
  inputTokens: number;
  packedTokens: number;
}

const MIN_ROW = 16;

/** The padded row length for n tokens: the least of 16, 24, 32, 48, 64, 96, … (2^k, 1.5·2^k) ≥ n. */
export function paddedLength(n: number): number {
  let length = MIN_ROW;
  for (;;) {
    if (length >= n) return length;
    if (length * 1.5 >= n) return length * 1.5;
    length *= 2;
  }
}

/** Throws a FieldError naming the first group or request that is not a list of { context, continuation } token ids. */
function checkRequestGroups(groups: unknown): void {
  checkField(Array.isArray(groups), 'groups', () => `must be a list of request groups (lists of { context, continuation }), got ${describeValue(groups)}`);
  groups.forEach((group: unknown, g) => {
    checkField(Array.isArray(group), `groups[${g}]`, () => `must be a list of requests { context, continuation }, got ${describeValue(group)}`);
    group.forEach((request: Partial<LoglikelihoodRequest> | null, r) => {
      for (const part of ['context', 'continuation'] as const) {
        const ids = request?.[part];
        checkField(ids instanceof Int32Array, `groups[${g}][${r}].${part}`, () => `must be an Int32Array of token ids, got ${describeValue(ids)}`);
      }
    });
  });
}

/** Builds the rows for `groups` of requests (see the file comment). */
export function planLoglikelihoods(groups: readonly (readonly LoglikelihoodRequest[])[], opts: PlanOptions): LoglikelihoodPlan {
  checkKnownFields(opts, '', ['window', 'share']);
  const { window } = opts;
  checkInteger('window', window, 2);
  const capacity = paddedLength(window);
  const share = opts.share === undefined || checkFlag('share', opts.share);
  checkRequestGroups(groups);
  const rows: PackedRow[] = [];
  const truncated: boolean[] = [];
  let flat = 0;
  let inputTokens = 0;
  let packedTokens = 0;
  for (const group of groups) {
    let tree = new TokenTree();
    for (const request of group) {
      const { continuation } = request;
      if (continuation.length < 1) throw new UserError('a continuation tokenized to no tokens');
      if (continuation.length > window) {
        throw new UserError(`a continuation of ${continuation.length} tokens does not fit the model's window of ${window}`);
      }
      const whole = new Int32Array(request.context.length + continuation.length);
      whole.set(request.context);
      whole.set(continuation, request.context.length);
      const start = Math.max(0, whole.length - (window + 1));
      const input = whole.subarray(start, whole.length - 1);
      truncated.push(start > 0);
      inputTokens += input.length;
      if (!share || tree.size + tree.newNodes(input) > capacity) {
        if (tree.size > 0) rows.push(tree.toRow());
        tree = new TokenTree();
      }
      tree.add(input, continuation, flat++);
    }
    if (tree.size > 0) rows.push(tree.toRow());
  }
  for (const row of rows) packedTokens += row.tokens.length;
  // Stable sort by padded length: rows of one length run together.
  const order = rows.map((row, index) => ({ row, index })).sort((a, b) => a.row.length - b.row.length || a.index - b.index);
  return { window, groupSizes: groups.map((g) => g.length), truncated, rows: order.map((o) => o.row), inputTokens, packedTokens };
}

/** Progress units of scoring a plan: one per row per block, plus one per row for the head. */
export const loglikelihoodWorkUnits = (spec: ModelSpec, plan: LoglikelihoodPlan): number => plan.rows.length * (spec.numLayers + 1);

class TokenTree {
  private readonly tokens: number[] = [];
  private readonly parents: number[] = [];
  private readonly positions: number[] = [];
  private readonly children = new Map<string, number>();
  private readonly predictors: number[] = [];
  private readonly targets: number[] = [];
  private readonly owners: number[] = [];

  get size(): number {
    return this.tokens.length;
  }

  /** Nodes that adding `input` would create. */
  newNodes(input: Int32Array): number {
    let node = -1;
    for (let i = 0; i < input.length; i++) {
      const child = this.children.get(`${node},${input[i]}`);
      if (child === undefined) return input.length - i;
      node = child;
    }
    return 0;
  }

  add(input: Int32Array, continuation: Int32Array, owner: number): void {
    const path = new Int32Array(input.length);
    let node = -1;
    for (let i = 0; i < input.length; i++) {
      const key = `${node},${input[i]}`;
      let child = this.children.get(key);
      if (child === undefined) {
        child = this.tokens.length;
        this.tokens.push(input[i]);
        this.parents.push(node);
        this.positions.push(i);
        this.children.set(key, child);
      }
      path[i] = node = child;
    }
    // Continuation token j is predicted by input position len(input) − len(continuation) + j.
    const first = input.length - continuation.length;
    for (let j = 0; j < continuation.length; j++) {
      this.predictors.push(path[first + j]);
      this.targets.push(continuation[j]);
      this.owners.push(owner);
    }
  }

  toRow(): PackedRow {
    return {
      tokens: Int32Array.from(this.tokens),
      parents: Int32Array.from(this.parents),
      positions: Int32Array.from(this.positions),
      predictors: Int32Array.from(this.predictors),
      targets: Int32Array.from(this.targets),
      owners: Int32Array.from(this.owners),
      length: paddedLength(this.tokens.length),
    };
  }
}

export interface ScoreOptions extends EngineOptions {
  /** Upper bound on the hidden states and masks held for one group of rows (default 1 GiB). */
  activationBudgetBytes?: number;
  progress?: Progress;
}

/**
 * Refuses a plan that is not planLoglikelihoods' for this model: rows past the model's context
 * run positions it was never trained on, and token ids outside its vocabulary read past the
 * embedding or score a row of another matrix. One pass over the plan's tokens.
 */
function checkPlan(plan: unknown, spec: ModelSpec): asserts plan is LoglikelihoodPlan {
  const { rows, truncated, groupSizes } = (plan ?? {}) as Partial<LoglikelihoodPlan>;
  checkField(Array.isArray(rows) && Array.isArray(truncated) && Array.isArray(groupSizes), 'plan', () => `must be a plan from planLoglikelihoods, got ${describeValue(plan)}`);
  checkSeqlen('plan.window', (plan as LoglikelihoodPlan).window, spec);
  rows.forEach((row, i) => {
    checkTokenIds(`plan.rows[${i}].tokens`, row.tokens, spec);
    checkTokenIds(`plan.rows[${i}].targets`, row.targets, spec);
  });
}

/** Scores a plan: one result per request, in the groups' shape. */
export async function scoreLoglikelihoods(model: ModelSource, plan: LoglikelihoodPlan, opts: ScoreOptions): Promise<LoglikelihoodScore[][]> {
  checkKnownFields(opts, '', ['device', 'threads', 'spinning', 'activationBudgetBytes', 'progress']);
  checkDevice('device', opts.device);
  checkThreads(opts.threads);
  checkFlag('spinning', opts.spinning);
  checkActivationBudget(opts.activationBudgetBytes);
  checkProgress('progress', opts.progress);
  checkModelSource('model', model);
  checkPlan(plan, model.spec);
  const { spec } = model;
  const h = spec.hiddenSize;
  const requestCount = plan.truncated.length;
  const sums = new Float64Array(requestCount);
  const greedy = new Uint8Array(requestCount).fill(1);
  const rope = ropeTables(spec, plan.window);
  const budget = opts.activationBudgetBytes ?? 1 << 30;
  const engineOptions: EngineOptions = { device: opts.device, threads: opts.threads, spinning: opts.spinning };
  const engines = new Map<number, BlockEngine>();
  const headTokens = headBatchSize(spec, 1);
  const head = await HeadEngine.create(spec, 1, { ...engineOptions, output: 'target', maxBatch: headTokens });
  const embedding = model.readEmbedding();
  const finalNorm = model.readFinalNorm();
  const lmHead = model.readLmHead();
  let doneUnits = 0;

  // Head rows waiting for a run: hidden rows that predict a continuation token.
  const pendingHidden = new Float32Array(headTokens * h);
  const pendingTargets = new BigInt64Array(headTokens);
  const pendingOwners = new Int32Array(headTokens);
  let pending = 0;
  const flushHead = async (): Promise<void> => {
    if (pending === 0) return;
    const { logProb, greedy: isArgmax } = await head.targetScores(
      pendingHidden.subarray(0, pending * h), finalNorm, lmHead, pendingTargets.subarray(0, pending),
    );
    for (let t = 0; t < pending; t++) {
      sums[pendingOwners[t]] += logProb[t];
      if (isArgmax[t] === 0) greedy[pendingOwners[t]] = 0;
    }
    pending = 0;
  };

  try {
    const { rows } = plan;
    for (let groupStart = 0; groupStart < rows.length;) {
      // A group: consecutive rows within the budget (hidden states + masks), whole engine batches.
      const batches: Batch[] = [];
      let bytes = 0;
      let index = groupStart;
      while (index < rows.length) {
        const length = rows[index].length;
        let count = 1;
        const maxBatch = blockBatchSize(spec, length);
        while (count < maxBatch && index + count < rows.length && rows[index + count].length === length) count++;
        const batchBytes = count * 4 * length * (h + length);
        if (batches.length > 0 && bytes + batchBytes > budget) break;
        batches.push(buildBatch(rows.slice(index, index + count), length, embedding, spec, rope));
        bytes += batchBytes;
        index += count;
      }
      groupStart = index;

      for (let layer = 0; layer < spec.numLayers; layer++) {
        const weights = model.readBlock(layer);
        for (const batch of batches) {
          const engine = await engineFor(engines, spec, batch.length, engineOptions);
          batch.hidden = (await engine.run(batch.hidden, weights, batch.rope, batch.mask)).hidden;
          opts.progress?.update((doneUnits += batch.rows.length), `layer ${layer + 1}/${spec.numLayers}`);
        }
      }
      for (const batch of batches) {
        for (let r = 0; r < batch.rows.length; r++) {
          const row = batch.rows[r];
          const base = r * batch.length;
          for (let t = 0; t < row.predictors.length; t++) {
            const source = (base + row.predictors[t]) * h;
            pendingHidden.set(batch.hidden.subarray(source, source + h), pending * h);
            pendingTargets[pending] = BigInt(row.targets[t]);
            pendingOwners[pending] = row.owners[t];
            if (++pending === headTokens) await flushHead();
          }
        }
        opts.progress?.update((doneUnits += batch.rows.length), 'head');
      }
    }
    await flushHead();
  } finally {
    for (const engine of engines.values()) await engine.release();
    await head.release();
  }

  const out: LoglikelihoodScore[][] = [];
  let flat = 0;
  for (const size of plan.groupSizes) {
    const group: LoglikelihoodScore[] = [];
    for (let c = 0; c < size; c++, flat++) {
      group.push({ logLikelihood: sums[flat], isGreedy: greedy[flat] === 1, truncated: plan.truncated[flat] });
    }
    out.push(group);
  }
  return out;
}

interface Batch {
  rows: PackedRow[];
  length: number;
  hidden: Float32Array;
  rope: RopeTables;
  mask: Float32Array;
}

async function engineFor(engines: Map<number, BlockEngine>, spec: ModelSpec, length: number, opts: EngineOptions): Promise<BlockEngine> {
  let engine = engines.get(length);
  if (!engine) {
    engine = await BlockEngine.create(spec, length, { ...opts, stats: 'none', packed: true });
    engines.set(length, engine);
  }
  return engine;
}

/**
 * The engine inputs of rows padded to `length`: embeddings, per-token rope rows, and the mask in
 * which each token sees its ancestors and itself (padding tokens: id 0 at position 0, seeing only
 * themselves).
 */
function buildBatch(rows: PackedRow[], length: number, embedding: Float32Array, spec: ModelSpec, rope: RopeTables): Batch {
  const d = rotaryDim(spec); // rope table width
  const tokens = new Int32Array(rows.length * length);
  const cos = new Float32Array(rows.length * length * d);
  const sin = new Float32Array(rows.length * length * d);
  const mask = new Float32Array(rows.length * length * length).fill(MASKED);
  for (let r = 0; r < rows.length; r++) {
    const row = rows[r];
    const n = row.tokens.length;
    tokens.set(row.tokens, r * length);
    for (let i = 0; i < length; i++) {
      const at = r * length + i;
      const position = i < n ? row.positions[i] : 0;
      cos.set(rope.cos.subarray(position * d, (position + 1) * d), at * d);
      sin.set(rope.sin.subarray(position * d, (position + 1) * d), at * d);
      const maskRow = at * length;
      const parent = i < n ? row.parents[i] : -1;
      // Ancestors of i are its parent's ancestors plus the parent, all at row indices < i.
      if (parent >= 0) mask.copyWithin(maskRow, (r * length + parent) * length, (r * length + parent) * length + parent + 1);
      mask[maskRow + i] = 0;
    }
  }
  return { rows, length, hidden: embed(tokens, embedding, spec.hiddenSize), rope: { cos, sin }, mask };
}
