/**
 * compressed-tensors' bitmask layout of a sparse 2-D weight `<module>.weight` [rows, cols], stored
 * as four tensors under the module's name:
 *
 *   <module>.shape        I64 [2]                  the dense shape
 *   <module>.compressed   weight dtype [nnz]       the stored values, row by row, left to right
 *   <module>.bitmask      U8  [rows, ⌈cols/8⌉]     bit j of byte k in row r set ⇔ column 8k + j is stored
 *                                                 (numpy.packbits(bitorder="little") per row)
 *   <module>.row_offsets  I64 [rows]               index in `compressed` of each row's first value
 *
 * compressed-tensors' "sparse-24-bitmask" writes the same tensors without row_offsets and with
 * `compressed` shaped [rows, cols/2]; both decompress the same way (values in row-major order at
 * the set bits), so the reader takes either.
 *
 * A value is stored unless all its bits are zero: +0.0 is dropped, −0.0 is kept, so a round trip
 * is bit for bit (compressed-tensors tests `!= 0` when writing and reads any mask back).
 */
import assert from 'node:assert/strict';
import { UserError, checkField } from '../util/errors.ts';
import { describeValue } from '../util/fields.ts';
import { DTYPE_BYTES, elementCount, type DType, type RawDType } from './safetensors.ts';

/** Suffixes of the four tensors that replace `<module>.weight`. */
export const BITMASK_PARTS = ['shape', 'compressed', 'bitmask', 'row_offsets'] as const;
export type BitmaskPart = (typeof BITMASK_PARTS)[number];

/** `<module>` of a weight name `<module>.weight`. */
export function modulePrefix(weightName: string): string {
  assert.ok(weightName.endsWith('.weight'), `${weightName} is not a weight`);
  return weightName.slice(0, -'.weight'.length);
}

/** A view of raw little-endian bytes as unsigned integers of the element width (0 ⇔ all bits zero). */
function elementBits(raw: Uint8Array, dtype: DType): Uint32Array | Uint16Array {
  const aligned = raw.byteOffset % 4 === 0 ? raw : raw.slice();
  return DTYPE_BYTES[dtype] === 4
    ? new Uint32Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 4)
    : new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 2);
}

/** Number of values the bitmask layout stores for `raw` (those whose bits are not all zero). */
export function storedValueCount(raw: Uint8Array, dtype: DType): number {
  const bits = elementBits(raw, dtype);
  let count = 0;
  for (let i = 0; i < bits.length; i++) if (bits[i] !== 0) count++;
  return count;
}

export interface BitmaskTensorLayout {
  name: string;
  dtype: DType | RawDType;
  shape: number[];
}

/** The four tensors (names, dtypes, shapes) that store weight `weightName` with `stored` values kept. */
export function bitmaskLayout(weightName: string, dtype: DType, shape: readonly number[], stored: number): BitmaskTensorLayout[] {
  assert.equal(shape.length, 2, `${weightName}: the bitmask layout stores 2-D weights`);
  const [rows, cols] = shape;
  const prefix = modulePrefix(weightName);
  return [
    { name: `${prefix}.shape`, dtype: 'I64', shape: [2] },
    { name: `${prefix}.compressed`, dtype, shape: [stored] },
    { name: `${prefix}.bitmask`, dtype: 'U8', shape: [rows, Math.ceil(cols / 8)] },
    { name: `${prefix}.row_offsets`, dtype: 'I64', shape: [rows] },
  ];
}

const int64Bytes = (values: ArrayLike<number>): Uint8Array => {
  const out = new BigInt64Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = BigInt(values[i]);
  return new Uint8Array(out.buffer);
};

/** Throws a FieldError naming `dtype` or `shape` unless they describe a float weight matrix. */
function checkWeightType(dtype: unknown, shape: unknown): asserts shape is readonly [number, number] {
  checkField(typeof dtype === 'string' && Object.hasOwn(DTYPE_BYTES, dtype), 'dtype', () => `must be one of ${Object.keys(DTYPE_BYTES).join(', ')}, got ${describeValue(dtype)}`);
  checkField(Array.isArray(shape) && shape.length === 2 && shape.every((d) => Number.isSafeInteger(d) && d >= 0), 'shape', () => `must be [rows, columns], got ${describeValue(shape)}`);
}

