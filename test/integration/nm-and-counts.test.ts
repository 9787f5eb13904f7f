// Counts are exact, on the real model through the command line: after
// `crepe prune --method wanda --pattern 2:4`, `crepe inspect --json --pattern 2:4` reports every block
// linear as 2:4 and every group of 4 inputs holds exactly 2 zeros; after `--sparsity 0.6 --per-row`,
// every row of every block linear holds exactly floor(d_in · 0.6) zeros. Everything that is not a
// block linear (embedding, norms) and the tokenizer files are byte-identical to the input's; config.json
// differs only by compressed-tensors' sparsity_config, whose numbers are counted by hand here.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { SafetensorsWeights } from '../../src/io/safetensors.ts';
import type { InspectResult } from '../../src/index.ts';
import { C4_SAMPLE, REPO_ROOT } from '../helpers/shared.ts';
import { builtCrepeBin, crepe, scratchDir, storiesModelDir } from '../helpers/stories.ts';

const BLOCK_LINEAR = /^model\.layers\.\d+\..*_proj\.weight$/;
// stories260K: 5 layers × 7 linears.
const BLOCK_LINEARS = 35;

function prune(model: string, name: string, ...target: string[]): string {
  const out = path.join(scratchDir(name), 'pruned');
  const args = [builtCrepeBin(), 'prune', model, '--method', 'wanda', ...target, '--calib', C4_SAMPLE, '--nsamples', '8', '--seqlen', '128', '--out', out];
  const result = spawnSync(process.execPath, args, { cwd: REPO_ROOT, encoding: 'utf8', env: { ...process.env, CREPE_QUIET: '1' } });
  assert.equal(result.status, 0, result.stderr);
  return out;
}

/** Calls `visit(name, weights, dOut, dIn)` for every block linear of `dir`; returns how many it visited. */
function forEachBlockLinear(dir: string, visit: (name: string, weights: Float32Array, dOut: number, dIn: number) => void): number {
  const checkpoint = SafetensorsWeights.open(dir);
  try {
    let count = 0;
    for (const name of checkpoint.names()) {
      if (!BLOCK_LINEAR.test(name)) continue;
      const [dOut, dIn] = checkpoint.info(name).shape;
      visit(name, checkpoint.readF32(name), dOut, dIn);
      count++;
    }
    return count;
  } finally {
    checkpoint.close();
  }
}

/**
 * Every tensor but the block linears, and the tokenizer files, are byte-identical to the input's;
 * config.json is the input's plus quantization_config, whose sparsity_config is returned.
 */
function assertUntouched(input: string, output: string): Record<string, unknown> {
  const before = SafetensorsWeights.open(input);
  const after = SafetensorsWeights.open(output);
  try {
    assert.deepEqual(after.names().sort(), before.names().sort());
    const untouched = before.names().filter((name) => !BLOCK_LINEAR.test(name));
    assert.ok(untouched.includes('model.embed_tokens.weight') && untouched.includes('model.norm.weight'));
    assert.equal(untouched.length, 1 + 1 + 5 * 2, 'embedding, final norm, two norms per layer');
    for (const name of untouched) {
      assert.deepEqual(after.info(name).dtype, before.info(name).dtype, name);
      assert.deepEqual(after.info(name).shape, before.info(name).shape, name);
      assert.ok(Buffer.from(after.readRaw(name)).equals(Buffer.from(before.readRaw(name))), `${name} changed`);
    }
  } finally {
    before.close();
    after.close();
  }
  for (const file of ['tokenizer.json', 'tokenizer_config.json']) {
    assert.ok(readFileSync(path.join(output, file)).equals(readFileSync(path.join(input, file))), `${file} changed`);
  }
  const { quantization_config: quantization, ...config } = JSON.parse(readFileSync(path.join(output, 'config.json'), 'utf8'));
  assert.deepEqual(config, JSON.parse(readFileSync(path.join(input, 'config.json'), 'utf8')));
  assert.equal(quantization.quant_method, 'compressed-tensors');
  assert.deepEqual(quantization.config_groups, {});
  return quantization.sparsity_config;
}

// stories260K's 260,032 parameters (tied embedding 512×64, 11 norms of 64, 5 × 45,312 in the linears).
const PARAMETERS = 512 * 64 + 11 * 64 + 5 * (64 * 64 + 32 * 64 + 32 * 64 + 64 * 64 + 3 * 172 * 64);

