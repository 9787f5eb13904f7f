/**
 * `crepe eval <model> --ppl <file>`: perplexity of a Hugging Face model directory on a text file;
 * `--tasks boolq,rte,…`: zero-shot accuracy on multiple-choice tasks (either or both).
 */
import type { Command } from 'commander';
import { ModelCheckpoint } from '../model/checkpoint.ts';
import { TextTokenizer } from '../model/tokenizer.ts';
import { readEvalText } from '../data/text-sources.ts';
import { perplexity, perplexityWorkUnits, windowCount } from '../eval/perplexity.ts';
import { createProgress } from '../util/progress.ts';
import { sha256Bytes } from '../util/hash.ts';
import { check } from '../util/errors.ts';
import { engineOptionList, engineOptionsFrom, positiveInt, printJson } from './options.ts';
import { describeTaskReport, resolveTaskDir, runTaskEvaluation, TASK_DIR_HELP, TASKS_HELP } from './tasks.ts';

export interface EvalPplReport {
  file: string;
  textSha256: string;
  tokens: number;
  seqlen: number;
  windows: number;
  ppl: number;
  meanNll: number;
  seconds: number;
}

/** Tokenises `file` with the model's tokenizer (one BOS) and measures perplexity. */
export async function evaluatePerplexityFile(
  modelDir: string,
  file: string,
  opts: { seqlen?: number; maxChunks?: number; device?: string; threads?: number; quiet?: boolean },
): Promise<EvalPplReport> {
  const started = Date.now();
  const model = ModelCheckpoint.open(modelDir);
  try {
    const seqlen = opts.seqlen ?? Math.min(2048, model.spec.maxPositionEmbeddings);
    if (seqlen > model.spec.maxPositionEmbeddings) {
      process.stderr.write(`crepe: warning: --seqlen ${seqlen} exceeds the model's context (${model.spec.maxPositionEmbeddings})\n`);
    }
    model.checkAllFinite();
    const text = readEvalText(file);
    const tokens = TextTokenizer.load(modelDir).encode(text, { bos: true });
    const windows = windowCount(tokens.length, seqlen, opts.maxChunks);
    check(windows >= 1, `${file}: ${tokens.length} tokens is shorter than one window of --seqlen ${seqlen}`);
    const progress = createProgress('eval', perplexityWorkUnits(model.spec, windows), { quiet: opts.quiet });
    const result = await perplexity(model, tokens, { ...engineOptionsFrom(opts), seqlen, maxChunks: opts.maxChunks, progress });
    progress.done(`PPL ${result.ppl.toFixed(4)}`);
    return {
      file,
      textSha256: sha256Bytes(text),
      tokens: tokens.length,
      seqlen,
      windows: result.windows,
      ppl: result.ppl,
      meanNll: result.meanNll,
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    model.close();
  }
}

export function register(program: Command): void {
  const command = program
    .command('eval')
    .description('measure a model\'s perplexity on a text file (WikiText-2 protocol: non-overlapping windows, one BOS) and/or its zero-shot accuracy (lm-evaluation-harness protocol)')
    .argument('<model>', 'Hugging Face model directory (config.json, model.safetensors, tokenizer.json)')
    .option('--ppl <file>', 'text to evaluate; a wiki.*.raw file is read as the HF dataset rows joined with "\\n\\n"')
    .option('--tasks <list>', TASKS_HELP)
    .option('--task-dir <dir>', TASK_DIR_HELP)
    .option('--limit <n>', 'zero-shot: only the first N documents of each task', positiveInt('--limit'))
    .option('--seqlen <n>', 'window length in tokens (default: min(2048, the model context))', positiveInt('--seqlen'))
    .option('--max-chunks <k>', 'evaluate only the first K windows', positiveInt('--max-chunks'))
    .option('--json', 'print the result as JSON');
  for (const option of engineOptionList()) command.addOption(option);
  command.action(async (modelDir: string, opts: { ppl?: string; tasks?: string; taskDir?: string; limit?: number; seqlen?: number; maxChunks?: number; json?: boolean; device: string; threads?: number }) => {
    check(opts.ppl !== undefined || opts.tasks !== undefined, 'give --ppl <file>, --tasks <list>, or both');
    // Tasks first: their files are all checked before any model work.
    const zeroShot = opts.tasks !== undefined ? await runTaskEvaluation(modelDir, { ...opts, tasks: opts.tasks, taskDir: resolveTaskDir(opts.taskDir, '--task-dir') }) : null;
    const report = opts.ppl !== undefined ? await evaluatePerplexityFile(modelDir, opts.ppl, opts) : null;
    if (opts.json) printJson(report && zeroShot ? { perplexity: report, zeroShot } : report ?? zeroShot);
    if (!opts.json && report) process.stdout.write(`${report.file}: PPL ${report.ppl.toFixed(4)} (${report.windows} windows × ${report.seqlen} tokens, ${report.tokens} tokens)\n`);
    if (!opts.json && zeroShot) process.stdout.write(describeTaskReport(zeroShot));
  });
}
