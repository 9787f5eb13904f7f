/**
 * Failures of the file system while crepe writes (a full disk, a read-only mount, no permission)
 * are the user's to fix, so they become one line that names the path being written and the cause
 * — Node's own message ("ENOSPC: no space left on device, write") names neither the file nor,
 * for some calls, the right cause (a recursive mkdir on a read-only mount reports ENOENT).
 */
import { existsSync, mkdirSync, rmdirSync } from 'node:fs';
import path from 'node:path';
import { UserError } from '../util/errors.ts';

const CAUSES: Readonly<Record<string, string>> = {
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EFBIG: 'file too large for the file system',
  EROFS: 'read-only file system',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EIO: 'input/output error',
  ENOTDIR: 'a path component is not a directory',
  EISDIR: 'is a directory',
  EEXIST: 'exists and is not a directory',
  ENAMETOOLONG: 'file name too long',
  EMFILE: 'too many open files',
  ENOENT: 'a directory on its path does not exist',
};

/** A write that the file system refused; `path` is what was being written. */
export class WriteError extends UserError {
  constructor(
    readonly path: string,
    readonly code: string,
  ) {
    super(`cannot write ${path}: ${CAUSES[code] ?? code} (${code})`);
    this.name = 'WriteError';
  }
}

/** True when `code` names a failure of the file system that WriteError reports. */
export function isWriteFailureCode(code: unknown): code is string {
  return typeof code === 'string' && Object.hasOwn(CAUSES, code);
}

/**
 * `error` as a WriteError naming `filePath` when it is a file-system failure; any other error
 * (a bug, a UserError, a WriteError that already names its path) is returned unchanged.
 */
export function asWriteError(error: unknown, filePath: string): unknown {
  if (error instanceof UserError) return error;
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return isWriteFailureCode(code) ? new WriteError(filePath, code) : error;
}

/** Runs `write`, reporting a file-system failure as a WriteError naming `filePath`. */
export async function writingTo<T>(filePath: string, write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (error) {
    throw asWriteError(error, filePath);
  }
}

/** The synchronous form of `writingTo`. */
export function writingToSync<T>(filePath: string, write: () => T): T {
  try {
    return write();
  } catch (error) {
    throw asWriteError(error, filePath);
  }
}

/**
 * Creates `dir` and any missing parents, and returns the first directory it created (undefined
 * when `dir` existed). A refusal names the first directory that could not be created and the true
 * cause (Node's recursive mkdir reports a read-only mount as ENOENT), and leaves nothing created.
 */
export function makeDirectory(dir: string): string | undefined {
  try {
    return mkdirSync(dir, { recursive: true });
  } catch (error) {
    // Retry the first missing component alone: its own error is the real cause.
    let first = path.resolve(dir);
    while (!existsSync(path.dirname(first)) && path.dirname(first) !== first) first = path.dirname(first);
    try {
      mkdirSync(first);
    } catch (inner) {
      throw asWriteError(inner, first);
    }
    // It could be made (a later component failed, e.g. a name too long): it is not left behind.
    rmdirSync(first);
    throw asWriteError(error, dir);
  }
}

/**
 * Removes `dir` and its parents up to `created` (a directory `makeDirectory` created for it), each
 * only while it is empty: what a failed run made on the way to its output, and nothing else.
 */
export function removeCreatedDirectories(dir: string, created: string | undefined): void {
  if (created === undefined) return;
  const top = path.resolve(created);
  for (let current = path.resolve(dir); ; current = path.dirname(current)) {
    const relative = path.relative(top, current);
    if (relative.startsWith('..') || path.isAbsolute(relative)) return;
    try {
      rmdirSync(current);
    } catch {
      return; // not empty (the output or another run's files are in it) or already gone
    }
    if (current === top) return;
  }
}
