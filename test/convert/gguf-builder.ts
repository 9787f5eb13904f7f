/**
 * Test helper: writes small GGUF files of any version (1: u32 counts/lengths/dims; 2, 3: u64), to
 * exercise the reader beyond the one real (version 1) file.
 */

export type MetadataEntry =
  | { key: string; type: 'u32'; value: number }
  | { key: string; type: 'i32'; value: number }
  | { key: string; type: 'f32'; value: number }
  | { key: string; type: 'u64'; value: bigint }
  | { key: string; type: 'bool'; value: boolean }
  | { key: string; type: 'string'; value: string }
  | { key: string; type: 'string[]'; value: string[] }
  | { key: string; type: 'f32[]'; value: number[] }
  | { key: string; type: 'i32[]'; value: number[] };

export interface TensorEntry {
  name: string;
  /** ggml order (fastest-varying first). */
  ggmlDims: number[];
  /** ggml type id: 0 F32, 1 F16, 2 Q4_0, 30 BF16. */
  type: number;
  data: Uint8Array;
}

const VALUE_TYPE = { u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10 } as const;

class ByteWriter {
  private chunks: number[] = [];
  constructor(private readonly version: number) {}
  get length(): number { return this.chunks.length; }
  bytes(data: ArrayLike<number>): void { for (let i = 0; i < data.length; i++) this.chunks.push(data[i]); }
  u32(v: number): void { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, v, true); this.bytes(b); }
  i32(v: number): void { const b = new Uint8Array(4); new DataView(b.buffer).setInt32(0, v, true); this.bytes(b); }
  f32(v: number): void { const b = new Uint8Array(4); new DataView(b.buffer).setFloat32(0, v, true); this.bytes(b); }
  u64(v: bigint): void { const b = new Uint8Array(8); new DataView(b.buffer).setBigUint64(0, v, true); this.bytes(b); }
  /** A count or length: u32 in version 1, u64 after. */
  size(n: number): void { if (this.version === 1) this.u32(n); else this.u64(BigInt(n)); }
  string(s: string): void { const b = new TextEncoder().encode(s); this.size(b.length); this.bytes(b); }
  pad(alignment: number): void { while (this.chunks.length % alignment !== 0) this.chunks.push(0); }
  result(): Uint8Array { return Uint8Array.from(this.chunks); }
}

export function buildGguf(options: { version: number; metadata?: MetadataEntry[]; tensors?: TensorEntry[]; alignment?: number }): Uint8Array {
  const { version, metadata = [], tensors = [] } = options;
  const alignment = options.alignment ?? 32;
  const w = new ByteWriter(version);
  w.bytes(new TextEncoder().encode('GGUF'));
  w.u32(version);
  w.size(tensors.length);
  w.size(metadata.length);
  for (const entry of metadata) {
    w.string(entry.key);
    switch (entry.type) {
      case 'u32': w.u32(VALUE_TYPE.u32); w.u32(entry.value); break;
      case 'i32': w.u32(VALUE_TYPE.i32); w.i32(entry.value); break;
      case 'f32': w.u32(VALUE_TYPE.f32); w.f32(entry.value); break;
      case 'u64': w.u32(VALUE_TYPE.u64); w.u64(entry.value); break;
      case 'bool': w.u32(VALUE_TYPE.bool); w.bytes([entry.value ? 1 : 0]); break;
      case 'string': w.u32(VALUE_TYPE.string); w.string(entry.value); break;
      case 'string[]': w.u32(VALUE_TYPE.array); w.u32(VALUE_TYPE.string); w.size(entry.value.length); entry.value.forEach((s) => w.string(s)); break;
      case 'f32[]': w.u32(VALUE_TYPE.array); w.u32(VALUE_TYPE.f32); w.size(entry.value.length); entry.value.forEach((v) => w.f32(v)); break;
      case 'i32[]': w.u32(VALUE_TYPE.array); w.u32(VALUE_TYPE.i32); w.size(entry.value.length); entry.value.forEach((v) => w.i32(v)); break;
    }
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const tensor of tensors) {
    offsets.push(offset);
    offset = Math.ceil((offset + tensor.data.byteLength) / alignment) * alignment;
  }
  tensors.forEach((tensor, i) => {
    w.string(tensor.name);
    w.u32(tensor.ggmlDims.length);
    tensor.ggmlDims.forEach((d) => w.size(d));
    w.u32(tensor.type);
    w.u64(BigInt(offsets[i]));
  });
  w.pad(alignment);
  const dataStart = w.length;
  tensors.forEach((tensor, i) => {
    while (w.length < dataStart + offsets[i]) w.bytes([0]);
    w.bytes(tensor.data);
  });
  return w.result();
}

export function f32Bytes(values: ArrayLike<number>): Uint8Array {
  return new Uint8Array(Float32Array.from(values).buffer);
}
