/**
 * Zero-shot multiple-choice evaluation, computed as lm-evaluation-harness computes it:
 *
 * - Requests: each choice's (context, continuation) from the task's loader, tokenized as the
 *   harness's `_encode_pair` (lm_eval/api/model.py) does: trailing whitespace of the context moves
 *   to the front of the continuation; the context and the whole text are each encoded (BOS
 *   first), and the continuation's ids are whole[len(context ids):] — so context + continuation
 *   ids concatenate to a valid tokenization even where the tokenizer merges across the boundary.
 * - Scores: the log-likelihood of each continuation (src/eval/loglikelihood.ts), the window being
 *   the model's max_position_embeddings, as HFLM's max_length is. A document with a continuation
 *   longer than the window, which the harness cannot score, is skipped and counted.
 * - Metrics, per document (ConfigurableTask.process_results): acc = [argmax_i ll_i = gold];
 *   acc_norm = [argmax_i ll_i / len(choice_i) = gold], len in characters (Unicode code points, as
 *   Python's len) of the doc_to_choice string without the delimiter; argmax keeps the first of
 *   ties, as numpy's. Aggregated as the mean, with stderr = sample standard deviation / √n
 *   (lm_eval.api.metrics.mean_stderr); null when n < 2.
 */
import type { ModelSource } from '../model/source.ts';
import type { EngineOptions } from '../engine/session.ts';
import type { Progress } from '../util/progress.ts';
import { check, checkField } from '../util/errors.ts';
import { checkFunction, checkInteger, checkKnownFields, describeValue } from '../util/fields.ts';
import { loglikelihoodWorkUnits, planLoglikelihoods, scoreLoglikelihoods, type LoglikelihoodRequest } from './loglikelihood.ts';
import type { MetricName, TaskDefinition, TaskDoc, TaskRequest } from './tasks/index.ts';

/** A request as the model sees it: the strings after the whitespace move, and their token ids. */
export interface EncodedRequest extends TaskRequest {
  contextIds: Int32Array;
  continuationIds: Int32Array;
}

export interface MetricValue {
  value: number;
  /** Standard error of the mean; null with fewer than two documents. */
  stderr: number | null;
}

export interface TaskResult {
  task: string;
  /** Documents scored. */
  docs: number;
  /** Documents skipped: a continuation longer than the model's window. */
  skipped: number;
  requests: number;
  /** Requests whose input was cut from the left to fit the window. */
  truncatedRequests: number;
  metrics: Partial<Record<MetricName, MetricValue>>;
  seconds: number;
}

export interface ZeroShotReport {
  model: string;
  taskDir: string;
  /** Documents per task when limited (the first N of each file). */
  limit: number | null;
  /** Tokens the model reads at most (its max_position_embeddings). */
  window: number;
  tasks: TaskResult[];
}

/** Token ids of a text, BOS first (the model's tokenizer). */
export type Encode = (text: string) => Int32Array;

/**
 * Encodes one request the harness's way (see the file comment). An empty context encodes as the
 * BOS token alone, as the harness's rule for one has it.
 */
export function encodeRequest(encode: Encode, request: TaskRequest, contextCache?: Map<string, Int32Array>): EncodedRequest {
  checkFunction('encode', encode, { optional: false, what: 'a function from text to token ids' });
  checkKnownFields(request, 'request', ['context', 'continuation']);
  for (const field of ['context', 'continuation'] as const) {
    checkField(typeof request[field] === 'string', `request.${field}`, () => `must be a string, got ${describeValue(request[field])}`);
  }
  checkField(contextCache === undefined || contextCache instanceof Map, 'contextCache', () => `must be a Map from context texts to token ids, got ${describeValue(contextCache)}`);
  let { context, continuation } = request;
  const kept = context.trimEnd().length;
  if (kept < context.length) {
    continuation = context.slice(kept) + continuation;
    context = context.slice(0, kept);
  }
  let contextIds = contextCache?.get(context);
  if (!contextIds) {
    contextIds = encode(context);
    contextCache?.set(context, contextIds);
  }
  const whole = encode(context + continuation);
  return { context, continuation, contextIds, continuationIds: whole.slice(contextIds.length) };
}

/** Index of the first maximum (numpy.argmax). */
function argmax(values: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

/** acc and acc_norm of one document from its choices' log-likelihoods. */
export function documentMetrics(logLikelihoods: readonly number[], choices: readonly string[], gold: number): Record<MetricName, number> {
  // A gold index past the choices scored every document wrong, without a word.
  checkField(Array.isArray(choices) && choices.length > 0, 'choices', () => `must be a non-empty list of the choices' texts, got ${describeValue(choices)}`);
  checkField(Array.isArray(logLikelihoods) && logLikelihoods.length === choices.length, 'logLikelihoods', () => `must hold one number per choice (${choices.length}), got ${describeValue(logLikelihoods)}`);
  checkInteger('gold', gold, 0, choices.length - 1);
  const normalized = logLikelihoods.map((ll, i) => ll / [...choices[i]].length);
  return { acc: argmax(logLikelihoods) === gold ? 1 : 0, acc_norm: argmax(normalized) === gold ? 1 : 0 };
}

/** Mean and lm-eval's standard error of the mean (sample standard deviation / √n). */
export function meanWithStderr(values: readonly number[]): MetricValue {
  // No values, or a value that is no number, would give a mean of NaN.
  checkField(Array.isArray(values) && values.length > 0 && values.every(Number.isFinite), 'values', () => `must be a non-empty list of finite numbers, got ${describeValue(values)}`);
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  if (n < 2) return { value: mean, stderr: null };
  const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1);
  return { value: mean, stderr: Math.sqrt(variance / n) };
}

