// Sharded and bitmask checkpoints as transformers lays them out: shard boundaries worked out by
// hand, the index's total_size and weight_map, and a round trip through the reader (which already
// reads sharded input) with every tensor back bit for bit.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parseByteSize, writeCheckpoint, type WeightSource } from '../../src/io/checkpoint-writer.ts';
import { SafetensorsWeights, type DType } from '../../src/io/safetensors.ts';
import { inspectModel } from '../../src/workflows/inspect.ts';
import { seededRandom } from '../helpers/random.ts';
import { scratchDir } from '../helpers/stories.ts';

/** Tensors of F32/BF16 with a fixed byte size each, half of the 2-D ones' values zero. */
function memorySource(tensors: Array<{ name: string; dtype: DType; shape: number[] }>): WeightSource & { bytes: Map<string, Uint8Array> } {
  const uniform = seededRandom(3);
  const bytes = new Map<string, Uint8Array>();
  for (const { name, dtype, shape } of tensors) {
    const count = shape.reduce((a, b) => a * b, 1);
    const width = dtype === 'F32' ? 4 : 2;
    const raw = new Uint8Array(count * width).map(() => Math.floor(uniform() * 256));
    if (shape.length === 2) for (let i = 0; i < count; i += 2) raw.fill(0, i * width, (i + 1) * width);
    bytes.set(name, raw);
  }
  const byName = new Map(tensors.map((t) => [t.name, t]));
  return { bytes, names: () => tensors.map((t) => t.name), info: (name) => byName.get(name)!, readRaw: (name) => bytes.get(name)!.slice() };
}

const TENSORS = [
  { name: 'model.embed_tokens.weight', dtype: 'F32' as const, shape: [10, 8] }, // 320 bytes
  { name: 'model.layers.0.self_attn.q_proj.weight', dtype: 'F32' as const, shape: [8, 8] }, // 256
  { name: 'model.layers.0.input_layernorm.weight', dtype: 'F32' as const, shape: [8] }, // 32
  { name: 'model.layers.0.mlp.up_proj.weight', dtype: 'BF16' as const, shape: [12, 8] }, // 192
  { name: 'model.norm.weight', dtype: 'F32' as const, shape: [8] }, // 32
];

function assertRoundTrip(dir: string, source: ReturnType<typeof memorySource>): void {
  const weights = SafetensorsWeights.open(dir);
  try {
    assert.deepEqual(weights.names().sort(), TENSORS.map((t) => t.name).sort());
    for (const t of TENSORS) {
      assert.deepEqual([weights.info(t.name).dtype, weights.info(t.name).shape], [t.dtype, t.shape], t.name);
      assert.ok(Buffer.from(weights.readRaw(t.name)).equals(Buffer.from(source.bytes.get(t.name)!)), `${t.name} changed`);
    }
  } finally {
    weights.close();
  }
}

