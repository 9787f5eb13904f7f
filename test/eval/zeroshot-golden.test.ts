// Zero-shot requests against lm-evaluation-harness itself: for the first 20 documents of each of
// the eight tasks, ../shared/golden/zeroshot-stories260K-first20.json holds every request the
// harness built from the local task files (context and continuation strings, their token ids,
// left-truncation) and its score on stories260K (log-likelihood, is_greedy), plus each
// document's acc / acc_norm. crepe must rebuild the strings and ids exactly, score within 1e-4,
// and agree on is_greedy, truncation and the per-document metrics.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { ModelCheckpoint } from '../../src/model/checkpoint.ts';
import { TextTokenizer } from '../../src/model/tokenizer.ts';
import { TASKS } from '../../src/eval/tasks/index.ts';
import { documentMetrics, encodeRequest } from '../../src/eval/zeroshot.ts';
import { planLoglikelihoods, scoreLoglikelihoods } from '../../src/eval/loglikelihood.ts';
import { GOLDEN, TASK_DIR } from '../helpers/shared.ts';
import { storiesModelDir } from '../helpers/stories.ts';

interface GoldenRequest {
  context: string;
  continuation: string;
  context_ids: number[];
  continuation_ids: number[];
  left_truncated: boolean;
  loglikelihood: number;
  is_greedy: boolean;
}
interface GoldenDoc {
  doc_id: number;
  idx_in_file?: number;
  acc: number;
  acc_norm?: number;
  requests: GoldenRequest[];
}
const golden = JSON.parse(readFileSync(path.join(GOLDEN, 'zeroshot-stories260K-first20.json'), 'utf8')) as {
  tasks: Record<string, { per_doc_first_20: GoldenDoc[] }>;
};
const TOLERANCE = 1e-4;

describe('zero-shot requests and scores equal lm-evaluation-harness on stories260K (first 20 documents)', () => {
  let tokenizer: TextTokenizer;
  let model: ModelCheckpoint;
  before(async () => {
    const dir = await storiesModelDir();
    tokenizer = TextTokenizer.load(dir);
    model = ModelCheckpoint.open(dir);
  });

  for (const task of TASKS) {
    it(task.name, async () => {
      const expected = golden.tasks[task.name].per_doc_first_20;
      assert.equal(expected.length, 20);
      const docs = task.load(TASK_DIR);
      const chosen = expected.map((g) => docs[g.idx_in_file ?? g.doc_id]);
      const encoded = chosen.map((doc) => doc.requests.map((request) => encodeRequest((text) => tokenizer.encode(text), request)));
      encoded.forEach((requests, d) => {
        assert.equal(requests.length, expected[d].requests.length, `doc ${d}: number of requests`);
        requests.forEach((request, r) => {
          const want = expected[d].requests[r];
          const where = `doc ${d} request ${r}`;
          assert.equal(request.context, want.context, `${where}: context`);
          assert.equal(request.continuation, want.continuation, `${where}: continuation`);
          assert.deepEqual([...request.contextIds], want.context_ids, `${where}: context ids`);
          assert.deepEqual([...request.continuationIds], want.continuation_ids, `${where}: continuation ids`);
        });
      });

      const plan = planLoglikelihoods(encoded.map((requests) => requests.map((r) => ({ context: r.contextIds, continuation: r.continuationIds }))), { window: model.spec.maxPositionEmbeddings });
      const scores = await scoreLoglikelihoods(model, plan, { device: 'cpu' });
      scores.forEach((docScores, d) => {
        docScores.forEach((score, r) => {
          const want = expected[d].requests[r];
          const where = `doc ${d} request ${r}`;
          assert.ok(Math.abs(score.logLikelihood - want.loglikelihood) <= TOLERANCE, `${where}: log-likelihood ${score.logLikelihood} vs the harness's ${want.loglikelihood}`);
          assert.equal(score.isGreedy, want.is_greedy, `${where}: is_greedy`);
          assert.equal(score.truncated, want.left_truncated, `${where}: left-truncated`);
        });
        const metrics = documentMetrics(docScores.map((s) => s.logLikelihood), chosen[d].choices, chosen[d].gold);
        assert.equal(metrics.acc, expected[d].acc, `doc ${d}: acc`);
        if (expected[d].acc_norm !== undefined) assert.equal(metrics.acc_norm, expected[d].acc_norm, `doc ${d}: acc_norm`);
      });
    });
  }
});
