// The pruned model calib-nll and the dense confirmations run: a layer's pruning is asked for while the block before it runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { perplexity } from '../../src/eval/perplexity.ts';
import { withBlocks } from '../../src/model/source.ts';
import { LINEAR_NAMES, type LinearName } from '../../src/model/spec.ts';
import { applyMask } from '../../src/prune/mask.ts';
import { prunedPerplexity, type LayerPruning, type PrunedLinear } from '../../src/search/proxy-e2e.ts';
import { Rng } from '../../src/util/rng.ts';
import { randomModel, smallSpec } from '../helpers/random-model.ts';

const spec = smallSpec('llama', { numLayers: 3 });
const model = randomModel(spec, 7);
const seqlen = 8;
const engine = { device: 'cpu' as const, threads: 1 };
const rng = new Rng(11);
const tokens = Int32Array.from({ length: 3 * seqlen }, () => rng.below(spec.vocabSize));

/** A fixed random mask of every linear (half pruned), by layer. */
const masks = Array.from({ length: spec.numLayers }, (_, layer) => {
  const block = model.readBlock(layer);
  return Object.fromEntries(LINEAR_NAMES.map((name) => [name, Uint8Array.from(block[`${name}.weight`], () => (rng.below(2) === 0 ? 1 : 0))])) as Record<LinearName, Uint8Array>;
});

test('prunedPerplexity: each layer\'s pruning is asked for once, in order, as soon as the one before it is in (before the reader runs that block); every one handed out comes back once; the perplexity is that of the masked model', async () => {
  const events: string[] = [];
  const handedOut = new Map<Record<LinearName, PrunedLinear>, number>();
  const given = new Set<Record<LinearName, PrunedLinear>>();
  const pruning: LayerPruning = {
    weights: false,
    of: async (layer) => {
      events.push(`of ${layer}`);
      const linears = Object.fromEntries(LINEAR_NAMES.map((name) => [name, { mask: masks[layer][name] }])) as Record<LinearName, PrunedLinear>;
      handedOut.set(linears, layer);
      return linears;
    },
    giveBack: (linears) => {
      assert.ok(!given.has(linears), 'given back twice');
      given.add(linears);
      events.push(`back ${handedOut.get(linears)}`);
    },
  };
  const reading = { ...model, readBlock: (layer: number) => { events.push(`read ${layer}`); return model.readBlock(layer); } };
  const result = await prunedPerplexity(reading, pruning, tokens, { seqlen }, engine);
  assert.deepEqual(events, ['of 0', 'read 0', 'of 1', 'back 0', 'read 1', 'of 2', 'back 1', 'read 2', 'back 2']);
  assert.equal(given.size, handedOut.size);
  const masked = withBlocks(model, (layer) => {
    const block = model.readBlock(layer);
    for (const name of LINEAR_NAMES) applyMask(block[`${name}.weight`], masks[layer][name]);
    return block;
  });
  const expected = await perplexity(masked, tokens, { ...engine, seqlen, mode: 'layer-major' });
  assert.equal(result.ppl, expected.ppl);
  assert.deepEqual(result.windowNll, expected.windowNll);
});

test('prunedPerplexity: a pass that fails after the next layer\'s pruning was asked for hands that one back too, and the error is the pass\'s', async () => {
  const handedOut: Record<LinearName, PrunedLinear>[] = [];
  const given: Record<LinearName, PrunedLinear>[] = [];
  const pruning: LayerPruning = {
    weights: false,
    of: async (layer) => {
      const linears = Object.fromEntries(LINEAR_NAMES.map((name) => [name, { mask: masks[layer][name] }])) as Record<LinearName, PrunedLinear>;
      handedOut.push(linears);
      return linears;
    },
    giveBack: (linears) => { given.push(linears); },
  };
  const failing = { ...model, readBlock: (layer: number) => { if (layer === 1) throw new Error('disk gone'); return model.readBlock(layer); } };
  await assert.rejects(prunedPerplexity(failing, pruning, tokens, { seqlen }, engine), /disk gone/);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(handedOut.length, 2);
  assert.deepEqual(new Set(given), new Set(handedOut));
});
