/**
 * The one writer of a Hugging Face model directory from a converter source: config.json,
 * generation_config.json, tokenizer.json, tokenizer_config.json, tokenizer.model (SentencePiece,
 * with the scores llama.cpp's converter reads) and model.safetensors (streamed, one tensor in
 * memory at a time).
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { decodeToF32, elementCount, scanRaw } from '../../io/safetensors.ts';
import { SafetensorsStreamWriter } from '../../io/safetensors-writer.ts';
import { writingTo } from '../../io/write-error.ts';
import { checkFinite } from '../checkpoint.ts';
import { specToConfigJson } from '../config.ts';
import { buildTokenizerConfig, buildTokenizerJson } from '../tokenizer-build.ts';
import { encodeSentencePieceModel } from '../sentencepiece-model.ts';
import type { SourceModel } from './source.ts';
import type { Progress } from '../../util/progress.ts';

const jsonText = (value: unknown): string => `${JSON.stringify(value, null, 2)}\n`;

/**
 * Writes `source` into the existing, empty directory `dir`; returns the number of parameters
 * written. A tensor holding NaN or an infinity is refused (naming `origin`, the checkpoint it came
 * from): every other command refuses such a model, so the converter does not make one.
 */
export async function writeModelDirectory(source: SourceModel, dir: string, origin: string, progress?: Progress): Promise<number> {
  const { spec, vocab } = source;
  const writeJson = (name: string, value: unknown) => writingTo(path.join(dir, name), () => writeFile(path.join(dir, name), jsonText(value)));
  await writeJson('config.json', specToConfigJson(spec));
  await writeJson('generation_config.json', { bos_token_id: spec.bosTokenId, eos_token_id: spec.eosTokenId });
  await writeJson('tokenizer.json', buildTokenizerJson(vocab));
  await writeJson('tokenizer_config.json', buildTokenizerConfig(vocab, spec.maxPositionEmbeddings));
  const modelFile = path.join(dir, 'tokenizer.model');
  await writingTo(modelFile, () => writeFile(modelFile, encodeSentencePieceModel(vocab)));

  // One tensor in memory at a time, whatever the model size.
  const writer = await SafetensorsStreamWriter.create(
    path.join(dir, 'model.safetensors'),
    source.tensors.map(({ name, dtype, shape }) => ({ name, dtype, shape })),
  );
  let parameters = 0;
  try {
    for (const tensor of source.tensors) {
      const raw = tensor.read();
      // Checked on the bit patterns; widened only to name the first bad value.
      if (!scanRaw(raw, tensor.dtype).allFinite) checkFinite(tensor.name, decodeToF32(raw, tensor.dtype), origin);
      await writer.write(tensor, raw);
      parameters += elementCount(tensor.shape);
      progress?.update(parameters, tensor.name);
    }
    await writer.finish();
  } catch (error) {
    await writer.abort();
    throw error;
  }
  return parameters;
}
