/** Option parsing shared by the subcommands: every bad value names its option and what was expected. */
import { Option } from 'commander';
import { FieldError, UserError } from '../util/errors.ts';
import type { EngineOptions } from '../engine/session.ts';

export function positiveInt(option: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < 1) {
      throw new UserError(`${option} expects a positive integer, got "${value}"`);
    }
    return n;
  };
}

export function nonNegativeInt(option: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n)) {
      throw new UserError(`${option} expects a non-negative integer, got "${value}"`);
    }
    return n;
  };
}

export function finiteNumber(option: string) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n)) throw new UserError(`${option} expects a number, got "${value}"`);
    return n;
  };
}

/** --device and --threads, added to every command that runs the model. */
export function engineOptionList(): Option[] {
  return [
    new Option('--device <device>', 'execution provider').choices(['cpu', 'cuda']).default('cpu'),
    new Option('--threads <n>', 'intra-op threads of ONNX Runtime (default: all cores)').argParser(positiveInt('--threads')),
  ];
}

export function engineOptionsFrom(opts: { device?: string; threads?: number }): EngineOptions {
  return { device: (opts.device ?? 'cpu') as EngineOptions['device'], threads: opts.threads };
}

/** Prints `value` as JSON on stdout (for --json). */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** The flag that carries each library request field the commands expose. */
const FIELD_FLAGS: Readonly<Record<string, string>> = {
  method: '--method',
  sparsity: '--sparsity',
  pattern: '--pattern',
  selection: '--per-row/--per-matrix',
  riaA: '--ria-a',
  'calibration.nsamples': '--nsamples',
  'calibration.seqlen': '--seqlen',
  'calibration.seed': '--seed',
  'sparsegpt.blockSize': '--blocksize',
  'sparsegpt.percdamp': '--percdamp',
  'owl.m': '--owl-m',
  'owl.lambda': '--owl-lambda',
  'dsnot.maxCycles': '--dsnot-cycles',
  'dsnot.updateThreshold': '--dsnot-threshold',
  'dsnot.skip': '--dsnot-skip',
  'permute.strategy': '--permute',
  'permute.blocks': '--permute-blocks',
  exclude: '--exclude',
  trueSequential: '--true-sequential',
  reconstruct: '--reconstruct',
  dsnot: '--dsnot',
  permute: '--permute',
};

/** A user error's one line, with a library field (`owl.lambda`) replaced by its flag (`--owl-lambda`). */
export function userMessage(error: UserError): string {
  if (error instanceof FieldError && Object.hasOwn(FIELD_FLAGS, error.field)) return `${FIELD_FLAGS[error.field]} ${error.problem}`;
  return error.message;
}
