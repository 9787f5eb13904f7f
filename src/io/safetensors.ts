/**
 * safetensors reader. A file is: u64 little-endian header length N, N bytes of UTF-8 JSON
 * header, then the data region. The header maps each tensor name to
 * {dtype, shape, data_offsets: [begin, end)} (offsets relative to the data region) and may hold
 * a `__metadata__` string → string map.
 *
 * Opening reads only the length and the header; tensors are read one at a time by file offset,
 * so a model of any size is streamed, never loaded whole. The header is validated with the rules
 * of the format's reference (Rust) reader, and every violation is a UserError naming the file.
 *
 * `SafetensorsWeights` puts a model directory's weights — one file or a sharded set
 * (`model.safetensors.index.json`) — behind one API; model/checkpoint.ts's ModelCheckpoint adds the config.
 */
import { closeSync, existsSync } from 'node:fs';
import path from 'node:path';
import { UserError, invariant } from '../util/errors.ts';
import { bf16ToF32Into, f16ToF32Into } from '../util/float16.ts';
import { openForReading, readBytesAt, readBytesInto } from './read-at.ts';
import { checkModelDirectory, parseJson, readInputText } from './input-file.ts';
import { bitmaskDecompress, readIntegers } from './sparse-bitmask.ts';

/** Element types crepe reads and writes. */
export type DType = 'F32' | 'F16' | 'BF16';

export const DTYPE_BYTES: Readonly<Record<DType, number>> = { F32: 4, F16: 2, BF16: 2 };

/**
 * Integer element types read as raw bytes only: the parts of a compressed-tensors bitmask tensor
 * (packed bits U8, shape and row offsets I64). Anywhere else they are refused like the rest.
 */
export type RawDType = 'U8' | 'I32' | 'I64';
/** Every element type a safetensors file written by crepe may hold. */
export type StoredDType = DType | RawDType;

export const STORED_DTYPE_BYTES: Readonly<Record<StoredDType, number>> = { ...DTYPE_BYTES, U8: 1, I32: 4, I64: 8 };

const isRawDType = (value: string): value is RawDType => value === 'U8' || value === 'I32' || value === 'I64';

/** Element types the format defines that crepe does not handle; named in the refusal message. */
const UNSUPPORTED_DTYPES: ReadonlySet<string> = new Set([
  'BOOL', 'F4', 'F6_E2M3', 'F6_E3M2', 'U8', 'I8', 'F8_E5M2', 'F8_E4M3', 'F8_E8M0',
  'I16', 'U16', 'I32', 'U32', 'C64', 'F64', 'I64', 'U64',
]);

/** The refusal of a tensor whose element type crepe does not compute with. */
export function unsupportedDTypeProblem(name: string, dtype: string): string {
  return UNSUPPORTED_DTYPES.has(dtype)
    ? `tensor "${name}" has dtype ${dtype}, which crepe does not support (supported: F32, F16, BF16)`
    : `tensor "${name}" has unknown dtype "${dtype}" (supported: F32, F16, BF16)`;
}

/** The reference reader's limit on the header length (bytes). */
export const MAX_HEADER_BYTES = 100_000_000;

const LENGTH_PREFIX_BYTES = 8;
const METADATA_KEY = '__metadata__';

export interface TensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
  /** Absolute position of the tensor's first byte in its file. */
  byteOffset: number;
  byteLength: number;
  /** Path of the file holding the tensor. */
  file: string;
}

export function isDType(value: unknown): value is DType {
  return value === 'F32' || value === 'F16' || value === 'BF16';
}

export function elementCount(shape: readonly number[]): number {
  let count = 1;
  for (const dim of shape) count *= dim;
  return count;
}

/** Widens raw little-endian bytes of `dtype` to float32. */
export function decodeToF32(raw: Uint8Array, dtype: DType): Float32Array {
  if (dtype === 'F32') {
    // Typed-array views need element alignment; copy the rare unaligned input first.
    const aligned = raw.byteOffset % 4 === 0 ? raw : raw.slice();
    return new Float32Array(aligned.buffer, aligned.byteOffset, raw.byteLength / 4);
  }
  const out = new Float32Array(raw.byteLength / DTYPE_BYTES[dtype]);
  decodeInto(raw, dtype, out);
  return out;
}

