/**
 * The slow, obvious forward pass in plain TypeScript and float64, read top to bottom like
 * llama2.c's run.c. Tests check the ONNX engine against it; nothing else should call it.
 * It shares no code with the graph builder (only the rotary frequencies, tested on their own).
 */
import { ropeAttentionFactor, ropeInverseFrequencies, rotaryDim } from './rope.ts';
import type { ModelSource } from './source.ts';
import type { BlockWeights, LinearInputGroup, ModelSpec } from './spec.ts';

/** Logits [tokens.length, vocab] row-major. */
export function referenceLogits(source: ModelSource, tokens: Int32Array): Float64Array {
  const { spec } = source;
  const h = spec.hiddenSize;
  const seqLen = tokens.length;
  const embedding = source.readEmbedding();
  let x: Float64Array = new Float64Array(seqLen * h);
  for (let t = 0; t < seqLen; t++) {
    for (let i = 0; i < h; i++) x[t * h + i] = embedding[tokens[t] * h + i];
  }
  for (let layer = 0; layer < spec.numLayers; layer++) {
    x = referenceBlock(spec, source.readBlock(layer), x, seqLen).out;
  }
  return referenceHeadLogits(spec, x, source.readFinalNorm(), source.readLmHead(), seqLen);
}

/** Final RMSNorm then lm_head: logits [seqLen, vocab]. */
export function referenceHeadLogits(
  spec: ModelSpec, hidden: Float64Array, finalNorm: Float32Array, lmHead: Float32Array, seqLen: number,
): Float64Array {
  const normed = rmsNormRows(hidden, seqLen, spec.hiddenSize, finalNorm, spec.rmsNormEps);
  return linear(normed, seqLen, spec.hiddenSize, lmHead, spec.vocabSize, undefined);
}

/**
 * One decoder block. Also returns the input each linear group reads (for statistics tests):
 * qkv = attention-normed x, o = attention output, gateup = MLP-normed h, down = silu(gate)·up.
 */
export function referenceBlock(
  spec: ModelSpec, w: BlockWeights, x: Float64Array, seqLen: number,
): { out: Float64Array; linearInputs: Record<LinearInputGroup, Float64Array> } {
  const { hiddenSize: h, intermediateSize: inter, numHeads, numKvHeads, headDim: d, rmsNormEps: eps } = spec;
  const qDim = numHeads * d;
  const kvDim = numKvHeads * d;

  // Attention.
  const attnIn = rmsNormRows(x, seqLen, h, w['input_layernorm.weight'], eps);
  const q = linear(attnIn, seqLen, h, w['self_attn.q_proj.weight'], qDim, w['self_attn.q_proj.bias']);
  const k = linear(attnIn, seqLen, h, w['self_attn.k_proj.weight'], kvDim, w['self_attn.k_proj.bias']);
  const v = linear(attnIn, seqLen, h, w['self_attn.v_proj.weight'], kvDim, w['self_attn.v_proj.bias']);
  if (spec.qkNorm) {
    normEachHead(q, seqLen * numHeads, d, w['self_attn.q_norm.weight'], eps);
    normEachHead(k, seqLen * numKvHeads, d, w['self_attn.k_norm.weight'], eps);
  }
  const invFreq = ropeInverseFrequencies(spec);
  const turned = rotaryDim(spec);
  const scale = ropeAttentionFactor(spec);
  rotate(q, seqLen, numHeads, d, turned, invFreq, scale);
  rotate(k, seqLen, numKvHeads, d, turned, invFreq, scale);
  const attnOut = causalAttention(q, k, v, seqLen, numHeads, numKvHeads, d);
  const o = linear(attnOut, seqLen, qDim, w['self_attn.o_proj.weight'], h, undefined);
  const afterAttn = new Float64Array(seqLen * h);
  for (let i = 0; i < afterAttn.length; i++) afterAttn[i] = x[i] + o[i];

  // MLP: down(silu(gate(n)) · up(n)).
  const mlpIn = rmsNormRows(afterAttn, seqLen, h, w['post_attention_layernorm.weight'], eps);
  const gate = linear(mlpIn, seqLen, h, w['mlp.gate_proj.weight'], inter, undefined);
  const up = linear(mlpIn, seqLen, h, w['mlp.up_proj.weight'], inter, undefined);
  const gated = new Float64Array(seqLen * inter);
  for (let i = 0; i < gated.length; i++) gated[i] = (gate[i] / (1 + Math.exp(-gate[i]))) * up[i];
  const down = linear(gated, seqLen, inter, w['mlp.down_proj.weight'], h, undefined);
  const out = new Float64Array(seqLen * h);
  for (let i = 0; i < out.length; i++) out[i] = afterAttn[i] + down[i];

  return { out, linearInputs: { qkv: attnIn, o: attnOut, gateup: mlpIn, down: gated } };
}

