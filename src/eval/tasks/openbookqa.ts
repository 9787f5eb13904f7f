/**
 * OpenBookQA, as lm-evaluation-harness's `openbookqa` (lm_eval/tasks/openbookqa/openbookqa.yaml,
 * dataset "main", test split):
 *   doc_to_text   question_stem (no template)
 *   doc_to_choice "{{choices.text}}"; doc_to_target the answerKey's index; metrics acc, acc_norm.
 * The local file is llm-foundry's conversion: query = question_stem, the answer texts, the gold index.
 */
import { loadLlmFoundry, sharedContextDoc, type TaskDefinition } from './task.ts';

const FILE = 'openbookqa/openbookqa_test.llmfoundry.jsonl';

export const openbookqa: TaskDefinition = {
  name: 'openbookqa',
  files: [FILE],
  metrics: ['acc', 'acc_norm'],
  load: (dir) => loadLlmFoundry(dir, FILE, 'openbookqa', (query, choices, gold, _fail, line) => sharedContextDoc(line, query, choices, gold)),
};
