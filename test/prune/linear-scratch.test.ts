// A layer loop reuses one score buffer and one mask buffer per matrix size (LinearScratch): the
// pruned weights and masks must be exactly those of fresh buffers, whatever the buffers held from
// the linear before, in the single-threaded and the worker-thread (shared memory) paths.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LinearScratch, pruneLinear } from '../../src/prune/prune-linear.ts';
import { pruneSettings, type PruneTarget } from '../../src/prune/settings.ts';
import { isShared } from '../../src/util/parallel.ts';

const calibration = { file: 'x', sha256: '', nsamples: 1, seqlen: 1, seed: 0 };

/** Deterministic weights in (-1, 1), different per seed. */
function weights(length: number, seed: number): Float32Array {
  const out = new Float32Array(length);
  let state = seed >>> 0;
  for (let i = 0; i < length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    out[i] = state / 2 ** 31 - 1;
  }
  return out;
}

function stats(dIn: number, seed: number) {
  const sqNorm = Float64Array.from(weights(dIn, seed), (v) => 1 + Math.abs(v));
  return { width: dIn, nsamples: 1, tokensPerSample: 1, sqNorm, mean: new Float64Array(dIn), variance: new Float64Array(dIn), gram: null };
}

const cases: { method: 'ria' | 'wanda' | 'magnitude'; selection: 'per-matrix' | 'per-row'; target: PruneTarget }[] = [
  { method: 'ria', selection: 'per-matrix', target: { kind: 'unstructured', sparsity: 0.5 } },
  { method: 'wanda', selection: 'per-row', target: { kind: 'unstructured', sparsity: 0.3 } },
  { method: 'magnitude', selection: 'per-matrix', target: { kind: 'nm', n: 2, m: 4 } },
];

describe('pruneLinear with a LinearScratch', () => {
  // 64 × 48 runs on the main thread; 1024 × 1024 (2^20 weights) splits over worker threads.
  for (const [dOut, dIn] of [[64, 48], [1024, 1024]]) {
    for (const { method, selection, target } of cases) {
      it(`${method} ${selection} ${target.kind === 'nm' ? '2:4' : target.sparsity}, ${dOut}×${dIn}: the fresh-buffer result, with one buffer reused`, async () => {
        const settings = pruneSettings({ method, target, selection, calibration });
        const scratch = new LinearScratch();
        const masks: Uint8Array[] = [];
        for (const seed of [1, 2, 3]) {
          const request = { name: 'mlp.up_proj' as const, dOut, dIn, stats: stats(dIn, seed + 100), settings, target, layer: 0 };
          const fresh = await pruneLinear({ ...request, weight: weights(dOut * dIn, seed) });
          const reused = await pruneLinear({ ...request, weight: weights(dOut * dIn, seed), scratch });
          assert.deepEqual(reused.weight, fresh.weight);
          assert.deepEqual(reused.mask, fresh.mask);
          assert.equal(reused.report.pruned, fresh.report.pruned);
          masks.push(reused.mask);
        }
        assert.ok(masks.every((mask) => mask === masks[0]), 'one mask buffer for every linear of this size');
        // Large scores live in shared memory, so the worker threads can write and count them.
        assert.equal(isShared(scratch.scoresFor(dOut * dIn)), dOut * dIn >= 1 << 20);
      });
    }
  }
  it('keeps one buffer per size', () => {
    const scratch = new LinearScratch();
    assert.equal(scratch.scoresFor(12), scratch.scoresFor(12));
    assert.notEqual(scratch.scoresFor(12), scratch.scoresFor(16));
    assert.equal(scratch.scoresFor(16).length, 16);
  });
});
