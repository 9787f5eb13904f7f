/**
 * Writes a model's weights the way transformers' save_pretrained lays them out, streamed one tensor
 * at a time from a source (never the whole model in memory):
 *
 * - up to `maxShardSize` bytes of tensors: one `model.safetensors`;
 * - above it: `model-00001-of-0000N.safetensors` … filled in order (a new shard starts when the next
 *   tensor would overflow the current one; a tensor larger than the limit gets a shard of its own),
 *   and `model.safetensors.index.json` with `metadata.total_size` (bytes of tensor data) and
 *   `weight_map` (tensor → shard);
 * - format 'sparse-bitmask': the weights `compress` selects are stored in compressed-tensors'
 *   bitmask layout (io/sparse-bitmask.ts).
 *
 * Every tensor is read once, in order, and written at once: a 2-D weight that may be compressed
 * is read whole, and its size (which depends on its values) is known only then. So each file's
 * header is written last, into room kept for the longest header its tensors could need (each such
 * weight with every value stored), padded with spaces to that room; for dense files the room is
 * exact and the files are those of a layout planned up front.
 */
import { rmSync } from 'node:fs';
import path from 'node:path';
import { checkField } from '../util/errors.ts';
import { checkFunction, checkInteger, checkKnownFields, describeValue, hasMethods } from '../util/fields.ts';
import { atomicWriteJson } from './atomic.ts';
import { BITMASK_PARTS, bitmaskCompress, bitmaskLayout, type BitmaskPart } from './sparse-bitmask.ts';
import { DTYPE_BYTES, INDEX_FILE_NAME, PIECE_BYTES, SINGLE_FILE_NAME, STORED_DTYPE_BYTES, elementCount, type DType } from './safetensors.ts';
import { SafetensorsStreamWriter, type TensorLayout } from './safetensors-writer.ts';

export type SaveFormat = 'dense' | 'sparse-bitmask';
export const SAVE_FORMATS: readonly SaveFormat[] = ['dense', 'sparse-bitmask'];

/** transformers' default max_shard_size: "5GB" (decimal). */
export const DEFAULT_MAX_SHARD_SIZE = 5_000_000_000;

const BYTE_UNITS: Record<string, number> = {
  b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40,
};

/**
 * A size such as "5GB", "500MB", "2GiB" or "1000000" (bytes), as transformers' max_shard_size reads
 * it: KB/MB/GB/TB are powers of 1000, KiB/MiB/GiB/TiB powers of 1024, case-insensitive. Null when
 * the text is not a positive size.
 */
export function parseByteSize(text: string): number | null {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  if (!match) return null;
  const unit = match[2].toLowerCase() || 'b';
  if (!(unit in BYTE_UNITS)) return null;
  const bytes = Math.floor(Number(match[1]) * BYTE_UNITS[unit]);
  return Number.isSafeInteger(bytes) && bytes > 0 ? bytes : null;
}

/** Where the tensors come from: names in the order they are written, dense bytes on demand. */
export interface WeightSource {
  names(): string[];
  info(name: string): { dtype: DType; shape: number[] };
  /** The dense bytes; the source may place them at the start of `scratch` (then valid until the next read). */
  readRaw(name: string, scratch?: Uint8Array): Uint8Array;
  /**
   * Optional: a reader that fills `target` with the dense bytes of `name` from byte `offset` on,
   * when the source can read part of that tensor without the rest (null when it cannot). Tensors
   * with a reader that are written as stored go through one 4 MiB buffer, whole rows at a time,
   * instead of a buffer the size of the largest tensor.
   */
  rangeReader?(name: string): ((target: Uint8Array, offset: number) => void) | null;
}

export interface WriteCheckpointOptions {
  /** Largest shard, bytes of tensor data (default 5 GB). */
  maxShardSize?: number;
  format?: SaveFormat;
  /** With 'sparse-bitmask': which 2-D weights to store as bitmasks (`raw` is the dense bytes). */
  compress?: (name: string, raw: Uint8Array) => boolean;
  /** `__metadata__` of every file. */
  metadata?: Record<string, string>;
  /**
   * Sees each tensor's dense bytes once, in order, as they are written (valid during the call
   * only): whole, or, for a tensor read through the source's rangeReader, in pieces of whole rows
   * (its first dimension), in order, `offset` being the piece's first byte in the tensor.
   */
  onTensor?: (name: string, raw: Uint8Array, offset: number) => void;
}

export interface WrittenCheckpoint {
  /** File names written in the directory: the weight files, then the index when sharded. */
  files: string[];
  /** Bytes of tensor data (the index's metadata.total_size). */
  totalSize: number;
}

