/** Command-line glue for zero-shot task evaluation, shared by `crepe eval --tasks` and `crepe prune --eval-tasks`. */
import { evaluateTasks, formatZeroShotTable, loadTaskDocs, type ZeroShotReport } from '../eval/zeroshot.ts';
import { parseTaskList, TASK_NAMES } from '../eval/tasks/index.ts';
import { createProgress } from '../util/progress.ts';
import { check } from '../util/errors.ts';
import { engineOptionsFrom } from './options.ts';

export const TASKS_HELP = `comma-separated zero-shot tasks: ${TASK_NAMES.join(', ')}, or all`;
export const TASK_DIR_HELP = 'directory of the task files (boolq/, rte/, hellaswag/, …; default: $CREPE_TASK_DIR)';

/** The task directory: the option, else $CREPE_TASK_DIR; `option` names the flag in the refusal. */
export function resolveTaskDir(taskDir: string | undefined, option: string): string {
  const dir = taskDir ?? process.env.CREPE_TASK_DIR;
  check(dir !== undefined && dir !== '', `zero-shot tasks need ${option} <dir> (or CREPE_TASK_DIR): the directory holding boolq/, rte/, hellaswag/, …`);
  return dir;
}

/** Reads and checks the named tasks' files (for commands that must refuse bad input before long work). */
export function checkTasks(tasks: string, taskDir: string, limit?: number): void {
  for (const task of parseTaskList(tasks)) loadTaskDocs(task, taskDir, limit);
}

/** Runs the named tasks on a model directory with a progress display per task. */
export async function runTaskEvaluation(
  modelDir: string,
  opts: { tasks: string; taskDir: string; limit?: number; device?: string; threads?: number },
): Promise<ZeroShotReport> {
  const { taskDir } = opts;
  return evaluateTasks(modelDir, {
    ...engineOptionsFrom(opts),
    tasks: opts.tasks,
    taskDir,
    limit: opts.limit,
    progressFor: (task, units) => createProgress(`eval ${task}`, units),
  });
}

/** The results table, with a note on skipped documents and truncated requests. */
export function describeTaskReport(report: ZeroShotReport): string {
  const notes = report.tasks
    .filter((t) => t.skipped > 0 || t.truncatedRequests > 0)
    .map((t) => `${t.task}: ${t.skipped > 0 ? `${t.skipped} document(s) skipped (a continuation longer than the ${report.window}-token window)` : ''}${t.skipped > 0 && t.truncatedRequests > 0 ? '; ' : ''}${t.truncatedRequests > 0 ? `${t.truncatedRequests} of ${t.requests} requests left-truncated to the window` : ''}`);
  return [formatZeroShotTable(report), ...(notes.length > 0 ? ['', ...notes] : [])].join('\n') + '\n';
}
