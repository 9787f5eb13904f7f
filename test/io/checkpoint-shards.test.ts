import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { atomicWriteFile, atomicWriteJson, tempPathFor, withAtomicFile } from '../../src/io/atomic.ts';
import { SafetensorsWeights } from '../../src/io/safetensors.ts';
import { writeSafetensors } from '../../src/io/safetensors-writer.ts';
import { UserError } from '../../src/util/errors.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const tmp = tempDir('crepe-checkpoint');

function isUserErrorWith(...fragments: string[]): (error: unknown) => boolean {
  return (error: unknown) => {
    assert.ok(error instanceof UserError, `expected UserError, got ${error}`);
    for (const fragment of fragments) assert.ok(error.message.includes(fragment), `"${error.message}" lacks "${fragment}"`);
    return true;
  };
}

/** Two shards holding three tensors, and their index. */
async function shardedDir(weightMap?: Record<string, string>): Promise<string> {
  const dir = mkdtempSync(path.join(tmp, 'sharded-'));
  await writeSafetensors(path.join(dir, 'model-00001-of-00002.safetensors'), [
    { name: 'model.embed_tokens.weight', dtype: 'F32', shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) },
    { name: 'model.norm.weight', dtype: 'BF16', shape: [2], data: new Float32Array([0.5, -1]) },
  ]);
  await writeSafetensors(path.join(dir, 'model-00002-of-00002.safetensors'), [
    { name: 'lm_head.weight', dtype: 'F16', shape: [2, 2], data: new Float32Array([5, 6, 7, 8]) },
  ]);
  await atomicWriteJson(path.join(dir, 'model.safetensors.index.json'), {
    metadata: { total_size: 36 },
    weight_map: weightMap ?? {
      'lm_head.weight': 'model-00002-of-00002.safetensors',
      'model.embed_tokens.weight': 'model-00001-of-00002.safetensors',
      'model.norm.weight': 'model-00001-of-00002.safetensors',
    },
  });
  return dir;
}

test('sharded checkpoint: tensors found through the index, read from their shard', async () => {
  const dir = await shardedDir();
  const checkpoint = SafetensorsWeights.open(dir);
  try {
    assert.deepEqual(checkpoint.names(), ['lm_head.weight', 'model.embed_tokens.weight', 'model.norm.weight']);
    assert.ok(checkpoint.has('model.norm.weight'));
    assert.ok(!checkpoint.has('model.layers.0.mlp.up_proj.weight'));
    assert.equal(checkpoint.info('lm_head.weight').file, path.join(dir, 'model-00002-of-00002.safetensors'));
    assert.equal(checkpoint.info('lm_head.weight').dtype, 'F16');
    assert.deepEqual([...checkpoint.readF32('model.embed_tokens.weight')], [1, 2, 3, 4]);
    assert.deepEqual([...checkpoint.readF32('model.norm.weight')], [0.5, -1]);
    assert.deepEqual([...checkpoint.readF32('lm_head.weight')], [5, 6, 7, 8]);
    assert.deepEqual(checkpoint.readRaw('model.norm.weight'), new Uint8Array([0x00, 0x3f, 0x80, 0xbf]));
    assert.throws(() => checkpoint.info('nope.weight'), isUserErrorWith('"nope.weight"', dir));
  } finally {
    checkpoint.close();
  }
});

test('single-file checkpoint', async () => {
  const dir = mkdtempSync(path.join(tmp, 'single-'));
  await writeSafetensors(path.join(dir, 'model.safetensors'), [{ name: 'w', dtype: 'F32', shape: [1], data: new Float32Array([3]) }]);
  const checkpoint = SafetensorsWeights.open(dir);
  assert.deepEqual(checkpoint.names(), ['w']);
  assert.deepEqual([...checkpoint.readF32('w')], [3]);
  checkpoint.close();
});

test('refuses a directory holding both model.safetensors and an index, naming both (either may be stale)', async () => {
  const dir = await shardedDir();
  await writeSafetensors(path.join(dir, 'model.safetensors'), [{ name: 'only', dtype: 'F32', shape: [1], data: new Float32Array([1]) }]);
  assert.throws(() => SafetensorsWeights.open(dir), isUserErrorWith(`${dir}: holds both model.safetensors and model.safetensors.index.json`, 'move the one that is not the model out'));
});

