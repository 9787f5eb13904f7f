/**
 * SentencePiece `tokenizer.model`: the protobuf `sentencepiece.ModelProto` that the sentencepiece
 * library loads (and with it transformers' slow Llama tokenizer and llama.cpp's converter, which
 * takes each piece's score and type from it). Written from a vocabulary with its scores, as a
 * Llama BPE model: byte fallback, identity normalizer, dummy prefix on, extra whitespace kept.
 *
 * The subset of sentencepiece_model.proto used here (field number: name, wire type):
 *   ModelProto      1: pieces (repeated SentencePiece, LEN)   2: trainer_spec (LEN)   3: normalizer_spec (LEN)
 *   SentencePiece   1: piece (string)   2: score (float, I32)   3: type (enum, VARINT; default NORMAL)
 *   TrainerSpec     3: model_type (enum; BPE = 2)   4: vocab_size (int32)   35: byte_fallback (bool)
 *                   40–43: unk_id, bos_id, eos_id, pad_id (int32)   45–48: unk/bos/eos/pad_piece (string)
 *   NormalizerSpec  1: name (string)   3: add_dummy_prefix   4: remove_extra_whitespaces   5: escape_whitespaces (bool)
 */
import { UserError } from '../util/errors.ts';
import type { SentencePieceVocabulary } from './tokenizer-build.ts';

/** SentencePiece piece types; GGUF's `tokenizer.ggml.token_type` uses the same numbers (0 there is "undefined"). */
export const TokenType = {
  Normal: 1,
  Unknown: 2,
  Control: 3,
  UserDefined: 4,
  Unused: 5,
  Byte: 6,
} as const;

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;

const MODEL_TYPE_BPE = 2;

/** What a reader gets back from a ModelProto: the pieces and the settings that decide encoding. */
export interface SentencePieceModel {
  pieces: string[];
  scores: Float32Array;
  types: Int32Array;
  trainer: {
    modelType: number;
    vocabSize: number | null;
    byteFallback: boolean;
    unkId: number;
    bosId: number;
    eosId: number;
    padId: number;
  };
  normalizer: {
    name: string;
    addDummyPrefix: boolean;
    removeExtraWhitespaces: boolean;
    escapeWhitespaces: boolean;
  };
}

// ——————————————————————————————————————— writer ————————————————————————————————————————

/** A growable protobuf message buffer. */
class ProtoWriter {
  private bytes = new Uint8Array(256);
  private length = 0;

  private reserve(extra: number): void {
    if (this.length + extra <= this.bytes.length) return;
    let size = this.bytes.length * 2;
    while (size < this.length + extra) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.bytes.subarray(0, this.length));
    this.bytes = grown;
  }

  /** An unsigned varint; a negative int32 is written as its 64-bit two's complement (10 bytes), as protobuf does. */
  private varint(value: number): void {
    let rest = value < 0 ? BigInt.asUintN(64, BigInt(value)) : BigInt(value);
    this.reserve(10);
    do {
      const low = Number(rest & 0x7fn);
      rest >>= 7n;
      this.bytes[this.length++] = rest > 0n ? low | 0x80 : low;
    } while (rest > 0n);
  }

  private tag(field: number, wireType: number): void {
    this.varint(field * 8 + wireType);
  }

  int(field: number, value: number): this {
    this.tag(field, WIRE_VARINT);
    this.varint(value);
    return this;
  }

  bool(field: number, value: boolean): this {
    return this.int(field, value ? 1 : 0);
  }

  float(field: number, value: number): this {
    this.tag(field, WIRE_I32);
    this.reserve(4);
    new DataView(this.bytes.buffer).setFloat32(this.length, value, true);
    this.length += 4;
    return this;
  }

  bytesField(field: number, data: Uint8Array): this {
    this.tag(field, WIRE_LEN);
    this.varint(data.length);
    this.reserve(data.length);
    this.bytes.set(data, this.length);
    this.length += data.length;
    return this;
  }

  string(field: number, text: string): this {
    return this.bytesField(field, new TextEncoder().encode(text));
  }

  message(field: number, inner: ProtoWriter): this {
    return this.bytesField(field, inner.finish());
  }

  finish(): Uint8Array {
    return this.bytes.slice(0, this.length);
  }
}

