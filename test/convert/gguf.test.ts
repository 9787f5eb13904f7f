import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { GgufFile, shortestFloat32 } from '../../src/io/gguf.ts';
import { UserError } from '../../src/util/errors.ts';
import { STORIES_GGUF } from '../helpers/shared.ts';
import { buildGguf, f32Bytes, type MetadataEntry } from './gguf-builder.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'crepe-gguf-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

let fileCounter = 0;
function writeTemp(bytes: Uint8Array): string {
  const file = path.join(tmp, `f${fileCounter++}.gguf`);
  writeFileSync(file, bytes);
  return file;
}

function expectUserError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof UserError, `expected a UserError, got ${String(error)}`);
    assert.match(error.message, pattern);
    return true;
  });
}

describe('GGUF reader on the real stories260K file (version 1)', () => {
  const gguf = GgufFile.open(STORIES_GGUF);
  after(() => gguf.close());

  it('reads the version-1 header, metadata and all 48 tensor infos', () => {
    assert.equal(gguf.version, 1);
    assert.equal(gguf.alignment, 32);
    assert.equal(gguf.tensors.size, 48);
    assert.equal(gguf.metadata.size, 18);
    assert.equal(gguf.string('general.architecture'), 'llama');
    assert.equal(gguf.string('general.name'), 'tinyllamas-stories-260k');
    assert.equal(gguf.number('llama.context_length'), 512);
    assert.equal(gguf.number('llama.embedding_length'), 64);
    assert.equal(gguf.number('llama.block_count'), 5);
    assert.equal(gguf.number('llama.feed_forward_length'), 172);
    assert.equal(gguf.number('llama.attention.head_count'), 8);
    assert.equal(gguf.number('llama.attention.head_count_kv'), 4);
    // Stored as float32; read back as the shortest decimal of that float32.
    assert.equal(gguf.number('llama.attention.layer_norm_rms_epsilon'), 1e-5);
    assert.equal(gguf.number('tokenizer.ggml.bos_token_id'), 1);
    assert.equal(gguf.number('tokenizer.ggml.eos_token_id'), 2);
  });

  it('reads the embedded vocabulary as typed arrays', () => {
    const tokens = gguf.metadata.get('tokenizer.ggml.tokens') as string[];
    const scores = gguf.metadata.get('tokenizer.ggml.scores');
    const types = gguf.metadata.get('tokenizer.ggml.token_type');
    assert.equal(tokens.length, 512);
    assert.deepEqual(tokens.slice(0, 4), ['<unk>', '<s>', '</s>', '<0x00>']);
    assert.deepEqual(tokens.slice(259, 262), ['▁t', 'he', '▁a']);
    assert.ok(scores instanceof Float32Array && types instanceof Int32Array);
    assert.deepEqual(Array.from(scores.subarray(258, 262)), [0, -0, -1, -2]); // byte <0xFF>, then the merges
    assert.deepEqual(Array.from(types.subarray(0, 4)), [2, 3, 3, 6]);
  });

  it('gives shapes in row-major order (ggml dims reversed) and reads tensors by offset', () => {
    const wk = gguf.info('blk.0.attn_k.weight');
    assert.deepEqual(wk.ggmlDims, [64, 32]);
    assert.deepEqual(wk.shape, [32, 64]);
    assert.equal(wk.dtype, 'F32');
    assert.equal(wk.byteLength, 32 * 64 * 4);
    const embedding = gguf.info('token_embd.weight');
    assert.equal(embedding.byteOffset, gguf.dataStart); // the first tensor starts the data section
    assert.equal(gguf.dataStart % 32, 0);
    const values = gguf.readF32('output_norm.weight');
    assert.equal(values.length, 64);
    assert.ok(values.every(Number.isFinite));
  });
});

