/**
 * The GEMM-shaped pieces of SparseGPT's linear algebra (cholesky.ts, prune/sparsegpt.ts) as
 * one-node-ish ONNX graphs run by ONNX Runtime (MLAS GEMM instead of JavaScript loops), on the
 * run's execution provider and thread count.
 *
 * Every graph takes whole matrices as inputs and slices them inside ORT: inputs are passed to ORT
 * without a copy, while outputs are copied back into JavaScript, so each graph is written to return
 * only a thin panel (tens of MB copied out costs more than the GEMM). Dimensions are symbolic and
 * slice bounds are inputs, so each graph is built once per element type and reused for every shape.
 */
import onnxProto from 'onnx-proto';
import ort from 'onnxruntime-node';
import { createSession, type EngineOptions, type Session } from './session.ts';
import { invariant } from '../util/errors.ts';

const onnx = onnxProto.onnx;
const INT64 = onnx.TensorProto.DataType.INT64;

export type LinalgPrecision = 'float32' | 'float64';
export type LinalgMatrix = Float32Array | Float64Array;

const ELEMENT_TYPE: Record<LinalgPrecision, number> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  float64: onnx.TensorProto.DataType.DOUBLE,
};

type GraphKind = 'panelSolve' | 'inverseRowPanel' | 'lazyBlockUpdate';

/** Declared inputs: [name, rank] (bounds inputs are int64 vectors of length 2). */
interface GraphSpec {
  inputs: [string, 'matrix' | 'bounds'][];
  nodes: { op: string; inputs: string[]; output: string; attrs?: Record<string, number> }[];
}

const GRAPHS: Record<GraphKind, GraphSpec> = {
  // y = (A[r0:r1, c0:c1] − A[r0:r1, 0:k]·A[c0:c1, 0:k]ᵀ)·Tᵀ: the left-looking Cholesky panel.
  panelSolve: {
    inputs: [['a', 'matrix'], ['t', 'matrix'], ['blockStart', 'bounds'], ['blockEnd', 'bounds'],
      ['rowsStart', 'bounds'], ['rowsEnd', 'bounds'], ['colsStart', 'bounds'], ['colsEnd', 'bounds']],
    nodes: [
      { op: 'Slice', inputs: ['a', 'blockStart', 'blockEnd'], output: 'block' },
      { op: 'Slice', inputs: ['a', 'rowsStart', 'rowsEnd'], output: 'rows' },
      { op: 'Slice', inputs: ['a', 'colsStart', 'colsEnd'], output: 'cols' },
      { op: 'Gemm', inputs: ['rows', 'cols', 'block'], output: 'updated', attrs: { transB: 1, alpha: -1 } },
      { op: 'Gemm', inputs: ['updated', 't'], output: 'y', attrs: { transB: 1 } },
    ],
  },
  // y = (−T·(X[k0:k1, 0:k0]·X[0:k0, 0:k0]))ᵀ: a row panel of a lower-triangular inverse,
  // transposed because MLAS runs the tall-times-thin form (M = k0, N = k1 − k0) far faster.
  inverseRowPanel: {
    inputs: [['x', 'matrix'], ['t', 'matrix'], ['panelStart', 'bounds'], ['panelEnd', 'bounds'],
      ['solvedStart', 'bounds'], ['solvedEnd', 'bounds']],
    nodes: [
      { op: 'Slice', inputs: ['x', 'panelStart', 'panelEnd'], output: 'panel' },
      { op: 'Slice', inputs: ['x', 'solvedStart', 'solvedEnd'], output: 'solved' },
      { op: 'Gemm', inputs: ['solved', 'panel'], output: 'product', attrs: { transA: 1, transB: 1 } },
      { op: 'Gemm', inputs: ['product', 't'], output: 'y', attrs: { transB: 1, alpha: -1 } },
    ],
  },
  // y = W − Eᵀ[0:i1, :]ᵀ·U[0:i1, i1:i2]: SparseGPT's lazy batch update, gathered for one block.
  lazyBlockUpdate: {
    inputs: [['w', 'matrix'], ['errT', 'matrix'], ['u', 'matrix'], ['errStart', 'bounds'], ['errEnd', 'bounds'],
      ['uStart', 'bounds'], ['uEnd', 'bounds']],
    nodes: [
      { op: 'Slice', inputs: ['errT', 'errStart', 'errEnd'], output: 'errors' },
      { op: 'Slice', inputs: ['u', 'uStart', 'uEnd'], output: 'factor' },
      { op: 'Gemm', inputs: ['errors', 'factor', 'w'], output: 'y', attrs: { transA: 1, alpha: -1 } },
    ],
  },
};