/** decodeToF32 into `out` (at least as many elements as `raw` holds), which a caller reuses or fills piece by piece. */
export function decodeInto(raw: Uint8Array, dtype: DType, out: Float32Array): void {
  const count = raw.byteLength / DTYPE_BYTES[dtype];
  const aligned = raw.byteOffset % 4 === 0 ? raw : raw.slice();
  switch (dtype) {
    case 'F32': out.set(new Float32Array(aligned.buffer, aligned.byteOffset, count)); return;
    case 'F16': f16ToF32Into(new Uint16Array(aligned.buffer, aligned.byteOffset, count), out); return;
    case 'BF16': bf16ToF32Into(new Uint16Array(aligned.buffer, aligned.byteOffset, count), out); return;
  }
}

/**
 * How many values of raw `dtype` bytes are ±0 and whether all are finite, read from the bit
 * patterns: widening a whole checkpoint to float32 only to look at it would allocate (and, on a
 * machine with costly page faults, first-touch) twice its size.
 */
export function scanRaw(raw: Uint8Array, dtype: DType): { zeros: number; allFinite: boolean } {
  const count = raw.byteLength / DTYPE_BYTES[dtype];
  const aligned = raw.byteOffset % 4 === 0 ? raw : raw.slice();
  let zeros = 0;
  let nonFinite = 0;
  if (dtype === 'F32') {
    const bits = new Uint32Array(aligned.buffer, aligned.byteOffset, count);
    for (let i = 0; i < count; i++) {
      const magnitude = bits[i] & 0x7fffffff;
      zeros += +(magnitude === 0);
      nonFinite += +(magnitude >= 0x7f800000);
    }
    return { zeros, allFinite: nonFinite === 0 };
  }
  // binary16: exponent 0x7C00; bfloat16: exponent 0x7F80 (all ones = Inf or NaN). Two values per
  // 32-bit word: adding 0x7FFF to a 15-bit magnitude sets its bit 15 unless it is 0, and adding the
  // exponent's lowest bit to the exponent field sets bit 15 only when the field is all ones;
  // neither sum carries into the other half.
  const exponent = dtype === 'F16' ? 0x7c00 : 0x7f80;
  const exponentPair = (exponent * 0x10001) >>> 0;
  const exponentStep = (exponent & -exponent) * 0x10001;
  const words = new Uint32Array(aligned.buffer, aligned.byteOffset, count >>> 1);
  let nonzero = 0;
  let overflow = 0;
  for (let i = 0; i < words.length; i++) {
    const word = words[i];
    const flags = ((word & 0x7fff7fff) + 0x7fff7fff) >>> 15;
    nonzero += (flags & 1) + (flags >>> 16);
    overflow |= (word & exponentPair) + exponentStep;
  }
  zeros = 2 * words.length - nonzero;
  let allFinite = (overflow & 0x80008000) === 0;
  if (count & 1) {
    const last = new Uint16Array(aligned.buffer, aligned.byteOffset, count)[count - 1];
    zeros += +((last & 0x7fff) === 0);
    allFinite &&= (last & exponent) !== exponent;
  }
  return { zeros, allFinite };
}

/**
 * First repeated key of any object in `jsonText` (already known to be valid JSON), with its
 * nesting depth (1 = top level); null when there is none. JSON.parse keeps the last of duplicate
 * keys silently, so a second tensor of the same name would otherwise vanish.
 */