/**
 * The piece type written for token `id`. SentencePiece wants exactly one UNKNOWN piece: the
 * vocabulary's unk token is written as UNKNOWN whatever its source type (llama.cpp's GGUFs often
 * mark it CONTROL), any other piece typed unknown as CONTROL; GGUF's "undefined" (0) is NORMAL.
 */
function pieceType(vocab: SentencePieceVocabulary, id: number): number {
  if (id === vocab.unkId) return TokenType.Unknown;
  const type = vocab.types[id];
  if (type === TokenType.Unknown) return TokenType.Control;
  return type === 0 ? TokenType.Normal : type;
}

/** The `tokenizer.model` bytes of a SentencePiece BPE vocabulary (scores written bit for bit). */
export function encodeSentencePieceModel(vocab: SentencePieceVocabulary): Uint8Array {
  const { pieces, scores } = vocab;
  const model = new ProtoWriter();
  for (let id = 0; id < pieces.length; id++) {
    const piece = new ProtoWriter().string(1, pieces[id]).float(2, scores[id]);
    const type = pieceType(vocab, id);
    if (type !== TokenType.Normal) piece.int(3, type);
    model.message(1, piece);
  }
  const trainer = new ProtoWriter()
    .int(3, MODEL_TYPE_BPE)
    .int(4, pieces.length)
    .bool(35, true)
    .int(40, vocab.unkId)
    .int(41, vocab.bosId)
    .int(42, vocab.eosId)
    .int(43, -1)
    .string(45, pieces[vocab.unkId])
    .string(46, pieces[vocab.bosId])
    .string(47, pieces[vocab.eosId]);
  model.message(2, trainer);
  const normalizer = new ProtoWriter().string(1, 'identity').bool(3, true).bool(4, false).bool(5, true);
  model.message(3, normalizer);
  return model.finish();
}

// ——————————————————————————————————————— reader ————————————————————————————————————————

class ProtoReader {
  position: number;
  private readonly view: DataView;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly source: string,
    start = 0,
    readonly end = bytes.length,
  ) {
    this.position = start;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private fail(problem: string): never {
    throw new UserError(`${this.source}: not a SentencePiece model (byte ${this.position}: ${problem})`);
  }

  /** A varint as a signed 64-bit value cut to a JS number (int32 fields come back negative when they were). */
  varint(): number {
    let value = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      if (this.position >= this.end) this.fail('truncated varint');
      const byte = this.bytes[this.position++];
      value |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return Number(BigInt.asIntN(64, value));
    }
    return this.fail('varint longer than 10 bytes');
  }

  /** The next field's number and wire type, or null at the end. */
  tag(): { field: number; wireType: number } | null {
    if (this.position >= this.end) return null;
    const key = this.varint();
    return { field: Math.floor(key / 8), wireType: key % 8 };
  }

  float(): number {
    if (this.position + 4 > this.end) this.fail('truncated float');
    const value = this.view.getFloat32(this.position, true);
    this.position += 4;
    return value;
  }

  /** A length-delimited field's [start, end) range; the reader moves past it. */
  delimited(): [number, number] {
    const length = this.varint();
    const start = this.position;
    if (length < 0 || start + length > this.end) this.fail('length-delimited field past the end');
    this.position = start + length;
    return [start, start + length];
  }

  string(): string {
    const [start, end] = this.delimited();
    return new TextDecoder('utf-8', { fatal: true }).decode(this.bytes.subarray(start, end));
  }

  sub(): ProtoReader {
    const [start, end] = this.delimited();
    return new ProtoReader(this.bytes, this.source, start, end);
  }

  skip(wireType: number): void {
    if (wireType === WIRE_VARINT) this.varint();
    else if (wireType === WIRE_LEN) this.delimited();
    else if (wireType === WIRE_I32 || wireType === WIRE_I64) {
      this.position += wireType === WIRE_I32 ? 4 : 8;
      if (this.position > this.end) this.fail('truncated fixed-size field');
    } else this.fail(`unsupported wire type ${wireType}`);
  }

  /** Calls `onField` for each field; the handler reads the value or returns false to skip it. */
  fields(onField: (field: number, wireType: number) => boolean): void {
    for (let tag = this.tag(); tag !== null; tag = this.tag()) {
      if (!onField(tag.field, tag.wireType)) this.skip(tag.wireType);
    }
  }

  expect(wireType: number, actual: number, name: string): void {
    if (wireType !== actual) this.fail(`field ${name} has wire type ${actual}, expected ${wireType}`);
  }
}

