// What `crepe search` prints besides "wrote …": the correlations of a --validate run (one line per
// proxy, strongest first, with intervals) and, after a search, the prune command that applies it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyHint, correlationLines } from '../../src/cli/search.ts';
import type { ProxyCorrelation } from '../../src/search/validate.ts';

const ci = (estimate: number, lower: number, upper: number) => ({ estimate, lower, upper, level: 0.95, resamples: 1000, validResamples: 1000 });

describe('crepe search output', () => {
  it('prints one line per proxy, strongest |ρ| first, with 95% intervals and the direction', () => {
    const correlations: ProxyCorrelation[] = [
      { proxy: 'gini-ref', spearman: ci(0.5, -0.2, 0.9), pearson: ci(0.41, 0.1, 0.8), sign: 1 },
      { proxy: 'output-error', spearman: ci(-0.9, -1, -0.7), pearson: ci(-0.85, -0.95, -0.6), sign: -1 },
    ];
    assert.equal(
      correlationLines(correlations),
      'proxy vs real PPL (95% bootstrap intervals):\n' +
        '  output-error  Spearman ρ −0.900 [−1.000, −0.700]  Pearson r −0.850 [−0.950, −0.600]  maximise  ← strongest (--proxy-from uses it)\n' +
        '  gini-ref      Spearman ρ +0.500 [−0.200, +0.900]  Pearson r +0.410 [+0.100, +0.800]  minimise\n',
    );
  });

  it('prints the prune command that applies a search result, with its calibration options, quoting paths that need it', () => {
    assert.equal(
      applyHint('models/tiny', '/tmp/search out', { pattern: '2:4', calib: 'c4.jsonl' }),
      "apply it: crepe prune models/tiny --method crepe --config '/tmp/search out/crepe-config.json' --pattern 2:4 --calib c4.jsonl --out <pruned-dir>\n",
    );
    assert.equal(
      applyHint('m', 'o', { sparsity: 0.6, perRow: true, calib: "it's.txt" }),
      "apply it: crepe prune m --method crepe --config o/crepe-config.json --sparsity 0.6 --per-row --calib 'it'\\''s.txt' --out <pruned-dir>\n",
    );
    // The calibration windows the configuration was searched with (a default stays a default).
    assert.equal(
      applyHint('org/name', 'o', { revision: 'v1', sparsity: 0.5, calib: 'c4.jsonl', nsamples: 32, seqlen: 256, seed: 3 }),
      'apply it: crepe prune org/name --method crepe --config o/crepe-config.json --sparsity 0.5 --calib c4.jsonl --revision v1 --nsamples 32 --seqlen 256 --seed 3 --out <pruned-dir>\n',
    );
  });
});