/** The bytes of the four tensors of `bitmaskLayout`, by part, for the dense weight `raw` [rows, cols]. */
export function bitmaskCompress(raw: Uint8Array, dtype: DType, shape: readonly number[]): Record<BitmaskPart, Uint8Array> {
  checkWeightType(dtype, shape);
  const [rows, cols] = shape;
  const width = DTYPE_BYTES[dtype];
  checkField(raw instanceof Uint8Array && raw.byteLength === rows * cols * width, 'raw', () => `must hold the ${rows}×${cols} ${dtype} weight (${rows * cols * width} bytes), got ${raw instanceof Uint8Array ? `${raw.byteLength} bytes` : describeValue(raw)}`);
  const bits = elementBits(raw, dtype);
  const packedCols = Math.ceil(cols / 8);
  const bitmask = new Uint8Array(rows * packedCols);
  const rowOffsets = new Float64Array(rows);
  const compressed = new Uint8Array(storedValueCount(raw, dtype) * width);
  const values = elementBits(compressed, dtype);
  let stored = 0;
  for (let r = 0; r < rows; r++) {
    rowOffsets[r] = stored;
    for (let c = 0; c < cols; c++) {
      const value = bits[r * cols + c];
      if (value === 0) continue;
      bitmask[r * packedCols + (c >> 3)] |= 1 << (c & 7);
      values[stored++] = value;
    }
  }
  return { shape: int64Bytes([rows, cols]), compressed, bitmask, row_offsets: int64Bytes(rowOffsets) };
}

/** Integers of an I64 or I32 tensor's bytes, refusing values beyond 2^53. */
export function readIntegers(raw: Uint8Array, dtype: RawDType, what: string): number[] {
  const aligned = raw.slice();
  if (dtype === 'I32') return [...new Int32Array(aligned.buffer)];
  if (dtype === 'U8') return [...aligned];
  return [...new BigInt64Array(aligned.buffer)].map((value) => {
    if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < -BigInt(Number.MAX_SAFE_INTEGER)) throw new UserError(`${what}: value ${value} is out of range`);
    return Number(value);
  });
}

/**
 * The dense bytes [rows, cols] of a bitmask-stored weight. `what` names it in errors: a mask whose
 * set bits do not match the number of stored values, or row offsets that disagree with the mask.
 */
export function bitmaskDecompress(
  parts: { compressed: Uint8Array; bitmask: Uint8Array; rowOffsets?: readonly number[] },
  dtype: DType,
  shape: readonly number[],
  what: string,
): Uint8Array {
  checkWeightType(dtype, shape);
  const { compressed, bitmask, rowOffsets } = (parts ?? {}) as Partial<typeof parts>;
  checkField(compressed instanceof Uint8Array && bitmask instanceof Uint8Array && (rowOffsets === undefined || Array.isArray(rowOffsets)), 'parts',
    () => `must be { compressed, bitmask } (Uint8Arrays) with optional rowOffsets (numbers), got ${describeValue(parts)}`);
  const [rows, cols] = shape;
  const width = DTYPE_BYTES[dtype];
  const packedCols = Math.ceil(cols / 8);
  const storedCount = parts.compressed.byteLength / width;
  if (parts.bitmask.byteLength !== rows * packedCols) {
    throw new UserError(`${what}: bitmask holds ${parts.bitmask.byteLength} bytes, but shape [${rows}, ${cols}] needs ${rows * packedCols}`);
  }
  const dense = new Uint8Array(elementCount(shape) * width);
  const denseBits = elementBits(dense, dtype);
  const values = elementBits(parts.compressed, dtype);
  let stored = 0;
  for (let r = 0; r < rows; r++) {
    if (parts.rowOffsets && parts.rowOffsets[r] !== stored) {
      throw new UserError(`${what}: row_offsets[${r}] is ${parts.rowOffsets[r]}, but the bitmask puts row ${r} at value ${stored}`);
    }
    for (let c = 0; c < cols; c++) {
      if ((parts.bitmask[r * packedCols + (c >> 3)] & (1 << (c & 7))) === 0) continue;
      if (stored >= storedCount) throw new UserError(`${what}: the bitmask marks more values than the ${storedCount} stored`);
      denseBits[r * cols + c] = values[stored++];
    }
  }
  if (stored !== storedCount) throw new UserError(`${what}: ${storedCount} values are stored, but the bitmask marks ${stored}`);
  return dense;
}
