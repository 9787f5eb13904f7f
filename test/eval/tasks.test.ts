// The task loaders on the real files: the first documents of each file as the harness builds them
// (context, continuations with the " " delimiter, gold, choices), written out by hand from the
// files and the harness's task configs; then the refusals: an unknown task, a missing file, and
// malformed lines, each naming the file and line.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { TASKS, TASK_NAMES, parseTaskList, taskByName, type TaskDoc } from '../../src/eval/tasks/index.ts';
import { preprocess } from '../../src/eval/tasks/hellaswag.ts';
import { UserError } from '../../src/util/errors.ts';
import { TASK_DIR } from '../helpers/shared.ts';
import { scratchDir } from '../helpers/stories.ts';

const load = (name: string): TaskDoc[] => taskByName(name).load(TASK_DIR);
const contexts = (doc: TaskDoc): string[] => doc.requests.map((r) => r.context);
const continuations = (doc: TaskDoc): string[] => doc.requests.map((r) => r.continuation);

describe('task loaders on the real files', () => {
  it('boolq: the passage without "Passage: ", the question, "Answer:"; no / yes', () => {
    const docs = load('boolq');
    assert.equal(docs.length, 3270);
    const second = docs[1];
    const passageStart = "Property tax or 'house tax' is a local tax on buildings, along with appurtenant land.";
    const ending = 'in the first two brackets.\nQuestion: is house tax and property tax are same?\nAnswer:';
    for (const context of contexts(second)) {
      assert.ok(context.startsWith(passageStart), context.slice(0, 100));
      assert.ok(context.endsWith(ending), context.slice(-100));
    }
    assert.deepEqual(continuations(second), [' no', ' yes']);
    assert.deepEqual(second.choices, ['no', 'yes']);
    assert.equal(second.gold, 1);
    assert.equal(docs[0].gold, 0);
    assert.equal(second.line, 2);
  });

  it('rte: premise, "Question: <hypothesis> True or False?", "Answer:"; True / False, entailment = 0', () => {
    const [first, second] = load('rte');
    assert.deepEqual(contexts(first), Array(2).fill(
      'Dana Reeve, the widow of the actor Christopher Reeve, has died of lung cancer at age 44, according to the Christopher Reeve Foundation.\n' +
      'Question: Christopher Reeve had an accident. True or False?\nAnswer:'));
    assert.deepEqual(continuations(first), [' True', ' False']);
    assert.equal(first.gold, 1); // not_entailment
    assert.equal(second.gold, 0); // entailment
    assert.ok(contexts(second)[0].endsWith('\nQuestion: Bacteria is winning the war against antibiotics. True or False?\nAnswer:'));
  });

  it('hellaswag: the context line and four endings, cleaned as the harness does; gold from the label line', () => {
    const docs = load('hellaswag');
    assert.equal(docs.length, 10042);
    const second = docs[1];
    assert.deepEqual(contexts(second), Array(4).fill('Clean and jerk: A lady walks to a barbell. She bends down and grabs the pole. the lady'));
    assert.deepEqual(continuations(second), [
      ' swings and lands in her arms.', ' pulls the barbell forward.', ' pulls a rope attached to the barbell.', ' stands and lifts the weight over her head.',
    ]);
    assert.equal(second.gold, 3);
    assert.equal(second.line, 7);
    // Item 3505 (line 21031): llama.cpp kept "[www.kiddio.org]"; the harness's preprocess drops it.
    const bracketed = docs[3505];
    assert.equal(bracketed.line, 21031);
    assert.equal(bracketed.requests[0].context,
      'Family Life: How to entertain a toddler. Ask the toddler what he or she would like to do instead of doing what you would like to do.. ' +
      'Visit a site like to find loads of creative activities for toddlers and preschoolers.. Choose small, simple games like candy land or chutes and ladders.');
    assert.equal(bracketed.gold, 1);
  });

  it('hellaswag preprocess: trimmed, " [title]" → ". ", brackets dropped, then each "  " → " " once', () => {
    // Python's str.replace works left to right without rescanning: three spaces become two.
    assert.equal(preprocess(' How to cook [title] Boil water.  [step] Add salt. '), 'How to cook. Boil water.  Add salt.');
    assert.equal(preprocess('a [x] b [header] c'), 'a b c');
  });

  it('winogrande: one context per option (up to the blank), one shared continuation; answer 1/2 → 0/1', () => {
    const docs = load('winogrande');
    assert.equal(docs.length, 1267);
    const third = docs[2];
    assert.deepEqual(contexts(third), [
      'They were worried the wine would ruin the bed and the blanket, but the blanket',
      'They were worried the wine would ruin the bed and the blanket, but the bed',
    ]);
    assert.deepEqual(continuations(third), [" was't ruined.", " was't ruined."]);
    assert.equal(third.gold, 1);
    assert.deepEqual(contexts(docs[3]), [
      'Terry tried to bake the eggplant in the toaster oven but the eggplant',
      'Terry tried to bake the eggplant in the toaster oven but the toaster',
    ]);
    assert.deepEqual(continuations(docs[3]), [' was too big.', ' was too big.']);
    assert.equal(docs[3].gold, 0);
  });

  it('arc_easy and arc_challenge: "Question: …\\nAnswer:" and the answer texts', () => {
    const [easy] = load('arc_easy');
    assert.equal(easy.requests[0].context, 'Question: Which statement best explains why photosynthesis is the foundation of most food webs?\nAnswer:');
    assert.deepEqual(continuations(easy), [
      ' Sunlight is the source of energy for nearly all ecosystems.', ' Most ecosystems are found on land instead of in water.',
      ' Carbon dioxide is more available than other gases.', ' The producers in all ecosystems are plants.',
    ]);
    assert.equal(easy.gold, 0);
    const challenge = load('arc_challenge');
    assert.equal(challenge.length, 1172);
    assert.equal(challenge[0].requests[3].context,
      'Question: An astronomer observes that a planet rotates faster after a meteorite impact. Which is the most likely effect of this increase in rotation?\nAnswer:');
    assert.deepEqual(challenge[0].choices, ['Planetary density will decrease.', 'Planetary years will become longer.', 'Planetary days will become shorter.', 'Planetary gravity will become stronger.']);
    assert.equal(challenge[0].gold, 2);
  });

  it('piqa: "Question: <goal>\\nAnswer:", sol1 / sol2, label from valid-labels.lst', () => {
    const docs = load('piqa');
    assert.equal(docs.length, 1838);
    assert.equal(docs[0].requests[1].context, "Question: How do I ready a guinea pig cage for it's new occupants?\nAnswer:");
    assert.equal(docs[0].requests[1].continuation,
      ' Provide the guinea pig with a cage full of a few inches of bedding made of ripped jeans material, you will also need to supply it with a water bottle and a food dish.');
    assert.equal(docs[0].gold, 0);
    // The second document keeps its trailing and double spaces.
    assert.deepEqual(continuations(docs[1]), [' replace drawer with bobby pin ', ' finish, woodgrain with  bobby pin ']);
    assert.equal(docs[1].gold, 1);
  });

  it('openbookqa: the question stem alone as context', () => {
    const docs = load('openbookqa');
    assert.equal(docs.length, 500);
    assert.deepEqual(contexts(docs[2]), Array(4).fill('Predators eat'));
    assert.deepEqual(continuations(docs[2]), [' lions', ' humans', ' bunnies', ' grass']);
    assert.equal(docs[2].gold, 2);
  });
});

