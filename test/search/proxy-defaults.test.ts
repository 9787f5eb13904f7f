// PHO's default proxy: the validated one for the target, unless that is calib-nll and its forward
// passes would cost the search more than CALIB_NLL_DEFAULT_MAX_FLOPS; the FLOPs counted by hand.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CALIB_NLL_DEFAULT_MAX_FLOPS, calibNllSearchFlops, defaultProxy } from '../../src/search/proxy-defaults.ts';
import { smallSpec } from '../helpers/random-model.ts';

const u50 = { kind: 'unstructured', sparsity: 0.5 } as const;
const u60 = { kind: 'unstructured', sparsity: 0.6 } as const;
const nm = { kind: 'nm', n: 2, m: 4 } as const;

test('calibNllSearchFlops: 2 FLOPs per weight of the linears and the head, per token, per candidate', () => {
  // hidden 64, q/o 64×64, k/v 32×64 (2 kv heads of 16), gate/up 96×64, down 64×96; vocabulary 67.
  const spec = smallSpec('llama');
  const perLayer = 2 * 64 * 64 + 2 * 32 * 64 + 3 * 96 * 64;
  const weights = spec.numLayers * perLayer + 67 * 64;
  assert.equal(calibNllSearchFlops(spec, 2048, 300), 2 * weights * 2048 * 300);
});

test('stories260K-sized: the validated calib-nll at 50 % and N:M; pruned-mass above 55 % whatever the cost', () => {
  const spec = smallSpec('llama', { hiddenSize: 64, intermediateSize: 172, numLayers: 5, numHeads: 8, numKvHeads: 4, headDim: 8, vocabSize: 512 });
  const flops = calibNllSearchFlops(spec, 8 * 256, 300);
  assert.ok(flops < 1e12, String(flops));
  assert.equal(defaultProxy(u50, flops).name, 'calib-nll');
  assert.equal(defaultProxy(nm, flops).name, 'calib-nll');
  assert.equal(defaultProxy(u60, 1e20).name, 'pruned-mass');
  assert.match(defaultProxy(u60, 1e20).evidence, /^60 % validation: pruned-mass/);
});

test('a 4-layer TinyLlama-shaped model at the default budget: pruned-mass, saying why; at the bound itself still calib-nll', () => {
  const spec = smallSpec('llama', { hiddenSize: 2048, intermediateSize: 5632, numLayers: 4, numHeads: 32, numKvHeads: 4, headDim: 64, vocabSize: 32000 });
  const flops = calibNllSearchFlops(spec, 8 * 256, 300);
  assert.ok(flops > CALIB_NLL_DEFAULT_MAX_FLOPS, String(flops));
  for (const target of [u50, nm]) {
    const choice = defaultProxy(target, flops);
    assert.equal(choice.name, 'pruned-mass');
    assert.equal(choice.sign, 1);
    assert.match(choice.evidence, /calib-nll \(.*\) would spend \d+ TFLOP on forward passes in this search, more than the 100 TFLOP a default may$/);
  }
  assert.equal(defaultProxy(u50, CALIB_NLL_DEFAULT_MAX_FLOPS).name, 'calib-nll');
  assert.equal(defaultProxy(u50).name, 'calib-nll');
});
