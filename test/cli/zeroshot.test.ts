// `crepe eval --tasks` and `crepe prune --eval-tasks` on stories260K (the command line run in
// process): the table and the JSON report (accuracies equal the harness's per-document values for
// the same documents), progress on stderr, and the refusals — unknown task, missing or malformed
// task file, no task directory, no evaluation asked for — each one "crepe:" line with exit code 2,
// prune writing nothing.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { C4_SAMPLE, DATA, GOLDEN, TASK_DIR } from '../helpers/shared.ts';
import { scratchDir, storiesModelDir } from '../helpers/stories.ts';
import { runCli, type CliRun } from '../helpers/cli.ts';

const golden = JSON.parse(readFileSync(path.join(GOLDEN, 'zeroshot-stories260K-first20.json'), 'utf8')) as {
  tasks: Record<string, { per_doc_first_20: { acc: number; acc_norm?: number }[] }>;
};
const goldenMean = (task: string, metric: 'acc' | 'acc_norm', n: number): number =>
  golden.tasks[task].per_doc_first_20.slice(0, n).reduce((a, d) => a + d[metric]!, 0) / n;

/** Runs crepe with CREPE_TASK_DIR set to `taskDir` (or unset). */
async function crepe(args: string[], opts: { taskDir?: string; progress?: boolean } = {}): Promise<CliRun> {
  const saved = process.env.CREPE_TASK_DIR;
  if (opts.taskDir === undefined) delete process.env.CREPE_TASK_DIR;
  else process.env.CREPE_TASK_DIR = opts.taskDir;
  try {
    return await runCli(args, { progress: opts.progress });
  } finally {
    if (saved === undefined) delete process.env.CREPE_TASK_DIR;
    else process.env.CREPE_TASK_DIR = saved;
  }
}

function expectRefusal(result: CliRun, problem: RegExp): void {
  const shown = `exit ${result.status}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`;
  assert.equal(result.status, 2, shown);
  assert.equal(result.stdout, '', shown);
  const lines = result.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, shown);
  assert.match(lines[0], /^crepe: /);
  assert.match(lines[0], problem);
}

