/**
 * The decoder-block graph: one Llama-style pre-norm block for one sequence of `seqLen` tokens,
 *
 *   h   = x + o_proj(Attention(RMSNorm(x)))
 *   out = h + down_proj(silu(gate_proj(n)) · up_proj(n)),   n = RMSNorm(h)
 *
 * with the block's weights as graph inputs (named as in `blockTensorNames`), so a single session
 * runs every layer of a model, dense or pruned. Optional outputs carry, for each distinct linear
 * input (LINEAR_INPUT_GROUP), Σ_t x² per input channel and, for 'full', Σ_t x and XᵀX.
 */
import { GraphBuilder, INT64 } from './onnx-builder.ts';
import {
  blockTensorNames, blockTensorShape, inputGroupWidth,
  type LinearInputGroup, type LinearName, type ModelSpec,
} from '../model/spec.ts';

export type StatsMode = 'none' | 'sqnorm' | 'full';

export interface BlockGraphOptions {
  seqLen: number;
  stats: StatsMode;
}

/** Large enough that exp(score + MASKED − max) is exactly 0, small enough to stay finite. */
const MASKED = -1e30;

export function buildBlockGraph(spec: ModelSpec, opts: BlockGraphOptions): Uint8Array {
  const L = opts.seqLen;
  const { hiddenSize: h, numHeads: H, numKvHeads: KV, headDim: d, rmsNormEps: eps } = spec;
  const G = H / KV; // query heads per key/value head
  const g = new GraphBuilder('decoder_block');

  const x = g.input('hidden', [L, h]);
  const cos = g.input('cos', [L, d]);
  const sin = g.input('sin', [L, d]);
  const w: Record<string, string> = {};
  for (const name of blockTensorNames(spec)) w[name] = g.input(name, blockTensorShape(spec, name));

  // y = x·Wᵀ (+ b): Gemm reads the stored [d_out, d_in] weight with transB, no transposed copy.
  const linear = (input: string, name: LinearName): string =>
    g.gemm(input, w[`${name}.weight`], { transB: true, bias: w[`${name}.bias`] });

  // ---- attention ----
  const attnIn = g.rmsNorm(x, w['input_layernorm.weight'], eps);
  let q = g.reshape(linear(attnIn, 'self_attn.q_proj'), [L, H, d]);
  let k = g.reshape(linear(attnIn, 'self_attn.k_proj'), [L, KV, d]);
  const v = g.reshape(linear(attnIn, 'self_attn.v_proj'), [L, KV, d]);
  if (spec.qkNorm) {
    q = g.rmsNorm(q, w['self_attn.q_norm.weight'], eps);
    k = g.rmsNorm(k, w['self_attn.k_norm.weight'], eps);
  }

  // Rotary, rotate_half layout: x·cos + rotate_half(x)·sin, where rotate_half(x) = [−x₂, x₁].
  // Written as x·cos + [x₂, x₁]·[−sin₁, sin₂]; the tables broadcast over heads as [L, 1, d].
  // The attention scale 1/√d is folded into q's tables (an [L, d] multiply instead of [H, L, L]).
  const cosTable = g.reshape(cos, [L, 1, d]);
  const [sinFirstHalf, sinSecondHalf] = g.split(sin, 1, 2);
  const sinSigned = g.reshape(g.concat([g.neg(sinFirstHalf), sinSecondHalf], 1), [L, 1, d]);
  const scale = g.scalar(1 / Math.sqrt(d));
  const rotate = (t: string, cosT: string, sinT: string): string => {
    const [firstHalf, secondHalf] = g.split(t, 2, 2);
    return g.add(g.mul(t, cosT), g.mul(g.concat([secondHalf, firstHalf], 2), sinT));
  };
  q = rotate(q, g.mul(cosTable, scale), g.mul(sinSigned, scale));
  k = rotate(k, cosTable, sinSigned);

  const attnOut = causalAttention(g, q, k, v, { L, KV, G, d });
  const afterAttn = g.add(x, linear(attnOut, 'self_attn.o_proj'));

  // ---- MLP (SwiGLU) ----
  const mlpIn = g.rmsNorm(afterAttn, w['post_attention_layernorm.weight'], eps);
  const gated = g.mul(g.silu(linear(mlpIn, 'mlp.gate_proj')), linear(mlpIn, 'mlp.up_proj'));
  const out = g.add(afterAttn, linear(gated, 'mlp.down_proj'));
  g.output(out, 'hidden_out', [L, h]);

  // ---- per-linear-input statistics ----
  if (opts.stats !== 'none') {
    const groupInputs: Record<LinearInputGroup, string> = { qkv: attnIn, o: attnOut, gateup: mlpIn, down: gated };
    for (const [group, input] of Object.entries(groupInputs) as [LinearInputGroup, string][]) {
      const width = inputGroupWidth(spec, group);
      // Mul + ReduceSum: ORT's ReduceSumSquare over axis 0 measured ~5× slower here.
      g.output(g.reduceSum(g.mul(input, input), [0], false), `${group}.sqsum`, [width]);
      if (opts.stats === 'full') {
        g.output(g.reduceSum(input, [0], false), `${group}.sum`, [width]);
        g.output(g.gemm(input, input, { transA: true }), `${group}.gram`, [width, width]);
      }
    }
  }
  return g.toBytes();
}