/** Parses `tokenizer.model` bytes (the fields above; others are skipped). `source` names the file in errors. */
export function decodeSentencePieceModel(bytes: Uint8Array, source: string): SentencePieceModel {
  const pieces: string[] = [];
  const scores: number[] = [];
  const types: number[] = [];
  const trainer: SentencePieceModel['trainer'] = {
    modelType: 1, vocabSize: null, byteFallback: false, unkId: 0, bosId: 1, eosId: 2, padId: -1,
  };
  const normalizer: SentencePieceModel['normalizer'] = {
    name: '', addDummyPrefix: true, removeExtraWhitespaces: true, escapeWhitespaces: true,
  };
  const reader = new ProtoReader(bytes, source);
  reader.fields((field, wireType) => {
    if (field === 1) {
      reader.expect(WIRE_LEN, wireType, 'pieces');
      const inner = reader.sub();
      let piece = '';
      let score = 0;
      let type: number = TokenType.Normal;
      inner.fields((f, w) => {
        if (f === 1) {
          inner.expect(WIRE_LEN, w, 'piece');
          piece = inner.string();
        } else if (f === 2) {
          inner.expect(WIRE_I32, w, 'score');
          score = inner.float();
        } else if (f === 3) {
          inner.expect(WIRE_VARINT, w, 'type');
          type = inner.varint();
        } else return false;
        return true;
      });
      pieces.push(piece);
      scores.push(score);
      types.push(type);
    } else if (field === 2) {
      reader.expect(WIRE_LEN, wireType, 'trainer_spec');
      const inner = reader.sub();
      const ints: Record<number, keyof SentencePieceModel['trainer']> = {
        3: 'modelType', 4: 'vocabSize', 40: 'unkId', 41: 'bosId', 42: 'eosId', 43: 'padId',
      };
      inner.fields((f, w) => {
        if (f in ints) {
          inner.expect(WIRE_VARINT, w, ints[f]);
          (trainer as Record<string, number | boolean | null>)[ints[f]] = inner.varint();
        } else if (f === 35) {
          inner.expect(WIRE_VARINT, w, 'byte_fallback');
          trainer.byteFallback = inner.varint() !== 0;
        } else return false;
        return true;
      });
    } else if (field === 3) {
      reader.expect(WIRE_LEN, wireType, 'normalizer_spec');
      const inner = reader.sub();
      const flags: Record<number, 'addDummyPrefix' | 'removeExtraWhitespaces' | 'escapeWhitespaces'> = {
        3: 'addDummyPrefix', 4: 'removeExtraWhitespaces', 5: 'escapeWhitespaces',
      };
      inner.fields((f, w) => {
        if (f === 1) {
          inner.expect(WIRE_LEN, w, 'name');
          normalizer.name = inner.string();
        } else if (f in flags) {
          inner.expect(WIRE_VARINT, w, flags[f]);
          normalizer[flags[f]] = inner.varint() !== 0;
        } else return false;
        return true;
      });
    } else return false;
    return true;
  });
  return { pieces, scores: Float32Array.from(scores), types: Int32Array.from(types), trainer, normalizer };
}
