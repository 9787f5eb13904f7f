/**
 * The `crepe` command as users run it: bin/crepe.js, which runs the compiled dist/. `npm test`
 * builds dist/ first (pretest); a test file run on its own after an edit to src/ would spawn stale
 * JavaScript, so there the first call checks that dist/ is at least as new as every source file.
 */
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from './shared.ts';

export const CREPE_BIN = path.join(REPO_ROOT, 'bin/crepe.js');

/** Newest (or oldest) modification time of the files under `dir` whose name ends in `suffix`. */
function mtimes(dir: string, suffix: string, pick: (a: number, b: number) => number, start: number): number {
  let result = start;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && entry.name.endsWith(suffix)) result = pick(result, statSync(path.join(entry.parentPath, entry.name)).mtimeMs);
  }
  return result;
}

/** Why dist/ cannot stand for the current src/ (missing, or older than a source file), or null when it can. */
export function distStaleness(): string | null {
  const dist = path.join(REPO_ROOT, 'dist');
  let oldestBuilt: number;
  try {
    oldestBuilt = mtimes(dist, '.js', Math.min, Infinity);
  } catch {
    return `${dist} is missing`;
  }
  const newestSource = mtimes(path.join(REPO_ROOT, 'src'), '.ts', Math.max, 0);
  return oldestBuilt >= newestSource ? null : 'dist/ is older than src/';
}

let checked = false;

/**
 * bin/crepe.js, after checking once per process that dist/ was built from the current src/.
 * Under `npm test` the check is left out: pretest has just built dist/, and an edit to src/ while
 * the suite runs must not fail the tests that start later.
 */
export function builtCrepeBin(): string {
  if (!checked && process.env.npm_lifecycle_event !== 'test') {
    const stale = distStaleness();
    if (stale) throw new Error(`${stale}: run \`npm run build\` (npm test does it first)`);
    checked = true;
  }
  return CREPE_BIN;
}
