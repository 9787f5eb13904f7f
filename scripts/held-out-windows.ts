/**
 * Held-out evaluation windows cut from C4 documents that calibration does not draw: for the
 * scripts that choose or search configurations on held-out C4 (select-defaults.ts,
 * hillclimb-seeds.ts).
 */
import { readJsonlDocuments } from '../src/data/text-sources.ts';

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
