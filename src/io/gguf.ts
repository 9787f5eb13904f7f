/**
 * GGUF reader (llama.cpp's checkpoint format), versions 1, 2 and 3. A file is:
 *
 *   magic "GGUF" · u32 version · tensor count · metadata count
 *   metadata: (string key, u32 value type, value) × count
 *   tensor infos: (string name, u32 n_dims, dims × n_dims, u32 ggml type, u64 offset) × count
 *   padding to `general.alignment` (default 32) · tensor data
 *
 * Version 1 writes counts, string lengths, array lengths and dims as u32; versions 2 and 3 as u64
 * (v3 only adds big-endian files, which crepe refuses). Dims are in ggml order — ne[0] varies
 * fastest — so the row-major (PyTorch) shape is the dims reversed. Tensor offsets are relative to
 * the data section.
 *
 * Opening parses the header only (read in chunks, so a large vocabulary does not mean reading the
 * whole file); tensors are read one at a time by file offset. Every malformation is a UserError
 * naming the file.
 */
import { closeSync } from 'node:fs';
import { UserError } from '../util/errors.ts';
import { openForReading, readBytesAt } from './read-at.ts';
import { DTYPE_BYTES, decodeToF32, type DType } from './safetensors.ts';

const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
const DEFAULT_ALIGNMENT = 32;
const HEADER_CHUNK_BYTES = 1 << 20;

/** ggml tensor type ids → names (ggml.h), so a refusal can say what a tensor is. */
const GGML_TYPE_NAMES: Readonly<Record<number, string>> = {
  0: 'F32', 1: 'F16', 2: 'Q4_0', 3: 'Q4_1', 4: 'Q4_2', 5: 'Q4_3', 6: 'Q5_0', 7: 'Q5_1', 8: 'Q8_0',
  9: 'Q8_1', 10: 'Q2_K', 11: 'Q3_K', 12: 'Q4_K', 13: 'Q5_K', 14: 'Q6_K', 15: 'Q8_K', 16: 'IQ2_XXS',
  17: 'IQ2_XS', 18: 'IQ3_XXS', 19: 'IQ1_S', 20: 'IQ4_NL', 21: 'IQ3_S', 22: 'IQ2_S', 23: 'IQ4_XS',
  24: 'I8', 25: 'I16', 26: 'I32', 27: 'I64', 28: 'F64', 29: 'IQ1_M', 30: 'BF16', 31: 'Q4_0_4_4',
  32: 'Q4_0_4_8', 33: 'Q4_0_8_8', 34: 'TQ1_0', 35: 'TQ2_0', 36: 'IQ4_NL_4_4', 37: 'IQ4_NL_4_8',
  38: 'IQ4_NL_8_8', 39: 'MXFP4',
};

/** The ggml types crepe reads, as safetensors dtypes. */
const SUPPORTED_GGML_TYPES: Readonly<Record<number, DType>> = { 0: 'F32', 1: 'F16', 30: 'BF16' };

export function ggmlTypeName(typeId: number): string {
  return GGML_TYPE_NAMES[typeId] ?? `unknown ggml type ${typeId}`;
}

/** Metadata value types (gguf.md `gguf_metadata_value_type`). */
const enum ValueType {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
}

/** Bytes of each fixed-size value type (strings and arrays are variable). */
const FIXED_VALUE_BYTES: Readonly<Record<number, number>> = {
  [ValueType.UINT8]: 1, [ValueType.INT8]: 1, [ValueType.UINT16]: 2, [ValueType.INT16]: 2,
  [ValueType.UINT32]: 4, [ValueType.INT32]: 4, [ValueType.FLOAT32]: 4, [ValueType.BOOL]: 1,
  [ValueType.UINT64]: 8, [ValueType.INT64]: 8, [ValueType.FLOAT64]: 8,
};

/**
 * A metadata value. Scalars: number (64-bit integers beyond 2^53 stay bigint), boolean, string.
 * Arrays of numbers come back as typed arrays (a vocabulary's scores are one Float32Array), arrays
 * of strings/bools as JS arrays, nested arrays as arrays of values.
 */
