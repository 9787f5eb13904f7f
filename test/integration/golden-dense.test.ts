// On the real model: both stories260K files (GGUF v1 and llama2.c .bin) convert
// to directories whose ONNX logits agree with each other and with the TypeScript reference, and the
// dense WikiText-2 test perplexity equals the golden value (../shared/golden/stories260K.json).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { forwardLogits } from '../../src/engine/forward.ts';
import { ModelCheckpoint } from '../../src/model/checkpoint.ts';
import { referenceLogits } from '../../src/model/reference-forward.ts';
import { TextTokenizer } from '../../src/model/tokenizer.ts';
import { evaluatePerplexity } from '../../src/index.ts';
import { GOLDEN, WIKITEXT_TEST } from '../helpers/shared.ts';
import { storiesGgufModelDir, storiesModelDir } from '../helpers/stories.ts';

interface DenseGolden {
  n_tokens: number;
  text_utf8_sha256: string;
  dense: { seqlen: number; windows: number; ppl: number };
}
const golden = (JSON.parse(readFileSync(path.join(GOLDEN, 'stories260K.json'), 'utf8')) as { wikitext2_test: DenseGolden }).wikitext2_test;

const STORY =
  'Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her ' +
  'friend Tom. One day, they found a big red ball under a tree. Lily said, "Let\'s play!" Tom smiled and ' +
  'threw the ball high in the sky. They laughed and ran until the sun went down.';
const SEQ_LEN = 64;

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

describe('stories260K dense (golden)', () => {
  let binDir = '';
  let ggufDir = '';
  before(async () => {
    binDir = await storiesModelDir();
    ggufDir = await storiesGgufModelDir();
  });

  it(`ONNX logits of the GGUF and .bin conversions agree with each other and the reference within 1e-4 (${SEQ_LEN} tokens)`, async (t) => {
    const tokens = TextTokenizer.load(binDir).encode(STORY, { bos: true }).slice(0, SEQ_LEN);
    assert.equal(tokens.length, SEQ_LEN);
    assert.deepEqual(TextTokenizer.load(ggufDir).encode(STORY, { bos: true }).slice(0, SEQ_LEN), tokens, 'both tokenizers agree');

    const fromBin = ModelCheckpoint.open(binDir);
    const fromGguf = ModelCheckpoint.open(ggufDir);
    try {
      assert.deepEqual(fromGguf.spec, fromBin.spec);
      const spec = fromBin.spec;
      const onnxBin = await forwardLogits(fromBin, tokens, { device: 'cpu' });
      const onnxGguf = await forwardLogits(fromGguf, tokens, { device: 'cpu' });
      const reference = referenceLogits(fromBin, tokens);
      assert.equal(reference.length, SEQ_LEN * spec.vocabSize);

      // The logits are far from trivial: a spread of several units across the vocabulary.
      assert.ok(maxAbsDiff(reference, new Float64Array(reference.length)) > 1, 'logits are not all ~0');
      const tolerance = 1e-4;
      const binVsGguf = maxAbsDiff(onnxBin, onnxGguf);
      const binVsReference = maxAbsDiff(onnxBin, reference);
      const ggufVsReference = maxAbsDiff(onnxGguf, reference);
      t.diagnostic(`max abs: GGUF vs .bin ${binVsGguf}, .bin vs reference ${binVsReference}, GGUF vs reference ${ggufVsReference}`);
      assert.ok(binVsGguf <= tolerance, `GGUF vs .bin: ${binVsGguf}`);
      assert.ok(binVsReference <= tolerance, `.bin vs reference: ${binVsReference}`);
      assert.ok(ggufVsReference <= tolerance, `GGUF vs reference: ${ggufVsReference}`);
    } finally {
      fromBin.close();
      fromGguf.close();
    }
  });

  it(`WikiText-2 test PPL at seqlen ${golden.dense.seqlen} equals the golden ${golden.dense.ppl.toFixed(4)} within 0.01 %`, async (t) => {
    const report = await evaluatePerplexity({ model: binDir, text: WIKITEXT_TEST, seqlen: golden.dense.seqlen });
    assert.equal(report.textSha256, golden.text_utf8_sha256);
    assert.equal(report.tokens, golden.n_tokens);
    assert.equal(report.windows, golden.dense.windows);
    const relative = Math.abs(report.ppl - golden.dense.ppl) / golden.dense.ppl;
    t.diagnostic(`PPL ${report.ppl} (golden ${golden.dense.ppl}, relative error ${relative.toExponential(2)})`);
    assert.ok(relative <= 1e-4, `PPL ${report.ppl} vs golden ${golden.dense.ppl}: relative error ${relative}`);
  });
});
