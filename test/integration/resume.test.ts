// A `crepe prune` killed mid-run by a real signal (SIGKILL: no chance to clean
// up; SIGINT: Ctrl-C) and continued with --resume ends with a model.safetensors byte-identical to an
// uninterrupted run's, and the same per-linear pruned counts in crepe-report.json. SparseGPT makes a
// real statistics pass (X·Xᵀ) per layer; 64 windows of 512 tokens make each of the 5 layers take long
// enough to stop the process after layer 2 is committed and before the last one is.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { C4_SAMPLE, REPO_ROOT } from '../helpers/shared.ts';
import { builtCrepeBin, scratchDir, storiesModelDir } from '../helpers/stories.ts';

const NUM_LAYERS = 5;
const STOP_AFTER_LAYERS = 2;

interface Report {
  layers: { layer: number; linears: { name: string; pruned: number }[] }[];
  totals: { prunedWeights: number };
}

const sha256 = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');
const prunedCounts = (report: Report) => report.layers.map((l) => ({ layer: l.layer, linears: l.linears.map(({ name, pruned }) => ({ name, pruned })) }));
const readReport = (dir: string): Report => JSON.parse(readFileSync(path.join(dir, 'crepe-report.json'), 'utf8')) as Report;

function pruneArgs(model: string, out: string): string[] {
  return [
    builtCrepeBin(), 'prune', model, '--method', 'sparsegpt', '--sparsity', '0.5',
    '--calib', C4_SAMPLE, '--nsamples', '64', '--seqlen', '512', '--seed', '0', '--out', out,
  ];
}

/** layersDone of the work directory's committed state, or -1 while there is none. */
function layersDone(out: string): number {
  try {
    return (JSON.parse(readFileSync(path.join(`${out}.crepe-partial`, 'state.json'), 'utf8')) as { layersDone: number }).layersDone;
  } catch {
    return -1;
  }
}

/** Starts a prune, sends `signal` once STOP_AFTER_LAYERS layers are committed, and resolves when the process has ended. */
function pruneAndInterrupt(model: string, out: string, signal: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null; stoppedAt: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, pruneArgs(model, out), { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    let stoppedAt = -1;
    const poll = setInterval(() => {
      const done = layersDone(out);
      if (stoppedAt < 0 && done >= STOP_AFTER_LAYERS) {
        stoppedAt = done;
        child.kill(signal);
      }
    }, 5);
    child.on('error', reject);
    child.on('exit', (code, exitSignal) => {
      clearInterval(poll);
      if (stoppedAt < 0) reject(new Error(`the prune ended (exit ${code}) before ${STOP_AFTER_LAYERS} layers were committed:\n${stderr}`));
      else resolve({ code, signal: exitSignal, stoppedAt, stderr });
    });
  });
}

describe('crepe prune --resume after a real signal', () => {
  let model = '';
  let clean = '';
  let cleanSha = '';
  let cleanReport: Report;

  before(async () => {
    model = await storiesModelDir();
    clean = path.join(scratchDir('clean'), 'pruned');
    const result = spawnSync(process.execPath, pruneArgs(model, clean), { cwd: REPO_ROOT, encoding: 'utf8' });
    assert.equal(result.status, 0, result.stderr);
    cleanSha = sha256(path.join(clean, 'model.safetensors'));
    cleanReport = readReport(clean);
    assert.equal(cleanReport.layers.length, NUM_LAYERS);
  });

  for (const signal of ['SIGKILL', 'SIGINT'] as const) {
    it(`${signal} after layer ${STOP_AFTER_LAYERS}, then --resume: byte-identical model.safetensors and pruned counts`, async () => {
      const out = path.join(scratchDir(signal), 'pruned');
      const stopped = await pruneAndInterrupt(model, out, signal);
      assert.ok(!existsSync(out), 'no output directory after an interrupted run');
      if (signal === 'SIGKILL') assert.equal(stopped.signal, 'SIGKILL');
      else {
        // Ctrl-C: one line saying how to continue, the lock released, exit 128 + 2.
        assert.equal(stopped.code, 130, stopped.stderr);
        assert.equal(stopped.stderr.trimEnd().split('\n').at(-1),
          `crepe: interrupted (SIGINT); the finished layers stay in ${out}.crepe-partial: the same command with --resume continues it, --overwrite starts again`);
        assert.ok(!existsSync(`${out}.crepe-lock`), 'the lock is released');
      }
      const committed = layersDone(out);
      assert.ok(committed >= STOP_AFTER_LAYERS && committed < NUM_LAYERS, `stopped mid-run: ${committed} layers committed`);

      const resumed = spawnSync(process.execPath, [...pruneArgs(model, out), '--resume'], { cwd: REPO_ROOT, encoding: 'utf8' });
      assert.equal(resumed.status, 0, resumed.stderr);
      assert.match(resumed.stderr, new RegExp(`resuming at layer ${committed} of ${NUM_LAYERS}`));
      assert.ok(!existsSync(`${out}.crepe-partial`), 'the work directory is gone');
      assert.deepEqual(readdirSync(out).sort(), readdirSync(clean).sort(), 'the same files as a clean run (no leftovers)');

      assert.equal(sha256(path.join(out, 'model.safetensors')), cleanSha);
      const report = readReport(out);
      assert.deepEqual(prunedCounts(report), prunedCounts(cleanReport));
      assert.equal(report.totals.prunedWeights, cleanReport.totals.prunedWeights);
    });
  }
});
