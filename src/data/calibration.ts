/**
 * Calibration windows, drawn exactly as the reference repositories draw them (ALGORITHMS.md §1.1),
 * with CPython's Mersenne Twister so the same seed gives the same windows:
 *
 *  - documents (C4 JSON Lines): repeat `d = randint(0, n_docs − 1)` until document d has more than
 *    `seqlen` tokens, then `start = randint(0, T − seqlen − 1)`; one window per accepted draw;
 *  - one text (WikiText, PTB, any plain file), tokenised whole: `start = randint(0, T − seqlen − 1)`
 *    per sample, as the reference `get_wikitext2`/`get_ptb` trainloaders do.
 */
import { endianness, totalmem } from 'node:os';
import { createHash } from 'node:crypto';
import { PyRandom } from './mt19937.ts';
import { checkPlainText, isDocumentsFile, readEvalText, readJsonlDocuments } from './text-sources.ts';
import { UserError, check, checkField } from '../util/errors.ts';
import { checkFunction, checkKnownFields, describeValue } from '../util/fields.ts';

/** Tokenises one text; the result starts with BOS, as HF's slow Llama tokenizer does by default. */
export type Encode = (text: string) => Int32Array;

export interface WindowOptions {
  nsamples: number;
  seqlen: number;
  seed: number;
  /** Called after each accepted window. */
  onProgress?: (samplesDone: number, nsamples: number) => void;
  /** Names the data in error messages (usually the file path). */
  source?: string;
}

export interface DocumentWindows {
  windows: Int32Array[];
  /** (document index, window start) of each window, in order. */
  draws: Array<[doc: number, start: number]>;
}

export interface TextWindows {
  windows: Int32Array[];
  starts: number[];
}

/** The C4 protocol: draw documents until one is long enough, then a window inside it. */
export function sampleC4Windows(documents: readonly string[], encode: Encode, opts: WindowOptions): DocumentWindows {
  validateOptions(opts, WINDOW_OPTIONS);
  checkEncode(encode);
  const { nsamples, seqlen } = opts;
  const source = opts.source ?? 'calibration documents';
  checkField(Array.isArray(documents), 'documents', () => `must be a list of document texts, got ${describeValue(documents)}`);
  const docCount = documents.length;
  check(docCount > 0, `${source}: no documents`);

  // Each document is tokenised at most once: long ones keep their tokens (they may be drawn again),
  // short ones only their rejection. When every document is known to be too short, no draw can succeed.
  const longDocTokens = new Map<number, Int32Array>();
  const isShort = new Uint8Array(docCount);
  let shortCount = 0;

  const rng = new PyRandom(opts.seed);
  const windows: Int32Array[] = [];
  const draws: Array<[number, number]> = [];
  for (let sample = 0; sample < nsamples; sample++) {
    let doc: number;
    let tokens: Int32Array | undefined;
    for (;;) {
      doc = rng.randint(0, docCount - 1);
      tokens = longDocTokens.get(doc);
      if (tokens) break;
      if (isShort[doc]) continue;
      checkField(typeof documents[doc] === 'string', `documents[${doc}]`, () => `must be a document's text, got ${describeValue(documents[doc])}`);
      const encoded = encode(documents[doc]);
      if (encoded.length > seqlen) {
        longDocTokens.set(doc, encoded);
        tokens = encoded;
        break;
      }
      isShort[doc] = 1;
      shortCount++;
      if (shortCount === docCount) {
        throw new UserError(
          `${source}: no document has more than seqlen ${seqlen} tokens (all ${docCount} checked); ` +
            'use a smaller seqlen or longer documents',
        );
      }
    }
    const start = rng.randint(0, tokens.length - seqlen - 1);
    windows.push(tokens.slice(start, start + seqlen));
    draws.push([doc, start]);
    opts.onProgress?.(sample + 1, nsamples);
  }
  return { windows, draws };
}

/** Random windows from one tokenised text. */
export function sampleTextWindows(tokens: Int32Array, opts: WindowOptions): TextWindows {
  validateOptions(opts, WINDOW_OPTIONS);
  // A plain array would give plain-array windows, which the engines cannot take.
  checkField(tokens instanceof Int32Array, 'tokens', () => `must be an Int32Array of token ids, got ${describeValue(tokens)}`);
  const { nsamples, seqlen } = opts;
  check(
    tokens.length > seqlen,
    () =>
      `${opts.source ?? 'calibration text'}: ${tokens.length} tokens is too short for one window of ` +
      `seqlen ${seqlen} (needs at least ${seqlen + 1})`,
  );
  const rng = new PyRandom(opts.seed);
  const windows: Int32Array[] = [];
  const starts: number[] = [];
  for (let sample = 0; sample < nsamples; sample++) {
    const start = rng.randint(0, tokens.length - seqlen - 1);
    windows.push(tokens.slice(start, start + seqlen));
    starts.push(start);
    opts.onProgress?.(sample + 1, nsamples);
  }
  return { windows, starts };
}

export interface CalibrationSet {
  kind: 'documents' | 'text';
  windows: Int32Array[];
  /** (document index, start) per window; for a single text the document index is 0. */
  draws: Array<[doc: number, start: number]>;
}

export interface CalibrationFileOptions extends Omit<WindowOptions, 'source'> {
  /** The model's hidden size: with it, windows whose activations cannot fit in memory are refused first. */
  hiddenSize?: number;
}

