// PHO's default proxy: the validated one for the target, unless that is calib-nll and its forward
// passes would cost the search more than CALIB_NLL_DEFAULT_MAX_FLOPS; the FLOPs counted by hand.
// The default row fraction of the per-linear proxies, from weights counted by hand.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CALIB_NLL_DEFAULT_MAX_FLOPS, calibNllSearchFlops, defaultProxy, defaultProxyRows, linearWeights, MIN_DEFAULT_PROXY_ROWS, PER_LINEAR_DEFAULT_MAX_VISITS } from '../../src/search/proxy-defaults.ts';
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

// Linear weights by hand: q/o 4096², k/v 4096² (no grouped-query attention), gate/up/down 11008 × 4096.
const llama7b = smallSpec('llama', { hiddenSize: 4096, intermediateSize: 11008, numLayers: 32, numHeads: 32, numKvHeads: 32, headDim: 128, vocabSize: 32000 });
const LLAMA_7B_LINEAR_WEIGHTS = 32 * (4 * 4096 * 4096 + 3 * 11008 * 4096);

test('linearWeights: the seven linears of every block, not the head', () => {
  assert.equal(linearWeights(llama7b), LLAMA_7B_LINEAR_WEIGHTS);
  assert.equal(LLAMA_7B_LINEAR_WEIGHTS, 6_476_005_376);
});

test('defaultProxyRows: all rows up to 2e11 visits; else the largest one-digit fraction within it, at least 0.01', () => {
  // 7B at PHO's 300 candidates: 1.94e12 visits → 0.103 → 0.1; --auto's 60 candidates: 3.9e11 → 0.51 → 0.5.
  assert.equal(defaultProxyRows(llama7b, 300), 0.1);
  assert.equal(defaultProxyRows(llama7b, 60), 0.5);
  // 0.1 × 1.94e12 stays within the bound; the next digit up would not.
  assert.ok(0.1 * LLAMA_7B_LINEAR_WEIGHTS * 300 <= PER_LINEAR_DEFAULT_MAX_VISITS);
  assert.ok(0.2 * LLAMA_7B_LINEAR_WEIGHTS * 300 > PER_LINEAR_DEFAULT_MAX_VISITS);
  // 22 layers of 2048 / 5632 with 4 kv heads of 64: 968 M weights × 300 = 2.9e11 → 0.69 → 0.6 (not 0.6000000000000001).
  const tinyLlama = smallSpec('llama', { hiddenSize: 2048, intermediateSize: 5632, numLayers: 22, numHeads: 32, numKvHeads: 4, headDim: 64, vocabSize: 32000 });
  assert.equal(linearWeights(tinyLlama), 22 * (2 * 2048 * 2048 + 2 * 256 * 2048 + 3 * 5632 * 2048));
  assert.equal(defaultProxyRows(tinyLlama, 300), 0.6);
  // Its 4-layer cut: 176 M × 300 = 5.3e10, all rows; exactly at the bound, all rows too.
  assert.equal(defaultProxyRows({ ...tinyLlama, numLayers: 4 }, 300), 1);
  assert.equal(defaultProxyRows(tinyLlama, PER_LINEAR_DEFAULT_MAX_VISITS / linearWeights(tinyLlama)), 1);
  // 70B-sized (80 layers of 8192 / 28672): 0.003 would do, the floor keeps 0.01.
  const llama70b = smallSpec('llama', { hiddenSize: 8192, intermediateSize: 28672, numLayers: 80, numHeads: 64, numKvHeads: 8, headDim: 128, vocabSize: 32000 });
  assert.equal(defaultProxyRows(llama70b, 300), MIN_DEFAULT_PROXY_ROWS);
});
