// On the real model: every entry of the golden `pruning.results`
// (../shared/golden/stories260K.json) is pruned through `crepe prune` with the golden calibration
// (C4 sample, 32 windows of 256 tokens, seed 0) and the entry's selection, then evaluated on the
// WikiText-2 test text at seqlen 256 (`--eval-ppl`): PPL within 0.5 % of the golden value and the
// linear sparsity exactly the golden one, both in the report and counted in the written weights.
// (The sampler's draws and windows are checked on their own in test/data/calibration-golden.test.ts;
// here the report must show that the prune used exactly those windows.)
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { inspectModel } from '../../src/index.ts';
import { DATA, GOLDEN, REPO_ROOT, WIKITEXT_TEST } from '../helpers/shared.ts';
import { builtCrepeBin, scratchDir, storiesModelDir } from '../helpers/stories.ts';

interface GoldenResult {
  method: string;
  sparsity?: number;
  pattern?: string;
  selection: 'per-row' | 'per-matrix' | 'per-block';
  linear_sparsity: number;
  ppl: number;
}
interface PruningGolden {
  calibration: { file: string; nsamples: number; seqlen: number; seed: number; draws_first8_doc_start: [number, number][]; windows_sha256_int32: string };
  eval: { file: string; seqlen: number };
  results: Record<string, GoldenResult>;
}
const golden = (JSON.parse(readFileSync(path.join(GOLDEN, 'stories260K.json'), 'utf8')) as { pruning: PruningGolden }).pruning;

interface PruneReport {
  model: { spec: { numLayers: number } };
  settings: { method: string; selection: string; target: { kind: string; sparsity?: number; n?: number; m?: number } };
  calibration: { windows: number; windowsSha256: string; draws: [number, number][] };
  totals: { linearSparsity: number };
  evaluation: { seqlen: number; windows: number; ppl: number };
}

describe('stories260K pruning (golden)', () => {
  let model = '';
  before(async () => {
    model = await storiesModelDir();
  });

  for (const [name, entry] of Object.entries(golden.results)) {
    it(`${name}: PPL within 0.5 % of ${entry.ppl.toFixed(3)}, linear sparsity ${entry.linear_sparsity}`, async (t) => {
      const out = path.join(scratchDir(name), 'pruned');
      const target = entry.pattern !== undefined ? ['--pattern', entry.pattern] : ['--sparsity', String(entry.sparsity)];
      // SparseGPT chooses its mask per 128-column block; it takes no selection option.
      const selection = entry.selection === 'per-block' ? [] : [`--${entry.selection}`];
      const { calibration } = golden;
      const args = [
        builtCrepeBin(), 'prune', model, '--method', entry.method, ...target, ...selection,
        '--calib', path.join(DATA, calibration.file), '--nsamples', String(calibration.nsamples),
        '--seqlen', String(calibration.seqlen), '--seed', String(calibration.seed),
        '--eval-ppl', WIKITEXT_TEST, '--eval-seqlen', String(golden.eval.seqlen), '--out', out, '--json',
      ];
      const result = spawnSync(process.execPath, args, { cwd: REPO_ROOT, encoding: 'utf8', env: { ...process.env, CREPE_QUIET: '1' } });
      assert.equal(result.status, 0, result.stderr);
      const report = JSON.parse(result.stdout) as PruneReport;

      assert.equal(report.settings.method, entry.method);
      if (entry.selection !== 'per-block' && entry.pattern === undefined) assert.equal(report.settings.selection, entry.selection);
      assert.equal(report.calibration.windows, calibration.nsamples);
      assert.deepEqual(report.calibration.draws.slice(0, 8), calibration.draws_first8_doc_start);
      assert.equal(report.calibration.windowsSha256, calibration.windows_sha256_int32);

      assert.ok(Math.abs(report.totals.linearSparsity - entry.linear_sparsity) <= 1e-9, `report: ${report.totals.linearSparsity}`);
      const written = await inspectModel({ model: out, pattern: entry.pattern });
      assert.ok(Math.abs(written.linear.sparsity - entry.linear_sparsity) <= 1e-9, `zeros in model.safetensors: ${written.linear.sparsity}`);
      if (entry.pattern !== undefined) {
        const checked = written.tensors.filter((tensor) => tensor.satisfiesPattern !== undefined);
        // Every block linear (7 per layer) has a width the pattern's m divides, so each is checked.
        assert.equal(checked.length, 7 * report.model.spec.numLayers, 'every block linear checked against the pattern');
        for (const tensor of checked) assert.ok(tensor.satisfiesPattern, tensor.name);
      }

      assert.equal(report.evaluation.seqlen, golden.eval.seqlen);
      assert.equal(report.evaluation.windows, 3183);
      const relative = Math.abs(report.evaluation.ppl - entry.ppl) / entry.ppl;
      t.diagnostic(`PPL ${report.evaluation.ppl} (golden ${entry.ppl}, relative error ${relative.toExponential(2)})`);
      assert.ok(relative <= 0.005, `PPL ${report.evaluation.ppl} vs golden ${entry.ppl}: relative error ${relative}`);
    });
  }
});
