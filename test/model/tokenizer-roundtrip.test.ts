/**
 * The tokenizer files `crepe convert` writes, read back by crepe, by @huggingface/tokenizers the
 * way transformers' PreTrainedTokenizerFast uses it (tokenizer.json as it is, special tokens added
 * by the post-processor, special tokens skipped on decode), and as a SentencePiece model — against
 * the ids of an independent SentencePiece encoder (../shared/golden/tokenizer-roundtrip.json).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Tokenizer } from '@huggingface/tokenizers';
import { GgufFile } from '../../src/io/gguf.ts';
import { readLlama2cTokenizer } from '../../src/io/llama2c.ts';
import { convertToHuggingFace } from '../../src/model/convert.ts';
import { decodeSentencePieceModel } from '../../src/model/sentencepiece-model.ts';
import { TextTokenizer } from '../../src/model/tokenizer.ts';
import { vocabularyFromLlama2c } from '../../src/model/tokenizer-build.ts';
import { GOLDEN, STORIES_BIN, STORIES_GGUF, STORIES_TOK } from '../helpers/shared.ts';

interface Case { text: string; ids: number[] }
const golden = (JSON.parse(readFileSync(path.join(GOLDEN, 'tokenizer-roundtrip.json'), 'utf8')) as { cases: Case[] }).cases;
const goldenIds = (text: string): number[] => {
  const found = golden.find((c) => c.text === text);
  assert.ok(found, `golden case ${JSON.stringify(text)}`);
  return found.ids;
};

/**
 * Texts with special tokens typed in, expected ids composed from golden cases: a special token is
 * matched whole, and each stretch of text around it is encoded as a text of its own (its own
 * dummy prefix), as transformers' Llama tokenizers and llama.cpp do. BOS is first, as always.
 */
function specialTokenCases(): Case[] {
  const hello = goldenIds('Hello world').slice(1);
  const leading = goldenIds(' leading space').slice(1);
  const once = goldenIds('Once upon a time, there was a little girl named Lily.').slice(1);
  return [
    { text: 'Hello world</s>', ids: [1, ...hello, 2] },
    { text: '<s>Hello world', ids: [1, 1, ...hello] },
    { text: 'Hello world<unk> leading space', ids: [1, ...hello, 0, ...leading] },
    { text: '</s>Once upon a time, there was a little girl named Lily.</s>', ids: [1, 2, ...once, 2] },
    { text: '<unk>', ids: [1, 0] },
  ];
}

