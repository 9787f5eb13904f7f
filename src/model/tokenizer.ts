/**
 * Text ↔ token ids for a model directory, over @huggingface/tokenizers (`tokenizer.json` +
 * `tokenizer_config.json`). BOS is prepended here, explicitly, rather than left to the
 * tokenizer's post-processor, so that "one BOS at the start" holds for every family.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { UserError, checkField } from '../util/errors.ts';
import { describeValue } from '../util/fields.ts';
import { readInputJson, type InputKind } from '../io/input-file.ts';

export interface EncodeOptions {
  /** Prepend the BOS token (when the tokenizer has one). Default true. */
  bos?: boolean;
}

function readJsonObject(filePath: string, kind: InputKind): Record<string, unknown> {
  const value = readInputJson(filePath, kind);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new UserError(`${filePath}: expected a JSON object`);
  return value as Record<string, unknown>;
}

/** A special token in tokenizer_config.json: a string or an AddedToken object {content}. */
function tokenName(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  return null;
}

export class TextTokenizer {
  private constructor(
    private readonly tokenizer: Tokenizer,
    /** Number of ids (largest id + 1, added tokens included). */
    readonly vocabSize: number,
    readonly bosId: number | null,
    readonly eosId: number | null,
  ) {}

  /** Loads `<dir>/tokenizer.json` (required) and `<dir>/tokenizer_config.json` (optional). */
  static load(dir: string): TextTokenizer {
    checkField(typeof dir === 'string' && dir !== '', 'dir', () => `must name a model directory, got ${describeValue(dir)}`);
    const tokenizerPath = path.join(dir, 'tokenizer.json');
    if (!existsSync(tokenizerPath)) throw new UserError(`${dir}: no tokenizer.json (crepe needs a Hugging Face tokenizer.json beside the model)`);
    const tokenizerJson = readJsonObject(tokenizerPath, 'tokenizer');
    const configPath = path.join(dir, 'tokenizer_config.json');
    const config = existsSync(configPath) ? readJsonObject(configPath, 'json') : {};
    let tokenizer: Tokenizer;
    try {
      tokenizer = new Tokenizer(tokenizerJson, config);
    } catch (error) {
      throw new UserError(`${tokenizerPath}: not a usable tokenizer (${(error as Error).message})`);
    }
    let vocabSize = 0;
    for (const id of tokenizer.get_vocab(true).values()) vocabSize = Math.max(vocabSize, id + 1);
    const idOf = (name: string | null): number | null => (name === null ? null : tokenizer.token_to_id(name) ?? null);
    return new TextTokenizer(tokenizer, vocabSize, idOf(tokenName(config.bos_token)), idOf(tokenName(config.eos_token)));
  }

  /** Token ids of `text`, with BOS first unless `bos: false`. */
  encode(text: string, options: EncodeOptions = {}): Int32Array {
    checkField(typeof text === 'string', 'text', () => `must be a string, got ${describeValue(text)}`);
    const withBos = (options.bos ?? true) && this.bosId !== null;
    const { ids } = this.tokenizer.encode(text, { add_special_tokens: false });
    const out = new Int32Array(ids.length + (withBos ? 1 : 0));
    if (withBos) out[0] = this.bosId!;
    out.set(ids, withBos ? 1 : 0);
    return out;
  }

  /** The text of `ids`; BOS and EOS are left out. */
  decode(ids: ArrayLike<number>): string {
    // Anything else has no length: it would decode to "" without a word.
    checkField(Array.isArray(ids) || (ArrayBuffer.isView(ids) && !(ids instanceof DataView)), 'ids', () => `must be a list of token ids (an array or Int32Array), got ${describeValue(ids)}`);
    const kept: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      if (ids[i] !== this.bosId && ids[i] !== this.eosId) kept.push(ids[i]);
    }
    if (kept.length === 0) return '';
    return this.tokenizer.decode(kept, { skip_special_tokens: true, clean_up_tokenization_spaces: false });
  }

  /** The piece string of one id (for display), or undefined outside the vocabulary. */
  piece(id: number): string | undefined {
    return this.tokenizer.id_to_token(id);
  }
}
