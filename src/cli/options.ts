/** Option parsing shared by the subcommands: every bad value names its option and what was expected. */
import { Option } from 'commander';
import { UserError } from '../util/errors.ts';
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
    new Option('--threads <n>', 'threads: ONNX Runtime\'s intra-op threads, and crepe search\'s proxy evaluation threads (default: all cores)').argParser(positiveInt('--threads')),
  ];
}

export function engineOptionsFrom(opts: { device?: string; threads?: number }): EngineOptions {
  return { device: (opts.device ?? 'cpu') as EngineOptions['device'], threads: opts.threads };
}

/** Prints `value` as JSON on stdout (for --json). */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
