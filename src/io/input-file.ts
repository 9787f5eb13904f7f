/**
 * Every file crepe reads goes through here. The file is opened without blocking (a FIFO or a
 * device can never stall the open), checked to be a regular file, and — when it is read whole —
 * held to a size limit that fits its kind, so `/dev/zero`, a named pipe or a mistaken multi-GB file
 * is refused with one line naming the file instead of hanging or exhausting memory.
 */
import { closeSync, constants, fstatSync, openSync, readSync, statSync, type Stats } from 'node:fs';
import { FieldError, UserError } from '../util/errors.ts';

const MiB = 2 ** 20;

/** What a file read whole is, with the largest size crepe accepts for it. */
export const INPUT_KINDS = {
  /** config.json, tokenizer_config.json, generation files, a sharded checkpoint's index, validation.json. */
  json: { what: 'JSON file', limit: 64 * MiB },
  /** A Hugging Face tokenizer.json (the largest vocabularies are a few tens of MB). */
  tokenizer: { what: 'tokenizer.json', limit: 512 * MiB },
  /** A llama2.c tokenizer (tok512.bin, tokenizer.bin). */
  llama2cTokenizer: { what: 'llama2.c tokenizer', limit: 256 * MiB },
  /** A CRePE configuration (a handful of numbers and their provenance). */
  crepeConfig: { what: 'CRePE configuration', limit: 16 * MiB },
  /** Plain text decoded as one string (V8 strings hold at most 2^29 − 24 UTF-16 units). */
  text: { what: 'text file', limit: 500 * MiB },
  /** JSON Lines documents, decoded line by line (gzip: the limit applies to the decompressed bytes). */
  documents: { what: 'JSON Lines file', limit: 2048 * MiB - 1 },
  /** A pruning run's state.json (layer reports can carry permutations). */
  workState: { what: 'work state', limit: 1024 * MiB },
} as const;

export type InputKind = keyof typeof INPUT_KINDS;

/** "64 MiB", "1.5 GiB", "812 bytes". */
export function formatBytes(bytes: number): string {
  if (bytes >= 2 ** 30) return `${+(bytes / 2 ** 30).toFixed(1)} GiB`;
  if (bytes >= MiB) return `${+(bytes / MiB).toFixed(1)} MiB`;
  if (bytes >= 1024) return `${+(bytes / 1024).toFixed(1)} KiB`;
  return `${bytes} bytes`;
}

/** How a file that is not a regular file is described in a refusal. */
function describeNonRegular(stats: Stats): string {
  if (stats.isDirectory()) return 'a directory';
  if (stats.isFIFO()) return 'a named pipe (FIFO)';
  if (stats.isCharacterDevice()) return 'a character device';
  if (stats.isBlockDevice()) return 'a block device';
  if (stats.isSocket()) return 'a socket';
  return 'not a regular file';
}

const REASONS: Record<string, string> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  ELOOP: 'too many levels of symbolic links',
  ENOTDIR: 'a path component is not a directory',
  ENAMETOOLONG: 'file name too long',
};

/**
 * readSync on an input, with a failure of the device (EIO on a failing disk or network mount,
 * EISDIR, …) as a UserError naming the file rather than Node's message, which names none.
 */
export function readInputBytes(fd: number, buffer: Uint8Array, offset: number, length: number, position: number | null, filePath: string, label?: string): number {
  try {
    return readSync(fd, buffer, offset, length, position);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (typeof code !== 'string') throw error;
    throw new UserError(`${named(filePath, label)}: cannot read (${READ_REASONS[code] ?? REASONS[code] ?? 'error'}, ${code})`);
  }
}

const READ_REASONS: Record<string, string> = { EIO: 'input/output error', EISDIR: 'is a directory', EINVAL: 'not readable as a file' };

/** "<label> <file>" or "<file>", the prefix of every refusal. */
function named(filePath: string, label: string | undefined): string {
  return label ? `${label} ${filePath}` : filePath;
}

export interface OpenInput {
  fd: number;
  size: number;
}

