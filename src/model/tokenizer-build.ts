/**
 * A SentencePiece BPE vocabulary (pieces, scores, token types — what llama2.c tokenizer files and
 * GGUF `tokenizer.ggml.*` hold) → the tokenizer files of a Hugging Face directory, built so that
 * crepe (@huggingface/tokenizers), Python `tokenizers`, transformers' AutoTokenizer and
 * sentencepiece give the ids SentencePiece gives:
 *
 * - `tokenizer.json`: a BPE model over the pieces (spaces written `▁`), byte fallback to `<0xXX>`
 *   pieces, merges derived from the scores the way Hugging Face's SentencePiece extractor does; the
 *   dummy-prefix `▁` comes from the normalizer (prepend `▁`, then every space → `▁`), because a
 *   Metaspace pre-tokenizer skips the prefix when the text already starts with a space and
 *   SentencePiece does not. BOS comes from a template post-processor.
 * - The unknown and control pieces (`<unk>`, `<s>`, `</s>`) are special added tokens, user-defined
 *   pieces non-special ones, as transformers' SentencePiece converter declares them: typed in the
 *   text they are matched whole, as by every Hub Llama tokenizer (sentencepiece alone would spell
 *   them out). Each stretch of text between them gets its own dummy prefix (transformers' "legacy"
 *   Llama behaviour, and llama.cpp's).
 * - `tokenizer_config.json` names the class `PreTrainedTokenizerFast`, which loads tokenizer.json as
 *   it is. transformers 5's `LlamaTokenizer(Fast)` keeps only the vocabulary and merges and rebuilds
 *   the rest from flags (no normalizer, a Metaspace pre-tokenizer), losing the prefix before a
 *   leading space.
 * - `tokenizer.model`: the SentencePiece protobuf with the scores (sentencepiece-model.ts, written
 *   by convert/hf-writer.ts), which llama.cpp's converter reads for the scores it keeps in the GGUF.
 *
 * A literal `▁` (U+2581) in the text reads as a space, here as in sentencepiece with the written
 * model; llama2.c's run.c, whose vocabulary holds real spaces, byte-encodes it instead.
 */
import { UserError } from '../util/errors.ts';
import { TokenType } from './sentencepiece-model.ts';

export const SPACE_MARK = '\u2581'; // ▁

export interface SentencePieceVocabulary {
  /** Pieces with spaces written as `▁`, indexed by token id. */
  pieces: string[];
  scores: Float32Array;
  /** TokenType of each piece. */
  types: Int32Array;
  unkId: number;
  bosId: number;
  eosId: number;
}

const BYTE_PIECE = /^<0x[0-9A-F]{2}>$/;

/** A llama2.c tokenizer's tokens → a vocabulary: "\n<s>\n" → `<s>` etc., spaces → `▁`. */
export function vocabularyFromLlama2c(rawPieces: readonly string[], scores: Float32Array, sourcePath: string): SentencePieceVocabulary {
  if (rawPieces.length < 3) throw new UserError(`${sourcePath}: a llama2.c tokenizer needs at least the 3 special tokens`);
  const specialNames = ['<unk>', '<s>', '</s>'];
  const pieces = rawPieces.map((piece, id) => (id < 3 ? specialNames[id] : piece.replaceAll(' ', SPACE_MARK)));
  const types = new Int32Array(pieces.length);
  for (let id = 0; id < pieces.length; id++) {
    if (id === 0) types[id] = TokenType.Unknown;
    else if (id < 3) types[id] = TokenType.Control;
    else types[id] = BYTE_PIECE.test(pieces[id]) ? TokenType.Byte : TokenType.Normal;
  }
  return checkedVocabulary({ pieces, scores, types, unkId: 0, bosId: 1, eosId: 2 }, sourcePath);
}

/** GGUF `tokenizer.ggml.*` arrays → a vocabulary (pieces already use `▁`). */
export function vocabularyFromGguf(
  fields: { tokens: string[]; scores: Float32Array | null; types: Int32Array | null; unkId?: number; bosId?: number; eosId?: number },
  sourcePath: string,
): SentencePieceVocabulary {
  const count = fields.tokens.length;
  const scores = fields.scores ?? new Float32Array(count).map((_, id) => -id);
  const types = fields.types ?? new Int32Array(count).fill(TokenType.Normal);
  if (scores.length !== count || types.length !== count) {
    throw new UserError(`${sourcePath}: tokenizer.ggml.scores/token_type have ${scores.length}/${types.length} entries for ${count} tokens`);
  }
  return checkedVocabulary(
    { pieces: fields.tokens, scores, types, unkId: fields.unkId ?? 0, bosId: fields.bosId ?? 1, eosId: fields.eosId ?? 2 },
    sourcePath,
  );
}

function checkedVocabulary(vocab: SentencePieceVocabulary, sourcePath: string): SentencePieceVocabulary {
  const seen = new Map<string, number>();
  vocab.pieces.forEach((piece, id) => {
    const previous = seen.get(piece);
    if (previous !== undefined) throw new UserError(`${sourcePath}: tokens ${previous} and ${id} are both "${piece}"`);
    seen.set(piece, id);
  });
  for (const [name, id] of [['unk', vocab.unkId], ['bos', vocab.bosId], ['eos', vocab.eosId]] as const) {
    if (!(Number.isInteger(id) && id >= 0 && id < vocab.pieces.length)) {
      throw new UserError(`${sourcePath}: ${name} token id ${id} is outside the vocabulary of ${vocab.pieces.length}`);
    }
  }
  const badType = vocab.types.findIndex((type) => !(Number.isInteger(type) && type >= 0 && type <= TokenType.Byte));
  if (badType >= 0) throw new UserError(`${sourcePath}: token ${badType} has type ${vocab.types[badType]} (expected 0–6, as in GGUF's tokenizer.ggml.token_type)`);
  for (let byte = 0; byte < 256; byte++) {
    const piece = `<0x${byte.toString(16).toUpperCase().padStart(2, '0')}>`;
    if (!seen.has(piece)) throw new UserError(`${sourcePath}: byte token ${piece} is missing (crepe needs a byte-fallback vocabulary)`);
  }
  return vocab;
}

