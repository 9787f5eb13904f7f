import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hfWikitextText } from '../../src/data/text-sources.ts';
import { readLlama2cTokenizer } from '../../src/io/llama2c.ts';
import { convertToHuggingFace } from '../../src/model/convert.ts';
import { TextTokenizer } from '../../src/model/tokenizer.ts';
import {
  buildTokenizerJson,
  canSplitBeforeSpaceMark,
  sentencePieceMerges,
  vocabularyFromLlama2c,
} from '../../src/model/tokenizer-build.ts';
import { UserError } from '../../src/util/errors.ts';
import { GOLDEN, STORIES_BIN, STORIES_GGUF, STORIES_TOK, WIKITEXT_TEST } from '../helpers/shared.ts';

interface Golden {
  tokenization: { text: string; ids: number[] }[];
  wikitext2_test: { n_tokens: number; ids_sha256_int32: string; text_utf8_sha256: string };
}
const golden = JSON.parse(readFileSync(path.join(GOLDEN, 'stories260K.json'), 'utf8')) as Golden;

const tmp = mkdtempSync(path.join(os.tmpdir(), 'crepe-tokenizer-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('tokenizers of the converted stories260K (from GGUF and from tok512.bin)', () => {
  const tokenizers: Record<string, TextTokenizer> = {};

  before(async () => {
    await convertToHuggingFace(STORIES_GGUF, path.join(tmp, 'gguf'));
    await convertToHuggingFace(STORIES_BIN, path.join(tmp, 'bin'), { tokenizer: STORIES_TOK });
    tokenizers.gguf = TextTokenizer.load(path.join(tmp, 'gguf'));
    tokenizers.bin = TextTokenizer.load(path.join(tmp, 'bin'));
  });

  it('encode the golden sentences to the exact ids (BOS first), and decode them back', () => {
    for (const [source, tokenizer] of Object.entries(tokenizers)) {
      assert.equal(tokenizer.vocabSize, 512);
      assert.equal(tokenizer.bosId, 1);
      for (const { text, ids } of golden.tokenization) {
        assert.deepEqual(Array.from(tokenizer.encode(text)), ids, `${source}: ${JSON.stringify(text)}`);
        assert.deepEqual(Array.from(tokenizer.encode(text, { bos: false })), ids.slice(1));
        assert.equal(tokenizer.decode(ids), text, `${source}: decode`);
      }
    }
  });

  it('match "<s>" typed in the text as the BOS token (as transformers does); empty text is BOS alone', () => {
    assert.deepEqual(Array.from(tokenizers.bin.encode('<s>')), [1, 1]);
    assert.equal(tokenizers.bin.decode([1, 1]), '');
    assert.deepEqual(Array.from(tokenizers.bin.encode('')), [1]);
    assert.equal(tokenizers.bin.decode([]), '');
  });

  it('encode the whole WikiText-2 test text to the golden ids', () => {
    const text = hfWikitextText(readFileSync(WIKITEXT_TEST, 'utf8'));
    assert.equal(createHash('sha256').update(text, 'utf8').digest('hex'), golden.wikitext2_test.text_utf8_sha256);
    const ids = tokenizers.gguf.encode(text);
    assert.equal(ids.length, golden.wikitext2_test.n_tokens);
    const idsSha = createHash('sha256').update(new Uint8Array(ids.buffer, ids.byteOffset, ids.byteLength)).digest('hex');
    assert.equal(idsSha, golden.wikitext2_test.ids_sha256_int32);
  });
});

