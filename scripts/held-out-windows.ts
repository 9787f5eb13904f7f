/**
 * Held-out evaluation windows cut from C4 documents that calibration does not draw: for the
 * scripts that choose or search configurations on held-out text (select-defaults.ts,
 * hillclimb-seeds.ts); WikiText-2 validation's and other texts' windows, and the per-text split of
 * one evaluation of several texts, for the same scripts.
 */
import { readFileSync } from 'node:fs';
import { hfWikitextText, readJsonlDocuments } from '../src/data/text-sources.ts';
import { sha256Bytes } from '../src/util/hash.ts';
import { mean } from '../src/util/stats.ts';

/**
 * `count` non-overlapping windows of `seqlen` tokens from the starts of the documents of the JSONL
 * file `file` that are not in `excluded`, in file order, at most `perDocument` from each; with the
 * documents they come from. Throws when the documents run out first.
 */
export function heldOutWindows(
  file: string, encode: (text: string) => Int32Array, excluded: ReadonlySet<number>,
  opts: { count: number; seqlen: number; perDocument: number },
): { windows: Int32Array[]; documents: number[] } {
  const documents = readJsonlDocuments(file);
  const windows: Int32Array[] = [];
  const used: number[] = [];
  for (let doc = 0; doc < documents.length && windows.length < opts.count; doc++) {
    if (excluded.has(doc)) continue;
    const tokens = encode(documents[doc]);
    const n = Math.min(opts.perDocument, Math.floor(tokens.length / opts.seqlen), opts.count - windows.length);
    for (let i = 0; i < n; i++) windows.push(tokens.slice(i * opts.seqlen, (i + 1) * opts.seqlen));
    if (n > 0) used.push(doc);
  }
  if (windows.length < opts.count) throw new Error(`held-out C4: only ${windows.length} of ${opts.count} windows`);
  return { windows, documents: used };
}

/**
 * WikiText-2 validation, the Wikipedia held-out text of the defaults' selection and of the climbs
 * that feed it. The raw file is not staged in ../shared/data; the `<unk>`-tokenized one is public
 * (pytorch/examples, word_language_model/data/wikitext-2/valid.txt) and has the raw file's lines,
 * with rare words as `<unk>`, so it is read as the test file is: its lines as Hugging Face rows
 * joined with "\n\n".
 */
export const WIKITEXT_VALID = {
  source: 'pytorch/examples word_language_model/data/wikitext-2/valid.txt, git blob eec944eb2d9e46061cd34a6913528797db6842fc (WikiText-2 validation, <unk>-tokenized)',
  sha256: 'f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8',
  /** The selection scores windows 0…299 of 256 tokens; the climbs take theirs after them. */
  selectionWindows: 300,
};

/** Windows `from`…`from + count − 1` of `seqlen` tokens of WikiText-2 validation (`file`, checked by its sha256). */
export function wikitextValidWindows(
  file: string, encode: (text: string) => Int32Array, opts: { from: number; count: number; seqlen: number },
): Int32Array[] {
  const bytes = readFileSync(file);
  const sha = sha256Bytes(bytes);
  if (sha !== WIKITEXT_VALID.sha256) throw new Error(`${file}: sha256 ${sha}, expected ${WIKITEXT_VALID.sha256} (${WIKITEXT_VALID.source})`);
  return tokenWindows(encode(hfWikitextText(bytes.toString('utf8'))), opts, file);
}

/** Non-overlapping windows `from`…`from + count − 1` of `seqlen` tokens of `tokens`; `label` names the text when it is too short. */
export function tokenWindows(tokens: Int32Array, opts: { from: number; count: number; seqlen: number }, label: string): Int32Array[] {
  const { from, count, seqlen } = opts;
  if ((from + count) * seqlen > tokens.length) throw new Error(`${label}: ${Math.floor(tokens.length / seqlen)} windows of ${seqlen}, not ${from} + ${count}`);
  return Array.from({ length: count }, (_, i) => tokens.subarray((from + i) * seqlen, (from + i + 1) * seqlen));
}

/**
 * The mean of `windowNll` over consecutive segments of `counts` windows: for several texts in one
 * evaluation (their windows concatenated in that order), each text's log PPL.
 */
export function segmentMeans(windowNll: readonly number[], counts: readonly number[]): number[] {
  let start = 0;
  return counts.map((n) => mean(windowNll.slice(start, (start += n))));
}
