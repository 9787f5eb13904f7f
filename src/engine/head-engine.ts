/**
 * HeadEngine: final norm + lm_head + per-token NLL (or logits, for tests; or target log-probability
 * and greedy flag, for log-likelihood scoring) on a batch of B sequences of `seqLen` tokens
 * (B = 1 … maxBatch per run; the head graph itself takes any count). With seqLen 1 it takes any
 * number of independent rows.
 */
import assert from 'node:assert/strict';
import type ort from 'onnxruntime-node';
import { buildHeadGraph, type HeadOutput } from './head-graph.ts';
import { headBatchSize } from './batch-size.ts';
import { createSession, floatData, floatTensor, int64Tensor, type EngineOptions } from './session.ts';
import type { ModelSpec } from '../model/spec.ts';

export class HeadEngine {
  private readonly sessions = new Map<HeadOutput, Promise<ort.InferenceSession>>();

  private constructor(
    private readonly spec: ModelSpec,
    readonly seqLen: number,
    /** Sequences per run its callers should use (bounded by the [tokens, vocab] logits' memory). */
    readonly maxBatch: number,
    private readonly opts: EngineOptions,
  ) {}

  /** `output` selects the session built up front; the other one is built on first use. */
  static async create(spec: ModelSpec, seqLen: number, opts: EngineOptions & { output?: HeadOutput; maxBatch?: number }): Promise<HeadEngine> {
    const maxBatch = opts.maxBatch ?? headBatchSize(spec, seqLen);
    assert.ok(Number.isInteger(maxBatch) && maxBatch >= 1, 'maxBatch must be a positive integer');
    const engine = new HeadEngine(spec, seqLen, maxBatch, { device: opts.device, threads: opts.threads, spinning: opts.spinning });
    await engine.session(opts.output ?? 'nll');
    return engine;
  }

  /**
   * −log p(targets[t] | hidden[t]) for each position t of B sequences: hidden [B·seqLen, hidden],
   * targets [B·seqLen] → [B·seqLen].
   */
  async nll(hidden: Float32Array, finalNorm: Float32Array, lmHead: Float32Array, targets: Int32Array | BigInt64Array): Promise<Float32Array> {
    const tokens = this.tokenCount(hidden);
    assert.equal(targets.length, tokens, 'targets must be [B·seqLen], one per hidden row');
    const targets64 = targets instanceof BigInt64Array ? targets : BigInt64Array.from(targets, (t) => BigInt(t));
    const feeds = { ...this.feeds(hidden, tokens, finalNorm, lmHead), targets: int64Tensor(targets64, [tokens]) };
    const results = await (await this.session('nll')).run(feeds);
    return floatData(results.nll, 'nll');
  }

  /**
   * log p(targets[t] | hidden[t]) and whether targets[t] is the argmax (1) or not (0), per row.
   */
  async targetScores(hidden: Float32Array, finalNorm: Float32Array, lmHead: Float32Array, targets: BigInt64Array): Promise<{ logProb: Float32Array; greedy: Float32Array }> {
    const tokens = this.tokenCount(hidden);
    assert.equal(targets.length, tokens, 'targets must be [B·seqLen], one per hidden row');
    const feeds = { ...this.feeds(hidden, tokens, finalNorm, lmHead), targets: int64Tensor(targets, [tokens]) };
    const results = await (await this.session('target')).run(feeds);
    return { logProb: floatData(results.logprob, 'logprob'), greedy: floatData(results.greedy, 'greedy') };
  }

  /** Logits [B·seqLen, vocab] row-major. */
  async logits(hidden: Float32Array, finalNorm: Float32Array, lmHead: Float32Array): Promise<Float32Array> {
    const results = await (await this.session('logits')).run(this.feeds(hidden, this.tokenCount(hidden), finalNorm, lmHead));
    return floatData(results.logits, 'logits');
  }

  async release(): Promise<void> {
    for (const session of this.sessions.values()) await (await session).release();
    this.sessions.clear();
  }

  private tokenCount(hidden: Float32Array): number {
    const sequences = hidden.length / (this.seqLen * this.spec.hiddenSize);
    assert.ok(Number.isInteger(sequences) && sequences >= 1, 'hidden must be [B·seqLen, hiddenSize]');
    return sequences * this.seqLen;
  }

  private session(output: HeadOutput): Promise<ort.InferenceSession> {
    let session = this.sessions.get(output);
    if (!session) {
      session = createSession(buildHeadGraph(this.spec, { output }), this.opts);
      this.sessions.set(output, session);
    }
    return session;
  }

  private feeds(hidden: Float32Array, tokens: number, finalNorm: Float32Array, lmHead: Float32Array): Record<string, ort.Tensor> {
    const { hiddenSize: h, vocabSize: vocab } = this.spec;
    assert.equal(lmHead.length, vocab * h, 'lm_head must be [vocab, hiddenSize]');
    return {
      hidden: floatTensor(hidden, [tokens, h]),
      'norm.weight': floatTensor(finalNorm, [h]),
      'lm_head.weight': floatTensor(lmHead, [vocab, h]),
    };
  }
}
