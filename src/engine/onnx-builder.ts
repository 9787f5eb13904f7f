/**
 * A small ONNX graph builder over onnx-proto. Each helper appends one node (or a few) and returns
 * the name of the value it produced, so graph code reads like the maths:
 *
 *   const g = new GraphBuilder('block');
 *   const x = g.input('hidden', [L, h]);
 *   const y = g.add(x, g.gemm(g.rmsNorm(x, w, eps), wq, { transB: true }));
 *   g.output(y, 'hidden_out');
 *
 * Values are plain strings (ONNX value names). Intermediate names are generated (`t12_MatMul`).
 */
import onnxProto from 'onnx-proto';

const onnx = onnxProto.onnx;
/** Attribute values: numbers are INT attributes; wrap a float as `{ float: 0.5 }`. */
export type AttrValue = number | number[] | string | { float: number };

/** Standard-domain opset. ORT 1.30 supports far more; 15 is the newest the onnx-proto 1.10 schema knows. */
export const OPSET = 15;
const IR_VERSION = 8;

/** ONNX Runtime's contrib-operator domain (fused kernels beyond the standard opset). */
const MS_DOMAIN = 'com.microsoft';

// Typed as the numbers they are, so that the declarations a library user's compiler reads do not
// import onnx-proto's types (which need the global `Long` of @types/long).
export const FLOAT: 1 = onnx.TensorProto.DataType.FLOAT;
export const INT64: 7 = onnx.TensorProto.DataType.INT64;
export type ElemType = typeof FLOAT | typeof INT64;
/** A tensor dimension: a fixed size, or a symbolic name whose size each run chooses. */
export type Dim = number | string;

/** Bytes of a large constant that travel beside the model (ORT's in-memory external data). */
export interface ExternalData {
  path: string;
  data: Uint8Array;
}

export class GraphBuilder {
  private readonly nodes: onnxProto.onnx.INodeProto[] = [];
  private readonly inputs: onnxProto.onnx.IValueInfoProto[] = [];
  private readonly outputs: onnxProto.onnx.IValueInfoProto[] = [];
  private readonly initializers: onnxProto.onnx.ITensorProto[] = [];
  private readonly external: ExternalData[] = [];
  private counter = 0;

  constructor(private readonly graphName: string) {}

  /** Declares a graph input; a string dim is symbolic (e.g. 'tokens'), fixed per run, free per session. */
  input(name: string, dims: Dim[], elemType: ElemType = FLOAT): string {
    this.inputs.push(valueInfo(name, elemType, dims));
    return name;
  }

  /**
   * Declares `value` as a graph output. With `name`, the value is first renamed through an
   * Identity node (ORT elides it), so outputs get stable names whatever produced them.
   */
  output(value: string, name: string = value, dims?: Dim[], elemType: ElemType = FLOAT): string {
    if (name !== value) this.op('Identity', [value], {}, name);
    this.outputs.push(valueInfo(name, elemType, dims));
    return name;
  }

  /** A constant stored in the model: use for small things (shapes, axes, scalars). */
  initializer(name: string, data: Float32Array | BigInt64Array | number[], dims: number[], elemType?: ElemType): string {
    const type = elemType ?? (data instanceof BigInt64Array ? INT64 : FLOAT);
    const tensor: onnxProto.onnx.ITensorProto = { name, dims, dataType: type };
    if (type === INT64) tensor.int64Data = Array.from(data as ArrayLike<number | bigint>, (v) => Number(v));
    else tensor.floatData = Array.from(data as ArrayLike<number>);
    this.initializers.push(tensor);
    return name;
  }

