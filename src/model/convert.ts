/**
 * Import of GGUF and llama2.c checkpoints into a Hugging Face model directory: the format is
 * recognised, its source (convert/gguf.ts, convert/llama2c.ts) read tensor by tensor, and the one
 * writer (convert/hf-writer.ts) fills the directory.
 *
 * The directory is written under a temporary name beside `outDir` and published (marked as
 * crepe's output, renamed into place) at the end: a failed conversion leaves nothing that looks
 * like a model.
 */
import { existsSync, closeSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { discardOnSignal, tempPathFor } from '../io/atomic.ts';
import { openInputFile, readInputBytes } from '../io/input-file.ts';
import { checkOutputDir, publishOutputDir } from '../io/output-dir.ts';
import { lockOutput, type OutputLock } from '../io/output-lock.ts';
import { writingTo } from '../io/write-error.ts';
import { hasGgufMagic } from '../io/gguf.ts';
import { Llama2cCheckpoint } from '../io/llama2c.ts';
import { elementCount, type DType } from '../io/safetensors.ts';
import { FieldError, UserError } from '../util/errors.ts';
import type { Progress } from '../util/progress.ts';
import { EMBED_NAME, type ModelSpec } from './spec.ts';
import { openGgufSource } from './convert/gguf.ts';
import { llama2cSource } from './convert/llama2c.ts';
import { writeModelDirectory } from './convert/hf-writer.ts';
import type { SourceFormat, SourceModel } from './convert/source.ts';

export { interleavedToRotateHalfRows } from './convert/source.ts';

export interface ConvertOptions {
  /** llama2.c tokenizer file (tok512.bin, tokenizer.bin) for a `.bin` checkpoint. */
  tokenizer?: string;
  /** Replace an existing output directory. */
  overwrite?: boolean;
  /**
   * The stage's progress in parameters written, given the total once the input is read; its
   * update may throw (a cancelled run), which leaves nothing written.
   */
  progress?: (parameters: number) => Progress;
}

export interface ConvertReport {
  format: SourceFormat;
  /** GGUF version (1, 2, 3); 0 for llama2.c's legacy format. */
  formatVersion: number;
  input: string;
  /** Where the vocabulary came from: the GGUF file itself, or the llama2.c tokenizer file. */
  tokenizerSource: string;
  outDir: string;
  tensors: number;
  parameters: number;
  /** Dtype of the token embedding (1-D tensors may be stored wider, as in the source). */
  dtype: DType;
  spec: ModelSpec;
  /** Things the converter decided that a user may want to know. */
  notes: string[];
}

function readMagic(input: string): Uint8Array {
  const { fd } = openInputFile(input, 'checkpoint (GGUF or llama2.c .bin)');
  try {
    const magic = new Uint8Array(4);
    const n = readInputBytes(fd, magic, 0, 4, 0, input);
    return magic.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

function openSource(input: string, options: ConvertOptions): SourceModel {
  if (hasGgufMagic(readMagic(input))) {
    // A GGUF carries its own vocabulary; a tokenizer file given beside it would be ignored.
    if (options.tokenizer !== undefined) {
      throw new FieldError('tokenizer', `${options.tokenizer}: applies to a llama2.c .bin checkpoint only; the GGUF file ${input} carries its own tokenizer`);
    }
    return openGgufSource(input);
  }
  if (input.toLowerCase().endsWith('.gguf')) throw new UserError(`${input}: not a GGUF file (it does not start with "GGUF")`);
  let checkpoint: Llama2cCheckpoint;
  try {
    checkpoint = Llama2cCheckpoint.open(input);
  } catch (error) {
    // Anything that is not GGUF is read as llama2.c: when its header makes no sense, say both.
    if (!(error instanceof UserError) || !error.message.startsWith(`${input}: `)) throw error;
    const problem = error.message.slice(input.length + 2);
    throw new UserError(`${input}: not a GGUF file (no "GGUF" magic) and not a valid llama2.c checkpoint: ${problem}`);
  }
  return llama2cSource(checkpoint, input, options.tokenizer);
}

/** Converts a GGUF or llama2.c checkpoint to a Hugging Face model directory at `outDir`. */
export async function convertToHuggingFace(input: string, outDir: string, options: ConvertOptions = {}): Promise<ConvertReport> {
  if (!existsSync(input)) throw new UserError(`${input}: no such file`);
  const target = checkOutputDir(outDir, { overwrite: options.overwrite, inputs: [input, options.tokenizer] });
  const source = openSource(input, options);
  let lock: OutputLock | undefined;
  try {
    lock = lockOutput(target);
    const tmpDir = tempPathFor(target);
    const keep = discardOnSignal(tmpDir);
    let parameters: number;
    try {
      await writingTo(tmpDir, () => mkdir(tmpDir));
      const total = source.tensors.reduce((sum, tensor) => sum + elementCount(tensor.shape), 0);
      parameters = await writeModelDirectory(source, tmpDir, input, options.progress?.(total));
    } catch (error) {
      await rm(tmpDir, { recursive: true, force: true });
      throw error;
    } finally {
      // Complete (or removed): publishing it, synchronous, cannot be interrupted by a signal handler.
      keep();
    }
    publishOutputDir(tmpDir, target, { command: 'convert', overwrite: options.overwrite });
    const embedding = source.tensors.find((t) => t.name === EMBED_NAME)!;
    return {
      format: source.format,
      formatVersion: source.formatVersion,
      input,
      tokenizerSource: source.tokenizerSource,
      outDir,
      tensors: source.tensors.length,
      parameters,
      dtype: embedding.dtype,
      spec: source.spec,
      notes: source.notes,
    };
  } finally {
    lock?.release();
    source.close();
  }
}
