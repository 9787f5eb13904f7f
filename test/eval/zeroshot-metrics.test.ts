// The per-document metrics and their aggregation on hand-made log-likelihoods, the harness's
// tokenization rule for a context ending in whitespace, the results table, and evaluateTasks end
// to end: the numbers of a run equal the harness's per-document acc for the same documents, and
// a second run gives the same report to the last digit.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { TextTokenizer } from '../../src/model/tokenizer.ts';
import { documentMetrics, encodeRequest, formatZeroShotTable, meanWithStderr, type ZeroShotReport } from '../../src/eval/zeroshot.ts';
import { evaluateTasks } from '../../src/workflows/zeroshot.ts';
import { FieldError } from '../../src/util/errors.ts';
import { DATA, GOLDEN } from '../helpers/shared.ts';
import { storiesModelDir } from '../helpers/stories.ts';

describe('acc and acc_norm', () => {
  it('acc: argmax of the log-likelihoods; acc_norm: argmax of log-likelihood / characters', () => {
    // norm: −10/1, −8/4, −12/2 = −10, −2, −6 → 1; plain argmax → 1.
    assert.deepEqual(documentMetrics([-10, -8, -12], ['a', 'bbbb', 'cc'], 1), { acc: 1, acc_norm: 1 });
    // plain argmax → 0; norm: −4/2, −6/6 = −2, −1 → 1.
    assert.deepEqual(documentMetrics([-4, -6], ['ab', 'abcdef'], 1), { acc: 0, acc_norm: 1 });
    assert.deepEqual(documentMetrics([-4, -6], ['ab', 'abcdef'], 0), { acc: 1, acc_norm: 0 });
  });

  it('ties go to the first choice, as numpy.argmax', () => {
    assert.deepEqual(documentMetrics([-5, -5, -7], ['aa', 'bb', 'c'], 1), { acc: 0, acc_norm: 0 });
    assert.deepEqual(documentMetrics([-5, -5, -7], ['aa', 'bb', 'c'], 0), { acc: 1, acc_norm: 1 });
  });

  it('lengths are counted in characters (code points), not UTF-16 units', () => {
    // '😀😀' is 2 characters (4 UTF-16 units): −2/2 = −1 < −2.4/3 = −0.8, so choice 1 wins;
    // counting units would give −0.5 and pick choice 0.
    assert.deepEqual(documentMetrics([-2, -2.4], ['😀😀', 'abc'], 1), { acc: 0, acc_norm: 1 });
  });

  it('mean and stderr = sample standard deviation / √n; no stderr for one document', () => {
    // mean 0.75; Σ(x − mean)² = 3·0.0625 + 0.5625 = 0.75; s² = 0.25; stderr = √(0.25/4) = 0.25.
    assert.deepEqual(meanWithStderr([1, 0, 1, 1]), { value: 0.75, stderr: 0.25 });
    assert.deepEqual(meanWithStderr([1, 1]), { value: 1, stderr: 0 });
    assert.deepEqual(meanWithStderr([0]), { value: 0, stderr: null });
  });
});

