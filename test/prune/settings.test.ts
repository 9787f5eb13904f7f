import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pruneSettings } from '../../src/prune/settings.ts';

const calibration = { file: 'c.txt', sha256: '', nsamples: 4, seqlen: 32, seed: 0 };

// The settings are hashed as JSON to decide whether a run may resume, so the key order is part of
// the contract, and a default `exclude` must not appear.
test('pruneSettings fills the defaults in the fixed key order and leaves exclude out unless given', () => {
  const settings = pruneSettings({ method: 'wanda', target: { kind: 'unstructured', sparsity: 0.5 }, selection: 'per-row', calibration });
  assert.equal(
    JSON.stringify(settings),
    JSON.stringify({
      method: 'wanda',
      target: { kind: 'unstructured', sparsity: 0.5 },
      selection: 'per-row',
      riaA: 0.5,
      crepe: null,
      calibration,
      trueSequential: false,
      sparsegpt: { blockSize: 128, percdamp: 0.01 },
      reconstruct: false,
      owl: null,
      dsnot: null,
      permute: null,
    }),
  );
});

test('pruneSettings keeps what is given, exclude included', () => {
  const settings = pruneSettings({
    method: 'sparsegpt', target: { kind: 'nm', n: 2, m: 4 }, selection: 'per-matrix', calibration,
    riaA: 0.3, sparsegpt: { blockSize: 64, percdamp: 0.1 }, trueSequential: true, exclude: ['mlp.down_proj'],
  });
  assert.equal(settings.riaA, 0.3);
  assert.deepEqual(settings.sparsegpt, { blockSize: 64, percdamp: 0.1 });
  assert.equal(settings.trueSequential, true);
  assert.deepEqual(Object.keys(settings).slice(-1), ['exclude']);
  assert.deepEqual(settings.exclude, ['mlp.down_proj']);
});
