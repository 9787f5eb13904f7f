/**
 * safetensors writer: the header (padded with spaces to a multiple of 8 bytes so the data region
 * is aligned, `__metadata__` first) followed by the tensors' bytes, written atomically.
 *
 * - `writeSafetensors` writes a list of tensors held in memory.
 * - `SafetensorsStreamWriter` writes a model one tensor at a time, in any order, so a pruned
 *   model never has to be held whole: the layout (names, dtypes, shapes) fixes every offset up
 *   front, and each tensor goes to its offset with a positional write.
 */
import assert from 'node:assert/strict';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { endianness } from 'node:os';
import path from 'node:path';
import { f32ToBf16Into, f32ToF16Into } from '../util/float16.ts';
import { fsyncDirectory, tempPathFor, withAtomicFile } from './atomic.ts';
import { asWriteError } from './write-error.ts';
import { elementCount, isDType, MAX_HEADER_BYTES, PIECE_BYTES, STORED_DTYPE_BYTES, type StoredDType } from './safetensors.ts';

// Typed arrays use the host's byte order and safetensors is little-endian.
assert.equal(endianness(), 'LE', 'crepe writes safetensors on little-endian hosts only');

export interface TensorLayout {
  name: string;
  /** A float type, or an integer type (written from raw bytes only). */
  dtype: StoredDType;
  shape: number[];
}

export interface TensorToWrite extends TensorLayout {
  /** Float32Array: converted to `dtype` (a float type). Uint8Array: raw little-endian bytes already in `dtype`. */
  data: Float32Array | Uint8Array;
}

const DEFAULT_METADATA: Readonly<Record<string, string>> = { format: 'pt' };

interface PlannedFile {
  /** Length prefix + padded header: the file's first bytes. */
  headerBytes: Uint8Array;
  /** Absolute file offset of each tensor's first byte. */
  positions: Map<string, number>;
  totalBytes: number;
}

/** Computes the header and every tensor's position for tensors laid out in the given order. */
function planFile(layout: readonly TensorLayout[], metadata: Record<string, string> | undefined): PlannedFile {
  const entries: string[] = [`"__metadata__":${JSON.stringify({ ...DEFAULT_METADATA, ...metadata })}`];
  const dataOffsets = new Map<string, number>();
  let dataBytes = 0;
  for (const { name, dtype, shape } of layout) {
    assert.ok(name !== '__metadata__', 'a tensor cannot be named __metadata__');
    assert.ok(!dataOffsets.has(name), `tensor "${name}" appears twice`);
    assert.ok(shape.every((dim) => Number.isSafeInteger(dim) && dim >= 0), `tensor "${name}": bad shape [${shape}]`);
    assert.ok(dtype in STORED_DTYPE_BYTES, `tensor "${name}": unsupported dtype ${dtype}`);
    const byteLength = elementCount(shape) * STORED_DTYPE_BYTES[dtype];
    dataOffsets.set(name, dataBytes);
    // Built by hand rather than as one object: JS objects reorder integer-like keys.
    entries.push(`${JSON.stringify(name)}:${JSON.stringify({ dtype, shape, data_offsets: [dataBytes, dataBytes + byteLength] })}`);
    dataBytes += byteLength;
  }
  const json = new TextEncoder().encode(`{${entries.join(',')}}`);
  const paddedLength = Math.ceil(json.byteLength / 8) * 8;
  assert.ok(paddedLength <= MAX_HEADER_BYTES, 'safetensors header over the 100 MB limit');

  const headerBytes = new Uint8Array(8 + paddedLength).fill(0x20, 8 + json.byteLength);
  new DataView(headerBytes.buffer).setBigUint64(0, BigInt(paddedLength), true);
  headerBytes.set(json, 8);

  const positions = new Map<string, number>();
  for (const [name, offset] of dataOffsets) positions.set(name, headerBytes.byteLength + offset);
  return { headerBytes, positions, totalBytes: headerBytes.byteLength + dataBytes };
}

/** Elements narrowed per piece when float32 data is written as F16/BF16. */
const NARROW_PIECE = PIECE_BYTES / 2;

/**
 * Writes `data` stored as `tensor.dtype` at `position`. Float32 data for a 16-bit dtype is narrowed
 * piece by piece into `scratch` (a fresh one when not given), never into a tensor-sized copy.
 */
async function writeTensor(handle: FileHandle, tensor: TensorLayout, data: Float32Array | Uint8Array, position: number, scratch?: Uint16Array): Promise<void> {
  const count = elementCount(tensor.shape);
  if (data instanceof Uint8Array) {
    assert.equal(data.byteLength, count * STORED_DTYPE_BYTES[tensor.dtype], `tensor "${tensor.name}": raw byte length does not match its shape`);
    return writeAll(handle, data, position);
  }
  assert.ok(isDType(tensor.dtype), `tensor "${tensor.name}": ${tensor.dtype} is written from raw bytes only`);
  assert.equal(data.length, count, `tensor "${tensor.name}": ${data.length} values for shape [${tensor.shape}]`);
  if (tensor.dtype === 'F32') return writeAll(handle, new Uint8Array(data.buffer, data.byteOffset, data.byteLength), position);
  const narrow = tensor.dtype === 'F16' ? f32ToF16Into : f32ToBf16Into;
  const buffer = scratch ?? new Uint16Array(Math.min(count, NARROW_PIECE));
  for (let start = 0; start < count; start += buffer.length) {
    const part = data.subarray(start, Math.min(start + buffer.length, count));
    const half = buffer.subarray(0, part.length);
    narrow(part, half);
    await writeAll(handle, new Uint8Array(half.buffer, half.byteOffset, half.byteLength), position + start * 2);
  }
}

