/**
 * safetensors writer: the header (padded with spaces to a multiple of 8 bytes so the data region
 * is aligned, `__metadata__` first) followed by the tensors' bytes, written atomically.
 *
 * - `writeSafetensors` writes a list of tensors held in memory.
 * - `SafetensorsStreamWriter` writes a model one tensor at a time, in order, so a pruned model
 *   never has to be held whole; the header goes in last, into room kept for it, so the tensors
 *   need not be known (a bitmask-compressed weight's size) before the first one is written.
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
}

/** The header JSON of tensors laid out in the given order, and each one's offset in the data. */
function headerJson(layout: readonly TensorLayout[], metadata: Record<string, string> | undefined): { json: Uint8Array; offsets: Map<string, number> } {
  const entries: string[] = [`"__metadata__":${JSON.stringify({ ...DEFAULT_METADATA, ...metadata })}`];
  const offsets = new Map<string, number>();
  let dataBytes = 0;
  for (const { name, dtype, shape } of layout) {
    assert.ok(name !== '__metadata__', 'a tensor cannot be named __metadata__');
    assert.ok(!offsets.has(name), `tensor "${name}" appears twice`);
    assert.ok(shape.every((dim) => Number.isSafeInteger(dim) && dim >= 0), `tensor "${name}": bad shape [${shape}]`);
    assert.ok(dtype in STORED_DTYPE_BYTES, `tensor "${name}": unsupported dtype ${dtype}`);
    const byteLength = elementCount(shape) * STORED_DTYPE_BYTES[dtype];
    offsets.set(name, dataBytes);
    // Built by hand rather than as one object: JS objects reorder integer-like keys.
    entries.push(`${JSON.stringify(name)}:${JSON.stringify({ dtype, shape, data_offsets: [dataBytes, dataBytes + byteLength] })}`);
    dataBytes += byteLength;
  }
  return { json: new TextEncoder().encode(`{${entries.join(',')}}`), offsets };
}

/** Bytes a header of `jsonBytes` takes in the file after its length prefix: padded to a multiple of 8 so the data is aligned. */
const headerRoom = (jsonBytes: number): number => Math.ceil(jsonBytes / 8) * 8;

/** The length prefix and the header, padded with spaces to `room` bytes. */
function headerBytes(json: Uint8Array, room: number): Uint8Array {
  assert.ok(json.byteLength <= room, `safetensors header of ${json.byteLength} bytes in a room of ${room}`);
  assert.ok(room <= MAX_HEADER_BYTES, 'safetensors header over the 100 MB limit');
  const bytes = new Uint8Array(8 + room).fill(0x20, 8 + json.byteLength);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(room), true);
  bytes.set(json, 8);
  return bytes;
}