export type GgufScalar = number | bigint | boolean | string;
export type GgufNumericArray =
  | Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array
  | Float32Array | Float64Array | BigUint64Array | BigInt64Array;
export type GgufValue = GgufScalar | GgufNumericArray | string[] | boolean[] | GgufValue[];

export interface GgufTensorInfo {
  name: string;
  /** ggml order: dims[0] varies fastest. */
  ggmlDims: number[];
  /** Row-major shape (ggml dims reversed), as safetensors and PyTorch write it. */
  shape: number[];
  dtype: DType;
  /** Absolute position of the first byte in the file. */
  byteOffset: number;
  byteLength: number;
}

/**
 * The shortest decimal that reads back as the same float32: metadata such as an RMSNorm epsilon
 * stored as float32 1e-5 then prints as 1e-5, not 0.000009999999747378752.
 */
export function shortestFloat32(value: number): number {
  if (!Number.isFinite(value)) return value;
  const target = Math.fround(value);
  for (let digits = 1; digits < 17; digits++) {
    const candidate = Number(value.toPrecision(digits));
    if (Math.fround(candidate) === target) return candidate;
  }
  return value;
}

/**
 * Sequential little-endian reader over the header part of a file. It keeps a window of the file in
 * memory and refills it (at least HEADER_CHUNK_BYTES at a time) when a read would cross its end.
 */
class HeaderCursor {
  /** Absolute file position of the next byte to read. */
  position = 0;
  private window = new Uint8Array(0);
  private view = new DataView(this.window.buffer);
  private windowStart = 0;
  private readonly decoder = new TextDecoder('utf-8', { fatal: true });

  constructor(
    private readonly fd: number,
    readonly fileSize: number,
    private readonly filePath: string,
  ) {}

  get remaining(): number {
    return this.fileSize - this.position;
  }

  fail(problem: string): never {
    throw new UserError(`${this.filePath}: ${problem}`);
  }

  /** Makes bytes [position, position + n) available; returns their offset inside the window. */
  private take(n: number, what: string): number {
    if (n > this.remaining) {
      this.fail(`${what} at byte ${this.position} runs past the end of the file (${this.fileSize} bytes; truncated?)`);
    }
    let offset = this.position - this.windowStart;
    if (offset < 0 || offset + n > this.window.byteLength) {
      const size = Math.min(Math.max(n, HEADER_CHUNK_BYTES), this.remaining);
      this.window = readBytesAt(this.fd, this.position, size, this.filePath);
      this.view = new DataView(this.window.buffer);
      this.windowStart = this.position;
      offset = 0;
    }
    this.position += n;
    return offset;
  }

  u8(what: string): number { const at = this.take(1, what); return this.view.getUint8(at); }
  i8(what: string): number { const at = this.take(1, what); return this.view.getInt8(at); }
  u16(what: string): number { const at = this.take(2, what); return this.view.getUint16(at, true); }
  i16(what: string): number { const at = this.take(2, what); return this.view.getInt16(at, true); }
  u32(what: string): number { const at = this.take(4, what); return this.view.getUint32(at, true); }
  i32(what: string): number { const at = this.take(4, what); return this.view.getInt32(at, true); }
  f32(what: string): number { const at = this.take(4, what); return this.view.getFloat32(at, true); }
  f64(what: string): number { const at = this.take(8, what); return this.view.getFloat64(at, true); }
  u64Big(what: string): bigint { const at = this.take(8, what); return this.view.getBigUint64(at, true); }
  i64Big(what: string): bigint { const at = this.take(8, what); return this.view.getBigInt64(at, true); }

  /** A u64 that must be a safe JS integer (a size, count or offset). */
  u64(what: string): number {
    const value = this.u64Big(what);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`${what} ${value} is implausibly large`);
    return Number(value);
  }

  bytes(n: number, what: string): Uint8Array {
    const offset = this.take(n, what);
    return this.window.subarray(offset, offset + n);
  }

  utf8(n: number, what: string): string {
    const raw = this.bytes(n, what);
    try {
      return this.decoder.decode(raw);
    } catch {
      return this.fail(`${what} at byte ${this.position - n} is not valid UTF-8`);
    }
  }
}

