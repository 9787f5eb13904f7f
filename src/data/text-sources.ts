/**
 * Text sources for calibration and evaluation: plain UTF-8 text files, WikiText raw files (turned
 * into the exact string the reference repositories tokenise), and JSON Lines documents (C4).
 */
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { UserError, checkField } from '../util/errors.ts';
import { INPUT_KINDS, decodeUtf8, formatBytes, parseJson, readInputFile } from '../io/input-file.ts';

/** Reads a whole file as strict UTF-8 (a BOM is kept as U+FEFF, as Python's 'utf-8' codec does). */
export function readTextFile(filePath: string): string {
  return decodeUtf8(readInputFile(filePath, 'text'), filePath);
}

/**
 * The text the reference repositories evaluate on for WikiText: Hugging Face's `wikitext` dataset
 * has one row per line of the raw file; a whitespace-only line is the row "", every other row keeps
 * its trailing "\n"; the rows are joined with "\n\n" (ALGORITHMS.md §1.2, PROVENANCE.md §2.1).
 */
export function hfWikitextText(raw: string): string {
  const lines = raw.split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop(); // the file's final "\n"
  const rows = lines.map((line) => (line.trim() === '' ? '' : line + '\n'));
  return rows.join('\n\n');
}

/** True for WikiText raw files (`wiki.test.raw`, `wiki.train.raw`, …), which get the HF row rule. */
export function isWikitextRawFile(filePath: string): boolean {
  return /^wiki\..+\.raw$/.test(path.basename(filePath));
}

/** Evaluation text: the HF WikiText rule for wiki.*.raw files, the file's text as-is otherwise. */
export function readEvalText(filePath: string): string {
  const text = readTextFile(filePath);
  return isWikitextRawFile(filePath) ? hfWikitextText(text) : text;
}

/**
 * JSON Lines files (`.jsonl`, `.json` as Hugging Face datasets names them, each optionally gzipped:
 * C4 ships `.json.gz`) are documents; anything else is one text.
 */
export function isDocumentsFile(filePath: string): boolean {
  return /\.jsonl?(\.gz)?$/.test(filePath);
}

/**
 * The rule for a file read as one plain text (calibration, evaluation): refused, naming `field`,
 * when it holds no text or holds JSON Lines documents (by its name or its first line).
 * `documentsHint` completes "<file>: holds JSON Lines documents" with what the caller's use makes
 * of them and what to do.
 */
export function checkPlainText(field: string, filePath: string, text: string, documentsHint: string): void {
  checkField(text.trim() !== '', field, `${filePath}: holds no text`);
  checkField(!isDocumentsFile(filePath) && !looksLikeJsonLines(text), field, `${filePath}: holds JSON Lines documents${documentsHint}`);
}

/**
 * True when `text` reads as JSON Lines documents: its first non-blank line is a JSON object with a
 * string "text" field (a C4 shard under another name). Read as plain text, its JSON syntax, URLs
 * and timestamps would be calibrated or measured on.
 */
export function looksLikeJsonLines(text: string): boolean {
  const first = /^\s*(\S[^\n]*)/.exec(text)?.[1]?.replace(/^\ufeff/, '');
  if (!first?.startsWith('{')) return false;
  try {
    const record = JSON.parse(first) as { text?: unknown } | null;
    return typeof record === 'object' && record !== null && typeof record.text === 'string';
  } catch {
    return false;
  }
}

/**
 * The `text` field of every document of a JSON Lines file (optionally gzip-compressed, as the C4
 * shards are distributed). Blank lines are skipped. Lines are split on bytes, so files larger than
 * a JavaScript string can hold still load.
 */
export function readJsonlDocuments(filePath: string): string[] {
  let bytes = readInputFile(filePath, 'documents');
  if (filePath.endsWith('.gz')) {
    const { limit, what } = INPUT_KINDS.documents;
    try {
      bytes = gunzipSync(bytes, { maxOutputLength: limit });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
        throw new UserError(`${filePath}: decompresses to more than the ${formatBytes(limit)} limit for a ${what}`);
      }
      throw new UserError(`${filePath}: not a valid gzip file (${(err as Error).message})`);
    }
  }
  const documents: string[] = [];
  let lineStart = 0;
  for (let lineNumber = 1; lineStart < bytes.length; lineNumber++) {
    let lineEnd = bytes.indexOf(0x0a, lineStart);
    if (lineEnd < 0) lineEnd = bytes.length;
    const line = decodeUtf8(bytes.subarray(lineStart, lineEnd), `${filePath} line ${lineNumber}`);
    lineStart = lineEnd + 1;
    if (line.trim() === '') continue;
    const record = parseJson(line, `${filePath} line ${lineNumber}`);
    const text = typeof record === 'object' && record !== null ? (record as { text?: unknown }).text : undefined;
    if (typeof text !== 'string') {
      throw new UserError(`${filePath} line ${lineNumber}: expected a JSON object with a string field "text"`);
    }
    documents.push(text);
  }
  return documents;
}