/** Query rows per attention chunk: keeps score tensors small and skips most masked work. */
const ATTENTION_CHUNK = 256;

/**
 * Causal grouped-query attention. q [L, H, d] (already scaled), k and v [L, KV, d] → [L, H·d].
 *
 * No repeat_kv copies: the G query heads that share a kv head are stacked along rows, giving one
 * [G·C, d]·[d, keys] product per kv head (head index = kv·G + group, as Hugging Face orders them).
 * Queries go in chunks of C rows; chunk [s, e) only attends to keys [0, e), so the L×L score
 * square is computed about half (plus the diagonal blocks), in tensors of [KV, G·C, e].
 */
function causalAttention(
  g: GraphBuilder, q: string, k: string, v: string,
  { L, KV, G, d }: { L: number; KV: number; G: number; d: number },
): string {
  const kTransposed = g.transpose(k, [1, 2, 0]); // [KV, d, L]
  const vByHead = g.transpose(v, [1, 0, 2]); // [KV, L, d]
  const mask = causalMask(g, L);
  const chunks: string[] = [];
  for (let start = 0; start < L; start += ATTENTION_CHUNK) {
    const end = Math.min(L, start + ATTENTION_CHUNK);
    const C = end - start;
    const qChunk = start === 0 && end === L ? q : g.slice(q, [start], [end], [0]); // [C, H, d]
    const keysT = end === L ? kTransposed : g.slice(kTransposed, [0], [end], [2]); // [KV, d, e]
    const values = end === L ? vByHead : g.slice(vByHead, [0], [end], [1]); // [KV, e, d]
    const maskChunk = start === 0 && end === L ? mask : g.slice(mask, [start, 0], [end, end], [0, 1]); // [C, e]

    const qGrouped = g.reshape(g.transpose(g.reshape(qChunk, [C, KV, G, d]), [1, 2, 0, 3]), [KV, G * C, d]);
    const scores = g.reshape(g.matmul(qGrouped, keysT), [KV, G, C, end]);
    const probs = g.reshape(g.softmax(g.add(scores, maskChunk), -1), [KV, G * C, end]);
    const context = g.matmul(probs, values); // [KV, G·C, d]
    chunks.push(g.reshape(g.transpose(g.reshape(context, [KV, G, C, d]), [2, 0, 1, 3]), [C, KV * G * d]));
  }
  return chunks.length === 1 ? chunks[0] : g.concat(chunks, 0);
}

/** [L, L] additive causal mask: 0 on and below the diagonal, MASKED above (constant-folded by ORT). */
function causalMask(g: GraphBuilder, L: number): string {
  const ones = g.op('Expand', [g.scalar(1), g.int64s([L, L])]);
  const strictlyUpper = g.op('Trilu', [ones, g.initializer('mask_diagonal_offset', [1], [], INT64)], { upper: 1 });
  return g.mul(strictlyUpper, g.scalar(MASKED));
}