describe('task names', () => {
  it('parses lists and "all", refuses unknown and repeated names', () => {
    assert.deepEqual(TASK_NAMES, ['boolq', 'rte', 'hellaswag', 'winogrande', 'arc_easy', 'arc_challenge', 'piqa', 'openbookqa']);
    assert.deepEqual(parseTaskList(' rte,boolq ').map((t) => t.name), ['rte', 'boolq']);
    assert.equal(parseTaskList('all').length, TASKS.length);
    assert.throws(() => parseTaskList('boolq,mmlu'), (e: Error) => e instanceof UserError && /unknown task "mmlu"; expected some of boolq, rte/.test(e.message));
    assert.throws(() => parseTaskList('rte,rte'), /task "rte" is named twice/);
    assert.throws(() => parseTaskList(','), /no task named/);
    // "all" with other names is no unknown task: the message says that "all" stands alone.
    assert.throws(() => parseTaskList('all,boolq'), (e: Error) => e instanceof UserError && e.message === '"all" names every task and stands alone; got "all" with boolq');
  });
});

describe('malformed task files are refused with the file and line', () => {
  /** A task directory with one file written; `relative` under it. */
  function taskDir(files: Record<string, string | Buffer>): string {
    const dir = scratchDir('tasks');
    for (const [relative, text] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(dir, relative)), { recursive: true });
      writeFileSync(path.join(dir, relative), text);
    }
    return dir;
  }
  const refuses = (name: string, dir: string, message: RegExp): void => {
    assert.throws(() => taskByName(name).load(dir), (e: Error) => e instanceof UserError && message.test(e.message), `${name}: expected ${message}`);
  };

  it('a missing file', () => {
    const dir = taskDir({});
    refuses('boolq', dir, /boolq[/\\]boolq_validation\.llmfoundry\.jsonl: no such file \(task boolq reads/);
    refuses('piqa', taskDir({ 'piqa/valid.jsonl': '{"goal": "g", "sol1": "a", "sol2": "b"}\n' }), /piqa[/\\]valid-labels\.lst: no such file/);
  });

  it('a task file that is no regular file (a FIFO would block the read forever) or not UTF-8', { skip: process.platform === 'win32' }, () => {
    const dir = taskDir({});
    mkdirSync(path.join(dir, 'rte'));
    execFileSync('mkfifo', [path.join(dir, 'rte', 'val.jsonl')]);
    refuses('rte', dir, /rte[/\\]val\.jsonl: is a named pipe \(FIFO\), expected a text file \(a regular file\)/);
    refuses('rte', taskDir({ 'rte/val.jsonl': Buffer.from([0x7b, 0xff, 0x7d, 0x0a]) }), /rte[/\\]val\.jsonl: not valid UTF-8 text/);
  });

  it('bad JSON, a missing field, a gold out of range, a wrong label', () => {
    const good = '{"query": "Question: q", "choices": ["a", "b"], "gold": 1}';
    refuses('arc_easy', taskDir({ 'arc_easy/arc_easy_test.llmfoundry.jsonl': `${good}\n{"query": "Question: q",\n` }), /arc_easy_test\.llmfoundry\.jsonl:2: not valid JSON/);
    refuses('arc_easy', taskDir({ 'arc_easy/arc_easy_test.llmfoundry.jsonl': `${good}\n${good}\n{"choices": ["a", "b"], "gold": 0}\n` }), /\.jsonl:3: expected a string field "query"/);
    refuses('openbookqa', taskDir({ 'openbookqa/openbookqa_test.llmfoundry.jsonl': '{"query": "q", "choices": ["a", "b"], "gold": 2}\n' }), /\.jsonl:1: expected "gold" to be an integer in \[0, 2\)/);
    refuses('boolq', taskDir({ 'boolq/boolq_validation.llmfoundry.jsonl': '{"query": "Question: q?", "choices": ["no", "yes"], "gold": 0}\n' }), /\.jsonl:1: expected a query "Passage: …\\nQuestion: …"/);
    refuses('rte', taskDir({ 'rte/val.jsonl': '{"premise": "p", "hypothesis": "h", "label": "maybe"}\n' }), /val\.jsonl:1: expected "label" to be "entailment" or "not_entailment", got "maybe"/);
    refuses('winogrande', taskDir({
      'winogrande/dev.jsonl': '{"sentence": "A _ b.", "option1": "x", "option2": "y", "answer": "1"}\n{"sentence": "no blank", "option1": "x", "option2": "y", "answer": "2"}\n',
      'winogrande/dev-labels.lst': '1\n2\n',
    }), /dev\.jsonl:2: expected the "sentence" to contain the blank "_"/);
  });

  it('labels files that do not line up or hold other labels', () => {
    const piqaLine = '{"goal": "g", "sol1": "a", "sol2": "b"}\n';
    refuses('piqa', taskDir({ 'piqa/valid.jsonl': piqaLine.repeat(3), 'piqa/valid-labels.lst': '0\n1\n' }), /valid-labels\.lst: 2 labels for 3 documents/);
    refuses('piqa', taskDir({ 'piqa/valid.jsonl': piqaLine.repeat(2), 'piqa/valid-labels.lst': '0\n2\n' }), /valid-labels\.lst:2: expected a label 0 or 1, got "2"/);
    refuses('winogrande', taskDir({
      'winogrande/dev.jsonl': '{"sentence": "A _ b.", "option1": "x", "option2": "y", "answer": "1"}\n',
      'winogrande/dev-labels.lst': '2\n',
    }), /dev\.jsonl:1: "answer" is "1" but winogrande\/dev-labels\.lst line 1 says 2/);
  });

  it('hellaswag: items of six lines, a label 0–3', () => {
    const item = (label: string): string => `Ctx: a b\n${label}\ne1\ne2\ne3\ne4\n`;
    refuses('hellaswag', taskDir({ 'hellaswag/hellaswag_val_full.txt': `${item('1')}Ctx: c\n2\n` }), /hellaswag_val_full\.txt: 8 lines is not a multiple of 6/);
    refuses('hellaswag', taskDir({ 'hellaswag/hellaswag_val_full.txt': `${item('1')}${item('x')}` }), /hellaswag_val_full\.txt:8: expected the gold label 0, 1, 2 or 3, got "x"/);
  });
});
