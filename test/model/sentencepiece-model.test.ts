import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeSentencePieceModel, encodeSentencePieceModel, TokenType } from '../../src/model/sentencepiece-model.ts';
import { addedTokens, vocabularyFromGguf, type SentencePieceVocabulary } from '../../src/model/tokenizer-build.ts';
import { UserError } from '../../src/util/errors.ts';

const ascii = (text: string) => Array.from(text, (c) => c.charCodeAt(0));

const tiny: SentencePieceVocabulary = {
  pieces: ['<unk>', '<s>', '</s>', 'a'],
  scores: Float32Array.from([0, 0, 0, 0.5]),
  types: Int32Array.from([2, 3, 3, 1]),
  unkId: 0,
  bosId: 1,
  eosId: 2,
};

/** A 256-byte-piece vocabulary plus `extra` pieces, with the given types for ids 0–2 and the extras. */
function byteVocabulary(specialTypes: number[], extra: string[], extraTypes: number[]): SentencePieceVocabulary {
  const bytes = Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
  const pieces = ['<unk>', '<s>', '</s>', ...bytes, ...extra];
  return {
    pieces,
    scores: Float32Array.from(pieces, (_, id) => -id),
    types: Int32Array.from([...specialTypes, ...bytes.map(() => TokenType.Byte), ...extraTypes]),
    unkId: 0,
    bosId: 1,
    eosId: 2,
  };
}

describe('SentencePiece ModelProto writer', () => {
  it('writes the exact protobuf bytes (hand-encoded)', () => {
    const f32 = (x: number) => Array.from(new Uint8Array(Float32Array.of(x).buffer));
    const expected = [
      // pieces (field 1, LEN): piece (1, LEN), score (2, I32), type (3, VARINT) unless NORMAL
      0x0a, 14, 0x0a, 5, ...ascii('<unk>'), 0x15, ...f32(0), 0x18, 2,
      0x0a, 12, 0x0a, 3, ...ascii('<s>'), 0x15, ...f32(0), 0x18, 3,
      0x0a, 13, 0x0a, 4, ...ascii('</s>'), 0x15, ...f32(0), 0x18, 3,
      0x0a, 8, 0x0a, 1, ...ascii('a'), 0x15, 0x00, 0x00, 0x00, 0x3f,
      // trainer_spec (field 2, LEN, 49 bytes)
      0x12, 49,
      0x18, 2, // model_type BPE
      0x20, 4, // vocab_size
      0x98, 0x02, 1, // byte_fallback (field 35: key 280)
      0xc0, 0x02, 0, // unk_id (40)
      0xc8, 0x02, 1, // bos_id (41)
      0xd0, 0x02, 2, // eos_id (42)
      0xd8, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, // pad_id (43) = -1: ten bytes
      0xea, 0x02, 5, ...ascii('<unk>'), // unk_piece (45)
      0xf2, 0x02, 3, ...ascii('<s>'), // bos_piece (46)
      0xfa, 0x02, 4, ...ascii('</s>'), // eos_piece (47)
      // normalizer_spec (field 3, LEN): name, add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces
      0x1a, 16, 0x0a, 8, ...ascii('identity'), 0x18, 1, 0x20, 0, 0x28, 1,
    ];
    assert.deepEqual(Array.from(encodeSentencePieceModel(tiny)), expected);
  });

  it('reads back what it writes, skipping fields it does not know', () => {
    const bytes = encodeSentencePieceModel(tiny);
    // self_test_data (field 4, LEN) and a fixed64 field 9 appended: both skipped.
    const withExtra = Uint8Array.from([...bytes, 0x22, 2, 0x0a, 0, 0x49, 1, 2, 3, 4, 5, 6, 7, 8]);
    const model = decodeSentencePieceModel(withExtra, 'x.model');
    assert.deepEqual(model.pieces, tiny.pieces);
    assert.deepEqual(Array.from(model.scores), [0, 0, 0, 0.5]);
    assert.deepEqual(Array.from(model.types), [2, 3, 3, 1]);
    assert.deepEqual(model.trainer, { modelType: 2, vocabSize: 4, byteFallback: true, unkId: 0, bosId: 1, eosId: 2, padId: -1 });
  });

  it('keeps non-BMP pieces and -0 scores exactly', () => {
    const vocab = { ...tiny, pieces: ['<unk>', '<s>', '</s>', '🙂▁'], scores: Float32Array.from([0, 0, 0, -0]) };
    const model = decodeSentencePieceModel(encodeSentencePieceModel(vocab), 'x.model');
    assert.equal(model.pieces[3], '🙂▁');
    assert.ok(Object.is(model.scores[3], -0));
  });

  it('writes the unk token as the one UNKNOWN piece, other unknown-typed pieces as CONTROL, GGUF "undefined" as NORMAL', () => {
    // llama.cpp's GGUFs of Hub Llama tokenizers often type <unk> CONTROL.
    const vocab = byteVocabulary([3, 3, 3], ['▁x', '<mask>', 'y'], [0, 2, 4]);
    const model = decodeSentencePieceModel(encodeSentencePieceModel(vocab), 'x.model');
    assert.deepEqual(Array.from(model.types.subarray(0, 4)), [2, 3, 3, 6]);
    assert.deepEqual(Array.from(model.types.subarray(259)), [1, 3, 4]);
  });

  it('refuses truncated or malformed bytes with a UserError naming the file', () => {
    const bytes = encodeSentencePieceModel(tiny);
    const isUserError = (pattern: RegExp) => (error: unknown) => error instanceof UserError && pattern.test(error.message);
    assert.throws(() => decodeSentencePieceModel(bytes.subarray(0, 10), 'cut.model'), isUserError(/^cut\.model: not a SentencePiece model \(byte \d+: length-delimited field past the end\)$/));
    assert.throws(() => decodeSentencePieceModel(Uint8Array.from([0x0a]), 'cut.model'), isUserError(/truncated varint/));
    assert.throws(() => decodeSentencePieceModel(Uint8Array.from([0x2b]), 'bad.model'), isUserError(/unsupported wire type 3/));
    assert.throws(() => decodeSentencePieceModel(Uint8Array.from([0x08, 1]), 'bad.model'), isUserError(/field pieces has wire type 0, expected 2/));
  });
});

describe('added tokens and token types of a vocabulary', () => {
  it('declares unk and control pieces as special added tokens, user-defined pieces as plain ones', () => {
    const vocab = byteVocabulary([2, 3, 3], ['▁x', '<tool>'], [1, 4]);
    assert.deepEqual(
      addedTokens(vocab).map(({ id, content, special, normalized }) => ({ id, content, special, normalized })),
      [
        { id: 0, content: '<unk>', special: true, normalized: false },
        { id: 1, content: '<s>', special: true, normalized: false },
        { id: 2, content: '</s>', special: true, normalized: false },
        { id: 260, content: '<tool>', special: false, normalized: false },
      ],
    );
  });

  it('refuses a GGUF token type outside 0–6', () => {
    const vocab = byteVocabulary([2, 3, 3], ['▁x'], [9]);
    assert.throws(
      () => vocabularyFromGguf({ tokens: vocab.pieces, scores: vocab.scores, types: vocab.types }, 'm.gguf'),
      (error: unknown) => error instanceof UserError && /^m\.gguf: token 259 has type 9/.test(error.message),
    );
  });
});
