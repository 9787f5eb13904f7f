/**
 * The decoder-block graph: one Llama-style pre-norm block for a batch of B sequences of `seqLen`
 * tokens each (B is a symbolic dimension: each run chooses it),
 *
 *   h   = x + o_proj(Attention(RMSNorm(x)))
 *   out = h + down_proj(silu(gate_proj(n)) · up_proj(n)),   n = RMSNorm(h)
 *
 * with the block's weights as graph inputs (named as in `blockTensorNames`), so a single session
 * runs every layer of a model, dense or pruned; or, `buildConstantBlockGraph`, one layer's weights
 * as constants, which ORT pre-packs once per session (`decoderBlock` also serves the whole-model
 * graph, model-graph.ts). Tokens travel as [B·seqLen, hidden] rows, so every
 * projection is one Gemm over the whole batch; attention is per sequence (each starts at position
 * 0, causal within itself; or, packed, at given positions under a given mask). A statistics graph
 * outputs, instead of the block's output, for each distinct linear input (LINEAR_INPUT_GROUP),
 * Σ_t x² per sequence and input channel and, for 'full', Σ_t x per sequence and XᵀX summed over
 * the batch.
 */
import { GraphBuilder, INT64, type ExternalData } from './onnx-builder.ts';
import {
  blockTensorNames, blockTensorShape, inputGroupWidth,
  type BlockWeights, type LinearInputGroup, type LinearName, type ModelSpec,
} from '../model/spec.ts';
import { rotaryDim } from '../model/rope.ts';
import { invariant } from '../util/errors.ts';

export type StatsMode = 'none' | 'sqnorm' | 'full';

export interface BlockGraphOptions {
  seqLen: number;
  stats: StatsMode;
  /**
   * Packed rows: cos/sin come per token ([B·seqLen, d], each token's own position) and an additive
   * attention mask [B, seqLen, seqLen] (0 where a query may attend to a key, MASKED elsewhere)
   * replaces the causal one, so one row can hold several sequences that share a prefix (a tree of
   * tokens). Every key must sit at or before its queries in the row: chunks skip later keys.
   */
  packed?: boolean;
}

/** Symbolic dimensions: tokens of the batch (B·seqLen) and sequences of the batch (B). */
export const TOKENS = 'tokens';
const SEQUENCES = 'sequences';

/** Large enough that exp(score + MASKED − max) is exactly 0, small enough to stay finite. */
export const MASKED = -1e30;

/** Bytes of one block's float32 weights. */
export function blockWeightBytes(spec: ModelSpec): number {
  let values = 0;
  for (const name of blockTensorNames(spec)) values += blockTensorShape(spec, name).reduce((a, b) => a * b, 1);
  return 4 * values;
}

/** The block graph with the weights as inputs, named as in `blockTensorNames`. */
export function buildBlockGraph(spec: ModelSpec, opts: BlockGraphOptions): Uint8Array {
  return blockGraph(spec, opts, (g, name, shape) => g.input(name, shape)).toBytes();
}

/**
 * The block graph with `weights` as constants (external data, copied by ORT when the session
 * starts): the same inputs otherwise, and the same outputs.
 */
export function buildConstantBlockGraph(spec: ModelSpec, opts: BlockGraphOptions, weights: BlockWeights): { bytes: Uint8Array; externalData: ExternalData[] } {
  const g = blockGraph(spec, opts, (builder, name, shape) => {
    const data = weights[name];
    invariant(data, () => `block weight ${name} missing`);
    return builder.weight(name, data, shape);
  }, true);
  return { bytes: g.toBytes(), externalData: g.externalData() };
}

/**
 * The block graph, its weights made by `tensor`: for each weight up front, or, `lazy`, when the
 * graph first reads it (a statistics graph never reads down_proj's, and ORT warns of unused
 * constants, while unused inputs are fine and keep one set of feeds for every graph).
 */
