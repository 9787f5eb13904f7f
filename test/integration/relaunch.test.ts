// The `crepe` command where transparent huge pages are in 'madvise' mode and glibc ≥ 2.35: it
// starts itself again with GLIBC_TUNABLES=…glibc.malloc.hugetlb=1 (cli/relaunch.ts) and only waits
// for that child. Signals to the crepe a user started still behave as for one process: SIGTERM →
// the child's one line, exit 143, lock released; Ctrl-C (reaching both processes) → one line, exit
// 130; kill -9 → the child stops too; the child killed by
// a signal → crepe ends with that signal. CREPE_HUGE_PAGES=0 runs in one process. Elsewhere
// (THP 'always' or 'never', another system, an older glibc) these tests skip, saying why.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { anonHugePagesKiB, childrenOf, environText, noRelaunchReason, processGone, relaunchedChild, waitUntilGone } from '../helpers/processes.ts';
import { REPO_ROOT } from '../helpers/shared.ts';
import { layersDone, slowPruneArgs } from '../helpers/slow-prune.ts';
import { builtCrepeBin, scratchDir, storiesModelDir } from '../helpers/stories.ts';

interface Ended {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/**
 * The slow prune into a fresh `out`, with `env` added to this process's environment; `detached`:
 * in a process group of its own, as a terminal's foreground job.
 */
function startPrune(model: string, env: NodeJS.ProcessEnv = {}, detached = false): { crepe: ChildProcess; out: string; ended: Promise<Ended> } {
  const out = path.join(scratchDir('relaunch'), 'pruned');
  const crepe = spawn(process.execPath, slowPruneArgs(model, out), { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env }, detached });
  let stderr = '';
  crepe.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  // 'close': stderr read to its end, from every process that held it.
  const ended = new Promise<Ended>((resolve, reject) => {
    crepe.on('error', reject);
    crepe.on('close', (code, signal) => resolve({ code, signal, stderr }));
  });
  return { crepe, out, ended };
}

/** Resolves once the prune into `out` has committed a layer; rejects if crepe ends first. */
async function firstLayerCommitted(crepe: ChildProcess, out: string): Promise<void> {
  while (layersDone(out) < 1) {
    if (crepe.exitCode !== null || crepe.signalCode !== null) throw new Error(`crepe ended (${crepe.exitCode ?? crepe.signalCode}) before a layer was committed`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('crepe relaunched with glibc.malloc.hugetlb=1', { skip: noRelaunchReason() ?? false }, () => {
  let model = '';
  before(async () => {
    model = await storiesModelDir();
  });

  it('the child has the tunable after the user\'s own, and huge pages; SIGTERM to crepe: the child\'s one line, exit 143, lock released, child gone', async () => {
    const { crepe, out, ended } = startPrune(model, { GLIBC_TUNABLES: 'glibc.malloc.arena_max=4' });
    const child = await relaunchedChild(crepe.pid!);
    assert.match(environText(child), /(^|\0)GLIBC_TUNABLES=glibc\.malloc\.arena_max=4[:\0]glibc\.malloc\.hugetlb=1\0/);
    await firstLayerCommitted(crepe, out);
    assert.ok(anonHugePagesKiB(child) > 0, 'the child\'s memory has huge pages');
    assert.ok(existsSync(`${out}.crepe-lock`), 'the run holds its lock');
    crepe.kill('SIGTERM');
    const { code, signal, stderr } = await ended;
    assert.deepEqual({ code, signal }, { code: 143, signal: null }, stderr);
    const lines = stderr.split('\n').filter((line) => line.startsWith('crepe: '));
    assert.deepEqual(lines, [
      `crepe: terminated (SIGTERM); the finished layers stay in ${out}.crepe-partial: the same command with --resume continues it, --overwrite starts again`,
    ]);
    assert.ok(!existsSync(`${out}.crepe-lock`), 'the lock is released');
    assert.ok(processGone(child), 'the child has gone');
  });

  it('Ctrl-C in a terminal (SIGINT to the process group: the child gets it twice): one line, exit 130, lock released', async () => {
    const { crepe, out, ended } = startPrune(model, {}, true);
    const child = await relaunchedChild(crepe.pid!);
    await firstLayerCommitted(crepe, out);
    process.kill(-crepe.pid!, 'SIGINT');
    const { code, signal, stderr } = await ended;
    assert.deepEqual({ code, signal }, { code: 130, signal: null }, stderr);
    assert.deepEqual(stderr.split('\n').filter((line) => line.startsWith('crepe: ')), [
      `crepe: interrupted (SIGINT); the finished layers stay in ${out}.crepe-partial: the same command with --resume continues it, --overwrite starts again`,
    ]);
    assert.ok(!existsSync(`${out}.crepe-lock`), 'the lock is released');
    assert.ok(processGone(child), 'the child has gone');
  });

  it('SIGKILL to crepe: its child stops within a few seconds', async () => {
    const { crepe, out, ended } = startPrune(model);
    const child = await relaunchedChild(crepe.pid!);
    await firstLayerCommitted(crepe, out);
    crepe.kill('SIGKILL');
    await waitUntilGone([child], 5_000);
    const { signal } = await ended;
    assert.equal(signal, 'SIGKILL');
    assert.ok(!existsSync(out), 'no output directory');
  });

  it('the child killed by a signal: crepe ends with the same signal', async () => {
    const { crepe, out, ended } = startPrune(model);
    const child = await relaunchedChild(crepe.pid!);
    await firstLayerCommitted(crepe, out);
    process.kill(child, 'SIGKILL');
    const { code, signal } = await ended;
    assert.deepEqual({ code, signal }, { code: null, signal: 'SIGKILL' });
  });

  it('exit codes pass through: a missing option is one line and exit 2', () => {
    const result = spawnSync(process.execPath, [builtCrepeBin(), 'prune', model, '--method', 'ria', '--out', path.join(scratchDir('bad'), 'o')], { cwd: REPO_ROOT, encoding: 'utf8' });
    assert.equal(result.status, 2, result.stderr);
    assert.equal(result.stderr, 'crepe: required option \'--calib <file>\' not specified (see --help)\n');
  });

  it('CREPE_HUGE_PAGES=0: one process, no child', async () => {
    const { crepe, out, ended } = startPrune(model, { CREPE_HUGE_PAGES: '0' });
    await firstLayerCommitted(crepe, out);
    const children = childrenOf(crepe.pid!);
    crepe.kill('SIGTERM');
    assert.deepEqual(children, []);
    assert.equal((await ended).code, 143);
  });
});
