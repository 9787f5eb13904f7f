/**
 * A library error as the command line shows it: request fields (`owl.lambda`, `overwrite`) turned
 * back into the flags that set them, in one line.
 */
import { FieldError, type UserError } from '../util/errors.ts';

/**
 * Library request fields whose flag is not `--` + the field in kebab case (`owl.lambda` →
 * `--owl-lambda`, `riaA` → `--ria-a`). An empty flag is a positional argument: the message
 * already names its path.
 */
const FIELD_FLAGS: Readonly<Record<string, string>> = {
  model: '',
  input: '',
  // The command line reads --sparsity and --pattern itself (parseTarget with those fields), so a
  // target the library refuses later is an N:M pattern that does not fit the model.
  target: '--pattern',
  selection: '--per-row/--per-matrix',
  text: '--eval-ppl',
  evalText: '--eval-ppl',
  crepeConfig: '--config',
  kSet: '--crepe-k',
  'calibration.file': '--calib',
  'calibration.nsamples': '--nsamples',
  'calibration.seqlen': '--seqlen',
  'calibration.seed': '--seed',
  'sparsegpt.blockSize': '--blocksize',
  'sparsegpt.percdamp': '--percdamp',
  'dsnot.maxCycles': '--dsnot-cycles',
  'dsnot.updateThreshold': '--dsnot-threshold',
  'permute.strategy': '--permute',
  sparsityMetadata: '--no-sparsity-config',
};

/** Fields that library messages mention beside the one they are about ("pass overwrite to …"). */
const MENTIONED_FIELDS = [
  'overwrite', 'resume', 'seqlen', 'evalSeqlen', 'evalText', 'evalMaxChunks', 'maxChunks', 'nsamples', 'method', 'pattern',
  'exclude', 'threads', 'validate', 'confirm', 'proxySign', 'proxyCache', 'crepeConfig', 'calib', 'evalTasks',
  'reconstruct', 'crepe.a', 'auto', 'saveFormat',
];

/** The flag of a request field. */
export function flagOf(field: string): string {
  if (Object.hasOwn(FIELD_FLAGS, field)) return FIELD_FLAGS[field];
  return `--${field.replace(/\./g, '-').replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

// A field mentioned as a word of its own: not part of a path, a flag or a longer name.
const MENTION = new RegExp(`(?<![\\w./\\\\-])(${MENTIONED_FIELDS.join('|')})(?![\\w/\\\\-]|\\.\\w)`, 'g');

/** A user error's one line, with library field names (`owl.lambda`, `overwrite`) turned into flags. */
export function userMessage(error: UserError): string {
  const mapped = (text: string) => text.replace(MENTION, (field) => flagOf(field));
  if (error instanceof FieldError) {
    const flag = flagOf(error.field);
    return `${flag}${flag ? ' ' : ''}${mapped(error.problem)}`;
  }
  return mapped(error.message);
}

/** Commander's message `text` (which quotes what was typed whole) with each long quoted value cut to its start. */
export function shortenQuoted(text: string): string {
  return text.replace(/'([^'\n]{80})([^'\n]+)'/g, (_, start: string, rest: string) => `'${start}…' (${start.length + rest.length} characters)`);
}
