// The batched log-likelihood scorer on stories260K: packing a document's requests into shared
// rows (prefix trees) and many rows into one engine run must give what scoring each request alone
// gives (to float32 rounding: relative 1e-6), and both must equal a plain forward pass (the causal engine's logits, log-softmax here in
// float64) — the continuation's summed log-probability and whether each token is the argmax.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { ModelCheckpoint } from '../../src/model/checkpoint.ts';
import { TextTokenizer } from '../../src/model/tokenizer.ts';
import { forwardLogits } from '../../src/engine/forward.ts';
import { taskByName } from '../../src/eval/tasks/index.ts';
import { encodeRequest } from '../../src/eval/zeroshot.ts';
import {
  paddedLength, planLoglikelihoods, scoreLoglikelihoods,
  type LoglikelihoodRequest, type LoglikelihoodScore,
} from '../../src/eval/loglikelihood.ts';
import { UserError } from '../../src/util/errors.ts';
import { TASK_DIR } from '../helpers/shared.ts';
import { storiesModelDir } from '../helpers/stories.ts';


/** A few documents of several tasks: shared contexts (hellaswag, arc), per-choice contexts (winogrande), truncated ones (boolq). */
function sampleGroups(tokenizer: TextTokenizer): LoglikelihoodRequest[][] {
  const picks: [string, number[]][] = [['hellaswag', [0, 1, 2]], ['winogrande', [0, 1, 2]], ['arc_challenge', [0, 1]], ['boolq', [0, 2]], ['piqa', [1]]];
  const groups: LoglikelihoodRequest[][] = [];
  for (const [name, indices] of picks) {
    const docs = taskByName(name).load(TASK_DIR);
    for (const i of indices) {
      groups.push(docs[i].requests.map((r) => {
        const encoded = encodeRequest((text) => tokenizer.encode(text), r);
        return { context: encoded.contextIds, continuation: encoded.continuationIds };
      }));
    }
  }
  return groups;
}

/** Log-likelihood from the model's full logits for one request (window 512, as the harness cuts). */
async function referenceScore(model: ModelCheckpoint, request: LoglikelihoodRequest, window: number): Promise<LoglikelihoodScore> {
  const whole = [...request.context, ...request.continuation];
  const start = Math.max(0, whole.length - (window + 1));
  const input = Int32Array.from(whole.slice(start, whole.length - 1));
  const logits = await forwardLogits(model, input, { device: 'cpu' });
  const vocab = model.spec.vocabSize;
  let sum = 0;
  let greedy = true;
  const m = request.continuation.length;
  for (let j = 0; j < m; j++) {
    const row = logits.subarray((input.length - m + j) * vocab, (input.length - m + j + 1) * vocab);
    let max = -Infinity;
    let arg = 0;
    for (let v = 0; v < vocab; v++) if (row[v] > max) { max = row[v]; arg = v; }
    let z = 0;
    for (let v = 0; v < vocab; v++) z += Math.exp(row[v] - max);
    sum += row[request.continuation[j]] - max - Math.log(z);
    if (arg !== request.continuation[j]) greedy = false;
  }
  return { logLikelihood: sum, isGreedy: greedy, truncated: start > 0 };
}

