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
 *   bitmask layout (io/sparse-bitmask.ts); a first pass counts each one's stored values, since
 *   every offset is fixed before the first byte is written.
 */
import { rmSync } from 'node:fs';
import path from 'node:path';
import { checkField } from '../util/errors.ts';
import { checkFunction, checkInteger, checkKnownFields, describeValue, hasMethods } from '../util/fields.ts';
import { atomicWriteJson } from './atomic.ts';
import { bitmaskCompress, bitmaskLayout, modulePrefix, storedValueCount, type BitmaskPart } from './sparse-bitmask.ts';
import { INDEX_FILE_NAME, PIECE_BYTES, SINGLE_FILE_NAME, STORED_DTYPE_BYTES, elementCount, type DType } from './safetensors.ts';
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

/** A tensor of the source as written: itself, or the four parts of its bitmask layout. */
interface Unit {
  name: string;
  tensors: TensorLayout[];
  bytes: number;
}

const shardName = (index: number, count: number): string =>
  count === 1 ? SINGLE_FILE_NAME : `model-${String(index + 1).padStart(5, '0')}-of-${String(count).padStart(5, '0')}.safetensors`;

/** Consecutive units per shard: a new shard when the next unit would pass `maxBytes`. */
function planShards(units: readonly Unit[], maxBytes: number): Unit[][] {
  const shards: Unit[][] = [];
  let current: Unit[] = [];
  let size = 0;
  for (const unit of units) {
    if (current.length > 0 && size + unit.bytes > maxBytes) {
      shards.push(current);
      current = [];
      size = 0;
    }
    current.push(unit);
    size += unit.bytes;
  }
  if (current.length > 0 || shards.length === 0) shards.push(current);
  return shards;
}

const layoutBytes = (tensors: readonly TensorLayout[]): number =>
  tensors.reduce((sum, t) => sum + elementCount(t.shape) * STORED_DTYPE_BYTES[t.dtype], 0);

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
  writer: SafetensorsStreamWriter, unit: Unit, read: (target: Uint8Array, offset: number) => void, buffer: Uint8Array,
  onTensor: WriteCheckpointOptions['onTensor'],
): Promise<Uint8Array> {
  const [{ shape, dtype }] = unit.tensors;
  const rowBytes = elementCount(shape.slice(1)) * STORED_DTYPE_BYTES[dtype];
  if (buffer.byteLength < rowBytes) buffer = new Uint8Array(rowBytes);
  const pieceBytes = rowBytes * Math.floor(buffer.byteLength / rowBytes);
  for (let offset = 0; offset < unit.bytes; offset += pieceBytes) {
    const piece = buffer.subarray(0, Math.min(pieceBytes, unit.bytes - offset));
    read(piece, offset);
    onTensor?.(unit.name, piece, offset);
    await writer.writePiece(unit.name, piece, offset);
  }
  return buffer;
}

/** Writes every tensor of `source` into `dir` (which must not hold weight files of another layout). */
export async function writeCheckpoint(dir: string, source: WeightSource, options: WriteCheckpointOptions = {}): Promise<WrittenCheckpoint> {
  checkWriteArguments(dir, source, options);
  const maxShardSize = options.maxShardSize ?? DEFAULT_MAX_SHARD_SIZE;
  const bitmask = options.format === 'sparse-bitmask';

  // A tensor read whole goes into one buffer, grown to the largest such tensor: no fresh copy of each.
  let scratch = new Uint8Array(0);
  const readWhole = (name: string): Uint8Array => {
    const { dtype, shape } = source.info(name);
    const bytes = elementCount(shape) * STORED_DTYPE_BYTES[dtype];
    if (scratch.byteLength < bytes) scratch = new Uint8Array(bytes);
    return source.readRaw(name, scratch);
  };
  const compressed = new Set<string>();
  const units: Unit[] = source.names().map((name) => {
    const { dtype, shape } = source.info(name);
    let tensors: TensorLayout[] = [{ name, dtype, shape }];
    if (bitmask && shape.length === 2 && name.endsWith('.weight')) {
      const raw = readWhole(name);
      if (options.compress?.(name, raw) ?? true) {
        compressed.add(name);
        tensors = bitmaskLayout(name, dtype, shape, storedValueCount(raw, dtype));
      }
    }
    return { name, tensors, bytes: layoutBytes(tensors) };
  });

  let pieces: Uint8Array | null = null;
  const shards = planShards(units, maxShardSize);
  const files = shards.map((_, i) => shardName(i, shards.length));
  const written: string[] = [];
  const weightMap: Record<string, string> = {};
  try {
    for (let s = 0; s < shards.length; s++) {
      const layout = shards[s].flatMap((unit) => unit.tensors);
      const writer = await SafetensorsStreamWriter.create(path.join(dir, files[s]), layout, options.metadata);
      try {
        for (const unit of shards[s]) {
          const reader = compressed.has(unit.name) ? null : source.rangeReader?.(unit.name) ?? null;
          if (reader && unit.bytes > 0) {
            pieces ??= new Uint8Array(PIECE_BYTES);
            pieces = await copyRows(writer, unit, reader, pieces, options.onTensor);
          } else {
            const raw = readWhole(unit.name);
            options.onTensor?.(unit.name, raw, 0);
            if (compressed.has(unit.name)) {
              const { dtype, shape } = source.info(unit.name);
              const parts = bitmaskCompress(raw, dtype, shape);
              for (const part of Object.keys(parts) as BitmaskPart[]) await writer.write(`${modulePrefix(unit.name)}.${part}`, parts[part]);
            } else {
              await writer.write(unit.name, raw);
            }
          }
          for (const tensor of unit.tensors) weightMap[tensor.name] = files[s];
        }
        await writer.finish();
        written.push(files[s]);
      } catch (error) {
        await writer.abort();
        throw error;
      }
    }
    const totalSize = units.reduce((sum, unit) => sum + unit.bytes, 0);
    if (shards.length > 1) {
      // Sorted like transformers' index, which makes files from either tool comparable.
      const sortedMap = Object.fromEntries(Object.keys(weightMap).sort().map((name) => [name, weightMap[name]]));
      await atomicWriteJson(path.join(dir, INDEX_FILE_NAME), { metadata: { total_size: totalSize }, weight_map: sortedMap });
      written.push(INDEX_FILE_NAME);
    }
    return { files: written, totalSize };
  } catch (error) {
    for (const file of written) rmSync(path.join(dir, file), { force: true });
    throw error;
  }
}