/** Reads the header fields whose width depends on the version. */
class GgufHeaderParser {
  constructor(
    private readonly cursor: HeaderCursor,
    readonly version: number,
  ) {}

  /** Counts and lengths: u32 in version 1, u64 later. */
  size(what: string): number {
    return this.version === 1 ? this.cursor.u32(what) : this.cursor.u64(what);
  }

  string(what: string): string {
    const length = this.size(`length of ${what}`);
    return this.cursor.utf8(length, what);
  }

  value(type: number, what: string): GgufValue {
    const c = this.cursor;
    switch (type) {
      case ValueType.UINT8: return c.u8(what);
      case ValueType.INT8: return c.i8(what);
      case ValueType.UINT16: return c.u16(what);
      case ValueType.INT16: return c.i16(what);
      case ValueType.UINT32: return c.u32(what);
      case ValueType.INT32: return c.i32(what);
      case ValueType.FLOAT32: return shortestFloat32(c.f32(what));
      case ValueType.FLOAT64: return c.f64(what);
      case ValueType.BOOL: {
        const byte = c.u8(what);
        if (byte > 1) c.fail(`${what}: boolean byte is ${byte}, expected 0 or 1`);
        return byte === 1;
      }
      case ValueType.UINT64: return narrowBigInt(c.u64Big(what));
      case ValueType.INT64: return narrowBigInt(c.i64Big(what));
      case ValueType.STRING: return this.string(what);
      case ValueType.ARRAY: return this.array(what);
      default: return c.fail(`${what}: unknown metadata value type ${type}`);
    }
  }

  private array(what: string): GgufValue {
    const c = this.cursor;
    const elementType = c.u32(`element type of ${what}`);
    const length = this.size(`length of ${what}`);
    const fixedBytes = FIXED_VALUE_BYTES[elementType];
    // Even the smallest element takes one byte (a string: its length field), so a length beyond
    // the bytes left is a corrupt file, caught before allocating anything.
    const minElementBytes = fixedBytes ?? (this.version === 1 ? 4 : 8);
    if (length * minElementBytes > c.remaining) {
      c.fail(`${what}: array of ${length} elements does not fit in the ${c.remaining} bytes left`);
    }
    if (fixedBytes !== undefined && elementType !== ValueType.BOOL) {
      return this.numericArray(elementType, length, fixedBytes, what);
    }
    const values: GgufValue[] = [];
    for (let i = 0; i < length; i++) values.push(this.value(elementType, `${what}[${i}]`));
    return values;
  }

  private numericArray(elementType: number, length: number, elementBytes: number, what: string): GgufNumericArray {
    // Copy into a fresh, aligned buffer so the typed array can view it directly.
    const raw = this.cursor.bytes(length * elementBytes, what).slice();
    const buffer = raw.buffer;
    switch (elementType) {
      case ValueType.UINT8: return new Uint8Array(buffer);
      case ValueType.INT8: return new Int8Array(buffer);
      case ValueType.UINT16: return new Uint16Array(buffer);
      case ValueType.INT16: return new Int16Array(buffer);
      case ValueType.UINT32: return new Uint32Array(buffer);
      case ValueType.INT32: return new Int32Array(buffer);
      case ValueType.FLOAT32: return new Float32Array(buffer);
      case ValueType.FLOAT64: return new Float64Array(buffer);
      case ValueType.UINT64: return new BigUint64Array(buffer);
      case ValueType.INT64: return new BigInt64Array(buffer);
      default: return this.cursor.fail(`${what}: unexpected element type ${elementType}`);
    }
  }
}

function narrowBigInt(value: bigint): number | bigint {
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
}

/** One GGUF file, open for reading tensors by offset. */
export class GgufFile {
  private fd: number;

  private constructor(
    readonly path: string,
    fd: number,
    readonly version: number,
    readonly metadata: Map<string, GgufValue>,
    /** Tensors in the order of their infos in the file. */
    readonly tensors: Map<string, GgufTensorInfo>,
    readonly alignment: number,
    /** Absolute file position of the data section. */
    readonly dataStart: number,
  ) {
    this.fd = fd;
  }

