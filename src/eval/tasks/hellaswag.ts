/**
 * HellaSwag, as lm-evaluation-harness's `hellaswag` (lm_eval/tasks/hellaswag/hellaswag.yaml +
 * utils.py, validation split):
 *   query   preprocess(activity_label + ": " + ctx_a + " " + ctx_b.capitalize())
 *   choices preprocess(ending) for the four endings; target label; metrics acc, acc_norm
 * with preprocess = strip, " [title]" → ". ", drop every "[…]", "  " → " ".
 * The local file is llama.cpp's text form: per item six lines — activity label and context already
 * joined and cleaned by llama.cpp's own preprocessing (from the jsonl's `ctx`, so ctx_b is not
 * capitalised), the gold label 0–3, the four endings. The harness's preprocess is applied again to
 * every line: it leaves llama.cpp's output unchanged except where llama.cpp kept bracketed text
 * (14 lines), which the harness drops.
 */
import { UserError } from '../../util/errors.ts';
import { numberedLines, readTaskFile, sharedContextDoc, type TaskDefinition } from './task.ts';

const FILE = 'hellaswag/hellaswag_val_full.txt';
const LINES_PER_ITEM = 6;

/** lm-eval's hellaswag preprocess. */
export function preprocess(text: string): string {
  return text.trim().replaceAll(' [title]', '. ').replace(/\[.*?\]/g, '').replaceAll('  ', ' ');
}

export const hellaswag: TaskDefinition = {
  name: 'hellaswag',
  files: [FILE],
  metrics: ['acc', 'acc_norm'],
  load(dir) {
    const { file, text } = readTaskFile(dir, FILE, 'hellaswag');
    const lines = numberedLines(text);
    if (lines.length % LINES_PER_ITEM !== 0) {
      throw new UserError(`${file}: ${lines.length} lines is not a multiple of ${LINES_PER_ITEM} (context, label, four endings per item)`);
    }
    const docs = [];
    for (let at = 0; at < lines.length; at += LINES_PER_ITEM) {
      const label = lines[at + 1];
      if (!/^[0-3]$/.test(label.text.trim())) throw new UserError(`${file}:${label.line}: expected the gold label 0, 1, 2 or 3, got "${label.text}"`);
      const endings = lines.slice(at + 2, at + LINES_PER_ITEM).map((ending) => preprocess(ending.text));
      docs.push(sharedContextDoc(lines[at].line, preprocess(lines[at].text), endings, Number(label.text.trim())));
    }
    return docs;
  },
};
