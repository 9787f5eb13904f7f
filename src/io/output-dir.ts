/**
 * The one rule every command that writes a directory follows before any work: the output may
 * replace an existing path only when asked to (`overwrite`), and never one that is, contains or
 * lies inside one of the command's inputs (paths compared after resolving `..`, trailing slashes
 * and symbolic links) — nor may the work directory, the set-aside old output or the lock beside
 * it, which a run also creates and removes. `overwrite` replaces only an empty directory or one that crepe
 * wrote: every output directory carries a `.crepe-output` marker listing the files crepe put
 * there with their sizes (and the sha256 of those up to 16 MiB: model cards, configs, reports),
 * and a directory with anything else in it, or with a file changed since (a model card edited by
 * hand), is refused, so no user file or edit is ever deleted.
 */
import { existsSync, lstatSync, readdirSync, realpathSync, writeFileSync, type Stats } from 'node:fs';
import path from 'node:path';
import { FieldError, UserError, checkField } from '../util/errors.ts';
import { replaceDirectory } from './atomic.ts';
import { readInputJson } from './input-file.ts';
import { writingToSync } from './write-error.ts';
import { sha256File } from '../util/hash.ts';

/** The file that marks a directory as crepe's output, and lists what crepe wrote into it. */
export const OUTPUT_MARKER = '.crepe-output';

interface OutputMarker {
  tool: 'crepe';
  /** The command that wrote the directory (prune, search, convert). */
  command: string;
  /** The files crepe wrote, besides the marker. */
  files: string[];
  /** Each file as crepe left it; absent in markers of older versions. */
  stamps?: Record<string, FileStamp>;
}

/** A file's size, and the sha256 of a regular file up to STAMP_HASH_LIMIT bytes. */
interface FileStamp {
  bytes: number;
  sha256?: string;
}

/** Files up to this size are stamped with their hash: the ones a user edits by hand. */
const STAMP_HASH_LIMIT = 16 * 2 ** 20;

function stampOf(file: string): FileStamp {
  const stats = lstatSync(file);
  return stats.isFile() && stats.size <= STAMP_HASH_LIMIT ? { bytes: stats.size, sha256: sha256File(file) } : { bytes: stats.size };
}

/**
 * Paths a run on `target` creates, replaces or removes besides the output: its work directory, the
 * set-aside old output, the lock, and prune --auto's scratch proxy cache.
 */
export const outputSiblings = (target: string): string[] =>
  [`${target}.crepe-partial`, `${target}.crepe-old`, `${target}.crepe-lock`, `${target}.crepe-auto-cache`];

function lstatOrNull(file: string): Stats | null {
  try {
    return lstatSync(file);
  } catch {
    return null;
  }
}

/**
 * Why `target` (which exists) may not be replaced, or null when it may: it must be a real
 * directory (not a link) that is empty or holds only what its crepe marker lists.
 */
export function replaceProblem(target: string): string | null {
  const stats = lstatOrNull(target);
  if (!stats) return null;
  if (stats.isSymbolicLink()) return 'is a symbolic link, not a directory crepe wrote';
  if (!stats.isDirectory()) return 'is a file, not a directory crepe wrote';
  const entries = readdirSync(target);
  if (entries.length === 0) return null;
  if (!entries.includes(OUTPUT_MARKER)) return `holds files crepe did not write (no ${OUTPUT_MARKER} marker), e.g. ${entries.sort()[0]}`;
  let marker: OutputMarker;
  try {
    marker = readInputJson(path.join(target, OUTPUT_MARKER), 'json') as OutputMarker;
  } catch {
    return `has an unreadable ${OUTPUT_MARKER} marker`;
  }
  const written = new Set(Array.isArray(marker?.files) ? marker.files : []);
  const foreign = entries.filter((name) => name !== OUTPUT_MARKER && !written.has(name)).sort();
  if (foreign.length > 0) return `holds ${foreign[0]}${foreign.length > 1 ? ` and ${foreign.length - 1} more` : ''}, which crepe did not write there`;
  const stamps = marker.stamps && typeof marker.stamps === 'object' ? marker.stamps : {};
  const changed = entries.filter((name) => {
    const stamp = stamps[name];
    if (!stamp || typeof stamp !== 'object') return false;
    const now = stampOf(path.join(target, name));
    return now.bytes !== stamp.bytes || now.sha256 !== stamp.sha256;
  }).sort();
  if (changed.length > 0) return `holds ${changed[0]}${changed.length > 1 ? ` and ${changed.length - 1} more` : ''}, changed since crepe wrote it`;
  return null;
}

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

/** True when path `inner` is `outer` or lies inside it, after resolving `..`, trailing slashes and symbolic links. */
export function pathIsInside(inner: string, outer: string): boolean {
  return isInside(canonical(inner), canonical(outer));
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
  // An empty name would resolve to the working directory.
  checkField(typeof out === 'string' && out.trim() !== '', field, 'must name an output directory');
  const target = path.resolve(out);
  const real = canonical(target);
  for (const input of request.inputs ?? []) {
    if (input === undefined) continue;
    const source = canonical(input);
    if (isInside(source, real) || isInside(real, source)) {
      throw new FieldError(field, `${target} ${isInside(source, real) ? 'holds' : 'lies inside'} the input ${input}; choose another output directory`);
    }
    for (const sibling of outputSiblings(real)) {
      if (isInside(source, sibling) || isInside(sibling, source)) {
        throw new FieldError(field, `${target}: crepe would replace ${sibling}, which ${isInside(source, sibling) ? 'holds' : 'lies inside'} the input ${input}; choose another output directory`);
      }
    }
  }
  if (lstatOrNull(target)) {
    // What overwrite could not replace is refused as such, with or without it: advice to pass it would be refused next.
    const problem = replaceProblem(target);
    if (problem) {
      throw new FieldError(field, `${target} ${problem}; overwrite replaces only an empty directory or one crepe wrote — choose another output or remove it yourself`);
    }
    if (!request.overwrite) throw new FieldError(field, `${target} already exists; pass overwrite to replace it`);
  }
  return target;
}

/** Writes the marker of `dir` (a finished output), listing every file in it. */
export function markOutput(dir: string, command: string): void {
  const files = readdirSync(dir).filter((name) => name !== OUTPUT_MARKER).sort();
  const stamps = Object.fromEntries(files.map((name) => [name, stampOf(path.join(dir, name))]));
  const marker: OutputMarker = { tool: 'crepe', command, files, stamps };
  const file = path.join(dir, OUTPUT_MARKER);
  writingToSync(file, () => writeFileSync(file, `${JSON.stringify(marker, null, 2)}\n`));
}

/**
 * Publishes the finished directory `finished` at `target`: marks it as crepe's (the `command` that
 * wrote it), then moves it into place, replacing an existing `target` only now. The target is
 * checked again, as it may have appeared or changed since the run started; a refusal leaves
 * `finished` where it is and says so.
 */
export function publishOutputDir(finished: string, target: string, opts: { command: string; overwrite?: boolean }): void {
  const exists = lstatOrNull(target) !== null;
  const problem = !exists ? null : !opts.overwrite ? 'appeared while crepe ran' : replaceProblem(target);
  if (problem) throw new UserError(`cannot replace ${target}: it ${problem}; the finished output is in ${finished}`);
  const command = opts.command;
  markOutput(finished, command);
  replaceDirectory(finished, target);
}