  /** Opens `filePath` and validates its header and tensor ranges; reads no tensor data. */
  static open(filePath: string): GgufFile {
    return openForReading(filePath, 'GGUF file', (fd, fileSize) => {
      const parsed = parseGguf(new HeaderCursor(fd, fileSize, filePath), filePath);
      return new GgufFile(filePath, fd, parsed.version, parsed.metadata, parsed.tensors, parsed.alignment, parsed.dataStart);
    });
  }

  info(name: string): GgufTensorInfo {
    const info = this.tensors.get(name);
    if (!info) throw new UserError(`${this.path}: no tensor named "${name}"`);
    return info;
  }

  /**
   * The tensor's bytes as stored (little-endian, its own dtype): in a fresh buffer, or at the start
   * of `scratch` when it is given and large enough.
   */
  readRaw(name: string, scratch?: Uint8Array<ArrayBuffer>): Uint8Array {
    const info = this.info(name);
    if (this.fd < 0) throw new Error(`${this.path}: read after close`);
    return readBytesAt(this.fd, info.byteOffset, info.byteLength, this.path, scratch);
  }

  /** The tensor widened to float32. */
  readF32(name: string): Float32Array {
    return decodeToF32(this.readRaw(name), this.info(name).dtype);
  }

  /** A metadata value that must be present. */
  require(key: string): GgufValue {
    const value = this.metadata.get(key);
    if (value === undefined) throw new UserError(`${this.path}: metadata key "${key}" is missing`);
    return value;
  }

  /** A numeric scalar metadata value, or `fallback` when the key is absent. */
  number(key: string, fallback?: number): number {
    const value = this.metadata.get(key);
    if (value === undefined) {
      if (fallback === undefined) throw new UserError(`${this.path}: metadata key "${key}" is missing`);
      return fallback;
    }
    if (typeof value !== 'number') throw new UserError(`${this.path}: metadata "${key}" should be a number, found ${describeValue(value)}`);
    return value;
  }

