import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { cudaAvailable } from '../../src/engine/session.ts';
import { REPO_ROOT } from '../helpers/shared.ts';

const script = path.join(REPO_ROOT, 'scripts/gpu-check.ts');
const run = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', script, ...args], { cwd: REPO_ROOT, encoding: 'utf8' });

test('gpu-check refuses in one line, exit 2, when onnxruntime-node has no CUDA provider', { skip: cudaAvailable() && 'this install has the CUDA provider' }, () => {
  const result = run('--out', path.join(REPO_ROOT, 'gpu-check-out-test-never-written'));
  assert.equal(result.status, 2, result.stderr);
  const lines = result.stderr.trim().split('\n');
  assert.equal(lines.length, 1, result.stderr);
  assert.match(lines[0], /^gpu-check: .*no CUDA execution provider.*ONNXRUNTIME_NODE_INSTALL=cuda12/);
  assert.equal(result.stdout, '');
});

test('gpu-check refuses a malformed --devices in one line, exit 2', () => {
  const result = run('--devices', 'cuda');
  assert.equal(result.status, 2);
  assert.match(result.stderr.trim(), /^gpu-check: --devices expects two of cpu, cuda/);
});
