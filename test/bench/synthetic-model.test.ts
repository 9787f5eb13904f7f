// The benchmarks' shared synthetic models: written once under a name made of their options, always
// complete under that name, and removed by a run only when that run wrote them.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  ensureSyntheticModel, removeWrittenSyntheticModels, syntheticModelDir, writeSyntheticModel, writtenSyntheticModels, type SyntheticModelOptions,
} from '../../bench/synthetic-model.ts';
import { REPO_ROOT } from '../helpers/shared.ts';
import { scratchDir } from '../helpers/stories.ts';

const TINY: SyntheticModelOptions = { layers: 1, hidden: 16, intermediate: 32, heads: 2, kvHeads: 1, vocab: 64, dtype: 'F32', seed: 0 };

describe('synthetic models shared between benchmark runs', () => {
  // The models live in os.tmpdir(): a scratch directory stands in for it here.
  let root = '';
  const savedTmp = process.env.TMPDIR;
  before(() => {
    root = scratchDir('synthetic-models');
    process.env.TMPDIR = root;
    assert.equal(os.tmpdir(), root);
  });
  after(() => {
    if (savedTmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = savedTmp;
  });

  test('a model found is used and never removed; one written is listed and removed; concurrent writers leave one complete model', async () => {
    // Another run's model, already there.
    const found = { ...TINY, seed: 1 };
    const foundDir = syntheticModelDir(found);
    await writeSyntheticModel(foundDir, found);
    const foundConfig = readFileSync(path.join(foundDir, 'config.json'), 'utf8');
    assert.equal(await ensureSyntheticModel(found), foundDir);

    // This run's: two writers at once (as two runs starting together), one directory in the end.
    const own = { ...TINY, seed: 2 };
    const lines: string[] = [];
    const dirs = await Promise.all([ensureSyntheticModel(own, (l) => lines.push(l)), ensureSyntheticModel(own, (l) => lines.push(l))]);
    const ownDir = syntheticModelDir(own);
    assert.deepEqual(dirs, [ownDir, ownDir]);
    assert.deepEqual(readdirSync(ownDir).sort(), ['config.json', 'model.safetensors']);
    assert.ok(lines.some((l) => /another run wrote it first/.test(l)), lines.join('\n'));
    assert.deepEqual(writtenSyntheticModels(), [ownDir]);
    // Its weights are those of a direct write.
    const reference = path.join(root, 'reference');
    await writeSyntheticModel(reference, own);
    assert.ok(readFileSync(path.join(ownDir, 'model.safetensors')).equals(readFileSync(path.join(reference, 'model.safetensors'))));
    // Nothing else left behind (no private copies).
    assert.deepEqual(readdirSync(root).sort(), [path.basename(foundDir), path.basename(ownDir), 'reference'].sort());

    assert.deepEqual(removeWrittenSyntheticModels(), [ownDir]);
    assert.deepEqual(readdirSync(root).sort(), [path.basename(foundDir), 'reference'].sort());
    assert.equal(readFileSync(path.join(foundDir, 'config.json'), 'utf8'), foundConfig);
    assert.deepEqual(removeWrittenSyntheticModels(), []);
  });
});

describe('npm run bench: usage', () => {
  const bench = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'bench/run.ts'), ...args], { cwd: REPO_ROOT, encoding: 'utf8' });

  test('--help documents the shared models and --remove-models, exit 0', () => {
    const result = bench('--help');
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /--remove-models\s+after the run, remove the synthetic models this run wrote/);
    assert.match(result.stdout, /no run removes a model it did not\s+write/);
  });

  test('an unknown option or section is refused with the usage, exit 2, before any work', () => {
    for (const [args, message] of [[['--keep-models'], /^bench: unknown option --keep-models$/m], [['nosuch'], /^bench: unknown section\(s\) nosuch;/m], [['--out'], /^bench: --out needs a value$/m]] as const) {
      const result = bench(...args);
      assert.equal(result.status, 2, result.stderr);
      assert.match(result.stderr, message);
      assert.match(result.stderr, /^usage: npm run bench/m);
      assert.equal(result.stdout, '');
    }
  });
});
