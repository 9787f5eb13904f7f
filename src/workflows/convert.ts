/**
 * Conversion of a GGUF (F32/F16/BF16) or llama2.c checkpoint into a Hugging Face model directory
 * (config.json, model.safetensors, tokenizer.json, …), written under a temporary name and moved
 * into place when complete.
 */
import { convertToHuggingFace, type ConvertReport } from '../model/convert.ts';
import { checkOutputDir } from '../io/output-dir.ts';
import type { FieldSpec } from '../util/fields.ts';
import { CONTROL_FIELDS, HUB_FIELDS, checkInputFile, checkRequest, resolveModel, stageProgress, type HubRequest, type RunControl } from './common.ts';
import type { Progress } from '../util/progress.ts';

export interface ConvertRequest extends RunControl, HubRequest {
  /** GGUF file, or llama2.c legacy `.bin` checkpoint; or a Hub id: org/name (its one .gguf) or org/name/<file>[@revision]. */
  input: string;
  /** Output model directory; must not exist unless `overwrite`. */
  out: string;
  /** llama2.c tokenizer (tok512.bin, tokenizer.bin) for a `.bin`; default: the one tok*.bin beside it. */
  tokenizer?: string;
  overwrite?: boolean;
}

export type ConvertResult = ConvertReport;

const CONVERT_FIELDS: FieldSpec<ConvertRequest> = { ...CONTROL_FIELDS, ...HUB_FIELDS, input: 'checked', out: 'checked', tokenizer: 'checked', overwrite: 'flag' };

/** Converts `request.input` into a Hugging Face directory at `request.out`; an aborted signal stops it between tensors, leaving nothing. */
export async function convertModel(request: ConvertRequest): Promise<ConvertResult> {
  checkRequest(request, CONVERT_FIELDS);
  request = { ...request, input: await resolveModel('input', request.input, request, 'checkpoint-file') };
  checkInputFile('input', request.input, 'checkpoint');
  if (request.tokenizer !== undefined) checkInputFile('tokenizer', request.tokenizer, 'llama2.c tokenizer');
  checkOutputDir(request.out, { overwrite: request.overwrite, inputs: [request.input, request.tokenizer] });
  let progress: Progress | undefined;
  const report = await convertToHuggingFace(request.input, request.out, {
    tokenizer: request.tokenizer,
    overwrite: request.overwrite,
    progress: (parameters) => (progress = stageProgress(request, 'convert', parameters, { name: 'parameters' })),
  });
  progress?.done(`${report.tensors} tensors`);
  return report;
}