export function findDuplicateKey(jsonText: string): { key: string; depth: number } | null {
  // One frame per open object/array; for objects, the keys seen and whether a key comes next.
  const frames: { keys: Set<string> | null; expectingKey: boolean }[] = [];
  for (let i = 0; i < jsonText.length; i++) {
    const c = jsonText.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const start = i;
      for (i++; jsonText.charCodeAt(i) !== 0x22; i++) if (jsonText.charCodeAt(i) === 0x5c /* \ */) i++;
      const top = frames[frames.length - 1];
      if (top?.keys && top.expectingKey) {
        const key = JSON.parse(jsonText.slice(start, i + 1)) as string;
        if (top.keys.has(key)) return { key, depth: frames.length };
        top.keys.add(key);
        top.expectingKey = false;
      }
    } else if (c === 0x7b /* { */) {
      frames.push({ keys: new Set(), expectingKey: true });
    } else if (c === 0x5b /* [ */) {
      frames.push({ keys: null, expectingKey: false });
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      frames.pop();
    } else if (c === 0x2c /* , */) {
      const top = frames[frames.length - 1];
      if (top.keys) top.expectingKey = true;
    }
  }
  return null;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isNonNegativeInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** A tensor of an integer element type, kept as raw bytes (see RawDType). */
export interface RawTensorInfo extends Omit<TensorInfo, 'dtype'> {
  dtype: RawDType;
}

interface ParsedHeader {
  metadata: Record<string, string>;
  tensors: Map<string, TensorInfo>;
  rawTensors: Map<string, RawTensorInfo>;
}

type ParsedEntry = Omit<TensorInfo, 'dtype'> & { dtype: StoredDType; begin: number; end: number };