/**
 * Reads a calibration file and draws its windows. A text file is tokenised whole (one BOS);
 * wiki.*.raw files get the Hugging Face row rule first (see text-sources.ts).
 *
 * Before anything is drawn, `nsamples` is held to what the file can provide: a text of T tokens
 * has T − seqlen distinct windows, and documents at most Σ (bytes + 2 − seqlen) — every token
 * covers at least one byte, plus BOS and a leading-space piece. With `hiddenSize`, the windows'
 * activations (two copies of nsamples × seqlen × hidden float32 while a layer runs) must also fit in
 * this machine's memory.
 */
export function sampleCalibrationFile(filePath: string, encode: Encode, opts: CalibrationFileOptions): CalibrationSet {
  validateOptions(opts, [...WINDOW_OPTIONS.filter((name) => name !== 'source'), 'hiddenSize']);
  checkEncode(encode);
  const { hiddenSize, ...windowOptions } = opts;
  if (hiddenSize !== undefined) checkActivationMemory(opts.nsamples, opts.seqlen, hiddenSize);
  if (isDocumentsFile(filePath)) {
    const documents = readJsonlDocuments(filePath);
    checkField(documents.length > 0, 'calib', `${filePath}: holds no documents (expected JSON Lines: one object with a "text" field per line)`);
    let bound = 0;
    for (const document of documents) bound += Math.max(0, Buffer.byteLength(document, 'utf8') + 2 - opts.seqlen);
    checkWindowSupply(opts.nsamples, opts.seqlen, bound, `${filePath} (${documents.length} documents)`);
    const { windows, draws } = sampleC4Windows(documents, encode, { ...windowOptions, source: filePath });
    return { kind: 'documents', windows, draws };
  }
  const text = readEvalText(filePath);
  checkPlainText('calib', filePath, text, ' (line 1 is an object with a "text" field) but would be read as plain text, JSON syntax included, as its name does not end in .jsonl or .json; rename it');
  const tokens = encode(text);
  if (tokens.length > opts.seqlen) checkWindowSupply(opts.nsamples, opts.seqlen, tokens.length - opts.seqlen, `${filePath} (${tokens.length} tokens)`);
  const { windows, starts } = sampleTextWindows(tokens, { ...windowOptions, source: filePath });
  return { kind: 'text', windows, draws: starts.map((start) => [0, start]) };
}

function checkWindowSupply(nsamples: number, seqlen: number, distinct: number, source: string): void {
  checkField(
    nsamples <= distinct,
    'nsamples',
    () => `${nsamples}: ${source} can provide at most ${distinct} distinct windows of seqlen ${seqlen} tokens; ask for fewer samples or give more calibration text`,
  );
}

/** Refuses calibration activations (two float32 copies of nsamples × seqlen × hidden) larger than this machine's memory. */
export function checkActivationMemory(nsamples: number, seqlen: number, hiddenSize: number): void {
  const bytes = 2 * nsamples * seqlen * hiddenSize * 4;
  const memory = totalmem();
  const gib = (n: number) => `${(n / 2 ** 30).toFixed(1)} GiB`;
  checkField(
    bytes <= memory,
    'nsamples',
    () => `${nsamples} × seqlen ${seqlen}: the calibration activations need ${gib(bytes)} (2 × nsamples × seqlen × hidden ${hiddenSize} × 4 bytes), more than this machine's ${gib(memory)} of memory`,
  );
}

/** sha256 over the int32 little-endian token ids of all windows, in order. */
export function windowsSha256(windows: readonly Int32Array[]): string {
  // A plain array has no buffer: it hashed as no bytes at all.
  checkField(Array.isArray(windows) && windows.every((window) => window instanceof Int32Array), 'windows', () => `must be a list of Int32Arrays, got ${describeValue(windows)}`);
  const hash = createHash('sha256');
  const littleEndian = endianness() === 'LE';
  for (const window of windows) {
    if (littleEndian) {
      hash.update(new Uint8Array(window.buffer, window.byteOffset, window.byteLength));
    } else {
      const bytes = Buffer.alloc(window.byteLength);
      window.forEach((id, i) => bytes.writeInt32LE(id, 4 * i));
      hash.update(bytes);
    }
  }
  return hash.digest('hex');
}

const WINDOW_OPTIONS: readonly string[] = ['nsamples', 'seqlen', 'seed', 'onProgress', 'source'];

/** The options object: its known fields (`known`) only, and whole numbers where they must be. */
function validateOptions(opts: WindowOptions, known: readonly string[]): void {
  checkKnownFields(opts, '', known);
  checkField(Number.isSafeInteger(opts.nsamples) && opts.nsamples >= 1, 'nsamples', () => `must be a positive integer, got ${describeValue(opts.nsamples)}`);
  checkField(Number.isSafeInteger(opts.seqlen) && opts.seqlen >= 1, 'seqlen', () => `must be a positive integer, got ${describeValue(opts.seqlen)}`);
  checkField(Number.isSafeInteger(opts.seed), 'seed', () => `must be an integer, got ${describeValue(opts.seed)}`);
  checkFunction('onProgress', opts.onProgress);
}

const checkEncode = (encode: unknown): void =>
  checkFunction('encode', encode, { optional: false, what: 'a function from text to token ids' });
