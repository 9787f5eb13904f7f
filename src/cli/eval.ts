/**
 * `crepe eval <model> --eval-ppl <file>`: perplexity of a Hugging Face model directory on a text
 * file; `--tasks boolq,rte,…`: its zero-shot accuracy on multiple-choice tasks (either or both).
 */
import type { Command } from 'commander';
import { UserError } from '../util/errors.ts';
import { addAliases, addEngineOptions, positiveInt, printJson, refuseUnused, type CliIo } from './options.ts';
import { progressPrinter } from './progress.ts';
import { describeTaskReport, LIMIT_HELP, TASK_DIR_HELP, TASKS_HELP, taskDirOption } from './tasks.ts';

interface EvalCliOptions {
  revision?: string;
  evalPpl?: string;
  seqlen?: number;
  maxChunks?: number;
  tasks?: string;
  taskDir?: string;
  limit?: number;
  json?: boolean;
  device: 'cpu' | 'cuda';
  threads?: number;
}

export function register(program: Command, io: CliIo): void {
  const command = program
    .command('eval')
    .description('measure a model\'s perplexity on a text file (WikiText-2 protocol: non-overlapping windows, one BOS) and/or its zero-shot accuracy (lm-evaluation-harness protocol)')
    .argument('<model>', 'Hugging Face model directory (config.json, model.safetensors, tokenizer.json), or a Hub id org/name[@revision]')
    .option('--revision <rev>', 'branch, tag or commit of a Hub id (default main)')
    .option('--eval-ppl <file>', 'text to evaluate; a wiki.*.raw file is read as the HF dataset rows joined with "\\n\\n"')
    .option('--seqlen <n>', 'window length in tokens, at most the model\'s context (default: min(2048, the context))', positiveInt('--seqlen'))
    .option('--max-chunks <k>', 'evaluate only the first K windows', positiveInt('--max-chunks'))
    .option('--tasks <list>', TASKS_HELP)
    .option('--task-dir <dir>', TASK_DIR_HELP)
    .option('--limit <n>', LIMIT_HELP, positiveInt('--limit'))
    .option('--json', 'print the result as JSON');
  addEngineOptions(command);
  addAliases(command, { '--ppl': '--eval-ppl', '--eval-seqlen': '--seqlen', '--eval-max-chunks': '--max-chunks' });
  command.action(async (model: string, opts: EvalCliOptions) => {
    if (opts.evalPpl === undefined && opts.tasks === undefined) throw new UserError('give --eval-ppl <file>, --tasks <list>, or both');
    if (opts.evalPpl === undefined) refuseUnused('--eval-ppl', { '--seqlen': opts.seqlen, '--max-chunks': opts.maxChunks });
    if (opts.tasks === undefined) refuseUnused('--tasks', { '--task-dir': opts.taskDir, '--limit': opts.limit });
    const engine = { device: opts.device, threads: opts.threads, onProgress: progressPrinter(io) };
    // Tasks first: their names, files and tokenisation are all checked before any model work.
    const zeroShot = opts.tasks === undefined ? null : await (await import('../workflows/zeroshot.ts')).evaluateTasks({
      model, revision: opts.revision, tasks: opts.tasks, taskDir: taskDirOption(opts.taskDir, '--task-dir'), limit: opts.limit, ...engine,
    });
    const report = opts.evalPpl === undefined ? null : await (await import('../workflows/eval.ts')).evaluatePerplexity({
      model, revision: opts.revision, text: opts.evalPpl, seqlen: opts.seqlen, maxChunks: opts.maxChunks, ...engine,
    });
    if (opts.json) return printJson(io.stdout, report && zeroShot ? { perplexity: report, zeroShot } : report ?? zeroShot);
    if (report) io.stdout.write(`${report.file}: PPL ${report.ppl.toFixed(4)} (${report.windows} windows × ${report.seqlen} tokens, ${report.tokens} tokens)\n`);
    if (zeroShot) io.stdout.write(describeTaskReport(zeroShot));
  });
}
