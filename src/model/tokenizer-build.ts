/**
 * A SentencePiece BPE vocabulary (pieces, scores, token types — what llama2.c tokenizer files and
 * GGUF `tokenizer.ggml.*` hold) → Hugging Face `tokenizer.json` + `tokenizer_config.json`, built so
 * that @huggingface/tokenizers encodes text exactly as llama2.c / SentencePiece does:
 *
 * - BPE model over the pieces (spaces written `▁`), byte fallback to `<0xXX>` pieces;
 * - merges derived from the scores the way Hugging Face's SentencePiece extractor does;
 * - the dummy-prefix `▁` from the normalizer (prepend `▁`, then every space → `▁`): the package's
 *   Metaspace pre-tokenizer would skip the prefix when the text already starts with a space;
 * - `<s>`, `</s>`, `<unk>` are ordinary vocabulary entries, not added tokens: as added tokens the
 *   package would cut raw text at those strings, which SentencePiece does not do. BOS comes from
 *   a template post-processor.
 *
 * The one input that cannot match: a literal `▁` (U+2581) in the text, which SentencePiece keeps
 * apart from spaces but this normalizer cannot.
 */
import { UserError } from '../util/errors.ts';

/** SentencePiece / GGUF token types (`tokenizer.ggml.token_type`). */
export const TokenType = {
  Normal: 1,
  Unknown: 2,
  Control: 3,
  UserDefined: 4,
  Unused: 5,
  Byte: 6,
} as const;

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
    added_tokens: [],
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

/** The `tokenizer_config.json` object: special tokens by name, BOS added, no clean-up of spaces. */
export function buildTokenizerConfig(vocab: SentencePieceVocabulary, modelMaxLength: number): Record<string, unknown> {
  return {
    tokenizer_class: 'LlamaTokenizerFast',
    add_bos_token: true,
    add_eos_token: false,
    bos_token: vocab.pieces[vocab.bosId],
    eos_token: vocab.pieces[vocab.eosId],
    unk_token: vocab.pieces[vocab.unkId],
    pad_token: null,
    clean_up_tokenization_spaces: false,
    legacy: true,
    model_max_length: modelMaxLength,
  };
}
