// A checkpoint whose weights hold NaN or an infinity is refused by convert (found by the property
// test: a run of 0xff bytes in a GGUF or llama2.c file's tensor data is NaN), naming the input and
// the tensor, and nothing is left behind — every other command refuses such a model, so the
// converter must not make one.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { convertToHuggingFace } from '../../src/model/convert.ts';
import { UserError } from '../../src/util/errors.ts';
import { STORIES_BIN, STORIES_GGUF, STORIES_TOK } from '../helpers/shared.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const tmp = tempDir('crepe-convert-nonfinite');

/** A copy of `source` with `length` bytes at `at` set to 0xff (a float32 NaN pattern). */
function withNaN(source: string, at: number, length: number): string {
  const bytes = readFileSync(source);
  bytes.fill(0xff, at, at + length);
  const file = path.join(tmp, `nan-${path.basename(source)}`);
  writeFileSync(file, bytes);
  return file;
}

describe('convert refuses non-finite weights', () => {
  for (const [name, input, tokenizer] of [['GGUF', STORIES_GGUF, undefined], ['llama2.c', STORIES_BIN, STORIES_TOK]] as const) {
    it(`${name}: one UserError naming the input and the tensor; no output, no temporary`, async () => {
      const size = readFileSync(input).length;
      const file = withNaN(input, Math.floor(size * 0.6), 16);
      const outParent = mkdtempSync(path.join(tmp, 'out-'));
      if (tokenizer) copyFileSync(tokenizer, path.join(tmp, path.basename(tokenizer)));
      await assert.rejects(convertToHuggingFace(file, path.join(outParent, 'out'), { tokenizer }), (error: unknown) =>
        error instanceof UserError && error.message.startsWith(`${file}: tensor "model.`) && /holds NaN at index \d+; weights must be finite$/.test(error.message));
      assert.deepEqual(readdirSync(outParent), [], 'nothing written beside --out');
      assert.ok(!existsSync(path.join(outParent, 'out')));
    });
  }
});
