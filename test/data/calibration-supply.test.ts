// --nsamples is held to what the calibration file can provide, and the activations to what memory
// can hold, before anything is tokenised or drawn: --nsamples 10¹² fails at once with one line
// instead of growing memory until the process dies.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { checkActivationMemory, sampleCalibrationFile } from '../../src/data/calibration.ts';
import { UserError } from '../../src/util/errors.ts';
import { C4_SAMPLE } from '../helpers/shared.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const dir = tempDir('crepe-calib-supply');
let encoded = 0;
const charEncode = (text: string): Int32Array => {
  encoded++;
  return Int32Array.from([1, ...Array.from(text, (c) => c.codePointAt(0)!)]);
};
const refused = (run: () => unknown, pattern: RegExp) =>
  assert.throws(run, (error: unknown) => error instanceof UserError && pattern.test(error.message));

test('documents: at most Σ max(0, bytes + 2 − seqlen) windows, refused before any document is tokenised', () => {
  const jsonl = path.join(dir, 'docs.jsonl');
  // seqlen 4: 'ab' 0, 'abcdefgh' 8+2−4 = 6, 'xyz' 1, 'hello world' 9, 'q' 0 → 16.
  writeFileSync(jsonl, ['ab', 'abcdefgh', 'xyz', 'hello world', 'q'].map((text) => JSON.stringify({ text })).join('\n'));
  encoded = 0;
  refused(() => sampleCalibrationFile(jsonl, charEncode, { nsamples: 17, seqlen: 4, seed: 0 }),
    /^nsamples 17: .*docs\.jsonl \(5 documents\) can provide at most 16 distinct windows of seqlen 4 tokens; ask for fewer samples or give more calibration text$/);
  assert.equal(encoded, 0, 'nothing tokenised');
  assert.equal(sampleCalibrationFile(jsonl, charEncode, { nsamples: 16, seqlen: 4, seed: 0 }).windows.length, 16);
});

test('a text: exactly T − seqlen windows', () => {
  const txt = path.join(dir, 'plain.txt');
  writeFileSync(txt, 'abcdefghijklmnopqrs'); // 19 chars + BOS = 20 tokens
  refused(() => sampleCalibrationFile(txt, charEncode, { nsamples: 16, seqlen: 5, seed: 0 }), /plain\.txt \(20 tokens\) can provide at most 15 distinct windows/);
  assert.equal(sampleCalibrationFile(txt, charEncode, { nsamples: 15, seqlen: 5, seed: 0 }).windows.length, 15);
  // Too short for one window keeps its own message.
  refused(() => sampleCalibrationFile(txt, charEncode, { nsamples: 1, seqlen: 20, seed: 0 }), /plain\.txt: 20 tokens/);
});

test('the issue\'s --nsamples 1000000000000 on the C4 sample fails at once, naming the file', () => {
  encoded = 0;
  refused(() => sampleCalibrationFile(C4_SAMPLE, charEncode, { nsamples: 1e12, seqlen: 64, seed: 0 }),
    /^nsamples 1000000000000: .*first1000\.jsonl \(1000 documents\) can provide at most \d+ distinct windows/);
  assert.equal(encoded, 0);
});

test('activations that cannot fit in memory are refused before the file is read', () => {
  const memory = totalmem();
  // hidden 4096, seqlen 2048: 64 MiB per window; enough windows for twice the machine's memory.
  const nsamples = Math.ceil(memory / (2 * 2048 * 4096 * 4)) * 2;
  refused(() => checkActivationMemory(nsamples, 2048, 4096), new RegExp(`^nsamples ${nsamples} × seqlen 2048: the calibration activations need [\\d.]+ GiB .* more than this machine's [\\d.]+ GiB of memory$`));
  checkActivationMemory(128, 2048, 4096);
  refused(() => sampleCalibrationFile(path.join(dir, 'absent.jsonl'), charEncode, { nsamples, seqlen: 2048, seed: 0, hiddenSize: 4096 }), /activations need/);
});
