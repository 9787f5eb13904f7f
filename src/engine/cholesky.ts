/**
 * Float64 dense symmetric-positive-definite linear algebra for SparseGPT (ALGORITHMS.md §4):
 * the upper Cholesky factor U of H⁻¹ (H⁻¹ = UᵀU), which is all SparseGPT uses of the Hessian.
 *
 * The reference computes it as cholesky(H) → cholesky_inverse → cholesky(·, upper=True), about
 * 4d³/3 flops. The same U comes at half the cost from one factorization of the reversed matrix:
 * with J the reversal permutation and J·H·J = L·Lᵀ, H⁻¹ = (J L⁻ᵀ J)(J L⁻¹ J), and J·L⁻¹·J is upper
 * triangular with a positive diagonal — by uniqueness it is U. Reversing rows and columns of a
 * row-major square matrix is reversing its flat array.
 *
 * Matrices are row-major Float64Array [d·d]. Loops run over contiguous memory: the factorization
 * is right-looking with a packed panel (its O(d³) part is a symmetric rank-nb update, the piece to
 * hand to a GEMM), the triangular inverse is a multi-right-hand-side forward substitution.
 *
 * Large matrices take the blocked path (choleskyInverseUpperBlocked): left-looking by panels, so
 * every O(d³) piece is a GEMM in ONNX Runtime (linalg-graphs.ts) that returns only a thin
 * panel, while the small diagonal blocks are factored and inverted here in float64.
 */
import { inverseRowPanel, panelSolve, type LinalgPrecision } from './linalg-graphs.ts';
import type { EngineOptions } from './session.ts';
import { invariant } from '../util/errors.ts';

/** Thrown when a pivot is not positive: the matrix is not (numerically) positive definite. */
export class NotPositiveDefiniteError extends Error {
  constructor(readonly pivotIndex: number, readonly pivot: number) {
    super(`matrix is not positive definite: Cholesky pivot ${pivotIndex} is ${pivot}`);
    this.name = 'NotPositiveDefiniteError';
  }
}

/** Panel width of the blocked factorization. */
const PANEL = 64;
/** Columns solved together in the triangular inverse. */
const RHS_BLOCK = 4;

/** Upper Cholesky factor of H⁻¹, as a new array; H is not modified. */
export function choleskyInverseUpper(H: Float64Array, d: number): Float64Array {
  return choleskyInverseUpperInPlace(Float64Array.from(H), d);
}

/** Same as choleskyInverseUpper, overwriting (and returning) H. */
export function choleskyInverseUpperInPlace(H: Float64Array, d: number): Float64Array {
  invariant(H.length === d * d, () => `choleskyInverseUpper: expected ${d}×${d} entries, got ${H.length}`);
  H.reverse(); // J·H·J
  choleskyLowerInPlace(H, d);
  invertLowerInPlace(H, d);
  for (let i = 0; i < d; i++) H.fill(0, i * d + i + 1, (i + 1) * d); // clear the strict upper part
  H.reverse(); // J·L⁻¹·J = U
  return H;
}

/**
 * Lower Cholesky factor, in place: on return the lower triangle (diagonal included) holds L with
 * A = L·Lᵀ. The strict upper triangle is left with meaningless values.
 */
export function choleskyLowerInPlace(A: Float64Array, d: number): void {
  const panel = new Float64Array((d + 1) * PANEL); // packed rows of the current panel, +1 zero row
  for (let k0 = 0; k0 < d; k0 += PANEL) {
    const k1 = Math.min(d, k0 + PANEL);
    const width = k1 - k0;
    // Diagonal block and the panel below it: L[i, j] = (A[i, j] − Σ_{k0≤q<j} L[i, q]·L[j, q]) / L[j, j].
    for (let j = k0; j < k1; j++) {
      const rowJ = j * d;
      let diagonal = A[rowJ + j];
      for (let q = k0; q < j; q++) diagonal -= A[rowJ + q] * A[rowJ + q];
      if (!(diagonal > 0)) throw new NotPositiveDefiniteError(j, diagonal);
      const pivot = Math.sqrt(diagonal);
      A[rowJ + j] = pivot;
      for (let i = j + 1; i < d; i++) {
        const rowI = i * d;
        let sum = A[rowI + j];
        for (let q = k0; q < j; q++) sum -= A[rowI + q] * A[rowJ + q];
        A[rowI + j] = sum / pivot;
      }
    }
    if (k1 === d) break;
    // Pack the panel rows below the block contiguously: panel[(i − k1)·width + q].
    const rows = d - k1;
    for (let r = 0; r < rows; r++) {
      const source = (k1 + r) * d + k0;
      panel.set(A.subarray(source, source + width), r * width);
    }
    panel.fill(0, rows * width, (rows + 1) * width);
    syrkLowerSubtract(A, d, k1, panel, rows, width);
  }
}