/** A tensor of the source, as it may be written. */
interface Unit {
  name: string;
  dtype: DType;
  shape: number[];
  /** A 2-D weight of the sparse-bitmask format: read whole, then stored dense or as a bitmask, as `compress` says. */
  candidate: boolean;
  /** Its longest header entries: the bitmask layout with every value stored (a candidate), or itself. */
  bound: TensorLayout[];
  /** Its fewest bytes: the bitmask layout with no value stored when that is smaller (a candidate), or its size. */
  minBytes: number;
}

const shardName = (index: number, count: number): string =>
  count === 1 ? SINGLE_FILE_NAME : `model-${String(index + 1).padStart(5, '0')}-of-${String(count).padStart(5, '0')}.safetensors`;

const layoutBytes = (tensors: readonly TensorLayout[]): number =>
  tensors.reduce((sum, t) => sum + elementCount(t.shape) * STORED_DTYPE_BYTES[t.dtype], 0);

function planUnit(name: string, info: { dtype: DType; shape: number[] }, bitmask: boolean): Unit {
  const { dtype, shape } = info;
  const dense: TensorLayout[] = [{ name, dtype, shape }];
  if (!(bitmask && shape.length === 2 && name.endsWith('.weight'))) return { name, dtype, shape, candidate: false, bound: dense, minBytes: layoutBytes(dense) };
  const fewest = Math.min(layoutBytes(dense), layoutBytes(bitmaskLayout(name, dtype, shape, 0)));
  return { name, dtype, shape, candidate: true, bound: bitmaskLayout(name, dtype, shape, elementCount(shape)), minBytes: fewest };
}

/**
 * The header bound of a file that starts with unit `first`: the units it can hold at the most
 * (a new file starts when the next unit would pass `maxBytes`, and a unit has at least minBytes),
 * each with its longest entries.
 */
function fileBound(units: readonly Unit[], first: number, maxBytes: number): TensorLayout[] {
  const bound: TensorLayout[] = [];
  for (let k = first, bytes = 0; k < units.length && (k === first || bytes + units[k].minBytes <= maxBytes); bytes += units[k++].minBytes) {
    bound.push(...units[k].bound);
  }
  return bound;
}

const WRITE_OPTIONS: readonly (keyof WriteCheckpointOptions)[] = ['maxShardSize', 'format', 'compress', 'metadata', 'onTensor'];

/**
 * A caller's arguments, checked before anything is written: an unknown format (a misspelt
 * "sparse_bitmask") would write dense files, and metadata values other than strings would make
 * files that safetensors readers refuse.
 */
function checkWriteArguments(dir: unknown, source: unknown, options: unknown): void {
  checkField(typeof dir === 'string' && dir !== '', 'dir', () => `must name a directory, got ${describeValue(dir)}`);
  checkField(
    hasMethods(source, ['names', 'info', 'readRaw']),
    'source',
    () => `must be a weight source (names, info and readRaw functions) such as a ModelCheckpoint's weights, got ${describeValue(source)}`,
  );
  checkKnownFields(options, 'options', WRITE_OPTIONS);
  const { maxShardSize, format, compress, onTensor, metadata } = options as WriteCheckpointOptions;
  if (maxShardSize !== undefined) checkInteger('options.maxShardSize', maxShardSize, 1);
  checkField(format === undefined || SAVE_FORMATS.includes(format), 'options.format', () => `must be one of ${SAVE_FORMATS.join(', ')}, got ${describeValue(format)}`);
  checkFunction('options.compress', compress);
  checkFunction('options.onTensor', onTensor);
  checkFunction('source.rangeReader', (source as WeightSource).rangeReader);
  if (metadata === undefined) return;
  checkField(typeof metadata === 'object' && metadata !== null && !Array.isArray(metadata), 'options.metadata', () => `must be an object of strings, got ${describeValue(metadata)}`);
  for (const [key, value] of Object.entries(metadata)) {
    checkField(typeof value === 'string', `options.metadata.${key}`, () => `must be a string (safetensors metadata maps strings to strings), got ${describeValue(value)}`);
  }
}

/**
 * Copies a tensor written as stored from `read` to `writer` whole rows (its first dimension) at a
 * time, as many as `buffer` holds (it grows to one row when a row is larger); returns the buffer.
 */
