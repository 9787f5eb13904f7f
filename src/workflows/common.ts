/**
 * What every workflow shares: the engine and run-control fields of a request, progress events,
 * cancellation, and the input checks made before any expensive step (files that must be regular
 * files, windows that must fit the model's context, token ids that must fit its vocabulary).
 */
import { closeSync } from 'node:fs';
import { openInputFile } from '../io/input-file.ts';
import type { ModelSpec } from '../model/spec.ts';
import { TextTokenizer } from '../model/tokenizer.ts';
import { checkDevice, checkThreads, type EngineOptions } from '../engine/session.ts';
import { FieldError, UserError, checkField } from '../util/errors.ts';
import { checkFields, checkFunction, describeValue, type FieldSpec } from '../util/fields.ts';
import type { Progress } from '../util/progress.ts';
import { resolveModelArgument, type ModelArgumentKind } from '../hub/resolve.ts';

/** Where the model runs. */
export interface EngineRequest {
  /** ONNX Runtime execution provider (default 'cpu'). */
  device?: 'cpu' | 'cuda';
  /** Intra-op threads of ONNX Runtime (default: ORT's choice, the physical cores). */
  threads?: number;
}

/** One report of a long-running step. */
export interface ProgressEvent {
  /** 'start' once when a stage begins, 'update' while it runs, 'done' once when it ends, 'note' for a message. */
  kind: 'start' | 'update' | 'done' | 'note';
  /** What runs, e.g. "prune wanda 50.0% unstructured", "eval", "dense statistics", "hill climbing". */
  stage: string;
  /** Units done and the stage's total (layers, windows × layers, candidates). */
  done: number;
  total: number;
  /** The latest unit ('update'), the stage's summary ('done') or the message ('note'). */
  detail?: string;
  /** What the units are, for display (set on every event of a stage that declares it). */
  units?: ProgressUnits;
}

/**
 * How a stage's units are shown: `name` (layers, windows, candidates), `per` work units to one shown
 * unit (default 1; an evaluation window is one unit per layer), and `tokens` per shown unit when a
 * token rate means something.
 */
export interface ProgressUnits {
  name: string;
  per?: number;
  tokens?: number;
}

/** Progress and cancellation of a long-running request. */
export interface RunControl {
  /** Receives progress events; nothing is printed by the library. */
  onProgress?: (event: ProgressEvent) => void;
  /**
   * Cancels the work: checked between layers, windows and search candidates; the promise then
   * rejects with `signal.reason`.
   */
  signal?: AbortSignal;
}

/** The fields every workflow request shares: run control, engine, Hub revision. */
export const CONTROL_FIELDS: FieldSpec<RunControl> = { onProgress: 'checked', signal: 'checked' };
export const ENGINE_FIELDS: FieldSpec<EngineRequest> = { device: 'checked', threads: 'checked' };
export const HUB_FIELDS: FieldSpec<HubRequest> = { revision: 'checked' };

/**
 * The first step of every workflow: the request is an object with known fields only (`spec`, see
 * util/fields.ts), `onProgress` a function, `signal` an AbortSignal; an aborted signal stops here.
 */
export function checkRequest<T extends RunControl>(request: unknown, spec: FieldSpec<T>): asserts request is T {
  checkFields<T>(request, spec);
  const { onProgress, signal } = request as T;
  checkFunction('onProgress', onProgress);
  checkField(signal === undefined || signal instanceof AbortSignal, 'signal', () => `must be an AbortSignal, got ${describeValue(signal)}`);
  signal?.throwIfAborted();
}

/**
 * A stage's Progress for the internal modules (which report between layers, window batches and
 * candidates): forwards to `onProgress` and checks the abort signal at every unit.
 */