describe('tokenization and the report on stories260K', () => {
  let modelDir = '';
  before(async () => {
    modelDir = await storiesModelDir();
  });

  it('trailing whitespace of the context moves to the continuation', () => {
    const tokenizer = TextTokenizer.load(modelDir);
    const encoded = encodeRequest((text) => tokenizer.encode(text), { context: 'Question: is it? \nAnswer: ', continuation: ' yes' });
    assert.equal(encoded.context, 'Question: is it? \nAnswer:');
    assert.equal(encoded.continuation, '  yes');
    assert.deepEqual([...encoded.contextIds], [...tokenizer.encode('Question: is it? \nAnswer:')]);
    assert.deepEqual([...encoded.contextIds, ...encoded.continuationIds], [...tokenizer.encode('Question: is it? \nAnswer:  yes')]);
    assert.equal(encoded.contextIds[0], 1);
  });

  it('evaluateTasks: acc equals the mean of the harness\'s per-document acc, and a rerun is identical', async () => {
    const golden = JSON.parse(readFileSync(path.join(GOLDEN, 'zeroshot-stories260K-first20.json'), 'utf8')) as {
      tasks: Record<string, { per_doc_first_20: { acc: number; acc_norm?: number }[] }>;
    };
    const run = (): Promise<ZeroShotReport> => evaluateTasks({ model: modelDir, tasks: 'rte,openbookqa', taskDir: path.join(DATA, 'tasks'), limit: 20 });
    const first = await run();
    assert.equal(first.window, 512);
    assert.deepEqual(first.tasks.map((t) => [t.task, t.docs, t.skipped, t.requests]), [['rte', 20, 0, 40], ['openbookqa', 20, 0, 80]]);
    for (const task of first.tasks) {
      const perDoc = golden.tasks[task.task].per_doc_first_20;
      assert.equal(task.metrics.acc!.value, perDoc.reduce((a, d) => a + d.acc, 0) / 20, `${task.task} acc`);
      assert.deepEqual(task.metrics.acc, meanWithStderr(perDoc.map((d) => d.acc)));
    }
    assert.deepEqual(first.tasks[1].metrics.acc_norm, meanWithStderr(golden.tasks.openbookqa.per_doc_first_20.map((d) => d.acc_norm!)));
    assert.equal(first.tasks[0].metrics.acc_norm, undefined, 'rte reports acc only');

    const second = await run();
    const strip = (report: ZeroShotReport) => report.tasks.map(({ seconds: _seconds, ...rest }) => rest);
    assert.deepEqual(strip(second), strip(first));
  });

  it('refuses an unknown task and a bad limit before reading the model', async () => {
    await assert.rejects(evaluateTasks({ model: '/nonexistent', tasks: 'rte,squad', taskDir: path.join(DATA, 'tasks') }), (e: Error) => e instanceof FieldError && e.field === 'tasks' && /unknown task "squad"/.test(e.message));
    await assert.rejects(evaluateTasks({ model: '/nonexistent', tasks: 'rte', taskDir: path.join(DATA, 'tasks'), limit: 0 }), (e: Error) => e instanceof FieldError && e.field === 'limit');
    await assert.rejects(evaluateTasks({ model: '/nonexistent', tasks: 'rte', taskDir: '' }), (e: Error) => e instanceof FieldError && e.field === 'taskDir');
  });
});

describe('results table', () => {
  it('one line per task and metric, values and stderr to four places', () => {
    const report: ZeroShotReport = {
      model: 'm', taskDir: 't', limit: null, window: 512,
      tasks: [
        { task: 'rte', docs: 277, skipped: 0, requests: 554, truncatedRequests: 0, metrics: { acc: { value: 0.5234, stderr: 0.03004 } }, seconds: 1 },
        { task: 'piqa', docs: 1836, skipped: 2, requests: 3672, truncatedRequests: 0, metrics: { acc: { value: 0.55, stderr: 0.0116 }, acc_norm: { value: 0.5, stderr: null } }, seconds: 1 },
      ],
    };
    assert.equal(formatZeroShotTable(report), [
      'task  metric     value  ± stderr  docs  skipped',
      '----  --------  ------  --------  ----  -------',
      'rte   acc       0.5234    0.0300   277        0',
      'piqa  acc       0.5500    0.0116  1836        2',
      'piqa  acc_norm  0.5000       n/a  1836        2',
    ].join('\n'));
  });

  it('a metric whose value is null (not a MetricValue, which always has a number) is refused naming it, not a TypeError', () => {
    const result = { task: 'rte', docs: 1, skipped: 0, requests: 2, truncatedRequests: 0, seconds: 1 };
    const report = (metrics: unknown): ZeroShotReport => ({ model: 'm', taskDir: 't', limit: null, window: 512, tasks: [{ ...result, metrics: { acc: { value: 0.5, stderr: null } } }, { ...result, metrics }] as never });
    for (const metrics of [{ acc: { value: null, stderr: null } }, { acc_norm: null }, { acc: { value: 0.5, stderr: 'x' } }]) {
      const name = Object.keys(metrics)[0];
      assert.throws(() => formatZeroShotTable(report(metrics)), (error: Error) =>
        error instanceof FieldError && error.field === `report.tasks[1].metrics.${name}` && error.problem.startsWith('must be { value: a finite number, stderr: a finite number or null }, got '), JSON.stringify(metrics));
    }
    assert.throws(() => formatZeroShotTable(report(null)), (error: Error) => error instanceof FieldError && error.field === 'report.tasks[1]' && error.problem.startsWith('must be a task result with its metrics, got '));
  });
});