describe('tokenizer.json construction', () => {
  it('maps llama2.c tokens: specials renamed, spaces as ▁, byte tokens typed', () => {
    const raw = readLlama2cTokenizer(STORIES_TOK, 512);
    const vocab = vocabularyFromLlama2c(raw.pieces, raw.scores, STORIES_TOK);
    assert.deepEqual(vocab.pieces.slice(0, 3), ['<unk>', '<s>', '</s>']);
    assert.deepEqual(vocab.pieces.slice(259, 262), ['▁t', 'he', '▁a']);
    assert.deepEqual(Array.from(vocab.types.subarray(0, 4)), [2, 3, 3, 6]);
    assert.equal(vocab.types[259], 1);
    const json = buildTokenizerJson(vocab) as { added_tokens: { id: number }[]; pre_tokenizer: { type: string } | null };
    assert.deepEqual(json.added_tokens.map((token) => token.id), [0, 1, 2]);
    assert.equal(json.pre_tokenizer?.type, 'Split'); // tok512 has no piece with an inner ▁
  });

  it('builds merges like the SentencePiece extractor: all in-vocab splits, by score, ties by longer left part', () => {
    const pieces = ['a', 'b', 'c', 'ab', 'bc', 'abc', 'ca'];
    const scores = [0, 0, 0, -1, -3, -2, -3];
    assert.deepEqual(sentencePieceMerges(pieces, scores), [
      ['a', 'b'], // ab: -1
      ['ab', 'c'], // abc: -2, split 2+1 before 1+2
      ['a', 'bc'],
      ['b', 'c'], // bc: -3, before ca (same score, earlier piece)
      ['c', 'a'],
    ]);
  });

  it('splits at code points, so pieces beyond the BMP merge', () => {
    assert.deepEqual(sentencePieceMerges(['🙂', 'x', '🙂x'], [0, 0, -1]), [['🙂', 'x']]);
  });

  it('uses the ▁ split only when no piece has ▁ after its first character', () => {
    assert.equal(canSplitBeforeSpaceMark(['▁a', 'b▁', 'c']), false);
    assert.equal(canSplitBeforeSpaceMark(['▁▁']), false);
    assert.equal(canSplitBeforeSpaceMark(['▁', '▁ab', 'ab']), true);
  });

  it('without the split (a ▁▁ piece), encodes across spaces', () => {
    const bytes = Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    const pieces = ['<unk>', '<s>', '</s>', ...bytes, '▁', 'a', '▁▁', '▁a'];
    const scores = Float32Array.from(pieces, (_, id) => (id < 259 ? 0 : -id));
    const types = Int32Array.from(pieces, (_, id) => (id === 0 ? 2 : id < 3 ? 3 : id < 259 ? 6 : 1));
    const dir = path.join(tmp, 'double-space');
    mkdirSync(dir);
    const json = buildTokenizerJson({ pieces, scores, types, unkId: 0, bosId: 1, eosId: 2 });
    assert.equal(json.pre_tokenizer, null);
    writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(json));
    writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<s>', eos_token: '</s>' }));
    const tokenizer = TextTokenizer.load(dir);
    // "▁a▁▁a": merges by score: ▁▁ (-261) before ▁a (-262), so → ▁a, ▁▁, a.
    assert.deepEqual(Array.from(tokenizer.encode('a  a')), [1, 262, 261, 260]);
    assert.equal(tokenizer.decode([1, 262, 261, 260]), 'a  a');
  });

  it('refuses a directory without tokenizer.json, or a corrupt one, with a UserError', () => {
    const dir = path.join(tmp, 'broken');
    mkdirSync(dir);
    assert.throws(() => TextTokenizer.load(dir), (e: unknown) => e instanceof UserError && /no tokenizer\.json/.test(e.message));
    writeFileSync(path.join(dir, 'tokenizer.json'), '{"model": ');
    assert.throws(() => TextTokenizer.load(dir), (e: unknown) => e instanceof UserError && /not valid JSON/.test(e.message));
    writeFileSync(path.join(dir, 'tokenizer.json'), '{"model": {"type": "Nonsense"}}');
    assert.throws(() => TextTokenizer.load(dir), (e: unknown) => e instanceof UserError && /not a usable tokenizer/.test(e.message));
  });
});
