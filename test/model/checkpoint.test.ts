import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { DType } from '../../src/io/safetensors.ts';
import { writeSafetensors, type TensorToWrite } from '../../src/io/safetensors-writer.ts';
import { ModelCheckpoint } from '../../src/model/checkpoint.ts';
import { specToConfigJson } from '../../src/model/config.ts';
import { blockTensorNames, blockTensorShape, layerPrefix, type ModelSpec } from '../../src/model/spec.ts';
import { FieldError, UserError } from '../../src/util/errors.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const tmp = tempDir('crepe-model-checkpoint');

const BASE: ModelSpec = {
  family: 'llama', hiddenSize: 8, intermediateSize: 12, numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 2,
  vocabSize: 10, rmsNormEps: 1e-5, ropeTheta: 10000, ropeScaling: null, maxPositionEmbeddings: 64,
  tieWordEmbeddings: false, attentionBias: false, qkNorm: false, bosTokenId: 1, eosTokenId: 2, torchDtype: 'float32',
};

/** Values that identify their tensor: tensor k holds k + i/1000 at index i (exact in F32). */
function tensorsOf(spec: ModelSpec, dtype: DType): TensorToWrite[] {
  const layout: [string, number[]][] = [['model.embed_tokens.weight', [spec.vocabSize, spec.hiddenSize]]];
  for (let layer = 0; layer < spec.numLayers; layer++) {
    for (const name of blockTensorNames(spec)) layout.push([layerPrefix(layer) + name, blockTensorShape(spec, name)]);
  }
  layout.push(['model.norm.weight', [spec.hiddenSize]]);
  if (!spec.tieWordEmbeddings) layout.push(['lm_head.weight', [spec.vocabSize, spec.hiddenSize]]);
  return layout.map(([name, shape], k) => {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = k + (i % 4) / 4; // quarters: exact in F16 and BF16 too
    return { name, dtype, shape, data };
  });
}

async function modelDir(spec: ModelSpec, tensors: TensorToWrite[] = tensorsOf(spec, 'F32')): Promise<string> {
  const dir = mkdtempSync(path.join(tmp, `${spec.family}-`));
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify(specToConfigJson(spec)));
  await writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
  return dir;
}

function refusedWith(dir: string, ...fragments: string[]): void {
  assert.throws(
    () => ModelCheckpoint.open(dir),
    (error: unknown) => {
      assert.ok(error instanceof UserError, `expected UserError, got ${error}`);
      for (const fragment of fragments) assert.ok(error.message.includes(fragment), `"${error.message}" lacks "${fragment}"`);
      return true;
    },
  );
}

test('every family opens; readBlock returns each block tensor with its shape and values', async () => {
  const specs: ModelSpec[] = [
    BASE,
    { ...BASE, family: 'mistral' },
    { ...BASE, family: 'qwen2', attentionBias: true, tieWordEmbeddings: true },
    { ...BASE, family: 'qwen3', qkNorm: true, headDim: 4, tieWordEmbeddings: true },
  ];
  for (const spec of specs) {
    const tensors = tensorsOf(spec, 'BF16');
    const model = ModelCheckpoint.open(await modelDir(spec, tensors));
    try {
      assert.deepEqual(model.spec, spec);
      assert.equal(model.weightDtype, 'BF16');
      const block = model.readBlock(1);
      assert.deepEqual(Object.keys(block).sort(), blockTensorNames(spec).sort());
      for (const name of blockTensorNames(spec)) {
        const written = tensors.find((t) => t.name === layerPrefix(1) + name)!;
        assert.deepEqual(block[name], written.data, `${spec.family} ${name}`);
      }
      if (spec.attentionBias) assert.equal(block['self_attn.k_proj.bias'].length, spec.numKvHeads * spec.headDim);
      if (spec.qkNorm) assert.equal(block['self_attn.q_norm.weight'].length, spec.headDim);
      assert.equal(block['self_attn.o_proj.weight'].length, spec.hiddenSize * spec.numHeads * spec.headDim);
      assert.deepEqual(model.readEmbedding(), tensors[0].data);
      assert.deepEqual(model.readFinalNorm(), tensors.find((t) => t.name === 'model.norm.weight')!.data);
      const lmHead = spec.tieWordEmbeddings ? tensors[0] : tensors.find((t) => t.name === 'lm_head.weight')!;
      assert.deepEqual(model.readLmHead(), lmHead.data);
      // A caller's layer past the last is refused naming the argument.
      assert.throws(() => model.readBlock(spec.numLayers), (e: unknown) => e instanceof FieldError && e.field === 'layer' && e.problem === `must be an integer in [0, ${spec.numLayers - 1}], got ${spec.numLayers}`);
    } finally {
      model.close();
    }
  }
});

test('refuses a missing block tensor, naming it', async () => {
  const tensors = tensorsOf(BASE, 'F32').filter((t) => t.name !== 'model.layers.1.mlp.up_proj.weight');
  refusedWith(await modelDir(BASE, tensors), 'no tensor "model.layers.1.mlp.up_proj.weight"');
});

