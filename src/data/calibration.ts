/**
 * Calibration windows, drawn exactly as the reference repositories draw them (ALGORITHMS.md §1.1),
 * with CPython's Mersenne Twister so the same seed gives the same windows:
 *
 *  - documents (C4 JSON Lines): repeat `d = randint(0, n_docs − 1)` until document d has more than
 *    `seqlen` tokens, then `start = randint(0, T − seqlen − 1)`; one window per accepted draw;
 *  - one text (WikiText, PTB, any plain file), tokenised whole: `start = randint(0, T − seqlen − 1)`
 *    per sample, as the reference `get_wikitext2`/`get_ptb` trainloaders do.
 */
import { endianness } from 'node:os';
import { createHash } from 'node:crypto';
import { PyRandom } from './mt19937.ts';
import { readEvalText, readJsonlDocuments } from './text-sources.ts';
import { UserError, check } from '../util/errors.ts';

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
  validateOptions(opts);
  const { nsamples, seqlen } = opts;
  const source = opts.source ?? 'calibration documents';
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
          `${source}: no document has more than --seqlen ${seqlen} tokens (all ${docCount} checked); ` +
            'use a smaller --seqlen or longer documents',
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
  validateOptions(opts);
  const { nsamples, seqlen } = opts;
  check(
    tokens.length > seqlen,
    () =>
      `${opts.source ?? 'calibration text'}: ${tokens.length} tokens is too short for one window of ` +
      `--seqlen ${seqlen} (needs at least ${seqlen + 1})`,
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

/** JSON Lines files (`.jsonl`, `.jsonl.gz`, `.json.gz` as C4 ships) are documents; anything else is one text. */
export function isDocumentsFile(filePath: string): boolean {
  return /\.jsonl(\.gz)?$|\.json\.gz$/.test(filePath);
}

/**
 * Reads a calibration file and draws its windows. A text file is tokenised whole (one BOS);
 * wiki.*.raw files get the Hugging Face row rule first (see text-sources.ts).
 */
export function sampleCalibrationFile(
  filePath: string,
  encode: Encode,
  opts: Omit<WindowOptions, 'source'>,
): CalibrationSet {
  if (isDocumentsFile(filePath)) {
    const { windows, draws } = sampleC4Windows(readJsonlDocuments(filePath), encode, { ...opts, source: filePath });
    return { kind: 'documents', windows, draws };
  }
  const { windows, starts } = sampleTextWindows(encode(readEvalText(filePath)), { ...opts, source: filePath });
  return { kind: 'text', windows, draws: starts.map((start) => [0, start]) };
}

/** sha256 over the int32 little-endian token ids of all windows, in order. */
export function windowsSha256(windows: readonly Int32Array[]): string {
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

function validateOptions(opts: WindowOptions): void {
  check(Number.isSafeInteger(opts.nsamples) && opts.nsamples >= 1, `--nsamples must be a positive integer, got ${opts.nsamples}`);
  check(Number.isSafeInteger(opts.seqlen) && opts.seqlen >= 1, `--seqlen must be a positive integer, got ${opts.seqlen}`);
  check(Number.isSafeInteger(opts.seed), `--seed must be an integer, got ${opts.seed}`);
}
