/**
 * PIQA, as lm-evaluation-harness's `piqa` (lm_eval/tasks/piqa/piqa.yaml, validation split):
 *   doc_to_text   "Question: {{goal}}\nAnswer:"
 *   doc_to_choice "{{[sol1, sol2]}}"; doc_to_target label; metrics acc, acc_norm.
 * The local files are the original release: valid.jsonl ({goal, sol1, sol2}) and
 * valid-labels.lst (0/1, one per line, aligned with the documents).
 */
import { fieldReader, jsonLines, readLabels, readTaskFile, sharedContextDoc, type TaskDefinition } from './task.ts';

const FILE = 'piqa/valid.jsonl';
const LABELS_FILE = 'piqa/valid-labels.lst';

export const piqa: TaskDefinition = {
  name: 'piqa',
  files: [FILE, LABELS_FILE],
  metrics: ['acc', 'acc_norm'],
  load(dir) {
    const { file, text } = readTaskFile(dir, FILE, 'piqa');
    const rows = jsonLines(file, text);
    const labels = readLabels(dir, LABELS_FILE, 'piqa', rows.length, ['0', '1']);
    return rows.map(({ line, value }, i) => {
      const field = fieldReader(file, line, value);
      return sharedContextDoc(line, `Question: ${field.string('goal')}\nAnswer:`, [field.string('sol1'), field.string('sol2')], Number(labels[i]));
    });
  },
};
