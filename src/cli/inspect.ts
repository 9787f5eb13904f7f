/** `crepe inspect <dir>`: per-tensor and total sparsity of a checkpoint, and N:M conformance. */
import type { Command } from 'commander';
import { printJson, type CliIo } from './options.ts';
import { progressPrinter } from './progress.ts';

export function register(program: Command, io: CliIo): void {
  program
    .command('inspect')
    .description('show per-tensor and total sparsity of a model directory, and whether tensors follow an N:M pattern')
    .argument('<model>', 'Hugging Face model directory, or a Hub id org/name[@revision] (downloaded into the Hugging Face cache)')
    .option('--revision <rev>', 'branch, tag or commit of a Hub id (default main)')
    .option('--pattern <n:m>', 'check each block linear against this N:M pattern (n zeros in every m consecutive inputs)')
    .option('--json', 'print the result as JSON')
    .action(async (model: string, opts: { pattern?: string; json?: boolean; revision?: string }) => {
      const { inspectModel } = await import('../workflows/inspect.ts');
      const report = await inspectModel({ model, pattern: opts.pattern, revision: opts.revision, onProgress: progressPrinter(io) });
      if (opts.json) return printJson(io.stdout, report);
      const lines = report.tensors.map((t) => {
        const nm = t.satisfiesPattern === undefined ? ''
          : t.satisfiesPattern === null ? `  ${report.pattern} n/a (width ${t.shape[1]})`
          : t.satisfiesPattern ? `  ${report.pattern} ok` : `  ${report.pattern} NO`;
        return `${t.name.padEnd(48)} ${t.dtype.padEnd(4)} ${JSON.stringify(t.shape).padEnd(14)} ${(t.sparsity * 100).toFixed(2).padStart(6)}%${nm}`;
      });
      lines.push(`linear weights: ${(report.linear.sparsity * 100).toFixed(3)}% of ${report.linear.parameters} are zero`);
      lines.push(`all tensors:    ${(report.total.sparsity * 100).toFixed(3)}% of ${report.total.parameters} are zero`);
      io.stdout.write(`${lines.join('\n')}\n`);
    });
}