/**
 * Trailing update A[k1+r, k1+c] −= panel_r · panel_c for c ≤ r (lower triangle), two rows by two
 * columns at a time so that each loaded panel value feeds two products. Entries just above the
 * diagonal may be written too (the strict upper triangle is scratch).
 */
function syrkLowerSubtract(A: Float64Array, d: number, k1: number, panel: Float64Array, rows: number, width: number): void {
  for (let r = 0; r < rows; r += 2) {
    const pr0 = r * width;
    const pr1 = pr0 + width; // the zero row when r + 1 = rows
    const row0 = (k1 + r) * d + k1;
    const row1 = row0 + d;
    const hasRow1 = r + 1 < rows;
    for (let c = 0; c <= r; c += 2) {
      const pc0 = c * width;
      const pc1 = pc0 + width;
      let s00 = 0, s01 = 0, s10 = 0, s11 = 0;
      for (let q = 0; q < width; q++) {
        const a0 = panel[pr0 + q];
        const a1 = panel[pr1 + q];
        const b0 = panel[pc0 + q];
        const b1 = panel[pc1 + q];
        s00 += a0 * b0;
        s01 += a0 * b1;
        s10 += a1 * b0;
        s11 += a1 * b1;
      }
      A[row0 + c] -= s00;
      if (c + 1 < rows) A[row0 + c + 1] -= s01;
      if (hasRow1) {
        A[row1 + c] -= s10;
        A[row1 + c + 1] -= s11;
      }
    }
  }
}

/**
 * Inverse of a lower-triangular matrix, in place (lower triangle in, lower triangle out; the strict
 * upper triangle is ignored). Column block [j0, j0+b) of X = L⁻¹ solves L·X = I by forward
 * substitution for all rows i ≥ j0; it needs L only at columns ≥ j0, so X can overwrite the
 * columns already solved.
 */
function invertLowerInPlace(A: Float64Array, d: number): void {
  const solution = new Float64Array(d * RHS_BLOCK); // solution[(i − j0)·b + c] = X[i, j0 + c]
  for (let j0 = 0; j0 < d; j0 += RHS_BLOCK) {
    const b = Math.min(RHS_BLOCK, d - j0);
    solution.fill(0);
    for (let i = j0; i < d; i++) {
      const rowI = i * d;
      // s_c = δ(i, j0+c) − Σ_{j0 ≤ q < i} L[i, q]·X[q, j0+c]   (X[q, j] = 0 for q < j)
      let s0 = i === j0 ? 1 : 0;
      let s1 = i === j0 + 1 ? 1 : 0;
      let s2 = i === j0 + 2 ? 1 : 0;
      let s3 = i === j0 + 3 ? 1 : 0;
      for (let q = j0, x = 0; q < i; q++, x += RHS_BLOCK) {
        const l = A[rowI + q];
        s0 -= l * solution[x];
        s1 -= l * solution[x + 1];
        s2 -= l * solution[x + 2];
        s3 -= l * solution[x + 3];
      }
      const inverseDiagonal = 1 / A[rowI + i];
      const x = (i - j0) * RHS_BLOCK;
      solution[x] = s0 * inverseDiagonal;
      solution[x + 1] = s1 * inverseDiagonal;
      solution[x + 2] = s2 * inverseDiagonal;
      solution[x + 3] = s3 * inverseDiagonal;
    }
    for (let i = j0; i < d; i++) {
      const x = (i - j0) * RHS_BLOCK;
      const last = Math.min(b, i - j0 + 1);
      for (let c = 0; c < last; c++) A[i * d + j0 + c] = solution[x + c];
    }
  }
}

export interface BlockedCholeskyOptions {
  /**
   * Element type of the GEMMs in ORT. float64 (MLAS DGEMM) agrees with the plain path to rounding;
   * float32 is about 4× faster and as precise as the reference's fp32 torch.linalg.
   */
  precision?: LinalgPrecision;
  /** Panel width (default 256). */
  panel?: number;
  /** Below this width the plain in-process path is faster than ORT round trips (default 512). */
  minOrtWidth?: number;
  /** Where the GEMMs run (execution provider, threads); default: CPU with ORT's thread count. */
  engine?: EngineOptions;
}

const BLOCKED_PANEL = 256;
const CPU: EngineOptions = { device: 'cpu' };
const MIN_ORT_WIDTH = 512;

