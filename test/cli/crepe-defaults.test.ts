// `crepe prune --method crepe` without --config: the command line names the shipped default it took
// (nearest sparsity; an N:M pattern's own) and the pruned model's report holds that file's coefficients.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { loadCrepeConfig } from '../../src/search/crepe-config.ts';
import { runCli } from '../helpers/cli.ts';
import { C4_SAMPLE, REPO_ROOT } from '../helpers/shared.ts';
import { scratchDir, storiesModelDir } from '../helpers/stories.ts';

describe('prune --method crepe picks and names the shipped default', () => {
  let model: string;
  before(async () => {
    model = await storiesModelDir();
  });

  const cases: Array<[string[], string, string]> = [
    [['--sparsity', '0.55'], 'crepe-50.json', 'the default of the nearest sparsity (0.5)'],
    [['--sparsity', '0.6'], 'crepe-60.json', 'the 0.6 default'],
    [['--sparsity', '0.68'], 'crepe-70.json', 'the default of the nearest sparsity (0.7)'],
    [['--pattern', '2:4'], 'crepe-2of4.json', 'the 2:4 default'],
  ];
  for (const [target, file, reason] of cases) {
    test(`${target.join(' ')} → configs/${file}`, async () => {
      const out = path.join(scratchDir(`default-${file}`), 'pruned');
      const run = await runCli(['prune', model, '--method', 'crepe', ...target, '--calib', C4_SAMPLE, '--nsamples', '2', '--seqlen', '32', '--out', out]);
      assert.equal(run.status, 0, run.stderr);
      assert.ok(run.stdout.split('\n').includes(`CRePE configuration: configs/${file}, ${reason}`), run.stdout);
      const shipped = loadCrepeConfig(path.join(REPO_ROOT, 'configs', file));
      const report = JSON.parse(readFileSync(path.join(out, 'crepe-report.json'), 'utf8')) as { settings: { crepe: Record<string, unknown> } };
      for (const key of ['k', 'alpha', 'beta', 'gamma', 'a', 'variant'] as const) assert.equal(report.settings.crepe[key], shipped[key], `${file}: ${key}`);
    });
  }
});
