/** `crepe inspect <dir>`: per-tensor and total sparsity of a checkpoint, and N:M conformance. */
import type { Command } from 'commander';
import { Checkpoint } from '../io/safetensors.ts';
import { satisfiesNM } from '../prune/mask.ts';
import { parseTarget } from '../prune/target.ts';
import { check } from '../util/errors.ts';
import { printJson } from './options.ts';

export interface TensorSparsity {
  name: string;
  dtype: string;
  shape: number[];
  zeros: number;
  sparsity: number;
  /** Whether the tensor follows the requested N:M pattern along its input dimension (2-D tensors only). */
  satisfiesPattern?: boolean;
}

export interface InspectReport {
  dir: string;
  pattern: string | null;
  tensors: TensorSparsity[];
  total: { parameters: number; zeros: number; sparsity: number };
  /** Totals over the 2-D weights of the decoder blocks (what pruning targets). */
  linear: { parameters: number; zeros: number; sparsity: number };
}

export function inspectCheckpoint(dir: string, patternText?: string): InspectReport {
  const pattern = patternText ? parseTarget(patternText, 'pattern') : null;
  check(pattern === null || pattern.kind === 'nm', `--pattern expects n:m (e.g. 2:4), got "${patternText}"`);
  const weights = Checkpoint.open(dir);
  try {
    const tensors: TensorSparsity[] = [];
    const total = { parameters: 0, zeros: 0, sparsity: 0 };
    const linear = { parameters: 0, zeros: 0, sparsity: 0 };
    for (const name of weights.names()) {
      const info = weights.info(name);
      const values = weights.readF32(name);
      let zeros = 0;
      for (let i = 0; i < values.length; i++) if (values[i] === 0) zeros++;
      const entry: TensorSparsity = { name, dtype: info.dtype, shape: info.shape, zeros, sparsity: values.length ? zeros / values.length : 0 };
      const isBlockLinear = info.shape.length === 2 && /^model\.layers\.\d+\..*_proj\.weight$/.test(name);
      if (pattern?.kind === 'nm' && isBlockLinear && info.shape[1] % pattern.m === 0) {
        entry.satisfiesPattern = satisfiesNM(values, info.shape[0], info.shape[1], pattern.n, pattern.m);
      }
      tensors.push(entry);
      total.parameters += values.length;
      total.zeros += zeros;
      if (isBlockLinear) {
        linear.parameters += values.length;
        linear.zeros += zeros;
      }
    }
    total.sparsity = total.parameters ? total.zeros / total.parameters : 0;
    linear.sparsity = linear.parameters ? linear.zeros / linear.parameters : 0;
    return { dir, pattern: patternText ?? null, tensors, total, linear };
  } finally {
    weights.close();
  }
}

export function register(program: Command): void {
  program
    .command('inspect')
    .description('show per-tensor and total sparsity of a model directory, and whether tensors follow an N:M pattern')
    .argument('<model>', 'Hugging Face model directory')
    .option('--pattern <n:m>', 'check each block linear against this N:M pattern (n zeros in every m consecutive inputs)')
    .option('--json', 'print the result as JSON')
    .action((dir: string, opts: { pattern?: string; json?: boolean }) => {
      const report = inspectCheckpoint(dir, opts.pattern);
      if (opts.json) return printJson(report);
      const lines = report.tensors.map((t) => {
        const nm = t.satisfiesPattern === undefined ? '' : t.satisfiesPattern ? `  ${report.pattern} ok` : `  ${report.pattern} NO`;
        return `${t.name.padEnd(48)} ${t.dtype.padEnd(4)} ${JSON.stringify(t.shape).padEnd(14)} ${(t.sparsity * 100).toFixed(2).padStart(6)}%${nm}`;
      });
      lines.push(`linear weights: ${(report.linear.sparsity * 100).toFixed(3)}% of ${report.linear.parameters} are zero`);
      lines.push(`all tensors:    ${(report.total.sparsity * 100).toFixed(3)}% of ${report.total.parameters} are zero`);
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}