/**
 * Upper Cholesky factor of H⁻¹, overwriting (and returning) H, like choleskyInverseUpperInPlace;
 * from `minOrtWidth` on the O(d³) work runs as GEMMs in ONNX Runtime.
 *
 * With B = J·H·J = L·Lᵀ, for each panel of columns [k0, k1):
 *   D   = B11 − L10·L10ᵀ          (ORT)   L11 = chol(D), T = L11⁻¹   (here, float64)
 *   L21 = (B21 − L20·L10ᵀ)·Tᵀ     (ORT)
 * and then, row panel by row panel, X = L⁻¹:  X11 = T,  X10 = −T·(L10·X00)  (ORT).
 * The Cholesky takes d³/3 flops; the inverse's products run over the dense square X00, so d³/3
 * become 2d³/3 (the waste buys one large GEMM per panel).
 */
export async function choleskyInverseUpperBlocked(H: Float64Array, d: number, options: BlockedCholeskyOptions = {}): Promise<Float64Array> {
  invariant(H.length === d * d, () => `choleskyInverseUpper: expected ${d}×${d} entries, got ${H.length}`);
  if (d < (options.minOrtWidth ?? MIN_ORT_WIDTH)) return choleskyInverseUpperInPlace(H, d);
  const precision = options.precision ?? 'float64';
  const panel = options.panel ?? BLOCKED_PANEL;
  const engine = options.engine ?? CPU;
  H.reverse();
  // What ORT reads: H itself in float64; a float32 copy kept in step with H otherwise.
  const mirror = precision === 'float64' ? H : Float32Array.from(H);
  const toPrecision = (values: Float64Array) => (precision === 'float64' ? values : Float32Array.from(values));
  const diagonalInverses: Float64Array[] = [];

  for (let k0 = 0; k0 < d; k0 += panel) {
    const k1 = Math.min(d, k0 + panel);
    const width = k1 - k0;
    const diagonal = Float64Array.from(await panelSolve(mirror, d, [k0, k1], [k0, k1], k0, toPrecision(identity(width)), engine));
    try {
      choleskyLowerInPlace(diagonal, width);
    } catch (error) {
      if (error instanceof NotPositiveDefiniteError) throw new NotPositiveDefiniteError(k0 + error.pivotIndex, error.pivot);
      throw error;
    }
    for (let i = 0; i < width; i++) diagonal.fill(0, i * width + i + 1, (i + 1) * width);
    writeBlock(H, d, k0, k0, diagonal, width, width, mirror);
    const inverse = Float64Array.from(diagonal);
    invertLowerInPlace(inverse, width);
    for (let i = 0; i < width; i++) inverse.fill(0, i * width + i + 1, (i + 1) * width);
    diagonalInverses.push(inverse);
    if (k1 < d) {
      const below = await panelSolve(mirror, d, [k1, d], [k0, k1], k0, toPrecision(inverse), engine);
      writeBlock(H, d, k1, k0, below, d - k1, width, mirror);
    }
  }

  // X = L⁻¹ row panel by row panel, top down: rows above k0 already hold X, rows from k0 still L.
  for (let k0 = 0, p = 0; k0 < d; k0 += panel, p++) {
    const k1 = Math.min(d, k0 + panel);
    const width = k1 - k0;
    if (k0 > 0) {
      const leftTransposed = await inverseRowPanel(mirror, d, k0, k1, toPrecision(diagonalInverses[p]), engine);
      writeBlock(H, d, k0, 0, transpose(leftTransposed, k0, width), width, k0, mirror);
    }
    writeBlock(H, d, k0, k0, diagonalInverses[p], width, width, mirror);
    // X is lower triangular: the products above read rows < k1 up to column k1, so clear the rest.
    for (let i = k0; i < k1; i++) {
      H.fill(0, i * d + k1, (i + 1) * d);
      if (mirror !== H) mirror.fill(0, i * d + k1, (i + 1) * d);
    }
  }
  H.reverse(); // J·L⁻¹·J = U
  return H;
}

/** The transpose of a rows × cols row-major array. */
function transpose(values: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const result = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) result[c * rows + r] = values[r * cols + c];
  return result;
}

function identity(width: number): Float64Array {
  const values = new Float64Array(width * width);
  for (let i = 0; i < width; i++) values[i * width + i] = 1;
  return values;
}

/** H[r0:r0+rows, c0:c0+cols] = block (row-major), and the same into the float32 mirror if any. */
function writeBlock(
  H: Float64Array, d: number, r0: number, c0: number, block: ArrayLike<number>, rows: number, cols: number,
  mirror: Float32Array | Float64Array,
): void {
  for (let r = 0; r < rows; r++) {
    const target = (r0 + r) * d + c0;
    for (let c = 0; c < cols; c++) H[target + c] = block[r * cols + c];
    if (mirror !== H) for (let c = 0; c < cols; c++) mirror[target + c] = block[r * cols + c];
  }
}
