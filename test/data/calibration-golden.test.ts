// The C4 sampler on the real stories260K tokenizer against the golden draws and window checksum
// (../shared/golden/stories260K.json `pruning.calibration`), with the model converted from the
// llama2.c checkpoint and tokenised by its converted tokenizer.json.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sampleC4Windows, windowsSha256 } from '../../src/data/calibration.ts';
import { readJsonlDocuments } from '../../src/data/text-sources.ts';
import { sha256File } from '../../src/util/hash.ts';
import { convertToHuggingFace } from '../../src/model/convert.ts';
import { TextTokenizer } from '../../src/model/tokenizer.ts';
import { DATA, GOLDEN, STORIES_BIN, STORIES_TOK } from '../helpers/shared.ts';

interface CalibrationGolden {
  file: string;
  nsamples: number;
  seqlen: number;
  seed: number;
  n_docs: number;
  calib_sha256: string;
  draws_first8_doc_start: Array<[number, number]>;
  windows_sha256_int32: string;
}

const golden: CalibrationGolden = JSON.parse(readFileSync(path.join(GOLDEN, 'stories260K.json'), 'utf8')).pruning.calibration;

test('C4 calibration windows of stories260K match the golden draws and checksum', async () => {
  const calibFile = path.join(DATA, golden.file);
  assert.equal(sha256File(calibFile), golden.calib_sha256);
  const documents = readJsonlDocuments(calibFile);
  assert.equal(documents.length, golden.n_docs);

  const outDir = mkdtempSync(path.join(tmpdir(), 'crepe-calib-golden-'));
  try {
    const modelDir = path.join(outDir, 'stories260K');
    await convertToHuggingFace(STORIES_BIN, modelDir, { tokenizer: STORIES_TOK });
    const tokenizer = TextTokenizer.load(modelDir);
    const encode = (text: string): Int32Array => tokenizer.encode(text);

    const { windows, draws } = sampleC4Windows(documents, encode, {
      nsamples: golden.nsamples,
      seqlen: golden.seqlen,
      seed: golden.seed,
    });
    assert.deepEqual(draws.slice(0, 8), golden.draws_first8_doc_start);
    assert.equal(windows.length, golden.nsamples);
    assert.ok(windows.every((w) => w.length === golden.seqlen));
    assert.equal(windowsSha256(windows), golden.windows_sha256_int32);
  } finally {
    rmSync(outDir, { recursive: true, force: true });
  }
});
