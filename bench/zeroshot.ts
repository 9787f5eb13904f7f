/**
 * Zero-shot scoring benchmark: continuations scored per second by the log-likelihood scorer
 * (src/eval/loglikelihood.ts), with each document's requests merged into shared rows (the default)
 * and with every request in its own row, measured back to back in the same run.
 *
 * - stories260K (the real model, converted from ../shared): the first HellaSwag documents (short
 *   shared context, four long endings) and the first BoolQ documents (long passages, often cut to
 *   the 512-token window, two one-word answers), tokenized as `crepe eval --tasks` does.
 * - The synthetic TinyLlama-shaped model (bench/synthetic-model.ts; no tokenizer): random token
 *   requests shaped like HellaSwag's (a 64-token context, four 24-token continuations).
 *
 * Each timing is the second of two identical runs (the first builds the ORT sessions).
 *
 * Standalone: node --import tsx bench/zeroshot.ts [--quick]
 */
import { rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { convertToHuggingFace } from '../src/model/convert.ts';
import { ModelCheckpoint } from '../src/model/checkpoint.ts';
import { TextTokenizer } from '../src/model/tokenizer.ts';
import { taskByName } from '../src/eval/tasks/index.ts';
import { encodeRequest } from '../src/eval/zeroshot.ts';
import { planLoglikelihoods, scoreLoglikelihoods, type LoglikelihoodRequest } from '../src/eval/loglikelihood.ts';
import { Rng } from '../src/util/rng.ts';
import { ensureSyntheticModel, QUICK_MODEL, TINYLLAMA_4_LAYERS } from './synthetic-model.ts';

const repoRoot = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const shared = path.resolve(repoRoot, '../shared/data');

interface Measurement {
  label: string;
  requests: number;
  rows: number;
  inputTokens: number;
  packedTokens: number;
  seconds: number;
}

async function measure(label: string, model: ModelCheckpoint, groups: LoglikelihoodRequest[][], share: boolean): Promise<Measurement> {
  const plan = planLoglikelihoods(groups, { window: model.spec.maxPositionEmbeddings, share });
  await scoreLoglikelihoods(model, plan, { device: 'cpu' });
  const started = performance.now();
  await scoreLoglikelihoods(model, plan, { device: 'cpu' });
  const seconds = (performance.now() - started) / 1000;
  return { label, requests: plan.truncated.length, rows: plan.rows.length, inputTokens: plan.inputTokens, packedTokens: plan.packedTokens, seconds };
}

function taskGroups(tokenizer: TextTokenizer, task: string, docs: number): LoglikelihoodRequest[][] {
  return taskByName(task).load(path.join(shared, 'tasks')).slice(0, docs).map((doc) => doc.requests.map((request) => {
    const encoded = encodeRequest((text) => tokenizer.encode(text), request);
    return { context: encoded.contextIds, continuation: encoded.continuationIds };
  }));
}

function randomGroups(docs: number, vocab: number, seed: number): LoglikelihoodRequest[][] {
  const rng = new Rng(seed);
  const tokens = (n: number): Int32Array => Int32Array.from({ length: n }, () => 3 + rng.below(vocab - 3));
  return Array.from({ length: docs }, () => {
    const context = Int32Array.from([1, ...tokens(63)]);
    return Array.from({ length: 4 }, () => ({ context, continuation: tokens(24) }));
  });
}

function row(m: Measurement, baseline?: Measurement): string {
  const perSecond = m.requests / m.seconds;
  const speedup = baseline ? `${(baseline.seconds / m.seconds).toFixed(2)}×` : '1.00×';
  return `| ${m.label} | ${m.requests} | ${m.rows} | ${m.inputTokens} | ${m.packedTokens} | ${m.seconds.toFixed(2)} | ${perSecond.toFixed(1)} | ${speedup} |`;
}

export async function benchZeroShot(log: (line: string) => void, options: { quick?: boolean } = {}): Promise<string> {
  const lines = [
    '## Zero-shot scoring (log-likelihood of continuations)',
    '',
    'Continuations scored per second by `scoreLoglikelihoods`: "shared" merges each document\'s requests into one prefix tree per',
    'packed row (the shared context runs once), "one row each" gives every request its own row. Input tokens: what the',
    'requests would feed unpacked; packed tokens: what the rows hold before padding. Speed-up against "one row each" in the same run.',
    '',
    '| model / requests | continuations | rows | input tokens | packed tokens | seconds | continuations/s | speed-up |',
    '|---|---|---|---|---|---|---|---|',
  ];

  const storiesDir = path.join(os.tmpdir(), `crepe-bench-stories260K-${process.pid}`);
  await convertToHuggingFace(path.join(shared, 'models/stories260K/stories260K.bin'), storiesDir, { tokenizer: path.join(shared, 'models/stories260K/tok512.bin') });
  const stories = ModelCheckpoint.open(storiesDir);
  try {
    const tokenizer = TextTokenizer.load(storiesDir);
    for (const [task, docs] of [['hellaswag', options.quick ? 20 : 200], ['boolq', options.quick ? 10 : 100]] as const) {
      const groups = taskGroups(tokenizer, task, docs);
      log(`zeroshot: stories260K ${task}, ${docs} documents`);
      const alone = await measure(`stories260K, ${task} (${docs} docs), one row each`, stories, groups, false);
      const sharedRun = await measure(`stories260K, ${task} (${docs} docs), shared`, stories, groups, true);
      lines.push(row(alone), row(sharedRun, alone));
    }
  } finally {
    stories.close();
    rmSync(storiesDir, { recursive: true, force: true });
  }

  const synthetic = options.quick ? QUICK_MODEL : TINYLLAMA_4_LAYERS;
  const syntheticDir = await ensureSyntheticModel(synthetic, log);
  const model = ModelCheckpoint.open(syntheticDir);
  const docs = options.quick ? 4 : 12;
  const groups = randomGroups(docs, model.spec.vocabSize, 7);
  const name = `synthetic ${options.quick ? 'small' : 'TinyLlama-shaped'} (${synthetic.layers} layers, hidden ${synthetic.hidden})`;
  log(`zeroshot: ${name}, ${docs} documents`);
  const alone = await measure(`${name}, ${docs} docs of 64 + 4×24 tokens, one row each`, model, groups, false);
  const sharedRun = await measure(`${name}, ${docs} docs of 64 + 4×24 tokens, shared`, model, groups, true);
  lines.push(row(alone), row(sharedRun, alone));
  model.close();
  lines.push('', `Threads: ORT default (${os.cpus().length} logical CPUs). The synthetic model has no tokenizer: its requests are random token ids.`);
  return lines.join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const section = await benchZeroShot((line) => console.error(line), { quick: process.argv.includes('--quick') });
  console.log(section);
}
