// The same stories260K prune saved dense in one file, and as compressed-tensors bitmasks in shards of
// 200 kB: every tensor reads back bit for bit the same, eval and inspect give the same answers, and
// config.json differs only by the sparsity_config's format.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { evaluatePerplexity, inspectModel, parseTarget, pruneModel, SafetensorsWeights, type PruneRequest } from '../../src/index.ts';
import { C4_SAMPLE, WIKITEXT_TEST } from '../helpers/shared.ts';
import { scratchDir, storiesModelDir } from '../helpers/stories.ts';

let model = '';
before(async () => {
  model = await storiesModelDir();
});

const request = (out: string, extra: Partial<PruneRequest>): PruneRequest => ({
  model, out, method: 'wanda', target: parseTarget('0.5'), calib: C4_SAMPLE, nsamples: 4, seqlen: 64, ...extra,
});

const readConfig = (dir: string) => JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));

describe('save formats on stories260K', () => {
  it('sparse-bitmask in 200kB shards reads back as the dense save, bit for bit', async () => {
    const dense = (await pruneModel(request(path.join(scratchDir('dense'), 'out'), {}))).out;
    const packed = (await pruneModel(request(path.join(scratchDir('bitmask'), 'out'), { saveFormat: 'sparse-bitmask', maxShardSize: '200kB' }))).out;

    const files = readdirSync(packed);
    assert.ok(files.includes('model.safetensors.index.json') && !files.includes('model.safetensors'), files.join(', '));
    const shards = files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f));
    assert.ok(shards.length >= 3, `${shards.length} shards`);

    const a = SafetensorsWeights.open(dense);
    const b = SafetensorsWeights.open(packed);
    try {
      assert.deepEqual(b.names().sort(), a.names().sort());
      let compressed = 0;
      for (const name of a.names()) {
        assert.deepEqual(b.info(name).shape, a.info(name).shape, name);
        assert.ok(Buffer.from(b.readRaw(name)).equals(Buffer.from(a.readRaw(name))), `${name} differs`);
        if (b.isBitmaskCompressed(name)) compressed++;
      }
      assert.equal(compressed, 5 * 7, 'every block linear is stored as a bitmask');
      assert.ok(b.storedTensors().some((t) => t.name === 'model.layers.0.mlp.down_proj.row_offsets'));
    } finally {
      a.close();
      b.close();
    }

    const { quantization_config: qa, ...configA } = readConfig(dense);
    const { quantization_config: qb, ...configB } = readConfig(packed);
    assert.deepEqual(configB, configA);
    assert.equal(qa.sparsity_config.format, 'dense');
    assert.deepEqual(qb.sparsity_config, { ...qa.sparsity_config, format: 'sparse-bitmask' });

    const inspectA = await inspectModel({ model: dense, pattern: '2:4' });
    const inspectB = await inspectModel({ model: packed, pattern: '2:4' });
    const byName = (r: typeof inspectA) => ({ ...r, dir: '', tensors: [...r.tensors].sort((x, y) => x.name.localeCompare(y.name)) });
    assert.deepEqual(byName(inspectB), byName(inspectA));
    assert.equal(inspectB.linear.sparsity, 0.5);

    const ppl = async (dir: string) => (await evaluatePerplexity({ model: dir, text: WIKITEXT_TEST, seqlen: 64, maxChunks: 2 })).ppl;
    assert.equal(await ppl(packed), await ppl(dense));
  });
  it('sparsityMetadata false keeps config.json as the input\'s; sparse-bitmask needs the metadata', async () => {
    const out = (await pruneModel(request(path.join(scratchDir('no-metadata'), 'out'), { sparsityMetadata: false }))).out;
    assert.deepEqual(readConfig(out), readConfig(model));
    const refused = path.join(scratchDir('bitmask-no-metadata'), 'out');
    await assert.rejects(pruneModel(request(refused, { saveFormat: 'sparse-bitmask', sparsityMetadata: false })), /sparsityMetadata.*sparse-bitmask/);
    assert.equal(existsSync(refused), false);
  });
});
