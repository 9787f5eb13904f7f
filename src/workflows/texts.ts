/**
 * The texts a prune or a search reads: calibration windows drawn from one file, and optionally a
 * held-out text to measure perplexity on. Their fields are checked in two steps before any
 * expensive work — the numbers and files first, the window lengths once the model's spec is known —
 * and the held-out text is tokenised (and checked to hold a window) before the calibration draw.
 */
import { checkSeqlen, type ModelSpec } from '../model/spec.ts';
import { sampleCalibrationFile, type CalibrationSet } from '../data/calibration.ts';
import { checkField } from '../util/errors.ts';
import { checkInteger, type FieldSpec } from '../util/fields.ts';
import { checkInputFile, defaultSeqlen, modelEncoder } from './common.ts';
import { prepareEvalText, type EvalText, type EvalTextFields } from './eval.ts';

/** The calibration and held-out text fields of prune and search requests. */
export interface TextsRequest {
  /** Calibration text: JSON Lines with a "text" field (C4 protocol) or plain text. */
  calib: string;
  /** Calibration windows (default 128). */
  nsamples?: number;
  /** Tokens per calibration window (default: min(2048, the model's context)); at most the context. */
  seqlen?: number;
  /** Calibration sampler seed, as Python's random.seed (default 0). */
  seed?: number;
  /** Text to measure perplexity on. */
  evalText?: string;
  /** Its window (default: `seqlen`); at most the model's context. */
  evalSeqlen?: number;
  /** Use only its first `evalMaxChunks` windows. */
  evalMaxChunks?: number;
}

/** The TextsRequest fields, for the request checks of prune and search. */
export const TEXTS_FIELDS: FieldSpec<TextsRequest> = {
  calib: 'checked', nsamples: 'checked', seqlen: 'checked', seed: 'checked', evalText: 'checked', evalSeqlen: 'checked', evalMaxChunks: 'checked',
};

/** The held-out text's fields; its window is named by the field it came from (evalSeqlen, or the seqlen it defaults to). */
const evalFields = (request: TextsRequest): EvalTextFields => ({
  text: 'evalText', seqlen: request.evalSeqlen === undefined ? 'seqlen' : 'evalSeqlen', maxChunks: 'evalMaxChunks',
});

/** The checked numbers of a TextsRequest. */
export interface TextsPlan {
  nsamples: number;
  seed: number;
  seqlen: number;
  evalSeqlen: number;
}

/** What needs no model: the counts and the files. */
export function checkTextsRequest(request: TextsRequest): Pick<TextsPlan, 'nsamples' | 'seed'> {
  const nsamples = request.nsamples ?? 128;
  const seed = request.seed ?? 0;
  checkInteger('nsamples', nsamples, 1);
  checkInteger('seed', seed, 0);
  checkInputFile('calib', request.calib);
  if (request.evalText !== undefined) checkInputFile('evalText', request.evalText);
  else {
    // The window and count of a text not given would be ignored.
    for (const field of ['evalSeqlen', 'evalMaxChunks'] as const) checkField(request[field] === undefined, field, 'applies to evalText only (the text a perplexity is measured on)');
  }
  return { nsamples, seed };
}

/** With the model's spec: the window lengths, refused when longer than its context. */
export function planTexts(request: TextsRequest, spec: ModelSpec, counts: Pick<TextsPlan, 'nsamples' | 'seed'>): TextsPlan {
  const { nsamples, seed } = counts;
  const seqlen = request.seqlen ?? defaultSeqlen(spec);
  checkSeqlen('seqlen', seqlen, spec);
  const evalSeqlen = request.evalSeqlen ?? seqlen;
  if (request.evalText !== undefined) checkSeqlen('evalSeqlen', evalSeqlen, spec);
  return { nsamples, seed, seqlen, evalSeqlen };
}

/** Tokenises the held-out text (when given), then draws the calibration windows. */
export function readTexts(
  request: TextsRequest,
  modelDir: string,
  spec: ModelSpec,
  plan: TextsPlan,
  continueBy = 0,
): { evalText: EvalText | null; calibration: CalibrationSet; continued: CalibrationSet } {
  const encode = modelEncoder(modelDir, spec);
  const evalText = request.evalText === undefined
    ? null
    : prepareEvalText(evalFields(request), request.evalText, encode, plan.evalSeqlen, request.evalMaxChunks);
  // `continueBy` more windows of the same draw (same seed): the first nsamples are the calibration.
  const continued = sampleCalibrationFile(request.calib, (text) => encode(text, request.calib), {
    nsamples: plan.nsamples + continueBy,
    seqlen: plan.seqlen,
    seed: plan.seed,
    hiddenSize: spec.hiddenSize,
  });
  const calibration = continueBy === 0
    ? continued
    : { kind: continued.kind, windows: continued.windows.slice(0, plan.nsamples), draws: continued.draws.slice(0, plan.nsamples) };
  return { evalText, calibration, continued };
}