describe('writeCheckpoint', () => {
  it('parses shard sizes as transformers does (decimal KB/MB/GB, binary KiB/MiB/GiB)', () => {
    assert.equal(parseByteSize('5GB'), 5_000_000_000);
    assert.equal(parseByteSize('2gb'), 2_000_000_000);
    assert.equal(parseByteSize('500MB'), 500_000_000);
    assert.equal(parseByteSize('1.5 GiB'), 1.5 * 2 ** 30);
    assert.equal(parseByteSize('10KiB'), 10_240);
    assert.equal(parseByteSize('1000'), 1000);
    for (const bad of ['', 'GB', '0', '-1GB', '5XB', '5 G B']) assert.equal(parseByteSize(bad), null, bad);
  });

  it('one model.safetensors when everything fits', async () => {
    const dir = scratchDir('one-shard');
    const source = memorySource(TENSORS);
    const written = await writeCheckpoint(dir, source);
    assert.deepEqual(written, { files: ['model.safetensors'], totalSize: 320 + 256 + 32 + 192 + 32 });
    assert.deepEqual(readdirSync(dir), ['model.safetensors']);
    assertRoundTrip(dir, source);
  });

  it('shards above maxShardSize: boundaries, file names and index by hand', async () => {
    const dir = scratchDir('shards');
    const source = memorySource(TENSORS);
    // Limit 300: embed (320) alone although larger; q (256) + norm (32) = 288; up (192) + norm (32) = 224.
    const written = await writeCheckpoint(dir, source, { maxShardSize: 300 });
    const names = ['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors'];
    assert.deepEqual(written.files, [...names, 'model.safetensors.index.json']);
    assert.deepEqual(readdirSync(dir).sort(), [...names, 'model.safetensors.index.json'].sort());
    const index = JSON.parse(readFileSync(path.join(dir, 'model.safetensors.index.json'), 'utf8'));
    assert.deepEqual(index, {
      metadata: { total_size: 832 },
      weight_map: {
        'model.embed_tokens.weight': names[0],
        'model.layers.0.input_layernorm.weight': names[1],
        'model.layers.0.mlp.up_proj.weight': names[2],
        'model.layers.0.self_attn.q_proj.weight': names[1],
        'model.norm.weight': names[2],
      },
    });
    assertRoundTrip(dir, source);
  });

  it('sparse-bitmask and sharded together: the parts of a weight share a shard, and read back dense', async () => {
    const dir = scratchDir('bitmask-shards');
    const source = memorySource(TENSORS);
    const written = await writeCheckpoint(dir, source, { format: 'sparse-bitmask', maxShardSize: 300, compress: (name) => name.includes('_proj') });
    // q_proj: shape 16 + 32 values × 4 + bitmask 8 + row_offsets 64 = 216; up_proj: 16 + 48 × 2 + 12 + 96 = 220.
    assert.equal(written.totalSize, 320 + 216 + 32 + 220 + 32);
    const index = JSON.parse(readFileSync(path.join(dir, 'model.safetensors.index.json'), 'utf8'));
    const shardOf = (name: string) => index.weight_map[name];
    for (const module of ['model.layers.0.self_attn.q_proj', 'model.layers.0.mlp.up_proj']) {
      const parts = ['shape', 'compressed', 'bitmask', 'row_offsets'].map((part) => shardOf(`${module}.${part}`));
      assert.ok(parts[0] !== undefined && parts.every((shard) => shard === parts[0]), module);
      assert.equal(shardOf(`${module}.weight`), undefined);
    }
    assertRoundTrip(dir, source);
    const weights = SafetensorsWeights.open(dir);
    try {
      assert.ok(weights.isBitmaskCompressed('model.layers.0.mlp.up_proj.weight'));
      assert.ok(!weights.isBitmaskCompressed('model.embed_tokens.weight'));
    } finally {
      weights.close();
    }
  });

  it('a sparse-bitmask file lists its tensors in the order written, bitmask weights in place (reader and inspect)', async () => {
    const dir = scratchDir('bitmask-order');
    await writeCheckpoint(dir, memorySource(TENSORS), { format: 'sparse-bitmask', compress: (name) => name.includes('_proj') });
    const order = TENSORS.map((t) => t.name);
    const weights = SafetensorsWeights.open(dir);
    try {
      assert.deepEqual(weights.names(), order);
    } finally {
      weights.close();
    }
    assert.deepEqual((await inspectModel({ model: dir })).tensors.map((t) => t.name), order);
  });

  it('tensors with a range reader are copied through a 4 MiB buffer in whole rows; the files are those of whole reads', async () => {
    const tensors = [
      { name: 'model.embed_tokens.weight', dtype: 'F32' as const, shape: [1500, 1000] }, // rows of 4000 bytes: 1048 per 4 MiB piece
      { name: 'model.norm.weight', dtype: 'BF16' as const, shape: [8] },
      { name: 'lm_head.weight', dtype: 'F32' as const, shape: [2, 1_100_000] }, // a row of 4.4 MB: one row per piece
      { name: 'model.layers.0.mlp.up_proj.weight', dtype: 'BF16' as const, shape: [12, 8] }, // no range reader: whole
    ];
    const source = memorySource(tensors);
    const seen: string[] = [];
    const onTensor = (name: string, raw: Uint8Array, offset: number) => {
      // Each piece is the tensor's own bytes at its offset.
      assert.ok(Buffer.from(raw).equals(Buffer.from(source.bytes.get(name)!.subarray(offset, offset + raw.byteLength))), `${name} at ${offset}`);
      seen.push(`${name} ${offset}+${raw.byteLength}`);
    };
    const ranged: WeightSource = {
      ...source,
      rangeReader: (name) => (name.includes('up_proj') ? null : (target, offset) => target.set(source.bytes.get(name)!.subarray(offset, offset + target.byteLength))),
    };
    const piecewise = scratchDir('pieces');
    const whole = scratchDir('whole');
    await writeCheckpoint(piecewise, ranged, { onTensor });
    assert.deepEqual(seen, [
      'model.embed_tokens.weight 0+4192000', 'model.embed_tokens.weight 4192000+1808000',
      'model.norm.weight 0+16',
      'lm_head.weight 0+4400000', 'lm_head.weight 4400000+4400000',
      'model.layers.0.mlp.up_proj.weight 0+192',
    ]);
    await writeCheckpoint(whole, source);
    assert.ok(readFileSync(path.join(piecewise, 'model.safetensors')).equals(readFileSync(path.join(whole, 'model.safetensors'))));
    // In the sparse-bitmask format the 2-D weights are read whole (compress sees them whole); the others still go piece by piece.
    seen.length = 0;
    await writeCheckpoint(scratchDir('pieces-bitmask'), ranged, { format: 'sparse-bitmask', compress: (name) => name.includes('_proj'), onTensor });
    assert.deepEqual(seen, ['model.embed_tokens.weight 0+6000000', 'model.norm.weight 0+16', 'lm_head.weight 0+8800000', 'model.layers.0.mlp.up_proj.weight 0+192']);
    await assert.rejects(writeCheckpoint(scratchDir('pieces-bad'), { ...source, rangeReader: 5 } as never), /^FieldError: source\.rangeReader must be a function, got 5$/);
  });

  it('sparse-bitmask reads each tensor once, however its header is sized, and shards as if its sizes were known up front', async () => {
    const source = memorySource(TENSORS);
    const reads = new Map<string, number>();
    const count = (name: string, bytes: number) => reads.set(name, (reads.get(name) ?? 0) + bytes);
    const counted: WeightSource = {
      ...source,
      readRaw: (name) => { const raw = source.readRaw(name); count(name, raw.byteLength); return raw; },
      rangeReader: (name) => (target, offset) => { target.set(source.bytes.get(name)!.subarray(offset, offset + target.byteLength)); count(name, target.byteLength); },
    };
    const dir = scratchDir('bitmask-once');
    // Limit 300, sizes as in the test above: embed (320) alone; q (216) + norm (32); up (220) + norm (32).
    const written = await writeCheckpoint(dir, counted, { format: 'sparse-bitmask', maxShardSize: 300, compress: (name) => name.includes('_proj') });
    assert.deepEqual(Object.fromEntries(reads), Object.fromEntries(TENSORS.map((t) => [t.name, source.bytes.get(t.name)!.byteLength])));
    assert.deepEqual(written.files, ['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors', 'model.safetensors.index.json']);
    assertRoundTrip(dir, source);
    // The second file's header has the room of the longest it could have been: q_proj with all 64
    // values stored, and the tensors after it that could have fitted had q and up stored none (88 +
    // 32 + 124 + 32 bytes ≤ 300), padded with spaces.
    const entry = (name: string, dtype: string, shape: number[], begin: number, end: number) => `"${name}":{"dtype":"${dtype}","shape":[${shape}],"data_offsets":[${begin},${end}]}`;
    const q = 'model.layers.0.self_attn.q_proj';
    const up = 'model.layers.0.mlp.up_proj';
    const header = (entries: string[]) => `{"__metadata__":{"format":"pt"},${entries.join(',')}}`;
    const actual = header([
      entry(`${q}.shape`, 'I64', [2], 0, 16), entry(`${q}.compressed`, 'F32', [32], 16, 144), entry(`${q}.bitmask`, 'U8', [8, 1], 144, 152),
      entry(`${q}.row_offsets`, 'I64', [8], 152, 216), entry('model.layers.0.input_layernorm.weight', 'F32', [8], 216, 248),
    ]);
    const bound = header([
      entry(`${q}.shape`, 'I64', [2], 0, 16), entry(`${q}.compressed`, 'F32', [64], 16, 272), entry(`${q}.bitmask`, 'U8', [8, 1], 272, 280),
      entry(`${q}.row_offsets`, 'I64', [8], 280, 344), entry('model.layers.0.input_layernorm.weight', 'F32', [8], 344, 376),
      entry(`${up}.shape`, 'I64', [2], 376, 392), entry(`${up}.compressed`, 'BF16', [96], 392, 584), entry(`${up}.bitmask`, 'U8', [12, 1], 584, 596),
      entry(`${up}.row_offsets`, 'I64', [12], 596, 692), entry('model.norm.weight', 'F32', [8], 692, 724),
    ]);
    const bytes = readFileSync(path.join(dir, written.files[1]));
    const room = Number(bytes.readBigUInt64LE(0));
    assert.equal(room, Math.ceil(bound.length / 8) * 8);
    assert.equal(bytes.subarray(8, 8 + room).toString('utf8'), actual.padEnd(room, ' '));
    assert.equal(bytes.length, 8 + room + 248);
  });

  it('a failed write leaves no weight file behind', async () => {
    const dir = scratchDir('shards-fail');
    const source = memorySource(TENSORS);
    let reads = 0;
    const failing: WeightSource = { ...source, readRaw: (name) => (++reads === 4 ? assert.fail('read refused') : source.readRaw(name)) };
    await assert.rejects(writeCheckpoint(dir, failing, { maxShardSize: 300 }), /read refused/);
    assert.deepEqual(readdirSync(dir), []);
  });
});