/** Each row of x [rows, width] divided by its root mean square, times weight. */
function rmsNormRows(x: Float64Array, rows: number, width: number, weight: Float32Array, eps: number): Float64Array {
  const out = new Float64Array(rows * width);
  for (let r = 0; r < rows; r++) {
    let sumSq = 0;
    for (let i = 0; i < width; i++) sumSq += x[r * width + i] ** 2;
    const invRms = 1 / Math.sqrt(sumSq / width + eps);
    for (let i = 0; i < width; i++) out[r * width + i] = x[r * width + i] * invRms * weight[i];
  }
  return out;
}

/** In place: RMSNorm of every head vector (q/k norm of Qwen3). */
function normEachHead(x: Float64Array, vectors: number, d: number, weight: Float32Array, eps: number): void {
  x.set(rmsNormRows(x, vectors, d, weight, eps));
}

/** y[t, o] = Σ_i x[t, i]·W[o, i] + b[o], with W in PyTorch [d_out, d_in] layout. */
function linear(x: Float64Array, rows: number, dIn: number, W: Float32Array, dOut: number, bias: Float32Array | undefined): Float64Array {
  const y = new Float64Array(rows * dOut);
  for (let t = 0; t < rows; t++) {
    for (let o = 0; o < dOut; o++) {
      let acc = bias ? bias[o] : 0;
      for (let i = 0; i < dIn; i++) acc += x[t * dIn + i] * W[o * dIn + i];
      y[t * dOut + o] = acc;
    }
  }
  return y;
}

/**
 * In place rotary embedding of x [seqLen, heads, d], rotate_half convention over the first
 * `turned` channels of each head (all of them without partial rotary): element i and element
 * i + turned/2 form a pair rotated by angle position·invFreq[i], cos and sin scaled by `scale`;
 * the remaining channels pass unchanged.
 */
function rotate(x: Float64Array, seqLen: number, heads: number, d: number, turned: number, invFreq: Float64Array, scale: number): void {
  const half = turned / 2;
  for (let p = 0; p < seqLen; p++) {
    for (let head = 0; head < heads; head++) {
      const base = (p * heads + head) * d;
      for (let i = 0; i < half; i++) {
        const angle = p * invFreq[i];
        const cos = Math.cos(angle) * scale;
        const sin = Math.sin(angle) * scale;
        const first = x[base + i];
        const second = x[base + half + i];
        x[base + i] = first * cos - second * sin;
        x[base + half + i] = second * cos + first * sin;
      }
    }
  }
}

/**
 * Causal softmax attention with grouped-query heads: query head `head` reads kv head
 * floor(head / (numHeads / numKvHeads)). Returns [seqLen, numHeads·d].
 */
function causalAttention(
  q: Float64Array, k: Float64Array, v: Float64Array, seqLen: number, numHeads: number, numKvHeads: number, d: number,
): Float64Array {
  const groupSize = numHeads / numKvHeads;
  const out = new Float64Array(seqLen * numHeads * d);
  const weights = new Float64Array(seqLen);
  for (let head = 0; head < numHeads; head++) {
    const kvHead = Math.floor(head / groupSize);
    for (let i = 0; i < seqLen; i++) {
      const qBase = (i * numHeads + head) * d;
      let max = -Infinity;
      for (let j = 0; j <= i; j++) {
        const kBase = (j * numKvHeads + kvHead) * d;
        let dot = 0;
        for (let c = 0; c < d; c++) dot += q[qBase + c] * k[kBase + c];
        weights[j] = dot / Math.sqrt(d);
        max = Math.max(max, weights[j]);
      }
      let total = 0;
      for (let j = 0; j <= i; j++) {
        weights[j] = Math.exp(weights[j] - max);
        total += weights[j];
      }
      for (let j = 0; j <= i; j++) {
        const vBase = (j * numKvHeads + kvHead) * d;
        const p = weights[j] / total;
        for (let c = 0; c < d; c++) out[qBase + c] += p * v[vBase + c];
      }
    }
  }
  return out;
}