function graphBytes(kind: GraphKind, precision: LinalgPrecision): Uint8Array {
  const spec = GRAPHS[kind];
  let symbol = 0;
  const matrixType = (elemType: number, rank: number) => ({
    tensorType: { elemType, shape: { dim: Array.from({ length: rank }, () => ({ dimParam: `n${symbol++}` })) } },
  });
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'crepe',
    opsetImport: [{ domain: '', version: 15 }],
    graph: {
      name: kind,
      input: spec.inputs.map(([name, shape]) => ({
        name,
        type: shape === 'matrix'
          ? matrixType(ELEMENT_TYPE[precision], 2)
          : { tensorType: { elemType: INT64, shape: { dim: [{ dimValue: 2 }] } } },
      })),
      output: [{ name: 'y', type: matrixType(ELEMENT_TYPE[precision], 2) }],
      node: spec.nodes.map((node, index) => ({
        opType: node.op,
        name: `${node.op}_${index}`,
        input: node.inputs,
        output: [node.output],
        attribute: Object.entries(node.attrs ?? {}).map(([name, value]) => name === 'alpha'
          ? { name, type: onnx.AttributeProto.AttributeType.FLOAT, f: value }
          : { name, type: onnx.AttributeProto.AttributeType.INT, i: value }),
      })),
    },
  });
  return onnx.ModelProto.encode(model).finish();
}

const sessions = new Map<string, Promise<Session>>();

/** The cached session for one graph, element type and engine (built on first use). */
function session(kind: GraphKind, precision: LinalgPrecision, engine: EngineOptions): Promise<Session> {
  const key = `${kind}:${precision}:${engine.device}:${engine.threads ?? ''}`;
  let cached = sessions.get(key);
  if (!cached) {
    cached = createSession(graphBytes(kind, precision), engine);
    // A session that failed to start (no CUDA provider, bad thread count) is not kept.
    cached.catch(() => sessions.delete(key));
    sessions.set(key, cached);
  }
  return cached;
}

/** Releases the cached sessions (benchmarks and tests; the next call rebuilds them). */
export async function releaseLinalgSessions(): Promise<void> {
  const all = [...sessions.values()];
  sessions.clear();
  for (const cached of all) await (await cached).release();
}

function precisionOf(data: LinalgMatrix): LinalgPrecision {
  return data instanceof Float64Array ? 'float64' : 'float32';
}

function matrix(data: LinalgMatrix, rows: number, cols: number): ort.Tensor {
  invariant(data.length >= rows * cols, () => `linalg: ${rows}×${cols} matrix over ${data.length} values`);
  const view = data.length === rows * cols ? data : data.subarray(0, rows * cols);
  return new ort.Tensor(precisionOf(data), view, [rows, cols]);
}

/** [row, column] of a slice corner. */
function corner(row: number, col: number): ort.Tensor {
  return new ort.Tensor('int64', BigInt64Array.of(BigInt(row), BigInt(col)), [2]);
}

async function runGraph(kind: GraphKind, precision: LinalgPrecision, engine: EngineOptions, feeds: Record<string, ort.Tensor>): Promise<LinalgMatrix> {
  const result = (await (await session(kind, precision, engine)).run(feeds)).y;
  const data = result.data;
  invariant(data instanceof Float32Array || data instanceof Float64Array, () => `linalg ${kind}: unexpected output type`);
  return data;
}

/**
 * (A[r0:r1, c0:c1] − A[r0:r1, 0:k]·A[c0:c1, 0:k]ᵀ)·Tᵀ with A square d×d (row-major) and T of size
 * (c1−c0)², as a (r1−r0) × (c1−c0) row-major array in A's element type.
 */
export function panelSolve(
  A: LinalgMatrix, d: number, rows: [number, number], cols: [number, number], k: number, T: LinalgMatrix, engine: EngineOptions,
): Promise<LinalgMatrix> {
  const width = cols[1] - cols[0];
  return runGraph('panelSolve', precisionOf(A), engine, {
    a: matrix(A, d, d),
    t: matrix(T, width, width),
    blockStart: corner(rows[0], cols[0]),
    blockEnd: corner(rows[1], cols[1]),
    rowsStart: corner(rows[0], 0),
    rowsEnd: corner(rows[1], k),
    colsStart: corner(cols[0], 0),
    colsEnd: corner(cols[1], k),
  });
}

/** (−T·(X[k0:k1, 0:k0]·X[0:k0, 0:k0]))ᵀ with X square d×d and T of size (k1−k0)²: k0 × (k1−k0). */
export function inverseRowPanel(X: LinalgMatrix, d: number, k0: number, k1: number, T: LinalgMatrix, engine: EngineOptions): Promise<LinalgMatrix> {
  const width = k1 - k0;
  return runGraph('inverseRowPanel', precisionOf(X), engine, {
    x: matrix(X, d, d),
    t: matrix(T, width, width),
    panelStart: corner(k0, 0),
    panelEnd: corner(k1, k0),
    solvedStart: corner(0, 0),
    solvedEnd: corner(k0, k0),
  });
}

/**
 * W − E·U[0:i1, i1:i2] where E = errT[0:i1, :]ᵀ (errT holds the errors transposed, [d, dOut]),
 * W is dOut × (i2−i1) and U is d×d: the block's share of all earlier blocks' lazy updates.
 */
export function lazyBlockUpdate(
  W: LinalgMatrix, dOut: number, errT: LinalgMatrix, U: LinalgMatrix, d: number, i1: number, i2: number, engine: EngineOptions,
): Promise<LinalgMatrix> {
  return runGraph('lazyBlockUpdate', precisionOf(W), engine, {
    w: matrix(W, dOut, i2 - i1),
    errT: matrix(errT, d, dOut),
    u: matrix(U, d, d),
    errStart: corner(0, 0),
    errEnd: corner(i1, dOut),
    uStart: corner(0, i1),
    uEnd: corner(i1, i2),
  });
}
