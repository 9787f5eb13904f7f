/**
 * Hugging Face Hub model ids as crepe accepts them where a model path goes: `org/name`,
 * `org/name@revision`, and for a single file (convert's GGUF) `org/name/path/to/file@revision`.
 * A path that exists locally always wins; only then is the text read as an id.
 */
import { checkField } from '../util/errors.ts';
import { describeValue } from '../util/fields.ts';

export interface HubId {
  /** `org/name`. */
  repo: string;
  /** Branch, tag or commit after `@`, if given. */
  revision?: string;
  /** A file inside the repository, if given. */
  file?: string;
}

// The Hub's rule for both parts: letters, digits, '-', '_', '.', not starting or ending with '-'
// or '.', no '--' or '..', at most 96 characters.
const PART = /^(?!.*(?:--|\.\.))[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$/;

/** The id in `text`, or null when it does not look like one (then it is a local path that does not exist). */
export function parseHubId(text: string): HubId | null {
  checkField(typeof text === 'string', 'text', () => `must be a Hub id such as org/name or org/name@revision, got ${describeValue(text)}`);
  const at = text.lastIndexOf('@');
  const body = at > 0 ? text.slice(0, at) : text;
  const revision = at > 0 ? text.slice(at + 1) : undefined;
  if (revision !== undefined && (revision === '' || /\s|\.\.|^\/|\/$/.test(revision))) return null;
  const parts = body.split('/');
  if (parts.length < 2 || !PART.test(parts[0]) || !PART.test(parts[1])) return null;
  const file = parts.slice(2).join('/');
  if (parts.length > 2 && (file === '' || parts.slice(2).some((p) => p === '' || p === '.' || p === '..'))) return null;
  return { repo: `${parts[0]}/${parts[1]}`, ...(revision !== undefined ? { revision } : {}), ...(file ? { file } : {}) };
}

/** `org/name[@revision]` for messages. */
export const describeHubId = (id: { repo: string; revision?: string }): string => (id.revision ? `${id.repo}@${id.revision}` : id.repo);
