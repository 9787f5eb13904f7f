/**
 * WinoGrande, as lm-evaluation-harness's `winogrande` (lm_eval/tasks/winogrande/default.yaml +
 * preprocess_winogrande.py, winogrande_xl validation = the v1.1 dev set), a partial evaluation:
 *   doc_to_text   the gold index (answer "1" → 0, "2" → 1)
 *   doc_to_choice one context per option: sentence up to the "_", then the option
 *   doc_to_target the sentence after the "_", stripped; metric acc.
 * So each choice is its own context and both share the continuation " " + target.
 * The local files are the original release: dev.jsonl ({qID, sentence, option1, option2,
 * answer}) and dev-labels.lst (1/2 per line), which must agree.
 */
import { TARGET_DELIMITER, fieldReader, jsonLines, readLabels, readTaskFile, type TaskDefinition } from './task.ts';

const FILE = 'winogrande/dev.jsonl';
const LABELS_FILE = 'winogrande/dev-labels.lst';

export const winogrande: TaskDefinition = {
  name: 'winogrande',
  files: [FILE, LABELS_FILE],
  metrics: ['acc'],
  load(dir) {
    const { file, text } = readTaskFile(dir, FILE, 'winogrande');
    const rows = jsonLines(file, text);
    const labels = readLabels(dir, LABELS_FILE, 'winogrande', rows.length, ['1', '2']);
    return rows.map(({ line, value }, i) => {
      const field = fieldReader(file, line, value);
      const sentence = field.string('sentence');
      const blank = sentence.indexOf('_');
      if (blank < 0) field.fail('expected the "sentence" to contain the blank "_"');
      if (value.answer !== undefined && String(value.answer) !== labels[i]) {
        field.fail(`"answer" is "${String(value.answer)}" but ${LABELS_FILE} line ${i + 1} says ${labels[i]}`);
      }
      const contexts = [field.string('option1'), field.string('option2')].map((option) => sentence.slice(0, blank) + option);
      const continuation = TARGET_DELIMITER + sentence.slice(blank + 1).trim();
      return { line, requests: contexts.map((context) => ({ context, continuation })), gold: Number(labels[i]) - 1, choices: contexts };
    });
  },
};
