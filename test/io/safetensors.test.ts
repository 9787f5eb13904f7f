import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PIECE_BYTES, SafetensorsFile, decodeToF32 } from '../../src/io/safetensors.ts';
import { SafetensorsStreamWriter, writeSafetensors } from '../../src/io/safetensors-writer.ts';
import { UserError } from '../../src/util/errors.ts';
import { f32ToBf16, f32ToF16 } from '../../src/util/float16.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const tmp = tempDir('crepe-safetensors');
let fileCounter = 0;

/** A hand-made file: 8-byte length (default: the header's byte length), header text, data. */
function craft(header: string | object, data: Uint8Array = new Uint8Array(0), claimedLength?: bigint): string {
  const headerBytes = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const bytes = new Uint8Array(8 + headerBytes.byteLength + data.byteLength);
  new DataView(bytes.buffer).setBigUint64(0, claimedLength ?? BigInt(headerBytes.byteLength), true);
  bytes.set(headerBytes, 8);
  bytes.set(data, 8 + headerBytes.byteLength);
  const file = path.join(tmp, `crafted-${fileCounter++}.safetensors`);
  writeFileSync(file, bytes);
  return file;
}

function assertRefused(file: string, ...fragments: (string | RegExp)[]): void {
  assert.throws(
    () => SafetensorsFile.open(file),
    (error: unknown) => {
      assert.ok(error instanceof UserError, `expected UserError, got ${error}`);
      assert.ok(error.message.startsWith(`${file}: `), `message should name the file: ${error.message}`);
      for (const fragment of fragments) {
        if (typeof fragment === 'string') assert.ok(error.message.includes(fragment), `"${error.message}" lacks "${fragment}"`);
        else assert.match(error.message, fragment);
      }
      return true;
    },
  );
}

const f32Bytes = (...values: number[]): Uint8Array => new Uint8Array(new Float32Array(values).buffer);

