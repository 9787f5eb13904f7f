/**
 * HeadEngine: final norm + lm_head + per-token NLL (or logits, for tests) on one sequence.
 */
import assert from 'node:assert/strict';
import type ort from 'onnxruntime-node';
import { buildHeadGraph, type HeadOutput } from './head-graph.ts';
import { createSession, floatData, floatTensor, int64Tensor, type EngineOptions } from './session.ts';
import type { ModelSpec } from '../model/spec.ts';

export class HeadEngine {
  private readonly sessions = new Map<HeadOutput, Promise<ort.InferenceSession>>();

  private constructor(
    private readonly spec: ModelSpec,
    readonly seqLen: number,
    private readonly opts: EngineOptions,
  ) {}

  /** `output` selects the session built up front; the other one is built on first use. */
  static async create(spec: ModelSpec, seqLen: number, opts: EngineOptions & { output?: HeadOutput }): Promise<HeadEngine> {
    const engine = new HeadEngine(spec, seqLen, { device: opts.device, threads: opts.threads });
    await engine.session(opts.output ?? 'nll');
    return engine;
  }

  /** −log p(targets[t] | hidden[t]) for each position t: [seqLen]. */
  async nll(hidden: Float32Array, finalNorm: Float32Array, lmHead: Float32Array, targets: Int32Array | BigInt64Array): Promise<Float32Array> {
    assert.equal(targets.length, this.seqLen, 'targets must be [seqLen]');
    const targets64 = targets instanceof BigInt64Array ? targets : BigInt64Array.from(targets, (t) => BigInt(t));
    const feeds = { ...this.feeds(hidden, finalNorm, lmHead), targets: int64Tensor(targets64, [this.seqLen]) };
    const results = await (await this.session('nll')).run(feeds);
    return floatData(results.nll, 'nll');
  }

  /** Logits [seqLen, vocab] row-major. */
  async logits(hidden: Float32Array, finalNorm: Float32Array, lmHead: Float32Array): Promise<Float32Array> {
    const results = await (await this.session('logits')).run(this.feeds(hidden, finalNorm, lmHead));
    return floatData(results.logits, 'logits');
  }

  async release(): Promise<void> {
    for (const session of this.sessions.values()) await (await session).release();
    this.sessions.clear();
  }

  private session(output: HeadOutput): Promise<ort.InferenceSession> {
    let session = this.sessions.get(output);
    if (!session) {
      session = createSession(buildHeadGraph(this.spec, { seqLen: this.seqLen, output }), this.opts);
      this.sessions.set(output, session);
    }
    return session;
  }

  private feeds(hidden: Float32Array, finalNorm: Float32Array, lmHead: Float32Array): Record<string, ort.Tensor> {
    const { hiddenSize: h, vocabSize: vocab } = this.spec;
    assert.equal(hidden.length, this.seqLen * h, 'hidden must be [seqLen, hiddenSize]');
    assert.equal(lmHead.length, vocab * h, 'lm_head must be [vocab, hiddenSize]');
    return {
      hidden: floatTensor(hidden, [this.seqLen, h]),
      'norm.weight': floatTensor(finalNorm, [h]),
      'lm_head.weight': floatTensor(lmHead, [vocab, h]),
    };
  }
}