  /**
   * A large float32 constant (weights): stored as external data whose bytes are handed to ORT
   * beside the model (`externalData()`), so they are not copied into the protobuf. ORT copies them
   * when the session is created; later changes to `data` do not reach the session.
   */
  weight(name: string, data: Float32Array, dims: number[]): string {
    if (data.length !== dims.reduce((a, b) => a * b, 1)) throw new Error(`weight ${name}: ${data.length} values for shape [${dims.join(', ')}]`);
    const path = `w${this.external.length}.bin`;
    this.initializers.push({
      name, dims, dataType: FLOAT,
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: [{ key: 'location', value: path }, { key: 'offset', value: '0' }, { key: 'length', value: String(data.byteLength) }],
    });
    this.external.push({ path, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) });
    return name;
  }

  /** The external data of the `weight` constants, for `createSession`. */
  externalData(): ExternalData[] {
    return [...this.external];
  }

  /** An int64 vector constant (shapes, axes, split sizes). */
  int64s(values: number[]): string {
    return this.initializer(this.fresh('i64'), values, [values.length], INT64);
  }

  /** An int64 scalar constant (rank 0). */
  int64Scalar(value: number): string {
    return this.initializer(this.fresh('i64'), [value], [], INT64);
  }

  /** A float scalar constant (rank 0, broadcasts against anything). */
  scalar(value: number): string {
    return this.initializer(this.fresh('f32'), [value], [], FLOAT);
  }

  /** Appends one node and returns its output names (generated unless given). */
  node(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, outputs: number | string[] = 1, domain = ''): string[] {
    const outNames = typeof outputs === 'number'
      ? Array.from({ length: outputs }, () => this.fresh(opType))
      : outputs;
    this.nodes.push({
      opType,
      domain,
      name: `${opType}_${this.nodes.length}`,
      input: inputs,
      output: outNames,
      attribute: Object.entries(attrs).map(([key, value]) => attribute(key, value)),
    });
    return outNames;
  }

  /** Single-output node; `out` names the result. */
  op(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, out?: string): string {
    return this.node(opType, inputs, attrs, out === undefined ? 1 : [out])[0];
  }

  // ---- arithmetic -------------------------------------------------------------------------------
  add(a: string, b: string, out?: string): string { return this.op('Add', [a, b], {}, out); }
  sub(a: string, b: string, out?: string): string { return this.op('Sub', [a, b], {}, out); }
  mul(a: string, b: string, out?: string): string { return this.op('Mul', [a, b], {}, out); }
  div(a: string, b: string, out?: string): string { return this.op('Div', [a, b], {}, out); }
  neg(a: string, out?: string): string { return this.op('Neg', [a], {}, out); }
  sqrt(a: string, out?: string): string { return this.op('Sqrt', [a], {}, out); }
  sigmoid(a: string, out?: string): string { return this.op('Sigmoid', [a], {}, out); }

  /** x · sigmoid(x) (SiLU / Swish); ORT fuses the pair. */
  silu(x: string, out?: string): string { return this.mul(x, this.sigmoid(x), out); }

  // ---- linear algebra ---------------------------------------------------------------------------
  /** Batched matrix product with numpy broadcasting. */
  matmul(a: string, b: string, out?: string): string { return this.op('MatMul', [a, b], {}, out); }

  /**
   * alpha·A·op(B) with numpy batch broadcasting (ORT's com.microsoft FusedMatMul): with `transB`
   * the product reads B's last two axes transposed, without a transposed copy.
   */
  fusedMatMul(a: string, b: string, opts: { transB?: boolean; alpha?: number } = {}, out?: string): string {
    const attrs: Record<string, AttrValue> = { transB: opts.transB ? 1 : 0, alpha: { float: opts.alpha ?? 1 } };
    return this.node('FusedMatMul', [a, b], attrs, out === undefined ? 1 : [out], MS_DOMAIN)[0];
  }

  /** 2-D op(A)·op(B) (+ C broadcast): the form that reads PyTorch [d_out, d_in] weights directly. */
  gemm(a: string, b: string, opts: { transA?: boolean; transB?: boolean; bias?: string } = {}, out?: string): string {
    const inputs = opts.bias ? [a, b, opts.bias] : [a, b];
    return this.op('Gemm', inputs, { transA: opts.transA ? 1 : 0, transB: opts.transB ? 1 : 0 }, out);
  }

  // ---- shape ------------------------------------------------------------------------------------
  reshape(x: string, shape: number[], out?: string): string { return this.op('Reshape', [x, this.int64s(shape)], {}, out); }
  transpose(x: string, perm: number[], out?: string): string { return this.op('Transpose', [x], { perm }, out); }
  unsqueeze(x: string, axes: number[], out?: string): string { return this.op('Unsqueeze', [x, this.int64s(axes)], {}, out); }
  concat(xs: string[], axis: number, out?: string): string { return this.op('Concat', xs, { axis }, out); }
  /** x[starts:ends] along `axes` (Slice, opset 13 form). */
  slice(x: string, starts: number[], ends: number[], axes: number[], out?: string): string {
    return this.op('Slice', [x, this.int64s(starts), this.int64s(ends), this.int64s(axes)], {}, out);
  }
  /** Splits `axis` into `parts` equal pieces. */
  split(x: string, axis: number, parts: number): string[] { return this.node('Split', [x], { axis }, parts); }

  // ---- reductions and normalisation -------------------------------------------------------------
  reduceMean(x: string, axes: number[], keepdims: boolean, out?: string): string {
    return this.op('ReduceMean', [x], { axes, keepdims: keepdims ? 1 : 0 }, out);
  }
  reduceSum(x: string, axes: number[], keepdims: boolean, out?: string): string {
    return this.op('ReduceSum', [x, this.int64s(axes)], { keepdims: keepdims ? 1 : 0 }, out);
  }
  reduceSumSquare(x: string, axes: number[], keepdims: boolean, out?: string): string {
    return this.op('ReduceSumSquare', [x], { axes, keepdims: keepdims ? 1 : 0 }, out);
  }
  softmax(x: string, axis: number, out?: string): string { return this.op('Softmax', [x], { axis }, out); }
  logSoftmax(x: string, axis: number, out?: string): string { return this.op('LogSoftmax', [x], { axis }, out); }

  /**
   * RMSNorm over the last axis: x / sqrt(mean(x²) + eps) · weight, written as the
   * Pow→ReduceMean→Add→Sqrt→Div→Mul chain that ORT fuses into SimplifiedLayerNormalization.
   */
  rmsNorm(x: string, weight: string, eps: number, out?: string): string {
    const meanSquare = this.reduceMean(this.op('Pow', [x, this.scalar(2)]), [-1], true);
    const rms = this.sqrt(this.add(meanSquare, this.scalar(eps)));
    return this.mul(this.div(x, rms), weight, out);
  }

  // ---- position embeddings ---------------------------------------------------------------------
  /**
   * Rotary embedding in the rotate_half layout (ORT's com.microsoft RotaryEmbedding) of x
   * [B, L, heads·d]: in each head, channel i < rotaryDim/2 and its partner i + rotaryDim/2 turn by
   * the angle in row `positions` of the [rows, rotaryDim/2] caches; channels from rotaryDim on pass
   * through. `positions`: [1] (an offset: token s of each sequence reads row offset + s) or [B, L].
   */
  rotaryEmbedding(x: string, positions: string, cosCache: string, sinCache: string, opts: { numHeads: number; rotaryDim: number }, out?: string): string {
    const attrs = { interleaved: 0, num_heads: opts.numHeads, rotary_embedding_dim: opts.rotaryDim };
    return this.node('RotaryEmbedding', [x, positions, cosCache, sinCache], attrs, out === undefined ? 1 : [out], MS_DOMAIN)[0];
  }

  // ---- serialisation ----------------------------------------------------------------------------
  toBytes(): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: IR_VERSION,
      producerName: 'crepe',
      opsetImport: [{ domain: '', version: OPSET }, { domain: MS_DOMAIN, version: 1 }],
      graph: {
        name: this.graphName,
        node: this.nodes,
        input: this.inputs,
        output: this.outputs,
        initializer: this.initializers,
      },
    });
    return onnx.ModelProto.encode(model).finish();
  }

  private fresh(hint: string): string {
    return `t${this.counter++}_${hint}`;
  }
}

function valueInfo(name: string, elemType: ElemType, dims?: Dim[]): onnxProto.onnx.IValueInfoProto {
  const tensorType: onnxProto.onnx.TypeProto.ITensor = { elemType };
  if (dims) tensorType.shape = { dim: dims.map((dim) => (typeof dim === 'string' ? { dimParam: dim } : { dimValue: dim })) };
  return { name, type: { tensorType } };
}

function attribute(name: string, value: AttrValue): onnxProto.onnx.IAttributeProto {
  const Type = onnx.AttributeProto.AttributeType;
  if (typeof value === 'string') return { name, type: Type.STRING, s: new TextEncoder().encode(value) };
  if (Array.isArray(value)) return { name, type: Type.INTS, ints: value };
  if (typeof value === 'object') return { name, type: Type.FLOAT, f: value.float };
  return { name, type: Type.INT, i: value };
}