function blockGraph(
  spec: ModelSpec, opts: BlockGraphOptions, tensor: (g: GraphBuilder, name: string, shape: number[]) => string, lazy = false,
): GraphBuilder {
  const L = opts.seqLen;
  const g = new GraphBuilder('decoder_block');
  const r = rotaryDim(spec); // channels turned by rotary (the first r of each head)
  const x = g.input('hidden', [TOKENS, spec.hiddenSize]);
  const ropeRows = opts.packed ? TOKENS : L;
  const attention: BlockAttention = { cos: g.input('cos', [ropeRows, r]), sin: g.input('sin', [ropeRows, r]) };
  if (opts.packed) attention.packedMask = g.input('attention_mask', [SEQUENCES, L, L]);
  const w: Record<string, string> = {};
  for (const name of blockTensorNames(spec)) {
    const make = (): string => tensor(g, name, blockTensorShape(spec, name));
    if (!lazy) {
      w[name] = make();
      continue;
    }
    let value: string | undefined;
    Object.defineProperty(w, name, { enumerable: true, get: () => (value ??= make()) });
  }
  const block = decoderBlock(g, spec, L, x, w, attention);
  // A statistics graph stops at the last linear's input: no statistic needs down_proj's product
  // (a quarter of the block's weights), and its callers take the next layer's inputs from a plain
  // run of the pruned block.
  if (opts.stats === 'none') g.output(block.output(), 'hidden_out', [TOKENS, spec.hiddenSize]);

  // ---- per-linear-input statistics ----
  if (opts.stats !== 'none') {
    const { groupInputs } = block;
    // Sums over each sequence's tokens: [B·L, w] viewed as [B, L, w], then ones[1, L]·X per
    // sequence. Measured on TinyLlama's shape: the MatMul adds ~2 % to the block, ReduceSum over
    // the middle axis ~10 %, ReduceSumSquare far more.
    const ones = g.initializer('sequence_ones', new Float32Array(L).fill(1), [1, L]);
    for (const [group, input] of Object.entries(groupInputs) as [LinearInputGroup, string][]) {
      const width = inputGroupWidth(spec, group);
      const perSequence = (t: string): string => g.reshape(g.matmul(ones, g.reshape(t, [-1, L, width])), [-1, width]);
      g.output(perSequence(g.mul(input, input)), `${group}.sqsum`, [SEQUENCES, width]);
      if (opts.stats === 'full') {
        g.output(perSequence(input), `${group}.sum`, [SEQUENCES, width]);
        // One XᵀX over all B·L rows: the batch's grams summed in the product itself.
        g.output(g.gemm(input, input, { transA: true }), `${group}.gram`, [width, width]);
      }
    }
  }
  return g;
}

/** What a block's attention reads besides its weights: values of the graph it is appended to. */
export interface BlockAttention {
  /** Rotary tables [L, r] (r = rotaryDim), or per token [B·L, r] when packed. */
  cos: string;
  sin: string;
  /** Packed rows: the additive attention mask [B, L, L] that replaces the causal one. */
  packedMask?: string;
}

/**
 * Appends one decoder block to `g` for `x` [B·L, hidden]: the input of each linear-input group
 * (for statistics), and `output()`, which appends the last projection and residual and returns
 * the block's output. `w` names the value of each block tensor (graph inputs or constants).
 */