test('refuses a missing shard, naming it', async () => {
  const dir = await shardedDir({
    'model.norm.weight': 'model-00001-of-00002.safetensors',
    'lm_head.weight': 'model-00003-of-00003.safetensors',
  });
  assert.throws(() => SafetensorsWeights.open(dir), isUserErrorWith('model.safetensors.index.json', 'shard model-00003-of-00003.safetensors', '"lm_head.weight"', 'does not exist'));
});

test('refuses an index listing a tensor its shard does not hold', async () => {
  const dir = await shardedDir({ 'lm_head.weight': 'model-00001-of-00002.safetensors' });
  assert.throws(() => SafetensorsWeights.open(dir), isUserErrorWith('tensor "lm_head.weight" is listed in shard model-00001-of-00002.safetensors', 'does not contain it'));
});

test('refuses a shard holding a tensor the index leaves out (an index out of date with its shards)', async () => {
  // Left out of the index, model.norm.weight would be missing from the model without a word.
  const dir = await shardedDir({ 'lm_head.weight': 'model-00002-of-00002.safetensors', 'model.embed_tokens.weight': 'model-00001-of-00002.safetensors' });
  assert.throws(() => SafetensorsWeights.open(dir), isUserErrorWith('model.safetensors.index.json: shard model-00001-of-00002.safetensors holds tensor "model.norm.weight", which the index does not list'));
});

test('refuses a malformed index and shard names outside the directory', async () => {
  const dir = await shardedDir({ 'lm_head.weight': '../elsewhere.safetensors' });
  assert.throws(() => SafetensorsWeights.open(dir), isUserErrorWith('"lm_head.weight"', 'expected a file name in the same directory'));
  writeFileSync(path.join(dir, 'model.safetensors.index.json'), '{"weight_map": ');
  assert.throws(() => SafetensorsWeights.open(dir), isUserErrorWith('model.safetensors.index.json', 'not valid JSON'));
  writeFileSync(path.join(dir, 'model.safetensors.index.json'), '{"metadata": {}}');
  assert.throws(() => SafetensorsWeights.open(dir), isUserErrorWith('"weight_map"'));
});

test('refuses a directory without weights, and a path that is not a directory', () => {
  const empty = mkdtempSync(path.join(tmp, 'empty-'));
  assert.throws(() => SafetensorsWeights.open(empty), isUserErrorWith(empty, 'no model.safetensors or model.safetensors.index.json'));
  assert.throws(() => SafetensorsWeights.open(path.join(empty, 'missing')), isUserErrorWith(`${path.join(empty, 'missing')}: no such directory (expected a Hugging Face model directory`));
  writeFileSync(path.join(empty, 'file'), '');
  assert.throws(() => SafetensorsWeights.open(path.join(empty, 'file')), isUserErrorWith(`${path.join(empty, 'file')}: not a directory (expected a Hugging Face model directory`));
});

test('atomic helpers: write, replace, JSON, failure leaves no temp file', async () => {
  const dir = mkdtempSync(path.join(tmp, 'atomic-'));
  const target = path.join(dir, 'report.json');
  await atomicWriteJson(target, { ppl: 12.5 });
  assert.equal(readFileSync(target, 'utf8'), '{\n  "ppl": 12.5\n}\n');
  await atomicWriteFile(target, 'replaced');
  assert.equal(readFileSync(target, 'utf8'), 'replaced');
  await assert.rejects(
    withAtomicFile(target, async (tmpPath) => {
      writeFileSync(tmpPath, 'half-written');
      throw new Error('disk on fire');
    }),
    /disk on fire/,
  );
  assert.equal(readFileSync(target, 'utf8'), 'replaced');
  assert.deepEqual(readdirSync(dir), ['report.json']);
  const temp = tempPathFor(target);
  assert.equal(path.dirname(temp), dir);
  assert.match(path.basename(temp), new RegExp(`^\\.report\\.json\\.tmp-${process.pid}-[0-9a-f]+$`));
  assert.notEqual(tempPathFor(target), temp);
});