describe('GGUF reader on synthetic files', () => {
  const metadata: MetadataEntry[] = [
    { key: 'general.architecture', type: 'string', value: 'llama' },
    { key: 'test.count', type: 'u32', value: 7 },
    { key: 'test.big', type: 'u64', value: 1n << 60n },
    { key: 'test.flag', type: 'bool', value: true },
    { key: 'test.names', type: 'string[]', value: ['a', '▁b', ''] },
    { key: 'test.scale', type: 'f32', value: 0.1 },
  ];
  const weights = [1, 2, 3, 4, 5, 6];

  for (const version of [1, 2, 3]) {
    it(`reads version ${version} (its own count and length widths)`, () => {
      const file = writeTemp(
        buildGguf({
          version,
          metadata,
          tensors: [
            { name: 'w', ggmlDims: [3, 2], type: 0, data: f32Bytes(weights) },
            { name: 'h', ggmlDims: [4], type: 1, data: new Uint8Array(new Uint16Array([0x3c00, 0xc000, 0x3800, 0]).buffer) },
            { name: 'b', ggmlDims: [2], type: 30, data: new Uint8Array(new Uint16Array([0x3f80, 0x4040]).buffer) },
          ],
        }),
      );
      const gguf = GgufFile.open(file);
      try {
        assert.equal(gguf.version, version);
        assert.equal(gguf.metadata.get('test.count'), 7);
        assert.equal(gguf.metadata.get('test.big'), 1n << 60n); // beyond 2^53: kept as bigint
        assert.equal(gguf.metadata.get('test.flag'), true);
        assert.deepEqual(gguf.metadata.get('test.names'), ['a', '▁b', '']);
        assert.equal(gguf.metadata.get('test.scale'), 0.1);
        assert.deepEqual(gguf.info('w').shape, [2, 3]);
        assert.deepEqual(Array.from(gguf.readF32('w')), weights);
        assert.equal(gguf.info('h').dtype, 'F16');
        assert.deepEqual(Array.from(gguf.readF32('h')), [1, -2, 0.5, 0]);
        assert.equal(gguf.info('b').dtype, 'BF16');
        assert.deepEqual(Array.from(gguf.readF32('b')), [1, 3]);
      } finally {
        gguf.close();
      }
    });
  }

  it('honours general.alignment', () => {
    const file = writeTemp(
      buildGguf({
        version: 3,
        alignment: 64,
        metadata: [{ key: 'general.alignment', type: 'u32', value: 64 }],
        tensors: [
          { name: 'a', ggmlDims: [3], type: 0, data: f32Bytes([1, 2, 3]) },
          { name: 'b', ggmlDims: [2], type: 0, data: f32Bytes([4, 5]) },
        ],
      }),
    );
    const gguf = GgufFile.open(file);
    assert.equal(gguf.alignment, 64);
    assert.equal(gguf.dataStart % 64, 0);
    assert.equal(gguf.info('b').byteOffset, gguf.dataStart + 64);
    assert.deepEqual(Array.from(gguf.readF32('b')), [4, 5]);
    gguf.close();
  });

  it('refuses a quantized tensor, naming the tensor and its type', () => {
    const file = writeTemp(
      buildGguf({ version: 3, tensors: [{ name: 'blk.0.attn_q.weight', ggmlDims: [32, 1], type: 2, data: new Uint8Array(18) }] }),
    );
    expectUserError(() => GgufFile.open(file), /tensor "blk\.0\.attn_q\.weight" has type Q4_0/);
    const kQuant = writeTemp(buildGguf({ version: 2, tensors: [{ name: 'x', ggmlDims: [256], type: 12, data: new Uint8Array(144) }] }));
    expectUserError(() => GgufFile.open(kQuant), /tensor "x" has type Q4_K/);
  });

  it('refuses bad magic, unknown versions and big-endian files', () => {
    const good = buildGguf({ version: 3 });
    const badMagic = good.slice();
    badMagic[0] = 0x58;
    expectUserError(() => GgufFile.open(writeTemp(badMagic)), /not a GGUF file/);
    const v4 = good.slice();
    v4[4] = 4;
    expectUserError(() => GgufFile.open(writeTemp(v4)), /GGUF version 4 is not supported/);
    const bigEndian = good.slice();
    bigEndian.set([0, 0, 0, 3], 4);
    expectUserError(() => GgufFile.open(writeTemp(bigEndian)), /big-endian/);
  });

  it('refuses truncated files and impossible counts and lengths', () => {
    const bytes = buildGguf({ version: 3, tensors: [{ name: 'w', ggmlDims: [6], type: 0, data: f32Bytes(weights) }] });
    expectUserError(() => GgufFile.open(writeTemp(bytes.subarray(0, bytes.length - 4))), /tensor "w".*runs past the end of the file/);
    expectUserError(() => GgufFile.open(writeTemp(bytes.subarray(0, 30))), /tensor count 1 does not fit in the file/);

    const hugeCount = buildGguf({ version: 2 });
    new DataView(hugeCount.buffer).setBigUint64(8, 1n << 40n, true); // tensor count
    expectUserError(() => GgufFile.open(writeTemp(hugeCount)), /tensor count \d+ does not fit/);

    const longString = buildGguf({ version: 1, metadata: [{ key: 'k', type: 'string', value: 'abc' }] });
    new DataView(longString.buffer).setUint32(16 + 4 + 1 + 4, 1_000_000, true); // header 16, key (4 + 1), type 4: the value length
    expectUserError(() => GgufFile.open(writeTemp(longString)), /runs past the end of the file/);
  });

  it('refuses overlapping tensors and misaligned offsets', () => {
    const bytes = buildGguf({
      version: 3,
      tensors: [
        { name: 'a', ggmlDims: [16], type: 0, data: f32Bytes(new Array(16).fill(1)) },
        { name: 'b', ggmlDims: [4], type: 0, data: f32Bytes([1, 2, 3, 4]) },
      ],
    });
    // Tensor infos end with the u64 offset; b's is the last 8 bytes before the padding. Find it by value.
    const view = new DataView(bytes.buffer);
    const infoEnd = bytes.findIndex((_, i) => i > 24 && view.getBigUint64(i, true) === 64n);
    assert.ok(infoEnd > 0);
    const overlapping = bytes.slice();
    new DataView(overlapping.buffer).setBigUint64(infoEnd, 32n, true);
    expectUserError(() => GgufFile.open(writeTemp(overlapping)), /"a" and "b" overlap/);
    const misaligned = bytes.slice();
    new DataView(misaligned.buffer).setBigUint64(infoEnd, 68n, true);
    expectUserError(() => GgufFile.open(writeTemp(misaligned)), /not a multiple of the alignment/);
  });

  it('prints float32 metadata as its shortest decimal', () => {
    assert.equal(shortestFloat32(Math.fround(1e-5)), 1e-5);
    assert.equal(shortestFloat32(Math.fround(0.1)), 0.1);
    assert.equal(shortestFloat32(10000), 10000);
    assert.equal(Math.fround(shortestFloat32(Math.fround(1 / 3))), Math.fround(1 / 3));
  });
});