  /** A string metadata value, or `fallback` when the key is absent. */
  string(key: string, fallback?: string): string {
    const value = this.metadata.get(key);
    if (value === undefined) {
      if (fallback === undefined) throw new UserError(`${this.path}: metadata key "${key}" is missing`);
      return fallback;
    }
    if (typeof value !== 'string') throw new UserError(`${this.path}: metadata "${key}" should be a string, found ${describeValue(value)}`);
    return value;
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

export function describeValue(value: GgufValue): string {
  if (typeof value === 'string') return `string "${value.length > 40 ? `${value.slice(0, 40)}…` : value}"`;
  if (typeof value === 'object') return `array of ${value.length}`;
  return `${typeof value} ${String(value)}`;
}

/** True when the file starts with the GGUF magic. */
export function hasGgufMagic(firstBytes: Uint8Array): boolean {
  return firstBytes.byteLength >= 4 && new DataView(firstBytes.buffer, firstBytes.byteOffset, 4).getUint32(0, true) === GGUF_MAGIC;
}

interface ParsedGguf {
  version: number;
  metadata: Map<string, GgufValue>;
  tensors: Map<string, GgufTensorInfo>;
  alignment: number;
  dataStart: number;
}

function parseGguf(cursor: HeaderCursor, filePath: string): ParsedGguf {
  if (cursor.fileSize < 8) cursor.fail(`file is ${cursor.fileSize} bytes, too short for a GGUF header`);
  const magic = cursor.u32('magic');
  if (magic !== GGUF_MAGIC) cursor.fail('not a GGUF file (the first 4 bytes are not "GGUF")');
  const version = cursor.u32('version');
  if (version === 0x03000000 || version === 0x02000000) {
    cursor.fail('is a big-endian GGUF file; crepe reads little-endian GGUF only');
  }
  if (version < 1 || version > 3) cursor.fail(`GGUF version ${version} is not supported (expected 1, 2 or 3)`);

  const parser = new GgufHeaderParser(cursor, version);
  const tensorCount = parser.size('tensor count');
  const metadataCount = parser.size('metadata count');
  // Each metadata entry takes at least a key length and a value type; each tensor info at least
  // a name length, n_dims, type and offset: counts beyond that are a corrupt header.
  const sizeBytes = version === 1 ? 4 : 8;
  if (metadataCount * (sizeBytes + 4) > cursor.remaining) cursor.fail(`metadata count ${metadataCount} does not fit in the file`);
  if (tensorCount * (sizeBytes + 4 + 4 + 8) > cursor.remaining) cursor.fail(`tensor count ${tensorCount} does not fit in the file`);

  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < metadataCount; i++) {
    const key = parser.string(`metadata key #${i}`);
    if (metadata.has(key)) cursor.fail(`metadata key "${key}" appears twice`);
    const type = cursor.u32(`value type of "${key}"`);
    metadata.set(key, parser.value(type, `metadata "${key}"`));
  }

  const alignmentValue = metadata.get('general.alignment') ?? DEFAULT_ALIGNMENT;
  if (typeof alignmentValue !== 'number' || !Number.isInteger(alignmentValue) || alignmentValue <= 0 || (alignmentValue & (alignmentValue - 1)) !== 0) {
    cursor.fail(`general.alignment must be a power of two, found ${describeValue(alignmentValue)}`);
  }
  const alignment = alignmentValue;

  interface RawInfo { name: string; ggmlDims: number[]; typeId: number; relativeOffset: number }
  const rawInfos: RawInfo[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const name = parser.string(`name of tensor #${i}`);
    if (seen.has(name)) cursor.fail(`tensor "${name}" appears twice`);
    seen.add(name);
    const nDims = cursor.u32(`n_dims of "${name}"`);
    if (nDims < 1 || nDims > 4) cursor.fail(`tensor "${name}" has ${nDims} dimensions (expected 1 to 4)`);
    const ggmlDims: number[] = [];
    for (let d = 0; d < nDims; d++) ggmlDims.push(parser.size(`dimension ${d} of "${name}"`));
    const typeId = cursor.u32(`type of "${name}"`);
    const relativeOffset = cursor.u64(`offset of "${name}"`);
    rawInfos.push({ name, ggmlDims, typeId, relativeOffset });
  }
  const dataStart = alignUp(cursor.position, alignment);

  const tensors = new Map<string, GgufTensorInfo>();
  for (const raw of rawInfos) {
    const dtype = SUPPORTED_GGML_TYPES[raw.typeId];
    if (dtype === undefined) {
      throw new UserError(
        `${filePath}: tensor "${raw.name}" has type ${ggmlTypeName(raw.typeId)}; crepe reads only F32, F16 and BF16 GGUF tensors ` +
          '(quantized models cannot be pruned: convert the original F16/F32 weights instead)',
      );
    }
    if (raw.relativeOffset % alignment !== 0) {
      cursor.fail(`tensor "${raw.name}" offset ${raw.relativeOffset} is not a multiple of the alignment ${alignment}`);
    }
    let elements = 1;
    for (const dim of raw.ggmlDims) elements *= dim;
    const byteLength = elements * DTYPE_BYTES[dtype];
    const byteOffset = dataStart + raw.relativeOffset;
    if (!Number.isSafeInteger(byteLength) || byteOffset + byteLength > cursor.fileSize) {
      cursor.fail(
        `tensor "${raw.name}" (${byteLength} bytes at data offset ${raw.relativeOffset}) runs past the end of the file (${cursor.fileSize} bytes; truncated?)`,
      );
    }
    tensors.set(raw.name, { name: raw.name, ggmlDims: raw.ggmlDims, shape: [...raw.ggmlDims].reverse(), dtype, byteOffset, byteLength });
  }

  const byPosition = [...tensors.values()].sort((a, b) => a.byteOffset - b.byteOffset);
  for (let i = 1; i < byPosition.length; i++) {
    const previous = byPosition[i - 1];
    if (previous.byteOffset + previous.byteLength > byPosition[i].byteOffset) {
      cursor.fail(`tensors "${previous.name}" and "${byPosition[i].name}" overlap`);
    }
  }
  return { version, metadata, tensors, alignment, dataStart };
}

function alignUp(position: number, alignment: number): number {
  return Math.ceil(position / alignment) * alignment;
}