/** The task's documents (the first `limit` when given), loaded and checked before any model work. */
export function loadTaskDocs(task: TaskDefinition, taskDir: string, limit?: number): TaskDoc[] {
  const docs = task.load(taskDir);
  check(docs.length > 0, () => `${task.name}: ${task.files[0]} under ${taskDir} holds no documents`);
  return limit === undefined ? docs : docs.slice(0, limit);
}

/** A task's documents with their requests tokenised: those the model can score, and how many it cannot. */
export interface EncodedTask {
  task: TaskDefinition;
  scored: { doc: TaskDoc; requests: LoglikelihoodRequest[] }[];
  /** Documents with a continuation longer than the window. */
  skipped: number;
}

/** Tokenises a task's documents; a document whose continuation does not fit `window` tokens is skipped. */
export function encodeTaskDocs(task: TaskDefinition, docs: readonly TaskDoc[], encode: Encode, window: number): EncodedTask {
  const contextCache = new Map<string, Int32Array>();
  const scored: EncodedTask['scored'] = [];
  let skipped = 0;
  for (const doc of docs) {
    const encoded = doc.requests.map((request) => encodeRequest(encode, request, contextCache));
    if (encoded.some((r) => r.continuationIds.length > window)) skipped++;
    else scored.push({ doc, requests: encoded.map((r) => ({ context: r.contextIds, continuation: r.continuationIds })) });
  }
  check(scored.length > 0, `${task.name}: every document has a continuation longer than the model's window of ${window} tokens`);
  return { task, scored, skipped };
}

/** Scores one tokenised task on an open model: its metrics over the scored documents. */
export async function evaluateTask(
  model: ModelSource, encoded: EncodedTask,
  opts: EngineOptions & { window: number; progressFor?: (task: string, units: number) => Progress },
): Promise<TaskResult> {
  const started = performance.now();
  const { task, scored, skipped } = encoded;
  const plan = planLoglikelihoods(scored.map((s) => s.requests), { window: opts.window });
  const progress = opts.progressFor?.(task.name, loglikelihoodWorkUnits(model.spec, plan));
  const scores = await scoreLoglikelihoods(model, plan, { device: opts.device, threads: opts.threads, progress });

  const perMetric: Record<MetricName, number[]> = { acc: [], acc_norm: [] };
  scored.forEach(({ doc }, i) => {
    const metrics = documentMetrics(scores[i].map((s) => s.logLikelihood), doc.choices, doc.gold);
    perMetric.acc.push(metrics.acc);
    perMetric.acc_norm.push(metrics.acc_norm);
  });
  const metrics: TaskResult['metrics'] = {};
  for (const name of task.metrics) metrics[name] = meanWithStderr(perMetric[name]);
  progress?.done(task.metrics.map((name) => `${name} ${metrics[name]!.value.toFixed(4)}`).join(', '));
  return {
    task: task.name,
    docs: scored.length,
    skipped,
    requests: plan.truncated.length,
    truncatedRequests: plan.truncated.filter(Boolean).length,
    metrics,
    seconds: (performance.now() - started) / 1000,
  };
}

/** The results as a fixed-width table: one line per task and metric, value and stderr. */
export function formatZeroShotTable(report: ZeroShotReport): string {
  checkField(Array.isArray((report as Partial<ZeroShotReport> | null)?.tasks), 'report', () => `must be a zero-shot report (evaluateTasks' result, with its tasks), got ${describeValue(report)}`);
  const header = ['task', 'metric', 'value', '± stderr', 'docs', 'skipped'];
  const rows: string[][] = [];
  report.tasks.forEach((result, i) => {
    checkField(typeof result?.metrics === 'object' && result.metrics !== null, `report.tasks[${i}]`, () => `must be a task result with its metrics, got ${describeValue(result)}`);
    for (const [name, metric] of Object.entries(result.metrics) as [MetricName, MetricValue][]) {
      // MetricValue's value is always a number: a report whose value is missing (JSON's null for NaN) is no report of evaluateTasks'.
      const isMetric = Number.isFinite(metric?.value) && (metric.stderr === null || Number.isFinite(metric.stderr));
      checkField(isMetric, `report.tasks[${i}].metrics.${name}`, () => `must be { value: a finite number, stderr: a finite number or null }, got ${describeValue(metric)}`);
      rows.push([result.task, name, metric.value.toFixed(4), metric.stderr === null ? 'n/a' : metric.stderr.toFixed(4), String(result.docs), String(result.skipped)]);
    }
  });
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const line = (cells: string[]): string => cells.map((cell, c) => (c < 2 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}