describe('crepe eval --tasks', () => {
  let model = '';
  before(async () => {
    model = await storiesModelDir();
  });

  it('prints a table per task and metric, with progress per task on stderr', async () => {
    const result = await crepe(['eval', model, '--tasks', 'winogrande,piqa', '--limit', '6', '--task-dir', TASK_DIR], { progress: true });
    assert.equal(result.status, 0, result.stderr);
    const lines = result.stdout.trimEnd().split('\n');
    assert.match(lines[0], /^task\s+metric\s+value\s+± stderr\s+docs\s+skipped$/);
    assert.deepEqual(lines.slice(2).map((l) => l.split(/\s+/).slice(0, 2)), [['winogrande', 'acc'], ['piqa', 'acc'], ['piqa', 'acc_norm']]);
    const wino = lines[2].split(/\s+/);
    assert.equal(Number(wino[2]), Number(goldenMean('winogrande', 'acc', 6).toFixed(4)));
    assert.equal(wino[4], '6');
    assert.match(result.stderr, /eval winogrande: acc \d\.\d{4}/);
    assert.match(result.stderr, /eval piqa: acc \d\.\d{4}, acc_norm \d\.\d{4}/);
  });

  it('--json: the report, with the task directory from CREPE_TASK_DIR', async () => {
    const result = await crepe(['eval', model, '--tasks', 'boolq,hellaswag', '--limit', '10', '--json'], { taskDir: TASK_DIR });
    assert.equal(result.status, 0, result.stderr);
    const report = JSON.parse(result.stdout);
    assert.equal(report.window, 512);
    assert.equal(report.limit, 10);
    const [boolq, hellaswag] = report.tasks;
    assert.equal(boolq.task, 'boolq');
    assert.equal(boolq.docs, 10);
    assert.equal(boolq.metrics.acc.value, goldenMean('boolq', 'acc', 10));
    assert.ok(boolq.truncatedRequests > 0, 'some BoolQ passages exceed the window');
    assert.equal(hellaswag.metrics.acc.value, goldenMean('hellaswag', 'acc', 10));
    assert.equal(hellaswag.metrics.acc_norm.value, goldenMean('hellaswag', 'acc_norm', 10));
  });

  it('refuses bad task input with one line, exit 2', async () => {
    // (The loaders' other refusals are checked in test/eval/tasks.test.ts.)
    const broken = scratchDir('broken-tasks');
    mkdirSync(path.join(broken, 'rte'));
    writeFileSync(path.join(broken, 'rte/val.jsonl'), '{"premise": "p", "hypothesis": "h", "label": "entailment"}\n{"premise": "p", "label": "entailment"}\n');
    expectRefusal(await crepe(['eval', model, '--tasks', 'boolq,lambada', '--task-dir', TASK_DIR]), /--tasks unknown task "lambada"; expected some of boolq, rte, hellaswag/);
    expectRefusal(await crepe(['eval', model, '--tasks', 'rte']), /zero-shot tasks need --task-dir <dir> \(or CREPE_TASK_DIR\)/);
    expectRefusal(await crepe(['eval', model, '--tasks', 'rte', '--task-dir', scratchDir('empty-tasks')]), /rte[/\\]val\.jsonl: no such file \(task rte reads rte\/val\.jsonl/);
    expectRefusal(await crepe(['eval', model, '--tasks', 'rte', '--task-dir', broken]), /val\.jsonl:2: expected a string field "hypothesis"/);
    expectRefusal(await crepe(['eval', model, '--tasks', 'rte', '--task-dir', TASK_DIR, '--limit', '0']), /--limit expects a positive integer, got "0"/);
    expectRefusal(await crepe(['eval', model]), /give --eval-ppl <file>, --tasks <list>, or both/);
  });

  it('refuses the options of a measurement not asked for, which would be ignored', async () => {
    const text = path.join(DATA, 'text/wikitext-2-raw/wiki.test.raw');
    expectRefusal(await crepe(['eval', model, '--tasks', 'rte', '--task-dir', TASK_DIR, '--seqlen', '128']), /^crepe: --seqlen applies to --eval-ppl only$/);
    expectRefusal(await crepe(['eval', model, '--tasks', 'rte', '--task-dir', TASK_DIR, '--seqlen', '128', '--max-chunks', '2']), /^crepe: --seqlen and --max-chunks apply to --eval-ppl only$/);
    expectRefusal(await crepe(['eval', model, '--eval-ppl', text, '--limit', '3']), /^crepe: --limit applies to --tasks only$/);
    expectRefusal(await crepe(['eval', model, '--eval-ppl', text, '--task-dir', TASK_DIR, '--limit', '3']), /^crepe: --task-dir and --limit apply to --tasks only$/);
  });
});

describe('crepe prune --eval-tasks', () => {
  let model = '';
  before(async () => {
    model = await storiesModelDir();
  });
  const pruneArgs = (out: string): string[] => ['prune', model, '--method', 'ria', '--sparsity', '0.5', '--calib', C4_SAMPLE, '--nsamples', '4', '--seqlen', '64', '--out', out];

  it('evaluates the pruned model and puts the results in the report', async () => {
    const out = path.join(scratchDir('prune-tasks'), 'out');
    const result = await crepe([...pruneArgs(out), '--eval-tasks', 'rte,arc_easy', '--eval-limit', '5', '--eval-task-dir', TASK_DIR, '--json']);
    assert.equal(result.status, 0, result.stderr);
    const report = JSON.parse(result.stdout);
    assert.equal(report.zeroShot.model, out);
    assert.deepEqual(report.zeroShot.tasks.map((t: { task: string; docs: number }) => [t.task, t.docs]), [['rte', 5], ['arc_easy', 5]]);
    assert.ok(report.zeroShot.tasks[1].metrics.acc_norm.value >= 0);
    const saved = JSON.parse(readFileSync(path.join(out, 'crepe-report.json'), 'utf8'));
    assert.deepEqual(saved.zeroShot.tasks.map((t: { metrics: unknown }) => t.metrics), report.zeroShot.tasks.map((t: { metrics: unknown }) => t.metrics));
  });

  it('refuses a bad task list or task file before pruning, writing nothing', async () => {
    const out = path.join(scratchDir('prune-bad-tasks'), 'out');
    expectRefusal(await crepe([...pruneArgs(out), '--eval-tasks', 'rte,nope', '--eval-task-dir', TASK_DIR]), /--eval-tasks unknown task "nope"/);
    expectRefusal(await crepe([...pruneArgs(out), '--eval-tasks', 'rte']), /zero-shot tasks need --eval-task-dir <dir>/);
    expectRefusal(await crepe([...pruneArgs(out), '--eval-tasks', 'piqa', '--eval-task-dir', scratchDir('no-tasks')]), /piqa[/\\]valid\.jsonl: no such file/);
    // Without --eval-tasks they would be ignored.
    expectRefusal(await crepe([...pruneArgs(out), '--eval-limit', '5']), /^crepe: --eval-limit applies to --eval-tasks only \(the zero-shot tasks to measure\)$/);
    expectRefusal(await crepe([...pruneArgs(out), '--eval-task-dir', TASK_DIR]), /^crepe: --eval-task-dir applies to --eval-tasks only/);
    assert.equal(existsSync(out), false);
  });
});
