// A `crepe prune` killed mid-run by a real signal (SIGKILL: no chance to clean
// up; SIGINT: Ctrl-C) and continued with --resume ends with a model.safetensors byte-identical to an
// uninterrupted run's, and the same per-linear pruned counts in crepe-report.json. The slow prune's
// layers take long enough to stop the process after layer 2 is committed and before the last one is.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { childrenOf, waitUntilGone } from '../helpers/processes.ts';
import { REPO_ROOT } from '../helpers/shared.ts';
import { SLOW_PRUNE_LAYERS, layersDone, slowPruneArgs } from '../helpers/slow-prune.ts';
import { scratchDir, storiesModelDir } from '../helpers/stories.ts';

const NUM_LAYERS = SLOW_PRUNE_LAYERS;
const STOP_AFTER_LAYERS = 2;

interface Report {
  layers: { layer: number; linears: { name: string; pruned: number }[] }[];
  totals: { prunedWeights: number };
}

const sha256 = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');
const prunedCounts = (report: Report) => report.layers.map((l) => ({ layer: l.layer, linears: l.linears.map(({ name, pruned }) => ({ name, pruned })) }));
const readReport = (dir: string): Report => JSON.parse(readFileSync(path.join(dir, 'crepe-report.json'), 'utf8')) as Report;

/**
 * Starts a prune, sends `signal` once STOP_AFTER_LAYERS layers are committed, and resolves when the
 * process has ended, with the processes it had started then (a relaunched crepe's child).
 */
function pruneAndInterrupt(model: string, out: string, signal: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null; stoppedAt: number; stderr: string; children: number[] }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, slowPruneArgs(model, out), { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    let stoppedAt = -1;
    let children: number[] = [];
    const poll = setInterval(() => {
      const done = layersDone(out);
      if (stoppedAt < 0 && done >= STOP_AFTER_LAYERS) {
        stoppedAt = done;
        children = childrenOf(child.pid!);
        child.kill(signal);
      }
    }, 5);
    child.on('error', reject);
    // 'close': once stderr has been read to its end, from every process that held it.
    child.on('close', (code, exitSignal) => {
      clearInterval(poll);
      if (stoppedAt < 0) reject(new Error(`the prune ended (exit ${code}) before ${STOP_AFTER_LAYERS} layers were committed:\n${stderr}`));
      else resolve({ code, signal: exitSignal, stoppedAt, stderr, children });
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
    const result = spawnSync(process.execPath, slowPruneArgs(model, clean), { cwd: REPO_ROOT, encoding: 'utf8' });
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
      if (signal === 'SIGKILL') {
        assert.equal(stopped.signal, 'SIGKILL');
        // A relaunched crepe's child stops a moment after its parent (as after a user's kill -9),
        // holding the lock until then.
        await waitUntilGone(stopped.children);
      } else {
        // Ctrl-C: one line saying how to continue, the lock released, exit 128 + 2.
        assert.equal(stopped.code, 130, stopped.stderr);
        assert.equal(stopped.stderr.trimEnd().split('\n').at(-1),
          `crepe: interrupted (SIGINT); the finished layers stay in ${out}.crepe-partial: the same command with --resume continues it, --overwrite starts again`);
        assert.ok(!existsSync(`${out}.crepe-lock`), 'the lock is released');
      }
      const committed = layersDone(out);
      assert.ok(committed >= STOP_AFTER_LAYERS && committed < NUM_LAYERS, `stopped mid-run: ${committed} layers committed`);

      const resumed = spawnSync(process.execPath, [...slowPruneArgs(model, out), '--resume'], { cwd: REPO_ROOT, encoding: 'utf8' });
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
