/**
 * What a zero-shot task is: a loader that turns the task's local files into documents, each a
 * list of (context, continuation) requests — one per choice, as lm-evaluation-harness builds them
 * for `output_type: multiple_choice` (continuation = target delimiter " " + choice) — with the
 * gold choice and the choice strings whose lengths normalise acc_norm. Also the file-reading
 * helpers the loaders share: every refusal names the file and line and what was expected.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { readInputText } from '../../io/input-file.ts';
import { UserError } from '../../util/errors.ts';

export type MetricName = 'acc' | 'acc_norm';

export interface TaskRequest {
  context: string;
  continuation: string;
}

export interface TaskDoc {
  /** 1-based line of the task file where the document starts. */
  line: number;
  /** One request per choice. */
  requests: TaskRequest[];
  /** Index of the correct choice. */
  gold: number;
  /** The harness's doc_to_choice strings: acc_norm divides by their lengths in characters. */
  choices: string[];
}

export interface TaskDefinition {
  name: string;
  /** The files the loader reads, relative to the task directory. */
  files: readonly string[];
  /** The metrics the harness's config reports for this task. */
  metrics: readonly MetricName[];
  load(dir: string): TaskDoc[];
}

/** lm-eval's default target delimiter, between context and choice. */
export const TARGET_DELIMITER = ' ';

/** A document whose choices all follow one context. */
export function sharedContextDoc(line: number, context: string, choices: string[], gold: number): TaskDoc {
  return { line, requests: choices.map((choice) => ({ context, continuation: TARGET_DELIMITER + choice })), gold, choices };
}

/**
 * The text of a task file, read as every input is (a regular file within the text limit, strict
 * UTF-8: a FIFO or a device is refused instead of blocking the read); a missing file names the task.
 */
export function readTaskFile(dir: string, relative: string, task: string): { file: string; text: string } {
  const file = path.join(dir, relative);
  if (!existsSync(file)) throw new UserError(`${file}: no such file (task ${task} reads ${relative} under the task directory)`);
  return { file, text: readInputText(file, 'text') };
}

/** The non-empty lines of a text with their 1-based line numbers (a final newline ends the last line). */
export function numberedLines(text: string): { line: number; text: string }[] {
  const lines = text.split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines.map((t, i) => ({ line: i + 1, text: t.endsWith('\r') ? t.slice(0, -1) : t }));
}

/** One JSON object per line (blank lines are refused: they would shift the labels files). */
export function jsonLines(file: string, text: string): { line: number; value: Record<string, unknown> }[] {
  return numberedLines(text).map(({ line, text: lineText }) => {
    let value: unknown;
    try {
      value = JSON.parse(lineText);
    } catch (error) {
      throw new UserError(`${file}:${line}: not valid JSON (${(error as Error).message})`);
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new UserError(`${file}:${line}: expected a JSON object`);
    return { line, value: value as Record<string, unknown> };
  });
}

/** Field readers that name the file, line and field in their refusals. */
export function fieldReader(file: string, line: number, value: Record<string, unknown>) {
  const where = `${file}:${line}`;
  return {
    string(key: string): string {
      const v = value[key];
      if (typeof v !== 'string') throw new UserError(`${where}: expected a string field "${key}"`);
      return v;
    },
    strings(key: string, count?: number): string[] {
      const v = value[key];
      if (!Array.isArray(v) || v.some((x) => typeof x !== 'string') || v.length < 2 || (count !== undefined && v.length !== count)) {
        throw new UserError(`${where}: expected "${key}" to be a list of ${count ?? 'at least 2'} strings`);
      }
      return v as string[];
    },
    index(key: string, size: number): number {
      const v = value[key];
      if (!Number.isInteger(v) || (v as number) < 0 || (v as number) >= size) throw new UserError(`${where}: expected "${key}" to be an integer in [0, ${size})`);
      return v as number;
    },
    fail(message: string): never {
      throw new UserError(`${where}: ${message}`);
    },
  };
}

/** A labels file (one integer label per line) aligned with `count` documents. */
export function readLabels(dir: string, relative: string, task: string, count: number, allowed: readonly string[]): string[] {
  const { file, text } = readTaskFile(dir, relative, task);
  const lines = numberedLines(text);
  if (lines.length !== count) throw new UserError(`${file}: ${lines.length} labels for ${count} documents; expected one label per line`);
  return lines.map(({ line, text: label }) => {
    const trimmed = label.trim();
    if (!allowed.includes(trimmed)) throw new UserError(`${file}:${line}: expected a label ${allowed.join(' or ')}, got "${label}"`);
    return trimmed;
  });
}

/**
 * The documents of an llm-foundry multiple-choice file ({"query", "choices", "gold"} per line),
 * each turned into a TaskDoc by `build` from the query, the choices and the gold index.
 */
export function loadLlmFoundry(
  dir: string, relative: string, task: string,
  build: (query: string, choices: string[], gold: number, fail: (message: string) => never, line: number) => TaskDoc,
): TaskDoc[] {
  const { file, text } = readTaskFile(dir, relative, task);
  return jsonLines(file, text).map(({ line, value }) => {
    const field = fieldReader(file, line, value);
    const choices = field.strings('choices');
    return build(field.string('query'), choices, field.index('gold', choices.length), field.fail, line);
  });
}
