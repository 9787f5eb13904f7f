// A layer count that the weights do not back (config.json num_hidden_layers, a GGUF block_count)
// is refused before anything is built per layer: 10⁹ layers fail at once, naming the field and the
// number of layers actually present.
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { checkLayerCount, layersPresent } from '../../src/model/layer-count.ts';
import { ModelCheckpoint } from '../../src/model/checkpoint.ts';
import { convertToHuggingFace } from '../../src/model/convert.ts';
import { UserError } from '../../src/util/errors.ts';
import { STORIES_GGUF } from '../helpers/shared.ts';
import { storiesModelDir } from '../helpers/stories.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const tmp = tempDir('crepe-layer-count');
const HF = /^model\.layers\.(\d+)\./;

function refused(run: () => unknown, ...fragments: string[]): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof UserError, String(error));
    for (const f of fragments) assert.ok(error.message.includes(f), `"${error.message}" lacks "${f}"`);
    return true;
  });
}

describe('layersPresent / checkLayerCount', () => {
  const names = ['model.embed_tokens.weight', 'model.layers.0.mlp.up_proj.weight', 'model.layers.0.input_layernorm.weight', 'model.layers.1.mlp.up_proj.weight', 'model.layers.10.x'];
  it('counts distinct layer indices', () => {
    assert.equal(layersPresent(names, HF), 3);
    assert.equal(layersPresent([], HF), 0);
  });
  it('accepts the count the tensors back and refuses a larger or a smaller one', () => {
    const three = names.filter((name) => !name.startsWith('model.layers.10.')).concat('model.layers.2.x');
    checkLayerCount(3, three, HF, 'cfg', 'num_hidden_layers');
    refused(() => checkLayerCount(4, three, HF, 'cfg', 'num_hidden_layers'), 'cfg: num_hidden_layers is 4, but the weights hold tensors of 3 layers;');
    // Fewer layers than the weights hold would run the model without its last ones.
    refused(() => checkLayerCount(2, three, HF, 'cfg', 'num_hidden_layers'), 'cfg: num_hidden_layers is 2, but the weights hold tensors of 3 layers (up to index 2)');
    // As many indices as claimed, but one past the count (layer 2 missing, layer 10 present).
    refused(() => checkLayerCount(3, names, HF, 'cfg', 'num_hidden_layers'), 'num_hidden_layers is 3, but the weights hold tensors of 3 layers (up to index 10)');
    refused(() => checkLayerCount(1e9, [], HF, 'cfg', 'n'), 'n is 1000000000, but the weights hold tensors of 0 layers');
  });
});

describe('a model whose config claims 10⁹ layers', () => {
  let dir = '';
  before(async () => {
    const base = await storiesModelDir();
    dir = mkdtempSync(path.join(tmp, 'huge-layers-'));
    for (const file of ['model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) copyFileSync(path.join(base, file), path.join(dir, file));
    const config = JSON.parse(readFileSync(path.join(base, 'config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...config, num_hidden_layers: 1e9 }));
  });

  it('is refused by ModelCheckpoint.open before any per-layer list is built', () => {
    refused(() => ModelCheckpoint.open(dir), 'config.json: num_hidden_layers is 1000000000, but the weights hold tensors of 5 layers');
  });
});

describe('a model whose config claims fewer layers than its weights hold', () => {
  it('is refused by ModelCheckpoint.open instead of running without its last layer', async () => {
    const base = await storiesModelDir();
    const dir = mkdtempSync(path.join(tmp, 'fewer-layers-'));
    for (const file of ['model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) copyFileSync(path.join(base, file), path.join(dir, file));
    const config = JSON.parse(readFileSync(path.join(base, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(config.num_hidden_layers, 5);
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...config, num_hidden_layers: 4 }));
    refused(() => ModelCheckpoint.open(dir), 'config.json: num_hidden_layers is 4, but the weights hold tensors of 5 layers (up to index 4)');
  });
});

describe('a GGUF whose block_count claims 10⁹ layers', () => {
  it('is refused by convert before the tensor plan is built', async () => {
    const bytes = readFileSync(STORIES_GGUF);
    // GGUF v1 metadata: u32 key length, key, u32 value type (4 = u32), u32 value.
    const key = Buffer.from('llama.block_count');
    const at = bytes.indexOf(key);
    assert.ok(at > 0, 'block_count key found');
    assert.equal(bytes.readUInt32LE(at + key.length), 4, 'stored as u32');
    assert.equal(bytes.readUInt32LE(at + key.length + 4), 5, 'stories260K has 5 blocks');
    bytes.writeUInt32LE(1e9, at + key.length + 4);
    const file = path.join(tmp, 'huge-blocks.gguf');
    writeFileSync(file, bytes);
    await assert.rejects(convertToHuggingFace(file, path.join(tmp, 'out')), (error: unknown) => {
      assert.ok(error instanceof UserError, String(error));
      assert.match(error.message, /huge-blocks\.gguf: llama\.block_count is 1000000000, but the weights hold tensors of 5 layers/);
      return true;
    });
  });
});
