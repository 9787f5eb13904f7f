/**
 * BoolQ, as lm-evaluation-harness's `boolq` (lm_eval/tasks/super_glue/boolq/default.yaml):
 *   doc_to_text   "{{passage}}\nQuestion: {{question}}?\nAnswer:"
 *   doc_to_choice ["no", "yes"]; doc_to_target label (0 = no, 1 = yes); metric acc.
 * The local file is llm-foundry's conversion of the SuperGLUE validation split, whose query is
 * "Passage: {passage}\nQuestion: {question}?": the prompt is the query without its "Passage: "
 * prefix, plus "\nAnswer:". Its passages lack the SuperGLUE copy's "Title -- " prefix, and the
 * harness's prompts on this file lack it too.
 */
import { loadLlmFoundry, sharedContextDoc, type TaskDefinition } from './task.ts';

const FILE = 'boolq/boolq_validation.llmfoundry.jsonl';
const PREFIX = 'Passage: ';
const CHOICES = ['no', 'yes'];

export const boolq: TaskDefinition = {
  name: 'boolq',
  files: [FILE],
  metrics: ['acc'],
  load: (dir) => loadLlmFoundry(dir, FILE, 'boolq', (query, choices, gold, fail, line) => {
    if (!query.startsWith(PREFIX) || !query.includes('\nQuestion: ')) fail('expected a query "Passage: …\\nQuestion: …"');
    if (choices.join('\n') !== CHOICES.join('\n')) fail('expected choices ["no", "yes"]');
    return sharedContextDoc(line, `${query.slice(PREFIX.length)}\nAnswer:`, CHOICES, gold);
  }),
};