describe('log-likelihood scoring on stories260K', () => {
  let model: ModelCheckpoint;
  let groups: LoglikelihoodRequest[][];
  before(async () => {
    const dir = await storiesModelDir();
    model = ModelCheckpoint.open(dir);
    groups = sampleGroups(TextTokenizer.load(dir));
  });

  it('shared rows, many per run, equal each request scored alone; both equal a plain forward pass', async () => {
    const window = model.spec.maxPositionEmbeddings;
    const plan = planLoglikelihoods(groups, { window });
    // Sharing is real: fewer rows than requests, fewer tokens than the requests' inputs.
    assert.ok(plan.rows.length < plan.truncated.length, `${plan.rows.length} rows for ${plan.truncated.length} requests`);
    assert.ok(plan.packedTokens < 0.7 * plan.inputTokens, `${plan.packedTokens} packed tokens for ${plan.inputTokens} input tokens`);
    assert.ok(plan.truncated.some(Boolean), 'the sample includes left-truncated requests');
    const batched = await scoreLoglikelihoods(model, plan, { device: 'cpu' });

    const unshared = await scoreLoglikelihoods(model, planLoglikelihoods(groups, { window, share: false }), { device: 'cpu' });
    let checked = 0;
    for (let g = 0; g < groups.length; g++) {
      for (let r = 0; r < groups[g].length; r++) {
        const [[alone]] = await scoreLoglikelihoods(model, planLoglikelihoods([[groups[g][r]]], { window }), { device: 'cpu' });
        const where = `group ${g} request ${r}`;
        for (const other of [alone, unshared[g][r]]) {
          // Only float32 summation order differs (row lengths, attention chunk bounds): ~1 ulp of float32.
          assert.ok(Math.abs(batched[g][r].logLikelihood - other.logLikelihood) <= 1e-6 * Math.abs(other.logLikelihood), `${where}: ${batched[g][r].logLikelihood} vs ${other.logLikelihood}`);
          assert.equal(batched[g][r].isGreedy, other.isGreedy, where);
          assert.equal(batched[g][r].truncated, other.truncated, where);
        }
        if (r === 0) {
          const reference = await referenceScore(model, groups[g][r], window);
          assert.ok(Math.abs(batched[g][r].logLikelihood - reference.logLikelihood) <= 1e-4, `${where}: ${batched[g][r].logLikelihood} vs reference ${reference.logLikelihood}`);
          assert.equal(batched[g][r].isGreedy, reference.isGreedy, where);
          assert.equal(batched[g][r].truncated, reference.truncated, where);
        }
        checked++;
      }
    }
    assert.equal(checked, plan.truncated.length);
  });

  it('is_greedy is true when the continuation is what the model predicts', async () => {
    // Greedy continuation of a prompt, built from the plain forward pass's argmax.
    const tokens = [1, 410, 461, 347, 431];
    const window = model.spec.maxPositionEmbeddings;
    for (let step = 0; step < 4; step++) {
      const logits = await forwardLogits(model, Int32Array.from(tokens), { device: 'cpu' });
      const last = logits.subarray((tokens.length - 1) * model.spec.vocabSize, tokens.length * model.spec.vocabSize);
      tokens.push(last.indexOf(Math.max(...last)));
    }
    const request = { context: Int32Array.from(tokens.slice(0, 5)), continuation: Int32Array.from(tokens.slice(5)) };
    const wrong = { context: request.context, continuation: Int32Array.from([...tokens.slice(5, 8), (tokens[8] + 1) % 512]) };
    const [[greedy, notGreedy]] = await scoreLoglikelihoods(model, planLoglikelihoods([[request, wrong]], { window }), { device: 'cpu' });
    assert.equal(greedy.isGreedy, true);
    assert.equal(notGreedy.isGreedy, false);
    assert.ok(greedy.logLikelihood > notGreedy.logLikelihood);
  });

  it('refuses a continuation longer than the window, or empty', () => {
    const long = { context: Int32Array.from([1]), continuation: new Int32Array(513).fill(300) };
    assert.throws(() => planLoglikelihoods([[long]], { window: 512 }), (e: Error) => e instanceof UserError && /513 tokens does not fit the model's window of 512/.test(e.message));
    assert.throws(() => planLoglikelihoods([[{ context: Int32Array.from([1]), continuation: new Int32Array(0) }]], { window: 512 }), UserError);
  });
});

describe('planning', () => {
  it('pads rows to 16, 24, 32, 48, 64, 96, …', () => {
    assert.deepEqual([1, 16, 17, 24, 25, 33, 49, 97, 129, 200, 512, 513].map(paddedLength), [16, 16, 24, 24, 32, 48, 64, 128, 192, 256, 512, 768]);
  });

  it('merges a group into one prefix tree: shared context once, each continuation after it', () => {
    const context = Int32Array.from([1, 10, 11, 12]);
    const plan = planLoglikelihoods([[
      { context, continuation: Int32Array.from([20, 21]) },
      { context, continuation: Int32Array.from([20, 22, 23]) },
      { context, continuation: Int32Array.from([30]) },
    ]], { window: 512 });
    assert.equal(plan.rows.length, 1);
    const [row] = plan.rows;
    // Inputs: ctx+[20], ctx+[20,22], ctx → nodes ctx(4) + 20 + 22.
    assert.deepEqual([...row.tokens], [1, 10, 11, 12, 20, 22]);
    assert.deepEqual([...row.parents], [-1, 0, 1, 2, 3, 4]);
    assert.deepEqual([...row.positions], [0, 1, 2, 3, 4, 5]);
    assert.deepEqual([...row.predictors], [3, 4, 3, 4, 5, 3]);
    assert.deepEqual([...row.targets], [20, 21, 20, 22, 23, 30]);
    assert.deepEqual([...row.owners], [0, 0, 1, 1, 1, 2]);
    assert.equal(plan.inputTokens, 5 + 6 + 4);
  });

  it('cuts inputs from the left to the window, BOS included, and splits trees that outgrow a row', () => {
    const context = Int32Array.from({ length: 30 }, (_, i) => i + 1);
    const plan = planLoglikelihoods([[
      { context, continuation: Int32Array.from([100, 101]) },
      { context, continuation: Int32Array.from([200, 201, 202]) },
    ]], { window: 16 });
    assert.deepEqual(plan.truncated, [true, true]);
    // (30 + 2)[-17:][:-1] starts at token 16; (30 + 3)[-17:][:-1] starts at token 17: different roots,
    // 16 + 16 nodes do not fit one row of 16.
    assert.equal(plan.rows.length, 2);
    assert.deepEqual([...plan.rows[0].tokens], [16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 100]);
    assert.deepEqual([...plan.rows[1].tokens.subarray(0, 2)], [17, 18]);
  });
});
