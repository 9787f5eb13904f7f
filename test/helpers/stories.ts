/**
 * stories260K converted to a Hugging Face directory once per test process, in
 * `os.tmpdir()/crepe-test-stories260K-<pid>/`, removed when the process exits. Also scratch
 * directories under the same root and a runner for the `crepe` command line.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { convertToHuggingFace } from '../../src/model/convert.ts';
import { builtCrepeBin } from './built-cli.ts';
import { REPO_ROOT, STORIES_BIN, STORIES_GGUF, STORIES_TOK } from './shared.ts';

export { builtCrepeBin };

export const TEST_ROOT = path.join(os.tmpdir(), `crepe-test-stories260K-${process.pid}`);

let rootReady = false;
function root(): string {
  if (!rootReady) {
    rmSync(TEST_ROOT, { recursive: true, force: true });
    mkdirSync(TEST_ROOT, { recursive: true });
    process.on('exit', () => rmSync(TEST_ROOT, { recursive: true, force: true }));
    rootReady = true;
  }
  return TEST_ROOT;
}

const conversions = new Map<string, Promise<string>>();

function convertOnce(key: string, input: string, tokenizer?: string): Promise<string> {
  let pending = conversions.get(key);
  if (!pending) {
    const outDir = path.join(root(), key);
    pending = convertToHuggingFace(input, outDir, { tokenizer }).then(() => outDir);
    conversions.set(key, pending);
  }
  return pending;
}

/** stories260K from the llama2.c `.bin` (the golden values' source), as an HF directory. */
export const storiesModelDir = (): Promise<string> => convertOnce('stories260K-bin', STORIES_BIN, STORIES_TOK);

/** stories260K from the GGUF (format v1), as an HF directory. */
export const storiesGgufModelDir = (): Promise<string> => convertOnce('stories260K-gguf', STORIES_GGUF);

/** A fresh empty directory under the per-process root (removed with it). */
export function scratchDir(prefix: string): string {
  return mkdtempSync(path.join(root(), `${prefix}-`));
}

/** Runs `node bin/crepe.js …args` (the compiled dist/) synchronously from the repository root. */
export function crepe(...args: string[]): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [builtCrepeBin(), ...args], { cwd: REPO_ROOT, encoding: 'utf8' });
}