/** Writes all of `bytes` at `position` (a single write call may write less). */
async function writeAll(handle: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  const maxChunk = 1 << 30;
  let done = 0;
  while (done < bytes.byteLength) {
    const length = Math.min(maxChunk, bytes.byteLength - done);
    const { bytesWritten } = await handle.write(bytes, done, length, position + done);
    done += bytesWritten;
  }
}

/** Writes `tensors` (in the given order) to `filePath` atomically. */
export async function writeSafetensors(
  filePath: string,
  tensors: readonly TensorToWrite[],
  metadata?: Record<string, string>,
): Promise<void> {
  const plan = planFile(tensors, metadata);
  await withAtomicFile(filePath, async (tmpPath) => {
    const handle = await open(tmpPath, 'wx');
    try {
      await writeAll(handle, plan.headerBytes, 0);
      // One piece narrowed at a time, through one buffer.
      const scratch = new Uint16Array(NARROW_PIECE);
      for (const tensor of tensors) await writeTensor(handle, tensor, tensor.data, plan.positions.get(tensor.name)!, scratch);
    } finally {
      await handle.close();
    }
  });
}

/**
 * Writes a safetensors file tensor by tensor. The file lives under a temporary name until
 * `finish()` has checked that every tensor of the layout was written; `abort()` removes it.
 */
export class SafetensorsStreamWriter {
  private readonly written = new Set<string>();
  /** Bytes written so far of each tensor being written piece by piece (writePiece). */
  private readonly partial = new Map<string, number>();
  private readonly inFlight = new Set<Promise<void>>();
  private closed = false;

  private constructor(
    readonly path: string,
    private readonly tmpPath: string,
    private readonly handle: FileHandle,
    private readonly layout: Map<string, TensorLayout>,
    private readonly positions: Map<string, number>,
  ) {}

  static async create(
    filePath: string,
    layout: readonly TensorLayout[],
    metadata?: Record<string, string>,
  ): Promise<SafetensorsStreamWriter> {
    const plan = planFile(layout, metadata);
    const tmpPath = tempPathFor(filePath);
    let handle: FileHandle;
    try {
      handle = await open(tmpPath, 'wx');
    } catch (error) {
      throw asWriteError(error, filePath);
    }
    try {
      await writeAll(handle, plan.headerBytes, 0);
      await handle.truncate(plan.totalBytes); // full size now; tensors fill it in any order
    } catch (error) {
      await handle.close();
      await rm(tmpPath, { force: true });
      throw asWriteError(error, filePath);
    }
    const byName = new Map(layout.map((tensor) => [tensor.name, tensor]));
    return new SafetensorsStreamWriter(filePath, tmpPath, handle, byName, plan.positions);
  }

  /** Writes one tensor of the layout (each exactly once, whole or by writePiece). */
  async write(name: string, data: Float32Array | Uint8Array): Promise<void> {
    const tensor = this.unwritten(name);
    assert.ok(!this.partial.has(name), `tensor "${name}" written whole after a piece`);
    this.written.add(name);
    await this.track(writeTensor(this.handle, tensor, data, this.positions.get(name)!));
  }

  /**
   * Writes the next piece of a tensor's raw bytes (in its dtype), `bytes` from byte `offset` of the
   * tensor on: pieces in order, without gaps; the tensor counts as written with its last byte.
   */
  async writePiece(name: string, bytes: Uint8Array, offset: number): Promise<void> {
    const tensor = this.unwritten(name);
    const byteLength = elementCount(tensor.shape) * STORED_DTYPE_BYTES[tensor.dtype];
    const done = this.partial.get(name) ?? 0;
    assert.ok(offset === done && done + bytes.byteLength <= byteLength && bytes.byteLength > 0, `tensor "${name}": piece [${offset}, ${offset + bytes.byteLength}) after ${done} of ${byteLength} bytes`);
    if (done + bytes.byteLength === byteLength) {
      this.partial.delete(name);
      this.written.add(name);
    } else {
      this.partial.set(name, done + bytes.byteLength);
    }
    await this.track(writeAll(this.handle, bytes, this.positions.get(name)! + offset));
  }

  /** The layout entry of a tensor that may still be written. */
  private unwritten(name: string): TensorLayout {
    assert.ok(!this.closed, `write of "${name}" after finish/abort`);
    const tensor = this.layout.get(name);
    assert.ok(tensor, `tensor "${name}" is not in the layout of ${this.path}`);
    assert.ok(!this.written.has(name), `tensor "${name}" written twice`);
    return tensor;
  }

  /** Awaits a write, kept in flight for finish/abort meanwhile; its error names the file. */
  private async track(pending: Promise<void>): Promise<void> {
    this.inFlight.add(pending);
    try {
      await pending;
    } catch (error) {
      throw asWriteError(error, this.path);
    } finally {
      this.inFlight.delete(pending);
    }
  }

  /** Checks that every tensor was written, then fsyncs and renames the file into place. */
  async finish(): Promise<void> {
    assert.ok(!this.closed, 'finish after finish/abort');
    await Promise.allSettled(this.inFlight);
    const missing = [...this.layout.keys()].filter((name) => !this.written.has(name));
    if (missing.length > 0) {
      await this.abort();
      throw new Error(`${this.path}: not written: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''}`);
    }
    this.closed = true;
    try {
      await this.handle.sync();
      await this.handle.close();
      await rename(this.tmpPath, this.path);
    } catch (error) {
      await rm(this.tmpPath, { force: true });
      throw asWriteError(error, this.path);
    }
    await fsyncDirectory(path.dirname(this.path));
  }

  /** Discards the partial file. Safe to call more than once. */
  async abort(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled(this.inFlight);
    await this.handle.close().catch(() => undefined);
    await rm(this.tmpPath, { force: true });
  }
}
