/** The zero-shot tasks by name, in the order papers report them. */
import { UserError, checkField } from '../../util/errors.ts';
import { describeValue } from '../../util/fields.ts';
import { arcChallenge, arcEasy } from './arc.ts';
import { boolq } from './boolq.ts';
import { hellaswag } from './hellaswag.ts';
import { openbookqa } from './openbookqa.ts';
import { piqa } from './piqa.ts';
import { rte } from './rte.ts';
import type { TaskDefinition } from './task.ts';
import { winogrande } from './winogrande.ts';

export type { MetricName, TaskDefinition, TaskDoc, TaskRequest } from './task.ts';

export const TASKS: readonly TaskDefinition[] = [boolq, rte, hellaswag, winogrande, arcEasy, arcChallenge, piqa, openbookqa];
export const TASK_NAMES: readonly string[] = TASKS.map((task) => task.name);

export function taskByName(name: string): TaskDefinition {
  const task = TASKS.find((t) => t.name === name);
  if (!task) throw new UserError(`unknown task "${name}"; expected some of ${TASK_NAMES.join(', ')} (or "all")`);
  return task;
}

/** "boolq,rte" → their definitions; "all" (alone) → every task. Duplicates and empty lists are refused. */
export function parseTaskList(text: string): TaskDefinition[] {
  checkField(typeof text === 'string', 'tasks', () => `must be task names, comma-separated, got ${describeValue(text)}`);
  const names = text.split(',').map((s) => s.trim()).filter(Boolean);
  if (names.length === 0) throw new UserError(`no task named; expected some of ${TASK_NAMES.join(', ')} (or "all")`);
  if (names.includes('all')) {
    if (names.length === 1) return [...TASKS];
    throw new UserError(`"all" names every task and stands alone; got "all" with ${names.filter((name) => name !== 'all').join(', ')}`);
  }
  const seen = new Set<string>();
  return names.map((name) => {
    if (seen.has(name)) throw new UserError(`task "${name}" is named twice`);
    seen.add(name);
    return taskByName(name);
  });
}