const tmp = mkdtempSync(path.join(os.tmpdir(), 'crepe-tokenizer-roundtrip-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const sources = { bin: path.join(tmp, 'bin'), gguf: path.join(tmp, 'gguf') };
before(async () => {
  await convertToHuggingFace(STORIES_BIN, sources.bin, { tokenizer: STORIES_TOK });
  await convertToHuggingFace(STORIES_GGUF, sources.gguf);
});

const readJson = (dir: string, name: string) => JSON.parse(readFileSync(path.join(dir, name), 'utf8')) as Record<string, unknown>;

describe('converted stories260K tokenizers give the golden SentencePiece ids', () => {
  it('the corpus covers what the round trip must hold', () => {
    assert.equal(golden.length, 32);
    for (const must of [' leading space', 'trailing space ', 'multiple   inner    spaces', 'line one\nline two', '日本語のテキスト', 'Numbers 1234567890 and 3.14159', '']) {
      goldenIds(must);
    }
  });

  for (const [source, dir] of Object.entries(sources)) {
    it(`crepe (${source}): every golden text, BOS first, and decoded back`, () => {
      const tokenizer = TextTokenizer.load(dir);
      for (const { text, ids } of golden) {
        assert.deepEqual(Array.from(tokenizer.encode(text)), ids, JSON.stringify(text));
        assert.equal(tokenizer.decode(ids), text, `decode ${JSON.stringify(text)}`);
      }
    });

    it(`@huggingface/tokenizers as transformers uses it (${source}): golden ids with special tokens added`, () => {
      const tokenizer = new Tokenizer(readJson(dir, 'tokenizer.json'), readJson(dir, 'tokenizer_config.json'));
      for (const { text, ids } of golden) {
        assert.deepEqual(tokenizer.encode(text).ids, ids, JSON.stringify(text));
        assert.equal(tokenizer.decode(ids, { skip_special_tokens: true }), text, `decode ${JSON.stringify(text)}`);
      }
    });

    it(`special tokens typed in the text are matched whole, the same in crepe and @huggingface/tokenizers (${source})`, () => {
      const crepe = TextTokenizer.load(dir);
      const hf = new Tokenizer(readJson(dir, 'tokenizer.json'), readJson(dir, 'tokenizer_config.json'));
      for (const { text, ids } of specialTokenCases()) {
        assert.deepEqual(Array.from(crepe.encode(text)), ids, `crepe ${JSON.stringify(text)}`);
        assert.deepEqual(hf.encode(text).ids, ids, `@huggingface/tokenizers ${JSON.stringify(text)}`);
      }
      assert.equal(crepe.decode([1, ...goldenIds('Hello world').slice(1), 2]), 'Hello world');
    });
  }
});

describe('special tokens are declared', () => {
  for (const [source, dir] of Object.entries(sources)) {
    it(`tokenizer.json added_tokens and tokenizer_config.json (${source})`, () => {
      const added = readJson(dir, 'tokenizer.json').added_tokens as Record<string, unknown>[];
      assert.deepEqual(
        added.map(({ id, content, special, normalized, lstrip, rstrip, single_word }) => ({ id, content, special, normalized, lstrip, rstrip, single_word })),
        ['<unk>', '<s>', '</s>'].map((content, id) => ({
          id, content, special: true, normalized: false, lstrip: false, rstrip: false, single_word: false,
        })),
      );
      const config = readJson(dir, 'tokenizer_config.json');
      assert.equal(config.tokenizer_class, 'PreTrainedTokenizerFast');
      assert.equal(config.bos_token, '<s>');
      assert.equal(config.eos_token, '</s>');
      assert.equal(config.unk_token, '<unk>');
      assert.equal(config.add_bos_token, true);
      assert.equal(config.add_eos_token, false);
      assert.equal(config.model_max_length, 512);
    });
  }
});

describe('tokenizer.model (SentencePiece protobuf) of the converted stories260K', () => {
  const raw = readLlama2cTokenizer(STORIES_TOK, 512);
  const vocab = vocabularyFromLlama2c(raw.pieces, raw.scores, STORIES_TOK);
  const bits = (scores: Float32Array) => Array.from(new Uint32Array(scores.buffer, scores.byteOffset, scores.length));

  for (const [source, dir] of Object.entries(sources)) {
    it(`parses back with the pieces, bit-identical scores and types of the source (${source})`, () => {
      const model = decodeSentencePieceModel(readFileSync(path.join(dir, 'tokenizer.model')), 'tokenizer.model');
      assert.equal(model.pieces.length, 512);
      assert.deepEqual(model.pieces, vocab.pieces);
      assert.deepEqual(model.pieces.slice(0, 4), ['<unk>', '<s>', '</s>', '<0x00>']);
      assert.equal(model.pieces[259], '▁t');
      assert.deepEqual(bits(model.scores), bits(raw.scores));
      assert.equal(model.scores[261], -2); // '▁a'
      assert.equal(new Set(model.scores).size, 253);
      const expectedTypes = Array.from({ length: 512 }, (_, id) => (id === 0 ? 2 : id < 3 ? 3 : id < 259 ? 6 : 1));
      assert.deepEqual(Array.from(model.types), expectedTypes);
      assert.deepEqual(model.trainer, { modelType: 2, vocabSize: 512, byteFallback: true, unkId: 0, bosId: 1, eosId: 2, padId: -1 });
      assert.deepEqual(model.normalizer, { name: 'identity', addDummyPrefix: true, removeExtraWhitespaces: false, escapeWhitespaces: true });
    });
  }

  it('from GGUF: the scores are the GGUF file\'s tokenizer.ggml.scores', () => {
    const gguf = GgufFile.open(STORIES_GGUF);
    try {
      const scores = gguf.metadata.get('tokenizer.ggml.scores') as Float32Array;
      const model = decodeSentencePieceModel(readFileSync(path.join(sources.gguf, 'tokenizer.model')), 'tokenizer.model');
      assert.deepEqual(bits(model.scores), bits(scores));
    } finally {
      gguf.close();
    }
  });
});
