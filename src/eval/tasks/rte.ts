/**
 * RTE, as lm-evaluation-harness's `rte` (lm_eval/tasks/glue/rte/default.yaml, GLUE validation):
 *   doc_to_text   "{{sentence1}}\nQuestion: {{sentence2}} True or False?\nAnswer:"
 *   doc_to_choice ["True", "False"]; doc_to_target label (0 = entailment, 1 = not_entailment); metric acc.
 * The local file is the SuperGLUE RTE validation file (the same 277 pairs): premise = sentence1,
 * hypothesis = sentence2, label "entailment" / "not_entailment".
 */
import { fieldReader, jsonLines, readTaskFile, sharedContextDoc, type TaskDefinition } from './task.ts';

const FILE = 'rte/val.jsonl';
const LABELS = ['entailment', 'not_entailment'];

export const rte: TaskDefinition = {
  name: 'rte',
  files: [FILE],
  metrics: ['acc'],
  load(dir) {
    const { file, text } = readTaskFile(dir, FILE, 'rte');
    return jsonLines(file, text).map(({ line, value }) => {
      const field = fieldReader(file, line, value);
      const label = field.string('label');
      const gold = LABELS.indexOf(label);
      if (gold < 0) field.fail(`expected "label" to be "entailment" or "not_entailment", got "${label}"`);
      const context = `${field.string('premise')}\nQuestion: ${field.string('hypothesis')} True or False?\nAnswer:`;
      return sharedContextDoc(line, context, ['True', 'False'], gold);
    });
  },
};