test('round trip of F32, F16 and BF16 tensors with metadata', async () => {
  const file = path.join(tmp, 'roundtrip.safetensors');
  const values = new Float32Array([1, -2.5, 0.1, 65504, 3e-5, -0]);
  await writeSafetensors(
    file,
    [
      { name: 'a.f32', dtype: 'F32', shape: [2, 3], data: values },
      { name: 'b.f16', dtype: 'F16', shape: [6], data: values },
      { name: 'c.bf16', dtype: 'BF16', shape: [3, 2], data: values },
      { name: 'd.raw', dtype: 'F16', shape: [2], data: new Uint8Array([0x00, 0x3c, 0x00, 0xc1]) },
      { name: 'e.empty', dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
    ],
    { producer: 'crepe-test' },
  );
  const st = SafetensorsFile.open(file);
  try {
    assert.deepEqual(st.metadata, { format: 'pt', producer: 'crepe-test' });
    assert.deepEqual([...st.tensors.keys()], ['a.f32', 'b.f16', 'c.bf16', 'd.raw', 'e.empty']);
    assert.deepEqual(st.tensors.get('c.bf16')!.shape, [3, 2]);
    assert.deepEqual(st.readF32('a.f32'), values);
    // F16 of these values: 0.1 → 0x2e66 = 0.0999755859375; 3e-5 → subnormal 503·2^-24.
    assert.deepEqual([...st.readF32('b.f16')], [1, -2.5, 0.0999755859375, 65504, 503 * 2 ** -24, -0]);
    // BF16: 0.1 → 0x3dcd = 0.10009765625; 65504 → 65536; 3e-5 → 0x37fc = 3.0040740966796875e-5.
    assert.deepEqual([...st.readF32('c.bf16')], [1, -2.5, 0.10009765625, 65536, 3.0040740966796875e-5, -0]);
    assert.deepEqual([...st.readF32('d.raw')], [1, -2.5]);
    assert.deepEqual(st.readRaw('d.raw'), new Uint8Array([0x00, 0x3c, 0x00, 0xc1]));
    assert.equal(st.readF32('e.empty').length, 0);
    // Into a view that starts past its buffer's start and ends before its end: only the view is written.
    const buffer = new Float32Array(10).fill(7);
    assert.deepEqual([...st.readF32('a.f32', buffer.subarray(2, 8))], [1, -2.5, 0.10000000149011612, 65504, 2.9999999242136255e-5, -0]);
    assert.deepEqual([...buffer.subarray(0, 2)], [7, 7]);
    assert.deepEqual([...buffer.subarray(8)], [7, 7]);
    st.readF32('b.f16', buffer.subarray(3, 9));
    assert.deepEqual([...buffer], [7, 7, 1, 1, -2.5, 0.0999755859375, 65504, 503 * 2 ** -24, -0, 7]);
    const info = st.tensors.get('b.f16')!;
    assert.equal(info.byteLength, 12);
    assert.equal(info.file, file);
    // Absolute offsets: the F16 tensor starts right after the 24-byte F32 one.
    assert.equal(info.byteOffset, st.tensors.get('a.f32')!.byteOffset + 24);
  } finally {
    st.close();
  }
});

test('header is padded with spaces to a multiple of 8 and starts with __metadata__', async () => {
  const file = path.join(tmp, 'padding.safetensors');
  await writeSafetensors(file, [{ name: 'x', dtype: 'F32', shape: [1], data: new Float32Array([2]) }]);
  const bytes = readFileSync(file);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  assert.equal(headerLength % 8, 0);
  const header = bytes.subarray(8, 8 + headerLength).toString('utf8');
  const json = '{"__metadata__":{"format":"pt"},"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}';
  assert.equal(header.trimEnd(), json);
  assert.equal(header, json + ' '.repeat(headerLength - json.length));
  assert.equal(bytes.length, 8 + headerLength + 4);
  assert.equal(bytes.readFloatLE(8 + headerLength), 2);
});

test('integer-like tensor names keep their data order', async () => {
  const file = path.join(tmp, 'numeric-names.safetensors');
  await writeSafetensors(file, [
    { name: 'z', dtype: 'F32', shape: [1], data: new Float32Array([1]) },
    { name: '10', dtype: 'F32', shape: [1], data: new Float32Array([2]) },
  ]);
  const st = SafetensorsFile.open(file);
  assert.deepEqual([...st.tensors.keys()], ['z', '10']);
  assert.deepEqual([...st.readF32('10')], [2]);
  st.close();
});

test('atomic write leaves no temporary file behind', async () => {
  const dir = mkdtempSync(path.join(tmp, 'atomic-'));
  await writeSafetensors(path.join(dir, 'model.safetensors'), [{ name: 'x', dtype: 'BF16', shape: [2], data: new Float32Array([1, 2]) }]);
  assert.deepEqual(readdirSync(dir), ['model.safetensors']);
  // A failing write (data length does not match the shape) leaves nothing at all.
  await assert.rejects(writeSafetensors(path.join(dir, 'bad.safetensors'), [{ name: 'x', dtype: 'F32', shape: [3], data: new Float32Array(2) }]));
  assert.deepEqual(readdirSync(dir), ['model.safetensors']);
});

test('stream writer: tensors written in order; a header shorter than the room kept for its bound is padded with spaces', async () => {
  const dir = mkdtempSync(path.join(tmp, 'stream-'));
  const file = path.join(dir, 'model.safetensors');
  const layout = [
    { name: 'first', dtype: 'F32' as const, shape: [2] },
    { name: 'second', dtype: 'F16' as const, shape: [3] },
    { name: 'third', dtype: 'BF16' as const, shape: [1, 2] },
  ];
  // Room for a longer third tensor and a fourth one that never comes.
  const bound = [...layout.slice(0, 2), { name: 'third', dtype: 'BF16' as const, shape: [1000, 2] }, { name: 'fourth', dtype: 'F32' as const, shape: [5] }];
  const writer = await SafetensorsStreamWriter.create(file, bound, { stage: 'pruned' });
  await Promise.all([writer.write(layout[0], new Float32Array([1, 2])), writer.write(layout[1], new Float32Array([3, -4, 0.5]))]);
  await writer.write(layout[2], new Float32Array([5, 6]));
  assert.deepEqual(readdirSync(dir).length, 1);
  assert.ok(readdirSync(dir)[0].startsWith('.model.safetensors.tmp-'), 'only a temp file before finish');
  await writer.finish();
  assert.deepEqual(readdirSync(dir), ['model.safetensors']);
  const st = SafetensorsFile.open(file);
  assert.deepEqual(st.metadata, { format: 'pt', stage: 'pruned' });
  assert.deepEqual([...st.tensors.keys()], ['first', 'second', 'third']);
  assert.deepEqual([...st.readF32('first')], [1, 2]);
  assert.deepEqual([...st.readF32('second')], [3, -4, 0.5]);
  assert.deepEqual([...st.readF32('third')], [5, 6]);
  st.close();
  // The room is that of the bound's header (a multiple of 8); what the header does not fill is spaces.
  const bytes = readFileSync(file);
  const room = Number(bytes.readBigUInt64LE(0));
  const json = '{"__metadata__":{"format":"pt","stage":"pruned"},'
    + '"first":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"second":{"dtype":"F16","shape":[3],"data_offsets":[8,14]},'
    + '"third":{"dtype":"BF16","shape":[1,2],"data_offsets":[14,18]}}';
  const boundJson = json.slice(0, json.lastIndexOf('"third"'))
    + '"third":{"dtype":"BF16","shape":[1000,2],"data_offsets":[14,4014]},"fourth":{"dtype":"F32","shape":[5],"data_offsets":[4014,4034]}}';
  assert.equal(room, Math.ceil(boundJson.length / 8) * 8);
  assert.equal(bytes.subarray(8, 8 + room).toString('latin1'), json.padEnd(room, ' '));
  assert.equal(bytes.length, 8 + room + 18);
});

test('stream writer: a tensor twice, out of its pieces\' order, or left half-written is refused; abort removes the temp file', async () => {
  const dir = mkdtempSync(path.join(tmp, 'stream-bad-'));
  const a = { name: 'a', dtype: 'F32' as const, shape: [2] };
  const b = { name: 'b', dtype: 'F32' as const, shape: [1] };
  const incomplete = await SafetensorsStreamWriter.create(path.join(dir, 'x.safetensors'), [a, b]);
  await incomplete.writePiece(a, new Uint8Array(4), 0);
  await assert.rejects(incomplete.write(b, new Float32Array([1])), /"b" written before all of "a"/);
  await assert.rejects(incomplete.writePiece(a, new Uint8Array(4), 0), /"a" written before all of "a"/);
  await assert.rejects(incomplete.finish(), /tensor "a" not written to its end/);
  assert.deepEqual(readdirSync(dir), []);

  const aborted = await SafetensorsStreamWriter.create(path.join(dir, 'y.safetensors'), [a, b]);
  await aborted.write(b, new Float32Array([1]));
  await assert.rejects(aborted.write(b, new Float32Array([1])), /written twice/);
  await aborted.abort();
  await assert.rejects(aborted.write(a, new Float32Array([1, 2])), /after finish\/abort/);
  assert.deepEqual(readdirSync(dir), []);
});

test('a file with no tensors and only metadata is valid', () => {
  const st = SafetensorsFile.open(craft({ __metadata__: { a: 'b' } }));
  assert.equal(st.tensors.size, 0);
  assert.deepEqual(st.metadata, { a: 'b' });
  st.close();
});

test('tensors listed out of offset order in the header are accepted and ordered by offset', () => {
  const file = craft(
    { second: { dtype: 'F32', shape: [1], data_offsets: [4, 8] }, first: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } },
    f32Bytes(1, 2),
  );
  const st = SafetensorsFile.open(file);
  assert.deepEqual([...st.tensors.keys()], ['first', 'second']);
  assert.deepEqual([...st.readF32('second')], [2]);
  st.close();
});

