/** Locations of the shared test data and golden values (never copied into the repository). */
import { fileURLToPath } from 'node:url';
import path from 'node:path';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const SHARED = path.resolve(REPO_ROOT, '../shared');
export const DATA = path.join(SHARED, 'data');
export const GOLDEN = path.join(SHARED, 'golden');

export const STORIES_DIR = path.join(DATA, 'models/stories260K');
export const STORIES_BIN = path.join(STORIES_DIR, 'stories260K.bin');
export const STORIES_TOK = path.join(STORIES_DIR, 'tok512.bin');
export const STORIES_GGUF = path.join(STORIES_DIR, 'tinyllamas-stories-260k-f32.gguf');
export const WIKITEXT_TEST = path.join(DATA, 'text/wikitext-2-raw/wiki.test.raw');
export const C4_SAMPLE = path.join(DATA, 'text/c4/c4-train.00000-of-01024.first1000.jsonl');
export const PTB_VALID = path.join(DATA, 'text/ptb/ptb.valid.txt');
export const TASK_DIR = path.join(DATA, 'tasks');

/** `file` as a reader of the repository would type it: relative to the root, or under ../shared/data. */
export const sharedRelative = (file: string): string =>
  file.startsWith(REPO_ROOT) ? path.relative(REPO_ROOT, file) : file.startsWith(DATA) ? `../shared/data/${path.relative(DATA, file)}` : file;
