// compressed-tensors' bitmask layout: a hand-packed example (numpy.packbits(bitorder="little") per
// row), bit-for-bit round trips through files in F32/F16/BF16, and refusals of inconsistent parts.
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { SafetensorsWeights, type DType } from '../../src/io/safetensors.ts';
import { writeSafetensors } from '../../src/io/safetensors-writer.ts';
import { bitmaskCompress, bitmaskDecompress, bitmaskLayout, storedValueCount } from '../../src/io/sparse-bitmask.ts';
import { f32ToBf16, f32ToF16 } from '../../src/util/float16.ts';
import { seededRandom } from '../helpers/random.ts';
import { scratchDir } from '../helpers/stories.ts';

const bytesOf = (values: Float32Array): Uint8Array => new Uint8Array(values.buffer.slice(0));
const int64s = (bytes: Uint8Array): number[] => [...new BigInt64Array(bytes.slice().buffer)].map(Number);

function encode(values: Float32Array, dtype: DType): Uint8Array {
  if (dtype === 'F32') return bytesOf(values);
  return new Uint8Array((dtype === 'F16' ? f32ToF16(values) : f32ToBf16(values)).buffer);
}

describe('bitmask layout', () => {
  it('packs a hand-worked [2, 10] matrix as compressed-tensors does', () => {
    const dense = new Float32Array([
      1, 0, 0, 2, 0, 0, 0, 0, 3, 0,
      0, 5, 0, 0, 0, 0, 0, -0, 0, 6,
    ]);
    const parts = bitmaskCompress(bytesOf(dense), 'F32', [2, 10]);
    // Row 0 keeps columns 0, 3 | 8: bytes 0b00001001, 0b00000001. Row 1 keeps 1, 7 (−0.0) | 9.
    assert.deepEqual([...parts.bitmask], [9, 1, 2 + 128, 2]);
    assert.deepEqual([...new Float32Array(parts.compressed.slice().buffer)], [1, 2, 3, 5, -0, 6]);
    assert.ok(Object.is(new Float32Array(parts.compressed.slice().buffer)[4], -0), '−0.0 is stored as itself');
    assert.deepEqual(int64s(parts.row_offsets), [0, 3]);
    assert.deepEqual(int64s(parts.shape), [2, 10]);
    assert.equal(storedValueCount(bytesOf(dense), 'F32'), 6);
    assert.deepEqual(bitmaskLayout('m.layers.0.q_proj.weight', 'F32', [2, 10], 6), [
      { name: 'm.layers.0.q_proj.shape', dtype: 'I64', shape: [2] },
      { name: 'm.layers.0.q_proj.compressed', dtype: 'F32', shape: [6] },
      { name: 'm.layers.0.q_proj.bitmask', dtype: 'U8', shape: [2, 2] },
      { name: 'm.layers.0.q_proj.row_offsets', dtype: 'I64', shape: [2] },
    ]);
    const back = bitmaskDecompress({ compressed: parts.compressed, bitmask: parts.bitmask, rowOffsets: [0, 3] }, 'F32', [2, 10], 'w');
    assert.deepEqual(back, bytesOf(dense));
  });

  for (const dtype of ['F32', 'F16', 'BF16'] as const) {
    it(`${dtype}: a file of bitmask tensors reads back as the dense weight, bit for bit`, async () => {
      const rows = 13;
      const cols = 37; // not a multiple of 8: the last byte of each row is partly padding
      const uniform = seededRandom(7);
      const values = new Float32Array(rows * cols).map(() => (uniform() < 0.5 ? 0 : uniform() - 0.5));
      values[5] = -0;
      const raw = encode(values, dtype);
      const parts = bitmaskCompress(raw, dtype, [rows, cols]);
      const layout = bitmaskLayout('model.layers.0.mlp.up_proj.weight', dtype, [rows, cols], storedValueCount(raw, dtype));
      const dir = scratchDir('bitmask');
      const partOf = (name: string) => parts[name.slice(name.lastIndexOf('.') + 1) as keyof typeof parts];
      await writeSafetensors(path.join(dir, 'model.safetensors'), [
        ...layout.map((t) => ({ ...t, data: partOf(t.name) })),
        { name: 'model.norm.weight', dtype, shape: [3], data: new Float32Array([1, 2, 3]) },
      ]);
      const weights = SafetensorsWeights.open(dir);
      try {
        assert.deepEqual(weights.names().sort(), ['model.layers.0.mlp.up_proj.weight', 'model.norm.weight']);
        const info = weights.info('model.layers.0.mlp.up_proj.weight');
        assert.deepEqual([info.dtype, info.shape], [dtype, [rows, cols]]);
        assert.ok(weights.isBitmaskCompressed('model.layers.0.mlp.up_proj.weight'));
        assert.ok(Buffer.from(weights.readRaw('model.layers.0.mlp.up_proj.weight')).equals(Buffer.from(raw)));
        assert.deepEqual(weights.storedTensors().map((t) => t.name).sort(), [...layout.map((t) => t.name), 'model.norm.weight'].sort());
      } finally {
        weights.close();
      }
    });
  }

  it('refuses a mask that disagrees with the stored values or the row offsets, naming the weight', () => {
    const dense = new Float32Array([1, 0, 2, 0, 0, 3, 0, 4]);
    const parts = bitmaskCompress(bytesOf(dense), 'F32', [2, 4]);
    const short = parts.compressed.subarray(0, 12);
    assert.throws(() => bitmaskDecompress({ compressed: short, bitmask: parts.bitmask }, 'F32', [2, 4], 'w'), /w: the bitmask marks more values than the 3 stored/);
    assert.throws(() => bitmaskDecompress({ compressed: parts.compressed, bitmask: parts.bitmask, rowOffsets: [0, 1] }, 'F32', [2, 4], 'w'), /w: row_offsets\[1\] is 1, but the bitmask puts row 1 at value 2/);
    assert.throws(() => bitmaskDecompress({ compressed: parts.compressed, bitmask: parts.bitmask.subarray(0, 1) }, 'F32', [2, 4], 'w'), /w: bitmask holds 1 bytes/);
  });

  it('refuses a bitmask group without its values, and integer tensors outside a group', async () => {
    const dir = scratchDir('bitmask-bad');
    await writeSafetensors(path.join(dir, 'model.safetensors'), [
      { name: 'a.bitmask', dtype: 'U8', shape: [1, 1], data: new Uint8Array([1]) },
      { name: 'a.shape', dtype: 'I64', shape: [2], data: new Uint8Array(new BigInt64Array([1n, 1n]).buffer) },
    ]);
    assert.throws(() => SafetensorsWeights.open(dir), /bitmask-compressed weight "a.weight" has no float "a.compressed" tensor/);
    const other = scratchDir('bitmask-stray');
    await writeSafetensors(path.join(other, 'model.safetensors'), [
      { name: 'position_ids', dtype: 'I64', shape: [1], data: new Uint8Array(8) },
    ]);
    assert.throws(() => SafetensorsWeights.open(other), /tensor "position_ids" has dtype I64, which crepe does not support/);
  });
});
