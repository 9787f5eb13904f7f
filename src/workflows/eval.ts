/**
 * Perplexity of a model directory on a text file (the WikiText-2 protocol of the reference
 * repositories: one BOS, non-overlapping windows, tail dropped). The text is read, tokenised and
 * checked to hold at least one window before any weight is read.
 */
import { ModelCheckpoint } from '../model/checkpoint.ts';
import { checkPlainText, readEvalText } from '../data/text-sources.ts';
import { perplexity, perplexityWorkUnits, windowCount } from '../eval/perplexity.ts';
import { sha256Bytes } from '../util/hash.ts';
import { checkField } from '../util/errors.ts';
import type { EngineOptions } from '../engine/session.ts';
import { checkInteger, type FieldSpec } from '../util/fields.ts';
import { checkSeqlen } from '../model/spec.ts';
import {
  CONTROL_FIELDS, ENGINE_FIELDS, HUB_FIELDS, checkInputFile, checkRequest, defaultSeqlen, engineOptions, modelEncoder, secondsSince, stageProgress,
  resolveModel, type EngineRequest, type HubRequest, type RunControl,
} from './common.ts';

export interface EvalRequest extends EngineRequest, RunControl, HubRequest {
  /** Hugging Face model directory (config.json, model.safetensors, tokenizer.json). */
  model: string;
  /** Text file to evaluate; a `wiki.*.raw` file is read as the HF dataset rows joined with "\n\n". */
  text: string;
  /** Window length in tokens (default: min(2048, the model's context)); at most the context. */
  seqlen?: number;
  /** Evaluate only the first `maxChunks` windows. */
  maxChunks?: number;
}

export interface EvalResult {
  /** The text file, as given. */
  file: string;
  textSha256: string;
  tokens: number;
  seqlen: number;
  windows: number;
  ppl: number;
  /** Mean over windows of the window's mean next-token NLL (nats). */
  meanNll: number;
  seconds: number;
}

/** An evaluation text read, tokenised and checked against its window length. */
export interface EvalText {
  file: string;
  textSha256: string;
  tokens: Int32Array;
  seqlen: number;
  maxChunks?: number;
}

/** The request fields an evaluation text comes from, for error messages. */
export interface EvalTextFields {
  text: string;
  seqlen: string;
  maxChunks: string;
}

/**
 * Reads and tokenises `file` and checks that it holds at least one window of `seqlen` tokens;
 * errors name the request's `fields`.
 */
export function prepareEvalText(
  fields: EvalTextFields,
  file: string,
  encode: (text: string, source: string) => Int32Array,
  seqlen: number,
  maxChunks?: number,
): EvalText {
  checkInputFile(fields.text, file);
  if (maxChunks !== undefined) checkInteger(fields.maxChunks, maxChunks, 1);
  const text = readEvalText(file);
  checkPlainText(fields.text, file, text, '; perplexity is measured on plain text (write the documents\' "text" fields into a text file)');
  const tokens = encode(text, file);
  checkField(
    windowCount(tokens.length, seqlen, maxChunks) >= 1,
    fields.text,
    `${file}: ${tokens.length} tokens is shorter than one window of ${fields.seqlen} ${seqlen}`,
  );
  return { file, textSha256: sha256Bytes(text), tokens, seqlen, maxChunks };
}

/** Perplexity of the model in `modelDir` on a prepared text (progress as `stage`); refuses NaN/Inf weights before running. */
export async function measurePerplexity(modelDir: string, text: EvalText, engine: EngineOptions, control: RunControl, stage = 'eval'): Promise<EvalResult> {
  const started = performance.now();
  const model = ModelCheckpoint.open(modelDir);
  try {
    model.checkAllFinite();
    const windows = windowCount(text.tokens.length, text.seqlen, text.maxChunks);
    const progress = stageProgress(control, stage, perplexityWorkUnits(model.spec, windows), {
      name: 'windows', per: perplexityWorkUnits(model.spec, 1), tokens: text.seqlen,
    });
    const result = await perplexity(model, text.tokens, { ...engine, seqlen: text.seqlen, maxChunks: text.maxChunks, progress });
    progress.done(`PPL ${result.ppl.toFixed(4)}`);
    return {
      file: text.file,
      textSha256: text.textSha256,
      tokens: text.tokens.length,
      seqlen: text.seqlen,
      windows: result.windows,
      ppl: result.ppl,
      meanNll: result.meanNll,
      seconds: secondsSince(started),
    };
  } finally {
    model.close();
  }
}

const EVAL_FIELDS: FieldSpec<EvalRequest> = { ...CONTROL_FIELDS, ...ENGINE_FIELDS, ...HUB_FIELDS, model: 'checked', text: 'checked', seqlen: 'checked', maxChunks: 'checked' };

/** Measures the perplexity of `request.model` on `request.text`. */
export async function evaluatePerplexity(request: EvalRequest): Promise<EvalResult> {
  const started = performance.now();
  checkRequest(request, EVAL_FIELDS);
  const engine = engineOptions(request);
  checkInputFile('text', request.text);
  request = { ...request, model: await resolveModel('model', request.model, request, 'model-dir') };
  const model = ModelCheckpoint.open(request.model);
  const spec = model.spec;
  model.close();
  const seqlen = request.seqlen ?? defaultSeqlen(spec);
  checkSeqlen('seqlen', seqlen, spec);
  const text = prepareEvalText({ text: 'text', seqlen: 'seqlen', maxChunks: 'maxChunks' }, request.text, modelEncoder(request.model, spec), seqlen, request.maxChunks);
  const result = await measurePerplexity(request.model, text, engine, request);
  return { ...result, seconds: secondsSince(started) };
}