/**
 * BPE merges from a SentencePiece vocabulary, as Hugging Face's `SentencePieceExtractor` builds
 * them: every split of a piece into two pieces that are both in the vocabulary; ordered by the
 * merged piece's score, highest first; ties by longer left part, then longer right part, then
 * vocabulary order of the merged piece, then the ids of the two parts.
 */
export function sentencePieceMerges(pieces: readonly string[], scores: ArrayLike<number>): [string, string][] {
  const idOf = new Map<string, number>();
  pieces.forEach((piece, id) => idOf.set(piece, id));
  interface Candidate { left: string; right: string; score: number; mergedId: number; leftId: number; rightId: number; leftChars: number; rightChars: number }
  const candidates: Candidate[] = [];
  for (let mergedId = 0; mergedId < pieces.length; mergedId++) {
    // Split at code points, not UTF-16 units: a piece may hold characters beyond the BMP.
    const chars = Array.from(pieces[mergedId]);
    for (let cut = 1; cut < chars.length; cut++) {
      const left = chars.slice(0, cut).join('');
      const right = chars.slice(cut).join('');
      const leftId = idOf.get(left);
      const rightId = idOf.get(right);
      if (leftId === undefined || rightId === undefined) continue;
      candidates.push({ left, right, score: scores[mergedId], mergedId, leftId, rightId, leftChars: cut, rightChars: chars.length - cut });
    }
  }
  candidates.sort(
    (a, b) =>
      b.score - a.score ||
      b.leftChars - a.leftChars ||
      b.rightChars - a.rightChars ||
      a.mergedId - b.mergedId ||
      a.leftId - b.leftId ||
      a.rightId - b.rightId,
  );
  return candidates.map(({ left, right }) => [left, right]);
}

/**
 * Splitting the normalized text before every `▁` leaves each word's BPE unchanged exactly when no
 * piece holds a `▁` after its first character (no merge can cross such a split). It makes
 * encoding several times faster (word results are cached), so it is used only when that holds.
 */
export function canSplitBeforeSpaceMark(pieces: readonly string[]): boolean {
  return pieces.every((piece) => piece.indexOf(SPACE_MARK, 1) === -1);
}

/**
 * The added tokens of `tokenizer.json`, in id order: the unk token and control pieces as special
 * tokens, user-defined pieces as plain ones; all matched in the raw text (`normalized: false`).
 */
export function addedTokens(vocab: SentencePieceVocabulary): Record<string, unknown>[] {
  const added: Record<string, unknown>[] = [];
  vocab.pieces.forEach((content, id) => {
    const type = vocab.types[id];
    const special = id === vocab.unkId || type === TokenType.Unknown || type === TokenType.Control;
    if (!special && type !== TokenType.UserDefined) return;
    added.push({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special });
  });
  return added;
}

/** The `tokenizer.json` object. */
export function buildTokenizerJson(vocab: SentencePieceVocabulary): Record<string, unknown> {
  const { pieces, bosId } = vocab;
  const bos = pieces[bosId];
  const vocabMap: Record<string, number> = {};
  pieces.forEach((piece, id) => {
    vocabMap[piece] = id;
  });
  const stringPattern = (text: string) => ({ String: text });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens(vocab),
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: SPACE_MARK },
        { type: 'Replace', pattern: stringPattern(' '), content: SPACE_MARK },
      ],
    },
    pre_tokenizer: canSplitBeforeSpaceMark(pieces)
      ? {
          // Each match is one word: a `▁` and what follows up to the next `▁`.
          type: 'Split',
          pattern: { Regex: `${SPACE_MARK}[^${SPACE_MARK}]*|[^${SPACE_MARK}]+` },
          behavior: 'Isolated',
          invert: false,
        }
      : null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: bos, type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: bos, type_id: 1 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { [bos]: { id: bos, ids: [bosId], tokens: [bos] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: stringPattern(SPACE_MARK), content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        // The dummy prefix: drop the one leading space the normalizer added.
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: pieces[vocab.unkId],
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab: vocabMap,
      merges: sentencePieceMerges(pieces, vocab.scores),
    },
  };
}

/**
 * The `tokenizer_config.json` object: the special tokens by name, BOS added, no clean-up of spaces,
 * and the class that takes tokenizer.json as it is (see the top of this file). No
 * `added_tokens_decoder`: transformers takes the added tokens from tokenizer.json, and llama.cpp's
 * converter would give every token listed there the score −1000 and the type CONTROL (`<unk>` too)
 * instead of what tokenizer.model says.
 */
export function buildTokenizerConfig(vocab: SentencePieceVocabulary, modelMaxLength: number): Record<string, unknown> {
  return {
    tokenizer_class: 'PreTrainedTokenizerFast',
    add_bos_token: true,
    add_eos_token: false,
    bos_token: vocab.pieces[vocab.bosId],
    eos_token: vocab.pieces[vocab.eosId],
    unk_token: vocab.pieces[vocab.unkId],
    pad_token: null,
    clean_up_tokenization_spaces: false,
    // Read only by the Llama classes, should a user load with one: a dummy prefix on every text
    // segment, as tokenizer.json does.
    legacy: true,
    model_max_length: modelMaxLength,
  };
}