test('refuses an untied model without lm_head.weight', async () => {
  const tensors = tensorsOf(BASE, 'F32').filter((t) => t.name !== 'lm_head.weight');
  refusedWith(await modelDir(BASE, tensors), 'no tensor "lm_head.weight"', 'tie_word_embeddings is false');
});

test('refuses a tensor whose shape disagrees with config.json', async () => {
  const tensors = tensorsOf(BASE, 'F32');
  const kProj = tensors.find((t) => t.name === 'model.layers.0.self_attn.k_proj.weight')!;
  kProj.shape = [8, 8]; // GQA: config.json implies [numKvHeads·headDim, hidden] = [4, 8]
  kProj.data = new Float32Array(64);
  refusedWith(await modelDir(BASE, tensors), 'tensor "model.layers.0.self_attn.k_proj.weight" has shape [8, 8], but config.json implies [4, 8]');
});

test('refuses a block weight or bias that config.json does not use, and allows a rotary buffer', async () => {
  // The attention biases of a qwen2-like checkpoint under a config that says attention_bias false
  // would be left out of the forward: the model would run, silently wrong.
  const bias = (name: string): TensorToWrite => ({ name, dtype: 'F32', shape: [8], data: new Float32Array(8).fill(3) });
  const withBias = [...tensorsOf(BASE, 'F32'), bias('model.layers.0.self_attn.q_proj.bias'), bias('model.layers.1.self_attn.q_proj.bias')];
  refusedWith(await modelDir(BASE, withBias), 'tensor "model.layers.0.self_attn.q_proj.bias" (and 1 more) is not part of the llama model config.json describes');
  const withBuffer = [...tensorsOf(BASE, 'F32'), { name: 'model.layers.0.self_attn.rotary_emb.inv_freq', dtype: 'F32' as const, shape: [1], data: new Float32Array(1) }];
  ModelCheckpoint.open(await modelDir(BASE, withBuffer)).close();
});

test('refuses block linears of mixed dtypes', async () => {
  const tensors = tensorsOf(BASE, 'F16');
  tensors.find((t) => t.name === 'model.layers.1.mlp.down_proj.weight')!.dtype = 'F32';
  refusedWith(await modelDir(BASE, tensors), '"model.layers.1.mlp.down_proj.weight" is F32', 'is F16');
});

test('NaN or Inf in a weight is a UserError naming the tensor', async () => {
  const tensors = tensorsOf(BASE, 'F32');
  (tensors.find((t) => t.name === 'model.layers.0.mlp.gate_proj.weight')!.data as Float32Array)[5] = NaN;
  (tensors.find((t) => t.name === 'model.norm.weight')!.data as Float32Array)[3] = -Infinity;
  const model = ModelCheckpoint.open(await modelDir(BASE, tensors));
  try {
    assert.throws(() => model.readBlock(0), (error: unknown) => error instanceof UserError && /"model\.layers\.0\.mlp\.gate_proj\.weight" holds NaN at index 5/.test(error.message));
    assert.throws(() => model.readFinalNorm(), (error: unknown) => error instanceof UserError && /"model\.norm\.weight" holds -Infinity at index 3/.test(error.message));
    assert.doesNotThrow(() => model.readBlock(1));
    assert.doesNotThrow(() => model.checkFinite('x', new Float32Array([0, -1, 3.4e38])));
    assert.throws(() => model.checkFinite('x', new Float32Array([Infinity])), UserError);
  } finally {
    model.close();
  }
});

test('a directory without config.json is refused', () => {
  const dir = mkdtempSync(path.join(tmp, 'noconfig-'));
  refusedWith(dir, 'no config.json');
});

test('hashAndCheckFinite: one pass gives each file\'s sha256 (as hashing the file whole) and refuses NaN or Inf, also past the first read piece', async () => {
  const { createHash } = await import('node:crypto');
  const { readFileSync } = await import('node:fs');
  const { PIECE_BYTES } = await import('../../src/io/safetensors.ts');
  // The second model's embedding and lm_head span two read pieces each in F16.
  const cases = [
    { spec: BASE, dtype: 'BF16', badDtype: 'F32', bad: 'model.layers.1.self_attn.o_proj.weight', index: 2, value: NaN },
    { spec: { ...BASE, vocabSize: PIECE_BYTES / 16 + 3 }, dtype: 'F16', badDtype: 'F16', bad: 'lm_head.weight', index: PIECE_BYTES / 2 + 5, value: Infinity },
  ] as const;
  for (const { spec, dtype, badDtype, bad, index, value } of cases) {
    const dir = await modelDir(spec, tensorsOf(spec, dtype));
    const model = ModelCheckpoint.open(dir);
    try {
      const whole = createHash('sha256').update(readFileSync(path.join(dir, 'model.safetensors'))).digest('hex');
      assert.deepEqual(model.hashAndCheckFinite(), { 'model.safetensors': whole });
    } finally {
      model.close();
    }
    const tensors = tensorsOf(spec, badDtype);
    (tensors.find((t) => t.name === bad)!.data as Float32Array)[index] = value;
    const refused = ModelCheckpoint.open(await modelDir(spec, tensors));
    try {
      const message = `"${bad}" holds ${value} at index ${index}`;
      assert.throws(() => refused.hashAndCheckFinite(), (error: unknown) => error instanceof UserError && error.message.includes(message));
    } finally {
      refused.close();
    }
  }
});