describe('exact counts on stories260K (wanda)', () => {
  let model = '';
  before(async () => {
    model = await storiesModelDir();
    // The dense weights hold no exact zero, so every zero after pruning is a pruned weight.
    forEachBlockLinear(model, (name, weights) => assert.equal(weights.indexOf(0), -1, name));
  });

  it('--pattern 2:4: inspect reports every block linear as 2:4; each group of 4 holds exactly 2 zeros', () => {
    const out = prune(model, 'nm', '--pattern', '2:4');
    const result = crepe('inspect', out, '--pattern', '2:4', '--json');
    assert.equal(result.status, 0, result.stderr);
    const report = JSON.parse(result.stdout) as InspectResult;
    const linears = report.tensors.filter((t) => BLOCK_LINEAR.test(t.name));
    assert.equal(linears.length, BLOCK_LINEARS);
    for (const tensor of linears) {
      assert.equal(tensor.satisfiesPattern, true, tensor.name);
      assert.equal(tensor.sparsity, 0.5, tensor.name);
    }
    assert.equal(report.linear.sparsity, 0.5);
    for (const tensor of report.tensors.filter((t) => !BLOCK_LINEAR.test(t.name))) {
      assert.equal(tensor.satisfiesPattern, undefined, tensor.name);
      assert.equal(tensor.zeros, 0, tensor.name);
    }

    const visited = forEachBlockLinear(out, (name, weights, dOut, dIn) => {
      assert.equal(weights.length, dOut * dIn);
      for (let group = 0; group < weights.length; group += 4) {
        let zeros = 0;
        for (let i = group; i < group + 4; i++) if (weights[i] === 0) zeros++;
        if (zeros !== 2) assert.fail(`${name}: row ${Math.floor(group / dIn)}, inputs ${group % dIn}..${(group % dIn) + 3} hold ${zeros} zeros`);
      }
    });
    assert.equal(visited, BLOCK_LINEARS);
    assert.equal(PARAMETERS, 260_032);
    assert.deepEqual(assertUntouched(model, out), {
      format: 'dense',
      global_sparsity: (5 * 45_312) / 2 / PARAMETERS,
      ignore: ['lm_head'],
      registry_requires_subclass: false,
      sparsity_structure: '2:4',
      targets: ['Linear'],
    });

    // 4:8 on the same model: widths 64 hold it (two 2:4 groups per 8), down_proj's 172 is not a
    // multiple of 8, so it gets no verdict (null; "n/a" in the table), never a NO.
    const wider = crepe('inspect', out, '--pattern', '4:8', '--json');
    assert.equal(wider.status, 0, wider.stderr);
    for (const tensor of (JSON.parse(wider.stdout) as InspectResult).tensors.filter((t) => BLOCK_LINEAR.test(t.name))) {
      assert.equal(tensor.satisfiesPattern, tensor.name.endsWith('down_proj.weight') ? null : true, tensor.name);
    }
    const table = crepe('inspect', out, '--pattern', '4:8');
    assert.match(table.stdout, /model\.layers\.0\.mlp\.down_proj\.weight +F32 +\[64,172\] +50\.00% {2}4:8 n\/a \(width 172\)\n/);
    assert.match(table.stdout, /model\.layers\.0\.mlp\.up_proj\.weight +F32 +\[172,64\] +50\.00% {2}4:8 ok\n/);
  });

  it('--sparsity 0.6 --per-row: every row holds exactly floor(d_in · 0.6) zeros (38 of 64, 103 of 172)', () => {
    const out = prune(model, 'per-row', '--sparsity', '0.6', '--per-row');
    const widths = new Set<number>();
    const visited = forEachBlockLinear(out, (name, weights, dOut, dIn) => {
      const expected = Math.floor(dIn * 0.6);
      widths.add(dIn);
      for (let row = 0; row < dOut; row++) {
        let zeros = 0;
        for (let i = row * dIn; i < (row + 1) * dIn; i++) if (weights[i] === 0) zeros++;
        if (zeros !== expected) assert.fail(`${name}: row ${row} holds ${zeros} zeros, expected ${expected}`);
      }
    });
    assert.equal(visited, BLOCK_LINEARS);
    assert.deepEqual([...widths].sort((a, b) => a - b), [64, 172]);
    assert.equal(Math.floor(64 * 0.6), 38);
    assert.equal(Math.floor(172 * 0.6), 103);
    // Per layer: q, o 64 rows × 38; k, v 32 × 38; gate, up 172 × 38; down 64 × 103.
    const zeros = 5 * (2 * 64 * 38 + 2 * 32 * 38 + 2 * 172 * 38 + 64 * 103);
    assert.deepEqual(assertUntouched(model, out), {
      format: 'dense', global_sparsity: zeros / PARAMETERS, ignore: ['lm_head'], registry_requires_subclass: false, sparsity_structure: 'unstructured', targets: ['Linear'],
    });
  });
});
