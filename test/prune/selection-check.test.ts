// Scores that overflow or underflow never become a silently over-pruned model: non-finite or
// all-equal scores are refused, and after selection the pruned count must be the rule's (exact
// for per-row and N:M, ⌊N·s⌋ + 1 per threshold plus at most 1 % of ties for the threshold rules).
// The exponent bound of pruneSettings stops the a = ±100 / 1e308 first; the detection is the
// safety net for what the bound cannot see (activations large enough to overflow even at a = 4).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  TIE_TOLERANCE, checkReachedSparsity, checkScores, checkUpdatedWeights, countZeros, selectionBounds,
} from '../../src/prune/selection-check.ts';
import { pruneLinear } from '../../src/prune/prune-linear.ts';
import { runPrunePipeline } from '../../src/prune/pipeline.ts';
import { pruneSettings } from '../../src/prune/settings.ts';
import { SafetensorsFile } from '../../src/io/safetensors.ts';
import { writeSafetensors } from '../../src/io/safetensors-writer.ts';
import { sampleCalibrationFile } from '../../src/data/calibration.ts';
import { TextTokenizer } from '../../src/model/tokenizer.ts';
import { UserError } from '../../src/util/errors.ts';
import { C4_SAMPLE } from '../helpers/shared.ts';
import { scratchDir, storiesModelDir } from '../helpers/stories.ts';
import path from 'node:path';
import { copyFileSync, existsSync } from 'node:fs';

function refused(run: () => unknown, pattern: RegExp): void {
  assert.throws(run, (error: unknown) => error instanceof UserError && pattern.test(error.message));
}

const UNSTRUCTURED_HALF = { kind: 'unstructured', sparsity: 0.5 } as const;

describe('checkScores', () => {
  const weight = Float32Array.from([1, -2, 3, -4, 5, 6]);
  it('accepts finite scores that differ', () => {
    checkScores(Float32Array.from([1, 2, 3, 4, 5, 6]), weight, 3, 'mlp.up_proj', 2);
  });
  it('refuses an infinite or NaN score, naming the layer, linear, row and column', () => {
    refused(() => checkScores(Float32Array.from([1, 2, 3, 4, Infinity, 6]), weight, 3, 'mlp.up_proj', 2),
      /^layer 2 mlp\.up_proj: score Infinity at row 1, column 1; the scores overflowed/);
    refused(() => checkScores(Float32Array.from([NaN, 2, 3, 4, 5, 6]), weight, 3, 'self_attn.q_proj'),
      /^self_attn\.q_proj: score NaN at row 0, column 0/);
  });
  it('refuses all-equal scores (underflow to 0) unless every weight is zero', () => {
    refused(() => checkScores(new Float32Array(6), weight, 3, 'mlp.down_proj', 0), /^layer 0 mlp\.down_proj: all 6 scores equal 0; they cannot rank/);
    checkScores(new Float32Array(6), new Float32Array(6), 3, 'mlp.down_proj', 0);
  });
});

describe('selectionBounds (hand-computed)', () => {
  it('per-row: exactly ⌊dIn·s⌋ per row', () => {
    assert.deepEqual(selectionBounds({ target: { kind: 'unstructured', sparsity: 0.55 }, selection: 'per-row', dOut: 4, dIn: 10 }), { min: 20, max: 20 });
  });
  it('N:M: exactly n per group of m', () => {
    assert.deepEqual(selectionBounds({ target: { kind: 'nm', n: 2, m: 4 }, selection: 'per-matrix', dOut: 3, dIn: 8 }), { min: 12, max: 12 });
  });
  it('per-matrix: ⌊N·s⌋ + 1, plus ties up to 1 % of N (rounded up)', () => {
    // N = 32: t = sorted[16] → 17 pruned; ties may add ⌈0.32⌉ = 1.
    assert.deepEqual(selectionBounds({ target: UNSTRUCTURED_HALF, selection: 'per-matrix', dOut: 4, dIn: 8 }), { min: 17, max: 18 });
    // N = 1000, s = 0.3: t = sorted[300] → 301; ties add up to 10.
    assert.deepEqual(selectionBounds({ target: { kind: 'unstructured', sparsity: 0.3 }, selection: 'per-matrix', dOut: 10, dIn: 100 }), { min: 301, max: 311 });
    assert.equal(TIE_TOLERANCE, 0.01);
  });
  it('SparseGPT column blocks: one threshold per block', () => {
    // dOut 2, dIn 10, blocks of 4 columns: 8, 8 and 4 entries → (4+1) + (4+1) + (2+1) = 13; ties add ⌈0.2⌉ = 1.
    assert.deepEqual(selectionBounds({ target: UNSTRUCTURED_HALF, selection: 'column-blocks', dOut: 2, dIn: 10, blockSize: 4 }), { min: 13, max: 14 });
  });
});

