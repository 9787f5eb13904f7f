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
import { INDEX_FILE_NAME, SINGLE_FILE_NAME, STORED_DTYPE_BYTES, elementCount, type DType } from './safetensors.ts';
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
}

export interface WriteCheckpointOptions {
  /** Largest shard, bytes of tensor data (default 5 GB). */
  maxShardSize?: number;
  format?: SaveFormat;
  /** With 'sparse-bitmask': which 2-D weights to store as bitmasks (`raw` is the dense bytes). */
  compress?: (name: string, raw: Uint8Array) => boolean;
  /** `__metadata__` of every file. */
  metadata?: Record<string, string>;
  /** Sees each tensor's dense bytes once, in order, as it is written (valid during the call only). */
  onTensor?: (name: string, raw: Uint8Array) => void;
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
  if (metadata === undefined) return;
  checkField(typeof metadata === 'object' && metadata !== null && !Array.isArray(metadata), 'options.metadata', () => `must be an object of strings, got ${describeValue(metadata)}`);
  for (const [key, value] of Object.entries(metadata)) {
    checkField(typeof value === 'string', `options.metadata.${key}`, () => `must be a string (safetensors metadata maps strings to strings), got ${describeValue(value)}`);
  }
}

/** Writes every tensor of `source` into `dir` (which must not hold weight files of another layout). */
export async function writeCheckpoint(dir: string, source: WeightSource, options: WriteCheckpointOptions = {}): Promise<WrittenCheckpoint> {
  checkWriteArguments(dir, source, options);
  const maxShardSize = options.maxShardSize ?? DEFAULT_MAX_SHARD_SIZE;
  const bitmask = options.format === 'sparse-bitmask';

  // Every tensor is read into one buffer the size of the largest: no fresh copy of each.
  const denseBytes = (name: string): number => {
    const { dtype, shape } = source.info(name);
    return elementCount(shape) * STORED_DTYPE_BYTES[dtype];
  };
  const scratch = new Uint8Array(source.names().reduce((most, name) => Math.max(most, denseBytes(name)), 0));
  const compressed = new Set<string>();
  const units: Unit[] = source.names().map((name) => {
    const { dtype, shape } = source.info(name);
    let tensors: TensorLayout[] = [{ name, dtype, shape }];
    if (bitmask && shape.length === 2 && name.endsWith('.weight')) {
      const raw = source.readRaw(name, scratch);
      if (options.compress?.(name, raw) ?? true) {
        compressed.add(name);
        tensors = bitmaskLayout(name, dtype, shape, storedValueCount(raw, dtype));
      }
    }
    return { name, tensors, bytes: layoutBytes(tensors) };
  });

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
          const raw = source.readRaw(unit.name, scratch);
          options.onTensor?.(unit.name, raw);
          if (compressed.has(unit.name)) {
            const { dtype, shape } = source.info(unit.name);
            const parts = bitmaskCompress(raw, dtype, shape);
            for (const part of Object.keys(parts) as BitmaskPart[]) await writer.write(`${modulePrefix(unit.name)}.${part}`, parts[part]);
          } else {
            await writer.write(unit.name, raw);
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
