import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dsnotCycleNote } from '../../src/prune/layer-loop.ts';
import { pruneSettings, type PruneSettingsInput } from '../../src/prune/settings.ts';
import { smallSpec } from '../helpers/random-model.ts';

// stories260K's shapes: attention rows of 64 inputs, gate/up of 64, down_proj of 172.
const stories = smallSpec('llama', { hiddenSize: 64, intermediateSize: 172, numHeads: 8, numKvHeads: 4, headDim: 8 });
// TinyLlama's: rows of 2048 and 5632 inputs.
const tinyLlama = smallSpec('llama', { hiddenSize: 2048, intermediateSize: 5632, numHeads: 32, numKvHeads: 4, headDim: 64 });
const calibration = { file: 'c4.jsonl', sha256: '', nsamples: 16, seqlen: 128, seed: 0 };
const settings = (input: Partial<PruneSettingsInput>) =>
  pruneSettings({ method: 'ria', target: { kind: 'unstructured', sparsity: 0.5 }, selection: 'per-row', calibration, ...input });

test('dsnotCycleNote names the narrowest re-pruned linear once the cycle limit reaches a quarter of what its rows keep', () => {
  // 50 cycles, MLP skipped: q_proj's rows keep 32 of 64; a quarter is 8, so 7 cycles or fewer pass.
  assert.equal(
    dsnotCycleNote(stories, settings({ dsnot: {} })),
    "DSnoT: up to 50 swaps per row, on rows that keep about 32 weights (self_attn.q_proj, 64 inputs): enough to rewrite most of a row's mask. "
      + "The reference's limit suits rows of thousands; --dsnot-cycles 7 or fewer (dsnot.maxCycles) keeps the swaps under a quarter of what a row keeps",
  );
  assert.equal(dsnotCycleNote(stories, settings({ dsnot: { maxCycles: 8 } }))?.startsWith('DSnoT: up to 8 swaps per row'), true);
  assert.equal(dsnotCycleNote(stories, settings({ dsnot: { maxCycles: 7 } })), null);
  // 70 %: 64 · 0.3 = 19.2 → 19 kept, a quarter 4.75: 5 cycles note, 4 do not.
  const at70 = { target: { kind: 'unstructured' as const, sparsity: 0.7 } };
  assert.match(dsnotCycleNote(stories, settings({ ...at70, dsnot: { maxCycles: 5 } })) ?? '', /about 19 weights .*--dsnot-cycles 4 or fewer/);
  assert.equal(dsnotCycleNote(stories, settings({ ...at70, dsnot: { maxCycles: 4 } })), null);
  // 2:4 keeps half, as 50 %.
  assert.match(dsnotCycleNote(stories, settings({ target: { kind: 'nm', n: 2, m: 4 }, dsnot: { maxCycles: 8 } })) ?? '', /about 32 weights \(self_attn\.q_proj, 64 inputs\)/);
});

test('dsnotCycleNote reads only the linears DSnoT re-prunes, and says nothing without DSnoT or on wide rows', () => {
  assert.equal(dsnotCycleNote(stories, settings({})), null);
  // The MLP re-pruned too: gate/up are 64 wide as well, still the narrowest (the first in LINEAR_NAMES order is q_proj).
  assert.match(dsnotCycleNote(stories, settings({ dsnot: { skip: 'none' } })) ?? '', /\(self_attn\.q_proj, 64 inputs\)/);
  // Attention left dense and the MLP skipped: nothing is re-pruned.
  const attention = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj'] as const;
  assert.equal(dsnotCycleNote(stories, settings({ exclude: [...attention], dsnot: {} })), null);
  // Attention excluded, the MLP re-pruned: down_proj's 172 inputs keep 86, gate/up's 64 keep 32.
  assert.match(dsnotCycleNote(stories, settings({ exclude: [...attention], dsnot: { skip: 'none' } })) ?? '', /about 32 weights \(mlp\.gate_proj, 64 inputs\)/);
  assert.match(dsnotCycleNote(stories, settings({ exclude: [...attention, 'mlp.gate_proj', 'mlp.up_proj'], dsnot: { skip: 'none' } })) ?? '', /about 86 weights \(mlp\.down_proj, 172 inputs\).*--dsnot-cycles 21 or fewer/);
  // TinyLlama: 1024 of 2048 kept, 50 cycles are 5 %.
  assert.equal(dsnotCycleNote(tinyLlama, settings({ dsnot: { skip: 'none' } })), null);
  assert.equal(dsnotCycleNote(tinyLlama, settings({ dsnot: { maxCycles: 256 } }))?.includes('about 1024 weights'), true);
  assert.equal(dsnotCycleNote(tinyLlama, settings({ dsnot: { maxCycles: 255 } })), null);
});
