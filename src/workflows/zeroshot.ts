/**
 * Zero-shot accuracy of a model directory on multiple-choice tasks, as lm-evaluation-harness
 * computes it (src/eval/zeroshot.ts). The task list, every task file and every request's
 * tokenisation are checked before any weight is read.
 */
import { checkDirectory } from '../io/input-file.ts';
import { ModelCheckpoint } from '../model/checkpoint.ts';
import type { ModelSpec } from '../model/spec.ts';
import type { EngineOptions } from '../engine/session.ts';
import { FieldError, UserError, checkField } from '../util/errors.ts';
import { parseTaskList, type TaskDefinition } from '../eval/tasks/index.ts';
import { checkInteger, describeValue, type FieldSpec } from '../util/fields.ts';
import { encodeTaskDocs, evaluateTask, loadTaskDocs, type EncodedTask, type ZeroShotReport } from '../eval/zeroshot.ts';
import {
  CONTROL_FIELDS, ENGINE_FIELDS, HUB_FIELDS, checkRequest, engineOptions, modelEncoder, resolveModel, secondsSince, stageProgress, type EngineRequest, type HubRequest, type RunControl,
} from './common.ts';

export interface ZeroShotRequest extends EngineRequest, RunControl, HubRequest {
  /** Hugging Face model directory (config.json, model.safetensors, tokenizer.json), or a Hub id (org/name[@revision]). */
  model: string;
  /** boolq, rte, hellaswag, winogrande, arc_easy, arc_challenge, piqa, openbookqa (a list or comma-separated), or "all". */
  tasks: string | readonly string[];
  /** The directory of the task files: boolq/, rte/, hellaswag/, … as in ../shared/data/tasks (PROVENANCE.md). */
  taskDir: string;
  /** Score only the first `limit` documents of each task. */
  limit?: number;
}

export interface ZeroShotResult extends ZeroShotReport {
  seconds: number;
}

/** The request fields the tasks come from, for error messages (`tasks` or prune's `evalTasks`, …). */
export interface TaskFields {
  tasks: string;
  taskDir: string;
  limit: string;
}

/** The task definitions a request names, read and checked (no model needed). */
export interface TaskSelection {
  fields: TaskFields;
  definitions: TaskDefinition[];
  taskDir: string;
  limit?: number;
}

/** Tasks tokenised for one model, ready to score. */
export interface PreparedTasks {
  taskDir: string;
  limit: number | null;
  window: number;
  tasks: EncodedTask[];
}

/** Parses the task list and checks the directory and limit fields; errors name `fields`. */
export function selectTasks(fields: TaskFields, tasks: unknown, taskDir: unknown, limit: unknown): TaskSelection {
  checkField(typeof tasks === 'string' || (Array.isArray(tasks) && tasks.every((t) => typeof t === 'string')), fields.tasks, () => `must be task names, comma-separated or as a list, got ${describeValue(tasks)}`);
  checkField(typeof taskDir === 'string' && taskDir !== '', fields.taskDir, 'must name the directory of the task files (boolq/, rte/, hellaswag/, …)');
  checkDirectory(taskDir, 'the directory of the task files: boolq/, rte/, hellaswag/, …', fields.taskDir);
  if (limit !== undefined) checkInteger(fields.limit, limit, 1);
  try {
    const definitions = parseTaskList(typeof tasks === 'string' ? tasks : (tasks as string[]).join(','));
    return { fields, definitions, taskDir, limit: limit as number | undefined };
  } catch (error) {
    if (error instanceof UserError && !(error instanceof FieldError)) throw new FieldError(fields.tasks, error.message);
    throw error;
  }
}

/**
 * Reads the selected tasks' files (a malformed one is refused naming its file and line) and
 * tokenises every request with the model's tokenizer.
 */
export function prepareTasks(selection: TaskSelection, modelDir: string, spec: ModelSpec): PreparedTasks {
  const encode = modelEncoder(modelDir, spec);
  const window = spec.maxPositionEmbeddings;
  const tasks = selection.definitions.map((task) => {
    const docs = loadTaskDocs(task, selection.taskDir, selection.limit);
    return encodeTaskDocs(task, docs, (text) => encode(text, `a ${task.name} prompt`), window);
  });
  return { taskDir: selection.taskDir, limit: selection.limit ?? null, window, tasks };
}

/** Scores prepared tasks on the model in `modelDir` (one stage per task); refuses NaN/Inf weights first. */
export async function measureTasks(modelDir: string, prepared: PreparedTasks, engine: EngineOptions, control: RunControl): Promise<ZeroShotReport> {
  const model = ModelCheckpoint.open(modelDir);
  try {
    model.checkAllFinite();
    const progressFor = (task: string, total: number) => stageProgress(control, `eval ${task}`, total);
    const results = [];
    for (const task of prepared.tasks) results.push(await evaluateTask(model, task, { ...engine, window: prepared.window, progressFor }));
    return { model: modelDir, taskDir: prepared.taskDir, limit: prepared.limit, window: prepared.window, tasks: results };
  } finally {
    model.close();
  }
}

const ZERO_SHOT_FIELDS: FieldSpec<ZeroShotRequest> = { ...CONTROL_FIELDS, ...ENGINE_FIELDS, ...HUB_FIELDS, model: 'checked', tasks: 'checked', taskDir: 'checked', limit: 'checked' };

/** Zero-shot accuracy of `request.model` on `request.tasks`. */
export async function evaluateTasks(request: ZeroShotRequest): Promise<ZeroShotResult> {
  const started = performance.now();
  checkRequest(request, ZERO_SHOT_FIELDS);
  const engine = engineOptions(request);
  const selection = selectTasks({ tasks: 'tasks', taskDir: 'taskDir', limit: 'limit' }, request.tasks, request.taskDir, request.limit);
  request = { ...request, model: await resolveModel('model', request.model, request, 'model-dir') };
  const model = ModelCheckpoint.open(request.model);
  const spec = model.spec;
  model.close();
  const prepared = prepareTasks(selection, request.model, spec);
  const report = await measureTasks(request.model, prepared, engine, request);
  return { ...report, seconds: secondsSince(started) };
}