async function copyRows(
  writer: SafetensorsStreamWriter, tensor: TensorLayout, read: (target: Uint8Array, offset: number) => void, buffer: Uint8Array,
  onTensor: WriteCheckpointOptions['onTensor'],
): Promise<Uint8Array> {
  const rowBytes = elementCount(tensor.shape.slice(1)) * STORED_DTYPE_BYTES[tensor.dtype];
  const bytes = layoutBytes([tensor]);
  if (buffer.byteLength < rowBytes) buffer = new Uint8Array(rowBytes);
  const pieceBytes = rowBytes * Math.floor(buffer.byteLength / rowBytes);
  for (let offset = 0; offset < bytes; offset += pieceBytes) {
    const piece = buffer.subarray(0, Math.min(pieceBytes, bytes - offset));
    read(piece, offset);
    onTensor?.(tensor.name, piece, offset);
    await writer.writePiece(tensor, piece, offset);
  }
  return buffer;
}

/** A file being written: its writer, its tensors' names, its bytes of tensor data so far. */
interface OpenFile {
  writer: SafetensorsStreamWriter;
  tensors: string[];
  bytes: number;
}

/** Writes every tensor of `source` into `dir` (which must not hold weight files of another layout). */
export async function writeCheckpoint(dir: string, source: WeightSource, options: WriteCheckpointOptions = {}): Promise<WrittenCheckpoint> {
  checkWriteArguments(dir, source, options);
  const maxShardSize = options.maxShardSize ?? DEFAULT_MAX_SHARD_SIZE;
  const units = source.names().map((name) => planUnit(name, source.info(name), options.format === 'sparse-bitmask'));

  // A tensor read whole goes into one buffer, grown to the largest such tensor: no fresh copy of each.
  let scratch = new Uint8Array(0);
  const readWhole = (unit: Unit): Uint8Array => {
    const bytes = layoutBytes([unit]);
    if (scratch.byteLength < bytes) scratch = new Uint8Array(bytes);
    return source.readRaw(unit.name, scratch);
  };
  let pieces: Uint8Array | null = null;
  const open: OpenFile[] = [];
  // Named by their number until the count is known.
  const newFile = async (first: number): Promise<OpenFile> => {
    const file = path.join(dir, `model-${String(open.length + 1).padStart(5, '0')}.safetensors`);
    open.push({ writer: await SafetensorsStreamWriter.create(file, fileBound(units, first, maxShardSize), options.metadata), tensors: [], bytes: 0 });
    return open[open.length - 1];
  };
  const written: string[] = [];
  try {
    for (let k = 0; k < units.length; k++) {
      const unit = units[k];
      let tensors: TensorLayout[] = [{ name: unit.name, dtype: unit.dtype, shape: unit.shape }];
      let raw: Uint8Array | null = null;
      let parts: Record<BitmaskPart, Uint8Array> | null = null;
      if (unit.candidate) {
        raw = readWhole(unit);
        options.onTensor?.(unit.name, raw, 0);
        if (options.compress?.(unit.name, raw) ?? true) {
          parts = bitmaskCompress(raw, unit.dtype, unit.shape);
          tensors = bitmaskLayout(unit.name, unit.dtype, unit.shape, parts.compressed.byteLength / DTYPE_BYTES[unit.dtype]);
        }
      }
      const bytes = layoutBytes(tensors);
      let file = open[open.length - 1];
      if (!file || (file.tensors.length > 0 && file.bytes + bytes > maxShardSize)) file = await newFile(k);
      file.tensors.push(...tensors.map((t) => t.name));
      file.bytes += bytes;
      const reader = unit.candidate ? null : source.rangeReader?.(unit.name) ?? null;
      if (parts) {
        for (const [i, part] of BITMASK_PARTS.entries()) await file.writer.write(tensors[i], parts[part]);
      } else if (reader && bytes > 0) {
        pieces ??= new Uint8Array(PIECE_BYTES);
        pieces = await copyRows(file.writer, tensors[0], reader, pieces, options.onTensor);
      } else {
        if (!raw) {
          raw = readWhole(unit);
          options.onTensor?.(unit.name, raw, 0);
        }
        await file.writer.write(tensors[0], raw);
      }
    }
    if (open.length === 0) await newFile(0);
    const files = open.map((_, i) => shardName(i, open.length));
    for (const [i, file] of open.entries()) {
      await file.writer.finish(path.join(dir, files[i]));
      written.push(files[i]);
    }
    const totalSize = open.reduce((sum, file) => sum + file.bytes, 0);
    if (open.length > 1) {
      // Sorted like transformers' index, which makes files from either tool comparable.
      const weightMap = Object.fromEntries(open.flatMap((file, i) => file.tensors.map((name) => [name, files[i]])).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
      await atomicWriteJson(path.join(dir, INDEX_FILE_NAME), { metadata: { total_size: totalSize }, weight_map: weightMap });
      written.push(INDEX_FILE_NAME);
    }
    return { files: written, totalSize };
  } catch (error) {
    for (const file of open) await file.writer.abort();
    for (const file of written) rmSync(path.join(dir, file), { force: true });
    throw error;
  }
}
