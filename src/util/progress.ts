/**
 * How long-running library code reports progress: per unit of work (a layer, a batch of windows,
 * a candidate), a free-form message, and the end of the stage. The workflows turn it into
 * `ProgressEvent`s for their callers; nothing here prints.
 */
import { checkField } from './errors.ts';
import { describeValue, hasMethods } from './fields.ts';

export interface Progress {
  /** Advance to `done` of the stage's units; `detail` is a short note (e.g. the current layer). */
  update(done: number, detail?: string): void;
  /** A message about the stage (e.g. "resuming at layer 3 of 5"). */
  log(line: string): void;
  done(summary?: string): void;
}

/** Refuses `progress` unless it is undefined or an object with Progress's update, log and done functions. */
export function checkProgress(field: string, progress: unknown): asserts progress is Progress | undefined {
  checkField(
    progress === undefined || hasMethods(progress, ['update', 'log', 'done']),
    field,
    () => `must be an object with update, log and done functions, got ${describeValue(progress)}`,
  );
}
