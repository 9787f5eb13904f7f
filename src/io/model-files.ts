/**
 * The files of a model directory that travel with rewritten weights: every file that is not a
 * weight file (chat_template.jinja, README.md, generation_config.json, tokenizer files, …) is copied
 * byte for byte, streaming, subdirectories included.
 *
 * What is not copied, and why:
 *   - weight files (safetensors files and shards, their index, PyTorch/TF/Flax/GGUF/ONNX weights):
 *     the writer produces the new weights; an old dense copy would be loaded instead of them;
 *   - crepe's own outputs (crepe-report.json/.md): they describe another run;
 *   - hidden entries (.git, .gitattributes, .cache of a Hub download, crepe's markers);
 *   - anything that is not a regular file once symbolic links are followed (a FIFO, a socket, a
 *     device, a dangling link) and symbolic links to directories (a loop would never end): these
 *     are skipped with a note rather than refused, as they are not part of what a model loader reads.
 * A symbolic link to a regular file (a Hub cache snapshot is made of them) is copied as its content,
 * so the output stands on its own.
 */
import { closeSync, constants, openSync, readdirSync, statSync, writeSync } from 'node:fs';
import path from 'node:path';
import { openInputFile, readInputBytes } from './input-file.ts';
import { WriteError, makeDirectory, writingToSync } from './write-error.ts';
import { UserError } from '../util/errors.ts';

/** Weight files and their indexes, by name. */
const WEIGHT_FILE = /\.(safetensors|bin|pt|pth|ckpt|h5|msgpack|gguf|onnx|onnx_data)$|\.(safetensors|bin|pt|pth|h5|msgpack)\.index\.json$/i;
/** Files crepe writes about a run of its own. */
const CREPE_FILES = new Set(['crepe-report.json', 'crepe-report.md']);

/** True for a file name that holds weights or a weight index (never copied with the model files). */
export const isWeightFile = (name: string): boolean => WEIGHT_FILE.test(name);

export interface SkippedFile {
  /** Path relative to the model directory. */
  file: string;
  reason: 'weights' | 'crepe output' | 'hidden' | 'not a regular file' | 'link to a directory' | 'unreadable';
  /** Set for the skips a user may want to hear about (not weights, crepe outputs or hidden entries). */
  note?: string;
}

export interface CopiedModelFiles {
  /** Copied files, relative paths ('/'-separated), in directory order. */
  copied: string[];
  skipped: SkippedFile[];
}

const CHUNK = 1 << 20;

/** Streams the regular file `source` to `target`, created or truncated. */
function copyStreaming(source: string, target: string): void {
  const input = openInputFile(source, 'model file');
  try {
    writingToSync(target, () => {
      const out = openSync(target, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o644);
      try {
        const buffer = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(input.size, 1)));
        for (;;) {
          const got = readInputBytes(input.fd, buffer, 0, buffer.length, null, source);
          if (got === 0) break;
          for (let written = 0; written < got;) written += writeSync(out, buffer, written, got - written);
        }
      } finally {
        closeSync(out);
      }
    });
  } finally {
    closeSync(input.fd);
  }
}

/** Copies every non-weight file of `modelDir` into `targetDir` (see the rules above). */
export function copyModelFiles(modelDir: string, targetDir: string): CopiedModelFiles {
  const result: CopiedModelFiles = { copied: [], skipped: [] };
  const walk = (relative: string): void => {
    const dir = path.join(modelDir, relative);
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      const file = relative ? `${relative}/${entry.name}` : entry.name;
      const source = path.join(dir, entry.name);
      if (entry.name.startsWith('.')) {
        result.skipped.push({ file, reason: 'hidden' });
        continue;
      }
      let isDirectory = entry.isDirectory();
      if (entry.isSymbolicLink()) {
        try {
          isDirectory = statSync(source).isDirectory();
        } catch {
          result.skipped.push({ file, reason: 'not a regular file', note: `${source} is a dangling symbolic link; not copied` });
          continue;
        }
        if (isDirectory) {
          result.skipped.push({ file, reason: 'link to a directory', note: `${source} is a symbolic link to a directory; not copied` });
          continue;
        }
      }
      if (isDirectory) {
        makeDirectory(path.join(targetDir, file));
        walk(file);
        continue;
      }
      if (isWeightFile(entry.name)) {
        result.skipped.push({ file, reason: 'weights' });
        continue;
      }
      if (!relative && CREPE_FILES.has(entry.name)) {
        result.skipped.push({ file, reason: 'crepe output' });
        continue;
      }
      try {
        copyStreaming(source, path.join(targetDir, file));
        result.copied.push(file);
      } catch (error) {
        if (!(error instanceof UserError) || error instanceof WriteError) throw error;
        // openInputFile's refusal: not a regular file, or no permission to read it.
        const reason = /is (a|not)/.test(error.message) ? 'not a regular file' : 'unreadable';
        result.skipped.push({ file, reason, note: `${error.message}; not copied` });
      }
    }
  };
  walk('');
  return result;
}
