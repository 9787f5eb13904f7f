/**
 * ARC-Easy and ARC-Challenge, as lm-evaluation-harness's `arc_easy` and `arc_challenge`
 * (lm_eval/tasks/arc/arc_easy.yaml; arc_challenge.yaml includes it with dataset ARC-Challenge):
 *   doc_to_text   "Question: {{question}}\nAnswer:"
 *   doc_to_choice "{{choices.text}}"; doc_to_target the answerKey's index; metrics acc, acc_norm.
 * The local files are llm-foundry's conversions of the test splits: query "Question: {question}",
 * the answer texts as choices and the gold index, so the prompt is the query plus "\nAnswer:".
 */
import { loadLlmFoundry, sharedContextDoc, type TaskDefinition } from './task.ts';

function arcTask(name: string, file: string): TaskDefinition {
  return {
    name,
    files: [file],
    metrics: ['acc', 'acc_norm'],
    load: (dir) => loadLlmFoundry(dir, file, name, (query, choices, gold, fail, line) => {
      if (!query.startsWith('Question: ')) fail('expected a query "Question: …"');
      return sharedContextDoc(line, `${query}\nAnswer:`, choices, gold);
    }),
  };
}

export const arcEasy = arcTask('arc_easy', 'arc_easy/arc_easy_test.llmfoundry.jsonl');
export const arcChallenge = arcTask('arc_challenge', 'arc_challenge/arc_challenge_test.llmfoundry.jsonl');