export function decoderBlock(
  g: GraphBuilder, spec: ModelSpec, L: number, x: string, w: Record<string, string>, attention: BlockAttention,
): { output: () => string; groupInputs: Record<LinearInputGroup, string> } {
  const { numHeads: H, numKvHeads: KV, headDim: d, rmsNormEps: eps } = spec;
  const G = H / KV; // query heads per key/value head
  const r = rotaryDim(spec);

  // y = x·Wᵀ (+ b): Gemm reads the stored [d_out, d_in] weight with transB, no transposed copy.
  const linear = (input: string, name: LinearName): string =>
    g.gemm(input, w[`${name}.weight`], { transB: true, bias: w[`${name}.bias`] });
  // residual + x·Wᵀ: without a bias the residual is the Gemm's C operand, which saves the separate
  // Add's pass over the [B·L, hidden] product.
  const linearOnto = (residual: string, input: string, name: LinearName): string => (w[`${name}.bias`] === undefined
    ? g.gemm(input, w[`${name}.weight`], { transB: true, bias: residual })
    : g.add(residual, linear(input, name)));

  // ---- attention ----
  // Per-head tensors are [B, L, heads, d]; −1 stands for the batch's B.
  const attnIn = g.rmsNorm(x, w['input_layernorm.weight'], eps);
  let q = g.reshape(linear(attnIn, 'self_attn.q_proj'), [-1, L, H, d]);
  let k = g.reshape(linear(attnIn, 'self_attn.k_proj'), [-1, L, KV, d]);
  const v = g.reshape(linear(attnIn, 'self_attn.v_proj'), [-1, L, KV, d]);
  if (spec.qkNorm) {
    q = g.rmsNorm(q, w['self_attn.q_norm.weight'], eps);
    k = g.rmsNorm(k, w['self_attn.k_norm.weight'], eps);
  }

  // Rotary, rotate_half layout (x·cos + rotate_half(x)·sin, rotate_half(x) = [−x₂, x₁]) by ORT's
  // RotaryEmbedding over [B, L, heads·d]: the first r channels of each head turn, in halves of r/2,
  // and the rest pass through (partial rotary). It reads one half of each table row (both halves
  // are equal), at the token's position: 0 … L−1 per sequence, or each token's own row when packed.
  const rope = rotaryCaches(g, attention, L, r);
  const turn = (t: string, heads: number): string => g.reshape(
    g.rotaryEmbedding(g.reshape(t, [-1, L, heads * d]), rope.positions, rope.cos, rope.sin, { numHeads: heads, rotaryDim: r }),
    [-1, L, heads, d],
  );
  q = turn(q, H);
  k = turn(k, KV);

  // The mask broadcasts over the scores [B, KV, G, C, keys]: [L, L] causal, or [B, 1, 1, L, L].
  const mask = attention.packedMask !== undefined
    ? { value: g.reshape(attention.packedMask, [-1, 1, 1, L, L]), axes: [3, 4] }
    : { value: causalMask(g, L), axes: [0, 1] };
  const attnOut = causalAttention(g, q, k, v, mask, { L, KV, G, d });
  const afterAttn = linearOnto(x, attnOut, 'self_attn.o_proj');

  // ---- MLP (SwiGLU) ----
  const mlpIn = g.rmsNorm(afterAttn, w['post_attention_layernorm.weight'], eps);
  const gated = g.mul(g.silu(linear(mlpIn, 'mlp.gate_proj')), linear(mlpIn, 'mlp.up_proj'));
  return {
    output: () => linearOnto(afterAttn, gated, 'mlp.down_proj'),
    groupInputs: { qkv: attnIn, o: attnOut, gateup: mlpIn, down: gated },
  };
}

/**
 * Query rows per attention chunk: keeps score tensors small and skips most masked work. 64 beat
 * 128 and 256 on stories260K (head_dim 8: the score tensors' memory traffic, not FLOPs, is the
 * cost) and matched 256 on TinyLlama's shape at seqLen 2048.
 */
export const ATTENTION_CHUNK = 64;

/**
 * Causal grouped-query attention, per sequence. q [B, L, H, d], k and v [B, L, KV, d] → [B·L, H·d];
 * `mask` is additive, its query and key axes named by `axes`. The scale 1/√d is the score
 * product's alpha, and keys stay [keys, d] (the product reads them transposed), so a chunk's keys
 * are a contiguous prefix of each head's rows.
 *
 * No repeat_kv copies: the G query heads that share a kv head are stacked along rows, giving one
 * [G·C, d]·[d, keys] product per sequence and kv head (head index = kv·G + group, as Hugging Face
 * orders them). Queries go in chunks of C rows; chunk [s, e) only attends to keys [0, e), so the
 * L×L score square is computed about half (plus the diagonal blocks), in tensors of
 * [B, KV, G·C, e].
 */