/** Validates one header entry and returns it with offsets still relative to the data region. */
function parseTensorEntry(name: string, entry: unknown, fail: (problem: string) => never): ParsedEntry {
  if (!isPlainObject(entry)) fail(`tensor "${name}": entry must be an object with dtype, shape and data_offsets`);
  const { dtype, shape, data_offsets: offsets } = entry;
  if (typeof dtype !== 'string') fail(`tensor "${name}": missing or non-string "dtype"`);
  if (!isDType(dtype) && !isRawDType(dtype)) fail(unsupportedDTypeProblem(name, dtype));
  if (!Array.isArray(shape) || !shape.every(isNonNegativeInteger)) {
    fail(`tensor "${name}": "shape" must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegativeInteger)) {
    fail(`tensor "${name}": "data_offsets" must be [begin, end] with non-negative integers, got ${JSON.stringify(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) fail(`tensor "${name}": data_offsets [${begin}, ${end}) end before they begin`);
  const count = elementCount(shape);
  const needed = count * STORED_DTYPE_BYTES[dtype as StoredDType];
  if (!Number.isSafeInteger(needed)) fail(`tensor "${name}": shape [${shape.join(',')}] is too large`);
  if (end - begin !== needed) {
    fail(
      `tensor "${name}" claims bytes [${begin}, ${end}) (${end - begin} bytes) but shape [${shape.join(',')}] × ${dtype} ` +
        `needs ${needed} bytes`,
    );
  }
  return { name, dtype: dtype as StoredDType, shape: [...shape], byteOffset: 0, byteLength: needed, file: '', begin, end };
}

/**
 * Parses and validates a header. `dataStart` is the absolute offset of the data region and
 * `dataBytes` its length: the tensors must tile it exactly, with no overlap and no hole.
 */
function parseHeader(headerBytes: Uint8Array, dataStart: number, dataBytes: number, file: string): ParsedHeader {
  const fail = (problem: string): never => {
    throw new UserError(`${file}: ${problem}`);
  };
  let headerText: string;
  try {
    headerText = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    return fail('header is not valid UTF-8');
  }
  const header = parseJson(headerText, `${file}: header`);
  if (!isPlainObject(header)) return fail('header must be a JSON object');
  const duplicate = findDuplicateKey(headerText);
  if (duplicate) {
    fail(duplicate.depth === 1 ? `duplicate tensor name "${duplicate.key}" in header` : `duplicate key "${duplicate.key}" in header`);
  }

  let metadata: Record<string, string> = {};
  const entries: ParsedEntry[] = [];
  for (const [name, entry] of Object.entries(header)) {
    if (name === METADATA_KEY) {
      if (entry === null) continue;
      if (!isPlainObject(entry)) fail(`"${METADATA_KEY}" must be an object of strings`);
      for (const [key, value] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof value !== 'string') fail(`"${METADATA_KEY}" value of "${key}" must be a string, got ${JSON.stringify(value)}`);
      }
      // fromEntries defines own properties, so even a key "__proto__" is kept as data.
      metadata = Object.fromEntries(Object.entries(entry as Record<string, string>));
      continue;
    }
    entries.push(parseTensorEntry(name, entry, fail));
  }

  // As the reference reader does: order by offset, then the ranges must tile [0, dataBytes).
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  let previous: string | null = null;
  for (const entry of entries) {
    if (entry.begin < covered) {
      fail(`tensor "${entry.name}" bytes [${entry.begin}, ${entry.end}) overlap tensor "${previous}" (which ends at ${covered})`);
    }
    if (entry.begin > covered) {
      fail(
        `hole in data: bytes [${covered}, ${entry.begin}) belong to no tensor ` +
          `(between ${previous === null ? 'the start of the data' : `tensor "${previous}"`} and tensor "${entry.name}")`,
      );
    }
    if (entry.end > dataBytes) {
      fail(
        `tensor "${entry.name}" ends at data byte ${entry.end} but the data region holds only ${dataBytes} bytes ` +
          '(file truncated?)',
      );
    }
    covered = entry.end;
    previous = entry.name;
  }
  if (covered !== dataBytes) {
    fail(`data region is ${dataBytes} bytes but the tensors cover only ${covered}: ${dataBytes - covered} trailing bytes belong to no tensor`);
  }

  const tensors = new Map<string, TensorInfo>();
  const rawTensors = new Map<string, RawTensorInfo>();
  for (const { begin, end: _end, ...info } of entries) {
    const placed = { ...info, byteOffset: dataStart + begin, file };
    if (isDType(placed.dtype)) tensors.set(info.name, placed as TensorInfo);
    else rawTensors.set(info.name, placed as RawTensorInfo);
  }
  return { metadata, tensors, rawTensors };
}

/** Bytes per piece when a tensor is read piece by piece (a multiple of every element size). */
export const PIECE_BYTES = 1 << 22;

/** The piece buffer of readF32, allocated once: widening reuses it rather than a fresh copy of each tensor's bytes. */
let widenScratch: Uint8Array | null = null;

/** One safetensors file, open for reading tensors by offset. */
export class SafetensorsFile {
  private fd: number;

  private constructor(
    readonly path: string,
    fd: number,
    readonly metadata: Record<string, string>,
    /** Float tensors in the order of their data in the file. */
    readonly tensors: Map<string, TensorInfo>,
    /** Integer tensors (RawDType), read as bytes only. */
    readonly rawTensors: Map<string, RawTensorInfo>,
  ) {
    this.fd = fd;
  }

  /** Opens `filePath` and validates its header; reads nothing else. */
  static open(filePath: string): SafetensorsFile {
    return openForReading(filePath, 'safetensors file', (fd, fileSize) => {
      if (fileSize < LENGTH_PREFIX_BYTES) {
        throw new UserError(`${filePath}: file is ${fileSize} bytes, too short for the 8-byte header length (truncated?)`);
      }
      const prefix = readBytesAt(fd, 0, LENGTH_PREFIX_BYTES, filePath);
      const headerLength = new DataView(prefix.buffer).getBigUint64(0, true);
      if (headerLength > BigInt(MAX_HEADER_BYTES)) {
        throw new UserError(`${filePath}: header length ${headerLength} bytes exceeds the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file?)`);
      }
      const headerBytes = Number(headerLength);
      if (LENGTH_PREFIX_BYTES + headerBytes > fileSize) {
        throw new UserError(
          `${filePath}: header length ${headerBytes} bytes runs past the end of the file (${fileSize} bytes; truncated?)`,
        );
      }
      const header = readBytesAt(fd, LENGTH_PREFIX_BYTES, headerBytes, filePath);
      const dataStart = LENGTH_PREFIX_BYTES + headerBytes;
      const { metadata, tensors, rawTensors } = parseHeader(header, dataStart, fileSize - dataStart, filePath);
      return new SafetensorsFile(filePath, fd, metadata, tensors, rawTensors);
    });
  }

  info(name: string): TensorInfo {
    const info = this.tensors.get(name);
    if (!info) throw new UserError(`${this.path}: no tensor named "${name}"`);
    return info;
  }

  /** Where a tensor's bytes lie, float or integer. */
  private stored(name: string): TensorInfo | RawTensorInfo {
    const info = this.tensors.get(name) ?? this.rawTensors.get(name);
    if (!info) throw new UserError(`${this.path}: no tensor named "${name}"`);
    return info;
  }

  /**
   * The tensor's bytes as stored (little-endian, its own dtype), float or integer: in a fresh
   * buffer, or at the start of `scratch` when it is given and large enough.
   */
  readRaw(name: string, scratch?: Uint8Array): Uint8Array {
    const { byteLength } = this.stored(name);
    const target = scratch && scratch.byteLength >= byteLength ? scratch.subarray(0, byteLength) : new Uint8Array(byteLength);
    this.readRawInto(name, target);
    return target;
  }

  /**
   * Fills `target` with the tensor's stored bytes from byte `offset` of the tensor on (a row, a
   * piece); float or integer.
   */
  readRawInto(name: string, target: Uint8Array, offset = 0): void {
    const info = this.stored(name);
    if (this.fd < 0) throw new Error(`${this.path}: read after close`);
    invariant(offset >= 0 && offset + target.byteLength <= info.byteLength, () => `${this.path}: bytes [${offset}, ${offset + target.byteLength}) outside tensor "${name}"`);
    readBytesInto(this.fd, info.byteOffset + offset, target, this.path);
  }

  /**
   * Hands the tensor's stored bytes to `visit` in order, piece by piece, each read into the start
   * of `scratch` (valid only during the call; its length a multiple of 8, so every piece holds whole
   * elements): a whole checkpoint is read without a fresh buffer per tensor.
   */
  readRawPieces(name: string, scratch: Uint8Array, visit: (piece: Uint8Array, offset: number) => void): void {
    const info = this.stored(name);
    invariant(scratch.byteLength > 0 && scratch.byteLength % 8 === 0, 'scratch must be a positive multiple of 8 bytes');
    for (let offset = 0; offset < info.byteLength; offset += scratch.byteLength) {
      const piece = scratch.subarray(0, Math.min(scratch.byteLength, info.byteLength - offset));
      this.readRawInto(name, piece, offset);
      visit(piece, offset);
    }
  }

  /**
   * The tensor widened to float32, read piece by piece into its float32 array (no copy of the
   * stored bytes): a fresh one, or `into` (of the tensor's length) when given.
   */
  readF32(name: string, into?: Float32Array): Float32Array {
    const { dtype, shape } = this.info(name);
    const out = into ?? new Float32Array(elementCount(shape));
    invariant(out.length === elementCount(shape), () => `${this.path}: tensor "${name}" has ${elementCount(shape)} values, not ${out.length}`);
    if (dtype === 'F32') {
      this.readRawInto(name, new Uint8Array(out.buffer, out.byteOffset, out.byteLength));
    } else {
      this.readRawPieces(name, (widenScratch ??= new Uint8Array(PIECE_BYTES)), (piece, offset) => {
        decodeInto(piece, dtype, out.subarray(offset / DTYPE_BYTES[dtype]));
      });
    }
    return out;
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

export const SINGLE_FILE_NAME = 'model.safetensors';
export const INDEX_FILE_NAME = 'model.safetensors.index.json';

/** Reads `weight_map` of a sharded checkpoint's index: tensor name → shard file name. */
function readWeightMap(indexPath: string): Map<string, string> {
  const fail = (problem: string): never => {
    throw new UserError(`${indexPath}: ${problem}`);
  };
  const text = readInputText(indexPath, 'json');
  const index = parseJson(text, indexPath);
  if (!isPlainObject(index) || !isPlainObject(index.weight_map)) return fail('expected an object with a "weight_map" object');
  const duplicate = findDuplicateKey(text);
  if (duplicate) fail(`duplicate key "${duplicate.key}" (a tensor listed twice?)`);
  const weightMap = new Map<string, string>();
  for (const [tensor, shard] of Object.entries(index.weight_map)) {
    if (typeof shard !== 'string' || shard === '' || path.basename(shard) !== shard) {
      fail(`tensor "${tensor}" maps to ${JSON.stringify(shard)}; expected a file name in the same directory`);
    }
    weightMap.set(tensor, shard as string);
  }
  return weightMap;
}

/** A weight stored in compressed-tensors' bitmask layout (io/sparse-bitmask.ts), read back dense. */
interface BitmaskGroup {
  compressed: TensorInfo;
  bitmask: RawTensorInfo;
  shape: RawTensorInfo;
  rowOffsets: RawTensorInfo | null;
}

/**
 * A model's weights: `model.safetensors`, or the shards listed in `model.safetensors.index.json`.
 * Weights stored in compressed-tensors' bitmask layout (`<m>.compressed`, `.bitmask`, `.shape`,
 * `.row_offsets`) appear as the dense `<m>.weight` they stand for and are decompressed on read;
 * `storedTensors()` lists what the files hold.
 */
export class SafetensorsWeights {
  private constructor(
    readonly dir: string,
    /** Open files by path. */
    private readonly files: Map<string, SafetensorsFile>,
    /** Tensors as the model sees them (bitmask weights as their dense TensorInfo). */
    private readonly locations: Map<string, TensorInfo>,
    /** Every tensor the files hold, float and integer. */
    private readonly stored: Map<string, TensorInfo | RawTensorInfo>,
    private readonly groups: Map<string, BitmaskGroup>,
  ) {}

  static open(dir: string): SafetensorsWeights {
    checkModelDirectory(dir);
    const singlePath = path.join(dir, SINGLE_FILE_NAME);
    const indexPath = path.join(dir, INDEX_FILE_NAME);
    // transformers would read the single file without a word; the two may hold different models
    // (a stale file left beside newer shards), so crepe does not pick one.
    if (existsSync(singlePath) && existsSync(indexPath)) {
      throw new UserError(`${dir}: holds both ${SINGLE_FILE_NAME} and ${INDEX_FILE_NAME}, which may be different models; move the one that is not the model out of the directory`);
    }
    if (existsSync(singlePath)) {
      const file = SafetensorsFile.open(singlePath);
      try {
        return SafetensorsWeights.build(dir, [file], new Map<string, TensorInfo | RawTensorInfo>([...file.tensors, ...file.rawTensors]));
      } catch (error) {
        file.close();
        throw error;
      }
    }
    if (!existsSync(indexPath)) {
      throw new UserError(`${dir}: no ${SINGLE_FILE_NAME} or ${INDEX_FILE_NAME} (expected a Hugging Face model directory)`);
    }
    const weightMap = readWeightMap(indexPath);
    const shards = new Map<string, SafetensorsFile>();
    try {
      const stored = new Map<string, TensorInfo | RawTensorInfo>();
      for (const [tensor, shardName] of weightMap) {
        let shard = shards.get(shardName);
        if (!shard) {
          const shardPath = path.join(dir, shardName);
          if (!existsSync(shardPath)) {
            throw new UserError(`${indexPath}: shard ${shardName} (holding tensor "${tensor}") does not exist in ${dir}`);
          }
          shard = SafetensorsFile.open(shardPath);
          shards.set(shardName, shard);
        }
        const info = shard.tensors.get(tensor) ?? shard.rawTensors.get(tensor);
        if (!info) throw new UserError(`${indexPath}: tensor "${tensor}" is listed in shard ${shardName}, but that file does not contain it`);
        stored.set(tensor, info);
      }
      // A tensor a shard holds but the index leaves out (an index out of date with its shards) would
      // be missing from the model, or break up a bitmask-compressed weight, without a word.
      for (const [shardName, shard] of shards) {
        for (const tensor of [...shard.tensors.keys(), ...shard.rawTensors.keys()]) {
          if (weightMap.get(tensor) !== shardName) {
            throw new UserError(`${indexPath}: shard ${shardName} holds tensor "${tensor}", which the index ${weightMap.has(tensor) ? `lists in ${weightMap.get(tensor)}` : 'does not list'}; the index does not match its shards`);
          }
        }
      }
      return SafetensorsWeights.build(dir, [...shards.values()], stored);
    } catch (error) {
      for (const shard of shards.values()) shard.close();
      throw error;
    }
  }

  /**
   * Finds the bitmask-stored weights among `stored`; any other integer tensor is refused. Tensors
   * keep the order of `stored`, a bitmask-stored weight at the place of its `.compressed` part.
   */
  private static build(dir: string, files: SafetensorsFile[], stored: Map<string, TensorInfo | RawTensorInfo>): SafetensorsWeights {
    // The dense weight that each `.compressed` part stands for.
    const weightAt = new Map<string, TensorInfo>();
    const groups = new Map<string, BitmaskGroup>();
    const grouped = new Set<string>();
    const fileByPath = new Map(files.map((file) => [file.path, file]));
    for (const [name, info] of stored) {
      if (!name.endsWith('.bitmask') || isDType(info.dtype)) continue;
      const prefix = name.slice(0, -'.bitmask'.length);
      const part = (suffix: string) => stored.get(`${prefix}.${suffix}`);
      const where = `${dir}: bitmask-compressed weight "${prefix}.weight"`;
      const compressed = part('compressed');
      const shapeInfo = part('shape');
      const rowOffsets = part('row_offsets') ?? null;
      if (!compressed || !isDType(compressed.dtype)) throw new UserError(`${where} has no float "${prefix}.compressed" tensor`);
      if (!shapeInfo || (shapeInfo.dtype !== 'I64' && shapeInfo.dtype !== 'I32') || shapeInfo.shape.length !== 1) {
        throw new UserError(`${where} has no integer "${prefix}.shape" tensor`);
      }
      if (rowOffsets && rowOffsets.dtype !== 'I64' && rowOffsets.dtype !== 'I32') throw new UserError(`${where}: "${prefix}.row_offsets" must be an integer tensor`);
      if (stored.has(`${prefix}.weight`)) throw new UserError(`${where} is also stored dense`);
      const shapeFile = fileByPath.get(shapeInfo.file)!;
      const shape = readIntegers(shapeFile.readRaw(shapeInfo.name), shapeInfo.dtype as RawDType, `${dir}: "${shapeInfo.name}"`);
      const bitmask = info as RawTensorInfo;
      if (shape.length !== 2 || !shape.every((dim) => Number.isSafeInteger(dim) && dim >= 0) || bitmask.shape.length !== 2
        || bitmask.shape[0] !== shape[0] || bitmask.shape[1] !== Math.ceil(shape[1] / 8)) {
        throw new UserError(`${where}: shape [${shape.join(', ')}] does not match bitmask [${bitmask.shape.join(', ')}]`);
      }
      const dtype = compressed.dtype as DType;
      weightAt.set(`${prefix}.compressed`, {
        name: `${prefix}.weight`, dtype, shape, byteOffset: compressed.byteOffset, byteLength: elementCount(shape) * DTYPE_BYTES[dtype], file: compressed.file,
      });
      groups.set(`${prefix}.weight`, { compressed: compressed as TensorInfo, bitmask, shape: shapeInfo as RawTensorInfo, rowOffsets: rowOffsets as RawTensorInfo | null });
      for (const suffix of ['bitmask', 'compressed', 'shape', 'row_offsets']) grouped.add(`${prefix}.${suffix}`);
    }
    const locations = new Map<string, TensorInfo>();
    for (const [name, info] of stored) {
      const weight = weightAt.get(name);
      if (weight) locations.set(weight.name, weight);
      if (grouped.has(name)) continue;
      if (!isDType(info.dtype)) throw new UserError(`${info.file}: ${unsupportedDTypeProblem(name, info.dtype)}`);
      locations.set(name, info as TensorInfo);
    }
    return new SafetensorsWeights(dir, fileByPath, locations, stored, groups);
  }

  names(): string[] {
    return [...this.locations.keys()];
  }

  has(name: string): boolean {
    return this.locations.has(name);
  }

  info(name: string): TensorInfo {
    const info = this.locations.get(name);
    if (!info) throw new UserError(`${this.dir}: the checkpoint has no tensor named "${name}"`);
    return info;
  }

  /** Whether `name` is stored in the bitmask layout. */
  isBitmaskCompressed(name: string): boolean {
    return this.groups.has(name);
  }

  /** Every tensor the files hold, as stored (bitmask parts included). */
  storedTensors(): Array<TensorInfo | RawTensorInfo> {
    return [...this.stored.values()];
  }

  private fileAt(filePath: string): SafetensorsFile {
    const file = this.files.get(filePath);
    if (!file) throw new Error(`internal: no open file ${filePath}`);
    return file;
  }

  /** The bytes of a stored tensor (see storedTensors), float or integer. */
  readStoredRaw(name: string): Uint8Array {
    return this.storedFile(name).readRaw(name);
  }

  /** A stored tensor's bytes piece by piece (see SafetensorsFile.readRawPieces). */
  readStoredPieces(name: string, scratch: Uint8Array, visit: (piece: Uint8Array, offset: number) => void): void {
    this.storedFile(name).readRawPieces(name, scratch, visit);
  }

  /** Fills `target` with a stored tensor's bytes from byte `offset` on (see SafetensorsFile.readRawInto). */
  readStoredInto(name: string, target: Uint8Array, offset = 0): void {
    this.storedFile(name).readRawInto(name, target, offset);
  }

  private storedFile(name: string): SafetensorsFile {
    const info = this.stored.get(name);
    if (!info) throw new UserError(`${this.dir}: the checkpoint stores no tensor named "${name}"`);
    return this.fileAt(info.file);
  }

  /**
   * The tensor's dense bytes in its dtype (decompressed when it is stored as a bitmask); at the
   * start of `scratch` when it is given and large enough (a stored dense tensor).
   */
  readRaw(name: string, scratch?: Uint8Array): Uint8Array {
    const info = this.info(name);
    const group = this.groups.get(name);
    if (!group) return this.fileAt(info.file).readRaw(name, scratch);
    const rowOffsets = group.rowOffsets
      ? readIntegers(this.readStoredRaw(group.rowOffsets.name), group.rowOffsets.dtype, `${this.dir}: "${group.rowOffsets.name}"`)
      : undefined;
    if (rowOffsets && rowOffsets.length !== info.shape[0]) throw new UserError(`${this.dir}: "${group.rowOffsets!.name}" has ${rowOffsets.length} entries for ${info.shape[0]} rows`);
    return bitmaskDecompress(
      { compressed: this.readStoredRaw(group.compressed.name), bitmask: this.readStoredRaw(group.bitmask.name), rowOffsets },
      info.dtype,
      info.shape,
      `${this.dir}: bitmask-compressed weight "${name}"`,
    );
  }

  /** The tensor widened to float32, in a fresh array or in `into` (of the tensor's length). */
  readF32(name: string, into?: Float32Array): Float32Array {
    const info = this.info(name);
    if (!this.groups.has(name)) return this.fileAt(info.file).readF32(name, into);
    const dense = decodeToF32(this.readRaw(name), info.dtype);
    if (!into) return dense;
    invariant(into.length === dense.length, () => `${this.dir}: tensor "${name}" has ${dense.length} values, not ${into.length}`);
    into.set(dense);
    return into;
  }

  close(): void {
    for (const file of this.files.values()) file.close();
  }
}