test('readEmbeddingRows and embedWindows give exactly the rows of readEmbedding, and refuse a NaN in any row', async () => {
  const { embed, embedWindows } = await import('../../src/engine/forward.ts');
  for (const dtype of ['F32', 'F16', 'BF16'] as const) {
    const tensors = tensorsOf(BASE, dtype);
    const embedding = tensors[0].data as Float32Array;
    for (let i = 0; i < embedding.length; i++) embedding[i] = (i % 13) / 8 - 0.75;
    const model = ModelCheckpoint.open(await modelDir(BASE, tensors));
    try {
      const whole = model.readEmbedding();
      const ids = Int32Array.from([9, 0, 4, 4]);
      assert.deepEqual(model.readEmbeddingRows(ids), embed(ids, whole, BASE.hiddenSize), dtype);
      const windows = [Int32Array.from([3, 1, 3, 7]), Int32Array.from([9, 3, 0, 0])];
      const expected = windows.map((tokens) => embed(tokens, whole, BASE.hiddenSize));
      const inMemory = { spec: model.spec, readBlock: (layer: number) => model.readBlock(layer), readEmbedding: () => whole };
      for (const source of [model, inMemory]) {
        const hidden = embedWindows(source, windows);
        assert.deepEqual(hidden, expected, dtype);
        // Laid end to end in one buffer: a batch of them is a view, not a copy.
        assert.ok(hidden[1].buffer === hidden[0].buffer && hidden[1].byteOffset === hidden[0].byteOffset + hidden[0].byteLength);
      }
      assert.throws(() => model.readEmbeddingRows(Int32Array.from([10])), (e: unknown) => e instanceof FieldError && e.message === "ids holds token id 10 at 0, outside the model's vocabulary of 10");
    } finally {
      model.close();
    }
  }
  // A NaN in a row no window uses is refused as readEmbedding refuses it.
  const tensors = tensorsOf(BASE, 'F16');
  (tensors[0].data as Float32Array)[9 * BASE.hiddenSize + 2] = NaN;
  const model = ModelCheckpoint.open(await modelDir(BASE, tensors));
  try {
    const refusal = /"model\.embed_tokens\.weight" holds NaN at index 74/;
    assert.throws(() => model.readEmbedding(), refusal);
    assert.throws(() => model.readEmbeddingRows(Int32Array.from([0, 1])), (error: unknown) => error instanceof UserError && refusal.test(error.message));
  } finally {
    model.close();
  }
});


test('readBlock without named tensors: the block\'s other tensors, as a whole read gives them', async () => {
  const model = ModelCheckpoint.open(await modelDir(BASE, tensorsOf(BASE, 'F16')));
  try {
    const whole = model.readBlock(1);
    const without = new Set(['self_attn.q_proj.weight', 'mlp.down_proj.weight', 'no.such.tensor']);
    const part = model.readBlock(1, without);
    assert.deepEqual(Object.keys(part).sort(), Object.keys(whole).filter((name) => !without.has(name)).sort());
    for (const name of Object.keys(part)) assert.deepEqual(part[name], whole[name], name);
  } finally {
    model.close();
  }
});

test('recycleBlock: the next readBlock fills the handed-back arrays and gives the values a fresh read gives', async () => {
  for (const dtype of ['F32', 'F16'] as const) {
    const dir = await modelDir(BASE, tensorsOf(BASE, dtype));
    const model = ModelCheckpoint.open(dir);
    const fresh = ModelCheckpoint.open(dir);
    try {
      const first = model.readBlock(0);
      const arrays = new Set(Object.values(first));
      for (const array of arrays) array.fill(NaN); // what pruning leaves behind must not leak into the next block
      const view = new Float32Array(first['mlp.up_proj.weight'].length + 4).subarray(4);
      model.recycleBlock({ ...first, extra: view });
      model.recycleBlock(first); // handed back twice: still used once
      const second = model.readBlock(1);
      assert.deepEqual(second, fresh.readBlock(1), dtype);
      const values = Object.values(second);
      assert.ok(values.every((array) => arrays.has(array)), `${dtype}: every array reused`);
      assert.equal(new Set(values).size, values.length, `${dtype}: no array used twice`);
      assert.ok(!values.includes(view));
      assert.notStrictEqual(model.readBlock(0)['mlp.up_proj.weight'], view, 'views are never reused');
    } finally {
      model.close();
      fresh.close();
    }
  }
});