function causalAttention(
  g: GraphBuilder, q: string, k: string, v: string,
  mask: { value: string; axes: number[] },
  { L, KV, G, d }: { L: number; KV: number; G: number; d: number },
): string {
  const kByHead = g.transpose(k, [0, 2, 1, 3]); // [B, KV, L, d]
  const vByHead = g.transpose(v, [0, 2, 1, 3]); // [B, KV, L, d]
  const scale = 1 / Math.sqrt(d);
  const chunks: string[] = [];
  for (let start = 0; start < L; start += ATTENTION_CHUNK) {
    const end = Math.min(L, start + ATTENTION_CHUNK);
    const C = end - start;
    const qChunk = start === 0 && end === L ? q : g.slice(q, [start], [end], [1]); // [B, C, H, d]
    const keys = end === L ? kByHead : g.slice(kByHead, [0], [end], [2]); // [B, KV, e, d]
    const values = end === L ? vByHead : g.slice(vByHead, [0], [end], [2]); // [B, KV, e, d]
    const maskChunk = start === 0 && end === L ? mask.value : g.slice(mask.value, [start, 0], [end, end], mask.axes); // [C, e]

    const qGrouped = g.reshape(g.transpose(g.reshape(qChunk, [-1, C, KV, G, d]), [0, 2, 3, 1, 4]), [-1, KV, G * C, d]);
    const scores = g.reshape(g.fusedMatMul(qGrouped, keys, { transB: true, alpha: scale }), [-1, KV, G, C, end]);
    const probs = g.reshape(g.softmax(g.add(scores, maskChunk), -1), [-1, KV, G * C, end]);
    const context = g.matmul(probs, values); // [B, KV, G·C, d]
    chunks.push(g.transpose(g.reshape(context, [-1, KV, G, C, d]), [0, 3, 1, 2, 4])); // [B, C, KV, G, d]
  }
  const byToken = chunks.length === 1 ? chunks[0] : g.concat(chunks, 1); // [B, L, KV, G, d]
  return g.reshape(byToken, [-1, KV * G * d]);
}

/** The [L, L] causal mask of each graph, built once however many blocks the graph holds. */
const causalMasks = new WeakMap<GraphBuilder, Map<number, string>>();

/** [L, L] additive causal mask: 0 on and below the diagonal, MASKED above (constant-folded by ORT). */
function causalMask(g: GraphBuilder, L: number): string {
  let masks = causalMasks.get(g);
  if (!masks) causalMasks.set(g, (masks = new Map()));
  let mask = masks.get(L);
  if (mask === undefined) {
    const ones = g.op('Expand', [g.scalar(1), g.int64s([L, L])]);
    const strictlyUpper = g.op('Trilu', [ones, g.initializer(`mask_diagonal_offset_${L}`, [1], [], INT64)], { upper: 1 });
    mask = g.mul(strictlyUpper, g.scalar(MASKED));
    masks.set(L, mask);
  }
  return mask;
}

/** Each graph's rotary caches, built once however many blocks the graph holds. */
const rotaryCachesOf = new WeakMap<GraphBuilder, Map<string, { cos: string; sin: string; positions: string }>>();

/**
 * RotaryEmbedding's inputs from the [rows, r] tables: the first half of each row ([rows, r/2]) and
 * the position of each token in them: [0] (positions 0 … L−1 of every sequence) or, when packed
 * (a table row per token), 0 … B·L−1 as [B, L].
 */
function rotaryCaches(g: GraphBuilder, attention: BlockAttention, L: number, r: number): { cos: string; sin: string; positions: string } {
  let caches = rotaryCachesOf.get(g);
  if (!caches) rotaryCachesOf.set(g, (caches = new Map()));
  const key = `${attention.cos}|${attention.sin}|${L}`;
  let result = caches.get(key);
  if (result === undefined) {
    const firstHalf = (table: string): string => g.slice(table, [0], [r / 2], [1]);
    let positions: string;
    if (attention.packedMask === undefined) {
      positions = g.int64s([0]);
    } else {
      const rows = g.reshape(g.op('Shape', [attention.cos], { start: 0, end: 1 }), []);
      positions = g.reshape(g.op('Range', [g.int64Scalar(0), rows, g.int64Scalar(1)]), [-1, L]);
    }
    result = { cos: firstHalf(attention.cos), sin: firstHalf(attention.sin), positions };
    caches.set(key, result);
  }
  return result;
}