describe('checkReachedSparsity', () => {
  const rule = { target: UNSTRUCTURED_HALF, selection: 'per-matrix', dOut: 4, dIn: 8 } as const;
  const maskWith = (pruned: number) => Uint8Array.from({ length: 32 }, (_, i) => (i < pruned ? 1 : 0));
  it('accepts the rule\'s count and its tie allowance', () => {
    checkReachedSparsity(maskWith(17), rule, 0, 'o', 1);
    checkReachedSparsity(maskWith(18), rule, 0, 'o', 1);
  });
  it('refuses more (tie groups from underflow) or fewer (NaN comparisons), naming the linear and the numbers', () => {
    refused(() => checkReachedSparsity(maskWith(29), rule, 0, 'self_attn.o_proj', 1),
      /^layer 1 self_attn\.o_proj: pruning reached 90\.63 % \(29 of 32 weights\) for a 50\.00 % target; the per-matrix rule allows 17 to 18\. The scores are degenerate/);
    refused(() => checkReachedSparsity(maskWith(3), rule, 0, 'o'), /reached 9\.38 % \(3 of 32 weights\)/);
    refused(() => checkReachedSparsity(maskWith(15), { ...rule, selection: 'per-row' }, 0, 'o'), /the per-row rule allows exactly 16/);
  });
  it('weights that were already zero may be pruned on top (re-pruning a sparse model)', () => {
    checkReachedSparsity(maskWith(29), rule, 12, 'o');
    refused(() => checkReachedSparsity(maskWith(29), rule, 10, 'o'), /plus 10 weights already zero/);
  });
  it('countZeros and checkUpdatedWeights', () => {
    assert.equal(countZeros(Float32Array.from([0, 1, -0, 2])), 2);
    checkUpdatedWeights(Float32Array.from([0, 1]), 2, 'x');
    refused(() => checkUpdatedWeights(Float32Array.from([0, 1, NaN, 2]), 2, 'mlp.up_proj', 4), /^layer 4 mlp\.up_proj: the weight update produced NaN at row 1, column 0/);
  });
});

describe('pruneLinear refuses degenerate scores', () => {
  // 4 × 8 weights with distinct magnitudes.
  const dOut = 4;
  const dIn = 8;
  const weight = () => Float32Array.from({ length: dOut * dIn }, (_, i) => ((i % 2 ? -1 : 1) * (1 + i)) / 7);
  const statsWith = (sqNorm: number[]) => ({
    width: dIn, nsamples: 1, tokensPerSample: 1, sqNorm: Float64Array.from(sqNorm), mean: new Float64Array(dIn), variance: new Float64Array(dIn), gram: null,
  });
  const calibration = { file: 'x', sha256: '', nsamples: 1, seqlen: 1, seed: 0 };
  const ria = (riaA: number) => pruneSettings({ method: 'ria', target: UNSTRUCTURED_HALF, selection: 'per-matrix', riaA, calibration });
  const ordinary = statsWith([1, 2, 3, 4, 5, 6, 7, 8]);

  it('RIA with ordinary activations prunes the rule\'s count', async () => {
    const result = await pruneLinear({ name: 'mlp.up_proj', weight: weight(), dOut, dIn, stats: ordinary, settings: ria(0.5), target: UNSTRUCTURED_HALF, layer: 0 });
    assert.equal(result.report.pruned, 17);
  });
  // The exponent bound (a ≤ 4) keeps ordinary models finite; activations far outside it still
  // overflow (‖X_j‖⁴ > 3.4e38) or underflow to tied zeros.
  const cases: [string, number[], RegExp][] = [
    ['overflow to ∞', [1, 2, 3, 4, 5, 6, 7, 1e21], /^layer 3 mlp\.up_proj: score Infinity at row 0, column 7/],
    ['underflow to tied zeros', [1e-30, 1e-30, 1e-30, 1e-30, 1e-30, 1e-30, 1e-30, 1], /^layer 3 mlp\.up_proj: pruning reached 87\.50 % \(28 of 32 weights\) for a 50\.00 % target/],
    ['every score underflows', new Array(8).fill(1e-30), /^layer 3 mlp\.up_proj: all 32 scores equal 0/],
  ];
  for (const [name, sqNorm, expected] of cases) {
    it(`RIA a = 4, activations that ${name}: a UserError naming the layer and linear`, async () => {
      await assert.rejects(
        pruneLinear({ name: 'mlp.up_proj', weight: weight(), dOut, dIn, stats: statsWith(sqNorm), settings: ria(4), target: UNSTRUCTURED_HALF, layer: 3 }),
        (error: unknown) => error instanceof UserError && expected.test(error.message),
      );
    });
  }
});

describe('a real run whose scores overflow fails loudly and keeps nothing', () => {
  it('stories260K with layer 0\'s input norm scaled by 1e12, RIA a = 4: refused at layer 0 self_attn.q_proj', async () => {
    const base = await storiesModelDir();
    const model = scratchDir('huge-activations');
    for (const file of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) copyFileSync(path.join(base, file), path.join(model, file));
    const source = SafetensorsFile.open(path.join(base, 'model.safetensors'));
    const tensors = [...source.tensors.values()].map((info) => {
      const data = source.readF32(info.name);
      if (info.name === 'model.layers.0.input_layernorm.weight') for (let i = 0; i < data.length; i++) data[i] *= 1e12;
      return { name: info.name, dtype: info.dtype, shape: info.shape, data };
    });
    source.close();
    await writeSafetensors(path.join(model, 'model.safetensors'), tensors);

    const tokenizer = TextTokenizer.load(model);
    const windows = sampleCalibrationFile(C4_SAMPLE, (text) => tokenizer.encode(text, { bos: true }), { nsamples: 4, seqlen: 64, seed: 0 }).windows;
    const settings = pruneSettings({ method: 'ria', target: UNSTRUCTURED_HALF, riaA: 4, calibration: { file: C4_SAMPLE, sha256: '', nsamples: 4, seqlen: 64, seed: 0 } });
    const out = path.join(scratchDir('overflow'), 'out');
    await assert.rejects(
      runPrunePipeline({ modelDir: model, outDir: out, settings, windows, engine: { device: 'cpu' }, resume: false, overwrite: false }),
      (error: unknown) => error instanceof UserError && /^layer 0 self_attn\.q_proj: score Infinity at row \d+, column \d+; the scores overflowed/.test(error.message),
    );
    assert.ok(!existsSync(`${out}.crepe-partial`), 'the fresh work directory is removed');
    assert.ok(!existsSync(out));
  });
});