/**
 * Opens `filePath` read-only and non-blocking, and refuses it unless it is a regular file. `what`
 * names the expected content ("safetensors file"); `label` the option that gave it ("--calib").
 * The caller closes `fd`.
 */
export function openInputFile(filePath: string, what: string, label?: string): OpenInput {
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever. It changes
    // nothing for regular files, which are the only thing accepted below.
    fd = openSync(filePath, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? '';
    const reason = REASONS[code] ? `${REASONS[code]}, ${code}` : code || (error as Error).message;
    throw new UserError(`${named(filePath, label)}: cannot open ${what} (${reason})`);
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile()) throw new UserError(`${named(filePath, label)}: is ${describeNonRegular(stats)}, expected a ${what} (a regular file)`);
    return { fd, size: stats.size };
  } catch (error) {
    closeSync(fd);
    throw error;
  }
}

/**
 * The whole content of `filePath`, refused when it is not a regular file or is larger than the
 * limit of `kind`. A file that grows while it is read is cut off at the limit and refused too.
 */
export function readInputFile(filePath: string, kind: InputKind, label?: string): Buffer {
  const { what, limit } = INPUT_KINDS[kind];
  const { fd, size } = openInputFile(filePath, what, label);
  const tooLarge = (shown: string) =>
    new UserError(`${named(filePath, label)}: ${shown} is larger than the ${formatBytes(limit)} limit for a ${what}`);
  try {
    if (size > limit) throw tooLarge(formatBytes(size));
    let buffer = Buffer.allocUnsafe(Math.min(limit + 1, Math.max(size, 4096)));
    let length = 0;
    for (;;) {
      if (length === buffer.length) {
        if (length > limit) throw tooLarge('the file (still growing while read)');
        const bigger = Buffer.allocUnsafe(Math.min(limit + 1, buffer.length * 2));
        buffer.copy(bigger, 0, 0, length);
        buffer = bigger;
      }
      const got = readInputBytes(fd, buffer, length, buffer.length - length, null, filePath, label);
      if (got === 0) break;
      length += got;
    }
    if (length > limit) throw tooLarge('the file (still growing while read)');
    return buffer.subarray(0, length);
  } finally {
    closeSync(fd);
  }
}

/** The file as strict UTF-8 text (a BOM is kept as U+FEFF). */
export function readInputText(filePath: string, kind: InputKind, label?: string): string {
  return decodeUtf8(readInputFile(filePath, kind, label), named(filePath, label));
}

/** The file parsed as JSON; a parse failure names the file. */
export function readInputJson(filePath: string, kind: InputKind, label?: string): unknown {
  return parseJson(readInputText(filePath, kind, label), named(filePath, label));
}

const MODEL_DIRECTORY = 'a Hugging Face model directory: config.json, model.safetensors, tokenizer.json';

/**
 * Refuses a path that does not exist or is not a directory, naming it and what was `expected`
 * there; with `field`, as a FieldError naming the request field.
 */
export function checkDirectory(dir: string, expected: string, field?: string): void {
  const refuse = (problem: string): never => {
    const message = `${dir}: ${problem} (expected ${expected})`;
    throw field === undefined ? new UserError(message) : new FieldError(field, message);
  };
  let stats: Stats;
  try {
    stats = statSync(dir);
  } catch {
    return refuse('no such directory');
  }
  if (!stats.isDirectory()) refuse('not a directory');
}

/** Refuses a model path that does not exist or is not a directory, naming it and what was expected. */
export function checkModelDirectory(dir: string): void {
  checkDirectory(dir, MODEL_DIRECTORY);
}

/**
 * `text` parsed as JSON, or a UserError "<where>: not valid JSON (<reason>)" on one line (V8's
 * reason quotes the text around the error, newlines included). A leading byte-order mark, which
 * Windows editors write, is ignored, as RFC 8259 allows.
 */
export function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch (error) {
    throw new UserError(`${where}: not valid JSON (${(error as Error).message.replace(/\s+/g, ' ')})`);
  }
}

/** Strict UTF-8 decoding; `where` names the bytes in the refusal. */
export function decodeUtf8(bytes: Uint8Array, where: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new UserError(`${where}: not valid UTF-8 text`);
  }
}
