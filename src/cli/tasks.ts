/** What `crepe eval --tasks` and `crepe prune --eval-tasks` share: option help and the printed results. */
import { formatZeroShotTable, type ZeroShotReport } from '../eval/zeroshot.ts';
import { TASK_NAMES } from '../eval/tasks/index.ts';
import { UserError } from '../util/errors.ts';

export const TASKS_HELP = `comma-separated zero-shot tasks: ${TASK_NAMES.join(', ')}, or all`;
export const TASK_DIR_HELP = 'directory of the task files: boolq/, rte/, hellaswag/, … (default: $CREPE_TASK_DIR)';
export const LIMIT_HELP = 'zero-shot: only the first N documents of each task';

/** The task directory a command line gives: `flag`'s value, else $CREPE_TASK_DIR; refused when neither is set. */
export function taskDirOption(value: string | undefined, flag: string): string {
  const dir = value ?? process.env.CREPE_TASK_DIR;
  if (!dir) throw new UserError(`zero-shot tasks need ${flag} <dir> (or CREPE_TASK_DIR): the directory of the task files (boolq/, rte/, hellaswag/, …)`);
  return dir;
}

/** The results table, then a note on skipped documents and truncated requests. */
export function describeTaskReport(report: ZeroShotReport): string {
  const notes = report.tasks.filter((t) => t.skipped > 0 || t.truncatedRequests > 0).map((t) => {
    const parts = [];
    if (t.skipped > 0) parts.push(`${t.skipped} document(s) skipped (a continuation longer than the ${report.window}-token window)`);
    if (t.truncatedRequests > 0) parts.push(`${t.truncatedRequests} of ${t.requests} requests left-truncated to the window`);
    return `${t.task}: ${parts.join('; ')}`;
  });
  return `${[formatZeroShotTable(report), ...(notes.length > 0 ? ['', ...notes] : [])].join('\n')}\n`;
}
