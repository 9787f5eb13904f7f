/**
 * The one rule every command that writes a directory follows before any work: the output may
 * replace an existing path only when asked to (`overwrite`), and never one that is, contains or
 * lies inside one of the command's inputs (paths compared after resolving `..`, trailing slashes
 * and symbolic links).
 */
import { existsSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { FieldError } from '../util/errors.ts';

/** The absolute path with every symbolic link of its existing part resolved. */
function canonical(file: string): string {
  let existing = path.resolve(file);
  const rest: string[] = [];
  while (!existsSync(existing)) {
    const parent = path.dirname(existing);
    if (parent === existing) break;
    rest.unshift(path.basename(existing));
    existing = parent;
  }
  return path.join(existsSync(existing) ? realpathSync(existing) : existing, ...rest);
}

/** True when `inner` is `outer` or lies inside it. */
function isInside(inner: string, outer: string): boolean {
  const relative = path.relative(outer, inner);
  return relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative));
}

export interface OutputDirRequest {
  /** Replace an existing output. */
  overwrite?: boolean;
  /** Every file or directory the command reads. */
  inputs?: readonly (string | undefined)[];
  /** The request field that named the output (default `out`). */
  field?: string;
}

/** Checks `out` against the rule above and returns its absolute path; refusals are FieldErrors. */
export function checkOutputDir(out: string, request: OutputDirRequest = {}): string {
  const field = request.field ?? 'out';
  const target = path.resolve(out);
  const real = canonical(target);
  for (const input of request.inputs ?? []) {
    if (input === undefined) continue;
    const source = canonical(input);
    if (isInside(source, real) || isInside(real, source)) {
      throw new FieldError(field, `${target} ${isInside(source, real) ? 'holds' : 'lies inside'} the input ${input}; choose another output directory`);
    }
  }
  if (existsSync(target) && !request.overwrite) throw new FieldError(field, `${target} already exists; pass overwrite to replace it`);
  return target;
}