export function stageProgress(control: RunControl, stage: string, total: number, units?: ProgressUnits): Progress {
  const emit = control.onProgress ?? (() => {});
  control.signal?.throwIfAborted();
  const shown = units ? { units } : {};
  emit({ kind: 'start', stage, done: 0, total, ...shown });
  return {
    update(done, detail) {
      emit({ kind: 'update', stage, done, total, detail, ...shown });
      control.signal?.throwIfAborted();
    },
    log(message) {
      emit({ kind: 'note', stage, done: 0, total, detail: message, ...shown });
    },
    done(summary) {
      emit({ kind: 'done', stage, done: total, total, detail: summary, ...shown });
    },
  };
}

/** Requests whose model may be a Hugging Face Hub id. */
export interface HubRequest {
  /** Revision (branch, tag or commit) of a Hub id that names none; default "main". */
  revision?: string;
}

/**
 * The local path of a model argument (`field` of the request): an existing path as it is, or a
 * Hub id fetched into the Hugging Face cache, its download reported as the stage "download <id>"
 * in bytes (hub/resolve.ts).
 */
export async function resolveModel(field: string, value: unknown, request: RunControl & HubRequest, kind: ModelArgumentKind): Promise<string> {
  checkField(typeof value === 'string' && value !== '', field, 'must name a model directory or a Hugging Face Hub id (org/name)');
  if (request.revision !== undefined) checkField(typeof request.revision === 'string' && request.revision.trim() !== '', 'revision', 'must name a branch, tag or commit');
  const stage = `download ${value}`;
  let started = false;
  let last: ProgressEvent | null = null;
  const emit = request.onProgress ?? (() => {});
  const resolved = await resolveModelArgument(value, {
    kind,
    revision: request.revision,
    signal: request.signal,
    onNote: (note) => emit({ kind: 'note', stage, done: 0, total: 0, detail: note }),
    onProgress: ({ file, done, total }) => {
      if (!started) emit({ kind: 'start', stage, done: 0, total });
      started = true;
      last = { kind: 'update', stage, done, total, detail: file };
      emit(last);
    },
  });
  if (last) emit({ kind: 'done', stage, done: (last as ProgressEvent).total, total: (last as ProgressEvent).total, detail: resolved });
  return resolved;
}

/** The engine options of a request, validated. */
export function engineOptions(request: EngineRequest): EngineOptions {
  checkDevice('device', request.device);
  checkThreads(request.threads);
  return { device: request.device ?? 'cpu', threads: request.threads };
}

/**
 * Refuses an input path that does not exist or is not a regular file (a directory, a FIFO, a
 * device) before any work, naming the request field and the path.
 */
export function checkInputFile(field: string, file: unknown, what = 'text file'): asserts file is string {
  checkField(typeof file === 'string' && file !== '', field, 'must name a file');
  try {
    closeSync(openInputFile(file, what).fd);
  } catch (error) {
    if (error instanceof UserError) throw new FieldError(field, error.message);
    throw error;
  }
}

/** The default window length: the model's context, at most 2048 (the reference protocol). */
export const defaultSeqlen = (spec: ModelSpec): number => Math.min(2048, spec.maxPositionEmbeddings);

/**
 * The model's tokenizer as an `encode(text)` (one BOS first) that refuses token ids outside the
 * model's vocabulary (a tokenizer.json with added or remapped tokens that config.json does not
 * cover), naming `source` — the text being tokenised.
 */
export function modelEncoder(modelDir: string, spec: ModelSpec): (text: string, source: string) => Int32Array {
  const tokenizer = TextTokenizer.load(modelDir);
  return (text, source) => {
    const ids = tokenizer.encode(text, { bos: true });
    for (let i = 0; i < ids.length; i++) {
      if (ids[i] < 0 || ids[i] >= spec.vocabSize) {
        throw new UserError(
          `${modelDir}/tokenizer.json gives token id ${ids[i]} for ${source}, outside the model's vocabulary of ` +
            `${spec.vocabSize} (vocab_size in config.json); the tokenizer does not belong to this model`,
        );
      }
    }
    return ids;
  };
}

/** Seconds since `started` (a performance.now() value). */
export const secondsSince = (started: number): number => (performance.now() - started) / 1000;