/** Computes the header and every tensor's position for tensors laid out in the given order. */
function planFile(layout: readonly TensorLayout[], metadata: Record<string, string> | undefined): PlannedFile {
  const { json, offsets } = headerJson(layout, metadata);
  const header = headerBytes(json, headerRoom(json.byteLength));
  const positions = new Map<string, number>();
  for (const [name, offset] of offsets) positions.set(name, header.byteLength + offset);
  return { headerBytes: header, positions };
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
 * Writes a safetensors file tensor by tensor, in order, holding none of them in memory: each
 * tensor's bytes follow those written before, and `finish()` writes the header into room kept at
 * the start of the file. The room is sized for `bound`: the tensors to come, or, when they are not
 * known yet, tensors whose header is at least as long (more of them, larger numbers). A header
 * shorter than its room is padded with spaces, as the format allows; given the exact tensors, the
 * file is byte for byte the one writeSafetensors writes. The file lives under a temporary name
 * until `finish()`; `abort()` removes it.
 */
export class SafetensorsStreamWriter {
  /** The tensors written or being written, in order. */
  private readonly layout: TensorLayout[] = [];
  private readonly names = new Set<string>();
  private dataBytes = 0;
  /** A tensor being written piece by piece (writePiece): its first byte's position, bytes written so far. */
  private partial: { tensor: TensorLayout; position: number; done: number } | null = null;
  private readonly inFlight = new Set<Promise<void>>();
  private closed = false;

  private constructor(
    readonly path: string,
    private readonly tmpPath: string,
    private readonly handle: FileHandle,
    /** Bytes kept for the header after its length prefix. */
    private readonly room: number,
    private readonly metadata: Record<string, string> | undefined,
  ) {}

  static async create(
    filePath: string,
    bound: readonly TensorLayout[],
    metadata?: Record<string, string>,
  ): Promise<SafetensorsStreamWriter> {
    const room = headerRoom(headerJson(bound, metadata).json.byteLength);
    assert.ok(room <= MAX_HEADER_BYTES, 'safetensors header over the 100 MB limit');
    const tmpPath = tempPathFor(filePath);
    try {
      return new SafetensorsStreamWriter(filePath, tmpPath, await open(tmpPath, 'wx'), room, metadata);
    } catch (error) {
      throw asWriteError(error, filePath);
    }
  }

  /** Writes the next tensor whole. */
  async write(tensor: TensorLayout, data: Float32Array | Uint8Array): Promise<void> {
    const position = this.append(tensor);
    await this.track(writeTensor(this.handle, tensor, data, position));
  }

  /**
   * Writes the next piece of a tensor's raw bytes (in its dtype), `bytes` from byte `offset` of the
   * tensor on: pieces in order from 0, without gaps; the tensor is written with its last byte.
   */
  async writePiece(tensor: TensorLayout, bytes: Uint8Array, offset: number): Promise<void> {
    if (offset === 0) this.partial = { tensor, position: this.append(tensor), done: 0 };
    const partial = this.partial;
    const byteLength = elementCount(tensor.shape) * STORED_DTYPE_BYTES[tensor.dtype];
    assert.ok(partial?.tensor.name === tensor.name && offset === partial.done && offset + bytes.byteLength <= byteLength && bytes.byteLength > 0,
      `tensor "${tensor.name}": piece [${offset}, ${offset + bytes.byteLength}) after ${partial?.tensor.name === tensor.name ? partial.done : 0} of ${byteLength} bytes`);
    partial.done += bytes.byteLength;
    if (partial.done === byteLength) this.partial = null;
    await this.track(writeAll(this.handle, bytes, partial.position + offset));
  }

  /** Places `tensor` after those written before; returns the file position of its first byte. */
  private append(tensor: TensorLayout): number {
    assert.ok(!this.closed, `write of "${tensor.name}" after finish/abort`);
    assert.ok(this.partial === null, `tensor "${tensor.name}" written before all of "${this.partial?.tensor.name}"`);
    assert.ok(!this.names.has(tensor.name), `tensor "${tensor.name}" written twice`);
    this.names.add(tensor.name);
    this.layout.push({ name: tensor.name, dtype: tensor.dtype, shape: tensor.shape });
    const position = 8 + this.room + this.dataBytes;
    this.dataBytes += elementCount(tensor.shape) * STORED_DTYPE_BYTES[tensor.dtype];
    return position;
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

  /**
   * Writes the header of the tensors written, then fsyncs and renames the file into place: at
   * `finalPath` (default: the path it was created for).
   */
  async finish(finalPath = this.path): Promise<void> {
    assert.ok(!this.closed, 'finish after finish/abort');
    await Promise.allSettled(this.inFlight);
    if (this.partial) {
      await this.abort();
      throw new Error(`${this.path}: tensor "${this.partial.tensor.name}" not written to its end`);
    }
    this.closed = true;
    try {
      await writeAll(this.handle, headerBytes(headerJson(this.layout, this.metadata).json, this.room), 0);
      await this.handle.sync();
      await this.handle.close();
      await rename(this.tmpPath, finalPath);
    } catch (error) {
      await this.handle.close().catch(() => undefined);
      await rm(this.tmpPath, { force: true });
      throw asWriteError(error, finalPath);
    }
    await fsyncDirectory(path.dirname(finalPath));
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
