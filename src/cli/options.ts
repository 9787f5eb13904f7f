/**
 * What the subcommands share: where they write, option parsers (syntax only: the library checks
 * ranges and names the request field, which `userMessage` in messages.ts turns back into the flag), hidden
 * aliases for old flag spellings, and the engine options.
 */
import { Option, type Command } from 'commander';
import type { TextsRequest } from '../workflows/texts.ts';
import { parsePattern, parseTarget, type PruneTarget, type Selection } from '../prune/target.ts';
import { parseDecimal } from '../util/decimal.ts';
import { UserError } from '../util/errors.ts';
import { describeValue } from '../util/fields.ts';

export interface Writer {
  write(text: string): unknown;
  isTTY?: boolean;
}

/** Where the command line writes: results on stdout, progress and errors on stderr. */
export interface CliIo {
  stdout: Writer;
  stderr: Writer;
  /** Draw progress on stderr (default: yes, unless CREPE_QUIET=1). */
  progress?: boolean;
}

export function positiveInt(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < 1) throw new UserError(`${flag} expects a positive integer, got ${describeValue(value)}`);
    return n;
  };
}

export function nonNegativeInt(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n)) throw new UserError(`${flag} expects a non-negative integer, got ${describeValue(value)}`);
    return n;
  };
}

export function finiteNumber(flag: string) {
  return (value: string): number => {
    const n = parseDecimal(value);
    // "1e309" is a decimal whose value float64 cannot hold: say so rather than call it no number.
    if (n === null) throw new UserError(`${flag} expects a ${Math.abs(Number(value)) === Infinity ? 'finite ' : ''}number, got ${describeValue(value)}`);
    return n;
  };
}

/**
 * Refuses the options of a measurement or pass that is not asked for (`on` is its flag), which
 * would be ignored; `options` maps each flag to its parsed value.
 */
export function refuseUnused(on: string, options: Record<string, unknown>): void {
  const given = Object.keys(options).filter((flag) => options[flag] !== undefined);
  if (given.length > 0) throw new UserError(`${given.join(' and ')} appl${given.length === 1 ? 'ies' : 'y'} to ${on} only`);
}

/** --sparsity or --pattern (exactly one), through the library's one target reader. */
export function targetOption(opts: { sparsity?: number; pattern?: string }): PruneTarget {
  if ((opts.sparsity === undefined) === (opts.pattern === undefined)) throw new UserError('give exactly one of --sparsity <s> (unstructured) or --pattern <n:m>');
  return opts.pattern !== undefined ? parsePattern(opts.pattern, 'pattern') : parseTarget(opts.sparsity!, 'sparsity');
}

/** --per-row or --per-matrix (at most one); undefined leaves the method's default. */
export function selectionOption(opts: { perRow?: boolean; perMatrix?: boolean }): Selection | undefined {
  if (opts.perRow && opts.perMatrix) throw new UserError('give at most one of --per-row or --per-matrix');
  return opts.perRow ? 'per-row' : opts.perMatrix ? 'per-matrix' : undefined;
}

/** The calibration and held-out text options of prune and search, as parsed. */
export interface TextsOptions {
  calib: string;
  nsamples?: number;
  seqlen?: number;
  seed?: number;
  evalPpl?: string;
  evalSeqlen?: number;
  evalMaxChunks?: number;
}

/**
 * --calib, --nsamples, --seqlen, --seed, and --eval-ppl, --eval-seqlen, --eval-max-chunks with
 * `evalHelp` describing what the measured text is for.
 */
export function addTextsOptions(command: Command, help: { seed: string; evalPpl: string }): void {
  command
    .requiredOption('--calib <file>', 'calibration text: JSON Lines (.jsonl, .json, optionally .gz) with a "text" field (C4 protocol), or any other file as plain text')
    .option('--nsamples <n>', 'calibration windows (default 128)', positiveInt('--nsamples'))
    .option('--seqlen <n>', 'tokens per calibration window, at most the model\'s context (default: min(2048, the context))', positiveInt('--seqlen'))
    .option('--seed <n>', help.seed, nonNegativeInt('--seed'))
    .option('--eval-ppl <file>', help.evalPpl)
    .option('--eval-seqlen <n>', 'perplexity window (default: --seqlen)', positiveInt('--eval-seqlen'))
    .option('--eval-max-chunks <k>', 'use only the first K windows of --eval-ppl', positiveInt('--eval-max-chunks'));
}

/** The request fields of the text options. */
export function textsFields(opts: TextsOptions): TextsRequest {
  return {
    calib: opts.calib,
    nsamples: opts.nsamples,
    seqlen: opts.seqlen,
    seed: opts.seed,
    evalText: opts.evalPpl,
    evalSeqlen: opts.evalSeqlen,
    evalMaxChunks: opts.evalMaxChunks,
  };
}

/** --device and --threads, added to every command that runs the model. */
export function addEngineOptions(command: Command): void {
  command.addOption(new Option('--device <device>', 'execution provider').choices(['cpu', 'cuda']).default('cpu'));
  command.addOption(new Option('--threads <n>', 'threads: ONNX Runtime\'s intra-op threads (default: one per physical core; one for a small model\'s whole-model graph), and crepe search\'s proxy threads: dense-pass building and evaluation (default: all CPUs)').argParser(positiveInt('--threads')));
}

/**
 * Hidden old spellings of options (`alias` → the canonical long flag): each sets the canonical
 * option's value, with its parser and choices, and is left out of --help.
 */
export function addAliases(command: Command, aliases: Record<string, string>): void {
  for (const [alias, canonical] of Object.entries(aliases)) {
    const option = command.options.find((o) => o.long === canonical);
    if (!option) throw new Error(`internal: ${canonical} is not an option of ${command.name()}`);
    const hidden = new Option(option.flags.replace(canonical, alias), option.description).hideHelp();
    if (option.parseArg) hidden.argParser(option.parseArg);
    if (option.argChoices) hidden.choices(option.argChoices);
    command.addOption(hidden);
    command.on(`option:${hidden.name()}`, () => {
      command.setOptionValueWithSource(option.attributeName(), command.getOptionValue(hidden.attributeName()), 'cli');
    });
  }
}

/** What the running command adds to the line printed when a signal stops it (how to continue), if anything. */
export const interruption: { note?: () => string | null } = {};

/** Prints `value` as JSON (for --json). */
export function printJson(out: Writer, value: unknown): void {
  out.write(`${JSON.stringify(value, null, 2)}\n`);
}
