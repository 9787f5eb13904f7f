// What the interrupt line of `crepe search` says about the proxy cache it leaves: nothing before the
// cache exists, the layers kept of an unfinished dense pass, or a complete cache that stays.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { ProxyContext, type ProxyContextOptions } from '../../src/search/proxy.ts';
import { interruptedSearchNote } from '../../src/workflows/search.ts';
import type { BlockSource } from '../../src/prune/layer-loop.ts';
import { Rng } from '../../src/util/rng.ts';
import { randomModel, smallSpec } from '../helpers/random-model.ts';
import { scratchDir } from '../helpers/stories.ts';

test('interruptedSearchNote: null without a cache; an unfinished dense pass, its layers kept; a complete cache, reused', async () => {
  const spec = smallSpec('llama', { numLayers: 3 });
  const model = randomModel(spec, 5);
  const rng = new Rng(2);
  const windows = Array.from({ length: 2 }, () => Int32Array.from({ length: 16 }, () => rng.below(spec.vocabSize)));
  const root = scratchDir('search-interrupted');
  const out = path.join(root, 'found');
  const options = (cacheDir: string): ProxyContextOptions => ({ cacheDir, cacheBudgetBytes: 0, threads: 1, modelSha256: 'm', calibrationSeed: 0, withGram: false, windows: [] });
  assert.equal(interruptedSearchNote(out), null);

  // The default cache beside --out, interrupted while reading layer 2.
  const failing: BlockSource = { spec, readEmbedding: () => model.readEmbedding(), readBlock: (layer) => {
    if (layer === 2) throw new Error('stopped at layer 2');
    return model.readBlock(layer);
  } };
  await assert.rejects(ProxyContext.open(failing, windows, 16, { device: 'cpu', threads: 1 }, options(`${out}.proxy-cache`)), /stopped at layer 2/);
  assert.equal(interruptedSearchNote(out), `the proxy cache ${out}.proxy-cache keeps 2 of 3 layers of the dense pass: the same command continues it`);

  // A --proxy-cache given elsewhere, complete.
  const given = path.join(root, 'cache');
  await (await ProxyContext.open(model, windows, 16, { device: 'cpu', threads: 1 }, options(given))).close();
  assert.equal(interruptedSearchNote(out, given), `the proxy cache ${given} is complete and stays: the same command reuses it`);
});
