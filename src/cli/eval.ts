/** `crepe eval <model> --eval-ppl <file>`: perplexity of a Hugging Face model directory on a text file. */
import type { Command } from 'commander';
import { addAliases, addEngineOptions, positiveInt, printJson, type CliIo } from './options.ts';
import { progressPrinter } from './progress.ts';

interface EvalCliOptions {
  evalPpl: string;
  seqlen?: number;
  maxChunks?: number;
  json?: boolean;
  device: 'cpu' | 'cuda';
  threads?: number;
}

export function register(program: Command, io: CliIo): void {
  const command = program
    .command('eval')
    .description('measure a model\'s perplexity on a text file (WikiText-2 protocol: non-overlapping windows, one BOS)')
    .argument('<model>', 'Hugging Face model directory (config.json, model.safetensors, tokenizer.json)')
    .requiredOption('--eval-ppl <file>', 'text to evaluate; a wiki.*.raw file is read as the HF dataset rows joined with "\\n\\n"')
    .option('--seqlen <n>', 'window length in tokens, at most the model\'s context (default: min(2048, the context))', positiveInt('--seqlen'))
    .option('--max-chunks <k>', 'evaluate only the first K windows', positiveInt('--max-chunks'))
    .option('--json', 'print the result as JSON');
  addEngineOptions(command);
  addAliases(command, { '--ppl': '--eval-ppl', '--eval-seqlen': '--seqlen', '--eval-max-chunks': '--max-chunks' });
  command.action(async (model: string, opts: EvalCliOptions) => {
    const { evaluatePerplexity } = await import('../workflows/eval.ts');
    const report = await evaluatePerplexity({
      model,
      text: opts.evalPpl,
      seqlen: opts.seqlen,
      maxChunks: opts.maxChunks,
      device: opts.device,
      threads: opts.threads,
      onProgress: progressPrinter(io),
    });
    if (opts.json) printJson(io.stdout, report);
    else io.stdout.write(`${report.file}: PPL ${report.ppl.toFixed(4)} (${report.windows} windows × ${report.seqlen} tokens, ${report.tokens} tokens)\n`);
  });
}
