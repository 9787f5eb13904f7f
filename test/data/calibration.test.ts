// Expected draws come from running the reference loop (ALGORITHMS.md §1.1) in CPython 3.11.7 with the
// same toy tokenizer: BOS (1) followed by one token per character code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  sampleC4Windows,
  sampleCalibrationFile,
  sampleTextWindows,
  windowsSha256,
} from '../../src/data/calibration.ts';
import { isDocumentsFile } from '../../src/data/text-sources.ts';
import { UserError } from '../../src/util/errors.ts';

const charEncode = (text: string): Int32Array => Int32Array.from([1, ...Array.from(text, (c) => c.codePointAt(0)!)]);
const docs = ['ab', 'abcdefgh', 'xyz', 'hello world', 'q'];

test('sampleC4Windows reproduces the Python draws, rejecting short documents', () => {
  const { windows, draws } = sampleC4Windows(docs, charEncode, { nsamples: 6, seqlen: 4, seed: 7 });
  assert.deepEqual(draws, [[1, 3], [1, 0], [3, 6], [1, 0], [3, 0], [1, 4]]);
  assert.deepEqual(windows.map((w) => Array.from(w)), [
    [99, 100, 101, 102],
    [1, 97, 98, 99],
    [32, 119, 111, 114],
    [1, 97, 98, 99],
    [1, 104, 101, 108],
    [100, 101, 102, 103],
  ]);
});

test('sampleC4Windows tokenises each document at most once and reports progress', () => {
  const calls = new Map<string, number>();
  const counting = (text: string) => {
    calls.set(text, (calls.get(text) ?? 0) + 1);
    return charEncode(text);
  };
  const progress: number[] = [];
  sampleC4Windows(docs, counting, { nsamples: 6, seqlen: 4, seed: 7, onProgress: (done) => progress.push(done) });
  assert.ok([...calls.values()].every((n) => n === 1));
  assert.deepEqual(progress, [1, 2, 3, 4, 5, 6]);
});

test('sampleC4Windows: a document of exactly seqlen tokens is rejected (strictly more needed)', () => {
  // 'abc' → 4 tokens: not enough for seqlen 4; with 5 tokens the window start is always 0 or 1.
  assert.throws(() => sampleC4Windows(['abc', 'xy'], charEncode, { nsamples: 1, seqlen: 4, seed: 0, source: 'tiny.jsonl' }), (err: unknown) =>
    err instanceof UserError && err.message.includes('tiny.jsonl') && err.message.includes('seqlen 4'));
  const { draws } = sampleC4Windows(['abc', 'abcd'], charEncode, { nsamples: 20, seqlen: 4, seed: 0 });
  assert.ok(draws.every(([doc, start]) => doc === 1 && (start === 0 || start === 1)));
});

test('sampleC4Windows: bad options and empty input are UserErrors', () => {
  assert.throws(() => sampleC4Windows([], charEncode, { nsamples: 1, seqlen: 4, seed: 0 }), UserError);
  assert.throws(() => sampleC4Windows(docs, charEncode, { nsamples: 0, seqlen: 4, seed: 0 }), { name: 'FieldError', field: 'nsamples' });
  assert.throws(() => sampleC4Windows(docs, charEncode, { nsamples: 1, seqlen: 1.5, seed: 0 }), { name: 'FieldError', field: 'seqlen' });
  assert.throws(() => sampleC4Windows(docs, charEncode, { nsamples: 1, seqlen: 4, seed: 0.5 }), { name: 'FieldError', field: 'seed' });
});

test('sampleTextWindows: start = randint(0, len − seqlen − 1) per sample', () => {
  const tokens = Int32Array.from({ length: 20 }, (_, i) => 100 + i);
  const { windows, starts } = sampleTextWindows(tokens, { nsamples: 5, seqlen: 5, seed: 3 });
  assert.deepEqual(starts, [3, 9, 8, 2, 5]);
  assert.deepEqual(Array.from(windows[1]), [109, 110, 111, 112, 113]);
  // The last possible window is [len − seqlen − 1, len − 1): the final token is never in a window.
  const tight = sampleTextWindows(Int32Array.from([1, 2, 3]), { nsamples: 3, seqlen: 2, seed: 0 });
  assert.ok(tight.starts.every((s) => s === 0));
});

test('sampleTextWindows: text shorter than seqlen + 1 tokens names the source and lengths', () => {
  assert.throws(
    () => sampleTextWindows(Int32Array.from([1, 2, 3, 4]), { nsamples: 1, seqlen: 4, seed: 0, source: 'short.txt' }),
    (err: unknown) => err instanceof UserError && /short\.txt: 4 tokens.*seqlen 4.*at least 5/.test(err.message),
  );
});

test('windowsSha256 hashes int32 little-endian ids of all windows in order', () => {
  const windows = [Int32Array.from([1, -2]), Int32Array.from([256])];
  const bytes = Buffer.from([1, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 0, 1, 0, 0]);
  assert.equal(windowsSha256(windows), createHash('sha256').update(bytes).digest('hex'));
  // Views into a larger buffer hash only their own ids.
  const big = Int32Array.from([9, 1, -2, 9]);
  assert.equal(windowsSha256([big.subarray(1, 3), Int32Array.from([256])]), windowsSha256(windows));
});

test('sampleCalibrationFile dispatches JSON Lines to the document sampler and text to windows', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'crepe-calib-'));
  try {
    const jsonl = path.join(dir, 'docs.jsonl');
    writeFileSync(jsonl, docs.map((text) => JSON.stringify({ text })).join('\n') + '\n');
    const fromFile = sampleCalibrationFile(jsonl, charEncode, { nsamples: 6, seqlen: 4, seed: 7 });
    assert.equal(fromFile.kind, 'documents');
    assert.deepEqual(fromFile.draws, [[1, 3], [1, 0], [3, 6], [1, 0], [3, 0], [1, 4]]);

    const txt = path.join(dir, 'plain.txt');
    writeFileSync(txt, 'abcdefghijklmnopqrs'); // 19 chars + BOS = 20 tokens
    const text = sampleCalibrationFile(txt, charEncode, { nsamples: 5, seqlen: 5, seed: 3 });
    assert.equal(text.kind, 'text');
    assert.deepEqual(text.draws.map(([, start]) => start), [3, 9, 8, 2, 5]);
    assert.throws(() => sampleCalibrationFile(txt, charEncode, { nsamples: 1, seqlen: 20, seed: 0 }), /plain\.txt: 20 tokens/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(isDocumentsFile('c4-train.00000-of-01024.json.gz'), true);
  assert.equal(isDocumentsFile('x.jsonl.gz'), true);
  // The decompressed C4 shard.
  assert.equal(isDocumentsFile('c4-train.00000-of-01024.json'), true);
  assert.equal(isDocumentsFile('notes.txt'), false);
  assert.equal(isDocumentsFile('wiki.train.raw'), false);
});