// ---- bad input: each refused with a UserError naming the file and the problem ----

test('refuses a file shorter than the 8-byte length', () => {
  const file = path.join(tmp, 'tiny.safetensors');
  writeFileSync(file, new Uint8Array([1, 2, 3]));
  assertRefused(file, 'too short', 'truncated');
});

test('refuses a truncated file (data region shorter than the header claims)', () => {
  const data = f32Bytes(1, 2, 3, 4);
  const file = craft({ x: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, data.subarray(0, 10));
  assertRefused(file, 'tensor "x"', 'only 10 bytes', 'truncated');
});

test('refuses a header length past the end of the file', () => {
  assertRefused(craft('{}', new Uint8Array(0), 1000n), 'header length 1000', 'past the end of the file');
});

test('refuses a header length above 100 MB', () => {
  assertRefused(craft('{}', new Uint8Array(0), 100_000_001n), 'exceeds the 100000000-byte limit');
  assertRefused(craft('{}', new Uint8Array(0), 2n ** 64n - 1n), 'exceeds');
});

test('refuses a header that is not valid JSON', () => {
  assertRefused(craft('{"x": {"dtype": "F32",'), 'not valid JSON');
});

test('refuses a header that is not UTF-8, or not an object', () => {
  const file = path.join(tmp, 'latin1.safetensors');
  const bytes = new Uint8Array(8 + 4);
  bytes[0] = 4;
  bytes.set([0x7b, 0xff, 0xfe, 0x7d], 8);
  writeFileSync(file, bytes);
  assertRefused(file, 'not valid UTF-8');
  assertRefused(craft('[1, 2]'), 'must be a JSON object');
});

test('refuses an unknown dtype, and a real safetensors dtype crepe does not handle', () => {
  assertRefused(craft({ w: { dtype: 'Q4_0', shape: [2], data_offsets: [0, 2] } }, new Uint8Array(2)), 'tensor "w"', 'unknown dtype "Q4_0"');
  assertRefused(craft({ w: { dtype: 'I8', shape: [2], data_offsets: [0, 2] } }, new Uint8Array(2)), 'tensor "w"', 'dtype I8', 'does not support');
  assertRefused(craft({ w: { dtype: 'F8_E4M3', shape: [2], data_offsets: [0, 2] } }, new Uint8Array(2)), 'F8_E4M3');
  assertRefused(craft({ w: { dtype: 'F64', shape: [1], data_offsets: [0, 8] } }, new Uint8Array(8)), 'F64');
});

test('refuses a shape whose size does not match the byte range', () => {
  const file = craft({ x: { dtype: 'F32', shape: [4, 4], data_offsets: [0, 60] } }, new Uint8Array(60));
  assertRefused(file, 'tensor "x" claims bytes [0, 60)', 'shape [4,4] × F32 needs 64 bytes');
});

test('refuses malformed entries: negative or fractional shape, bad offsets, missing fields', () => {
  assertRefused(craft({ x: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, new Uint8Array(4)), '"shape" must be an array of non-negative integers');
  assertRefused(craft({ x: { dtype: 'F32', shape: [1.5], data_offsets: [0, 4] } }, new Uint8Array(4)), '"shape"');
  assertRefused(craft({ x: { dtype: 'F32', shape: [1], data_offsets: [0] } }, new Uint8Array(4)), '"data_offsets"');
  assertRefused(craft({ x: { dtype: 'F32', shape: [1], data_offsets: [8, 4] } }, new Uint8Array(8)), 'end before they begin');
  assertRefused(craft({ x: { shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4)), '"dtype"');
  assertRefused(craft({ x: 7 }), 'tensor "x"', 'must be an object');
});

test('refuses overlapping ranges', () => {
  const file = craft(
    {
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
    },
    new Uint8Array(12),
  );
  assertRefused(file, 'tensor "b" bytes [4, 12) overlap tensor "a"');
});

test('refuses a hole between ranges', () => {
  const file = craft(
    {
      a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
      b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] },
    },
    new Uint8Array(12),
  );
  assertRefused(file, 'hole in data: bytes [4, 8)', 'tensor "a"', 'tensor "b"');
  assertRefused(craft({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, new Uint8Array(8)), 'hole in data: bytes [0, 4)');
});

test('refuses trailing bytes that belong to no tensor', () => {
  const file = craft({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, new Uint8Array(12));
  assertRefused(file, 'data region is 12 bytes but the tensors cover only 4');
});

test('refuses duplicate tensor names (which JSON.parse would silently merge)', () => {
  const header =
    '{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},' + '"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}';
  assertRefused(craft(header, new Uint8Array(8)), 'duplicate tensor name "w"');
  // Escaped spellings of the same name are the same name.
  const escaped = '{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},' + '"\\u0077":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}';
  assertRefused(craft(escaped, new Uint8Array(8)), 'duplicate tensor name "w"');
  // A string value equal to a key is not a duplicate key.
  const st = SafetensorsFile.open(craft('{"__metadata__":{"k":"w","w":"k"},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', new Uint8Array(4)));
  assert.deepEqual(st.metadata, { k: 'w', w: 'k' });
  st.close();
});

test('metadata keys are kept as data, even "__proto__"', () => {
  const st = SafetensorsFile.open(craft('{"__metadata__":{"__proto__":"x","format":"pt"}}'));
  assert.deepEqual(Object.keys(st.metadata), ['__proto__', 'format']);
  assert.equal(st.metadata.format, 'pt');
  st.close();
});

test('refuses __metadata__ that is not a string map', () => {
  assertRefused(craft({ __metadata__: { n: 3 } }), '"__metadata__" value of "n" must be a string');
  assertRefused(craft({ __metadata__: ['a'] }), '"__metadata__" must be an object');
});

test('a missing file is a UserError naming it', () => {
  assertRefused(path.join(tmp, 'does-not-exist.safetensors'), 'cannot open', 'ENOENT');
});

test('readRaw reads only the tensor range; asking for an unknown tensor names it', () => {
  const file = craft(
    { a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } },
    f32Bytes(9, 7, 8),
  );
  const st = SafetensorsFile.open(file);
  assert.deepEqual([...st.readF32('b')], [7, 8]);
  assert.throws(() => st.readF32('c'), (error: unknown) => error instanceof UserError && /no tensor named "c"/.test(error.message));
  st.close();
});

test('readRawInto, readRawPieces and readF32 read a tensor from any offset and piece by piece, as readRaw does', async () => {
  // A tensor over two pieces (PIECE_BYTES) in each dtype, with values that exercise every bit.
  const count = PIECE_BYTES / 2 + 1234;
  const values = new Float32Array(count);
  for (let i = 0; i < count; i++) values[i] = ((i * 2654435761) % 200003 - 100001) / 977;
  const file = path.join(tmp, 'pieces.safetensors');
  const layout = (['F32', 'F16', 'BF16'] as const).map((dtype) => ({ name: dtype, dtype, shape: [count], data: values }));
  await writeSafetensors(file, layout);
  // The stream writer narrows the same way.
  const streamed = path.join(tmp, 'pieces-stream.safetensors');
  const writer = await SafetensorsStreamWriter.create(streamed, layout);
  for (const tensor of layout) await writer.write(tensor, tensor.data);
  await writer.finish();
  assert.deepEqual(readFileSync(streamed), readFileSync(file));
  const st = SafetensorsFile.open(file);
  try {
    for (const dtype of ['F32', 'F16', 'BF16'] as const) {
      const raw = st.readRaw(dtype);
      // Narrowed piece by piece when written: the same bytes as narrowing the whole array.
      const whole = dtype === 'F32' ? values : dtype === 'F16' ? f32ToF16(values) : f32ToBf16(values);
      assert.deepEqual(raw, new Uint8Array(whole.buffer), `${dtype} as written`);
      assert.deepEqual(st.readF32(dtype), decodeToF32(raw, dtype), dtype);
      const part = new Uint8Array(20);
      st.readRawInto(dtype, part, 6);
      assert.deepEqual(part, raw.subarray(6, 26));
      for (const scratchBytes of [8, 24, PIECE_BYTES]) {
        const joined = new Uint8Array(raw.byteLength);
        const offsets: number[] = [];
        st.readRawPieces(dtype, new Uint8Array(scratchBytes), (piece, offset) => {
          offsets.push(offset);
          joined.set(piece, offset);
        });
        assert.deepEqual(joined, raw, `${dtype}, ${scratchBytes}-byte pieces`);
        assert.equal(offsets.length, Math.ceil(raw.byteLength / scratchBytes));
      }
    }
    assert.throws(() => st.readRawInto('F16', new Uint8Array(4), count * 2 - 2), /outside tensor "F16"/);
    assert.throws(() => st.readRawPieces('F16', new Uint8Array(12), () => undefined), /multiple of 8/);
  } finally {
    st.close();
  }
});
