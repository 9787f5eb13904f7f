/**
 * The one resolver behind every model argument: a path that exists is used as it is; otherwise
 * text that looks like a Hub id (`org/name[@revision]`, or `org/name/file@revision` for one
 * file) is fetched into the Hugging Face cache (hub/download.ts) and its snapshot path returned.
 *
 * - a model directory: config.json, the safetensors weights (model.safetensors, or the index and
 *   the shards it names), and the files that travel with a model when present: generation
 *   config, tokenizer files, chat template, README.md;
 * - a checkpoint file (convert): the named file, or the repository's one .gguf; a llama2.c .bin
 *   brings the tok*.bin files beside it.
 *
 * With HF_HUB_OFFLINE=1 nothing is fetched: the revision's snapshot must be in the cache.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { FieldError, UserError, checkField } from '../util/errors.ts';
import { checkFunction, checkKnownFields, describeValue } from '../util/fields.ts';
import { cachedCommit, downloadFile, HubLookupError, fetchRevision, repoCacheDir, writeRef, type DownloadProgress, type RepoFile, type RepoRevision } from './download.ts';
import { describeHubId, parseHubId, type HubId } from './hub-id.ts';
import { hubSettings, type HubSettings } from './settings.ts';

export type ModelArgumentKind = 'model-dir' | 'checkpoint-file';
const MODEL_ARGUMENT_KINDS: readonly unknown[] = ['model-dir', 'checkpoint-file'];
const RESOLVE_OPTIONS: ReadonlyArray<keyof ResolveOptions> = ['kind', 'revision', 'settings', 'onProgress', 'onNote', 'signal'];

export interface ResolveOptions {
  kind: ModelArgumentKind;
  /** Revision when the argument names none (`--revision`); default "main". */
  revision?: string;
  /** Hub settings (default: from the environment). */
  settings?: Partial<HubSettings>;
  /** Bytes downloaded so far (`done`) of all the files this resolution fetches (`total`), and the file in flight. */
  onProgress?: (progress: DownloadProgress) => void;
  /** One-line notes, e.g. that another crepe process is downloading a file this one needs. */
  onNote?: (message: string) => void;
  signal?: AbortSignal;
}

/** Files that travel with a model's weights, fetched when the repository has them. */
const MODEL_FILES = [
  'config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'tokenizer.model',
  'added_tokens.json', 'chat_template.jinja', 'chat_template.json', 'README.md',
];

/** The local path for `argument`: itself when it exists or is no Hub id, else its snapshot in the cache. */
export async function resolveModelArgument(argument: string, options: ResolveOptions): Promise<string> {
  checkField(typeof argument === 'string' && argument !== '', 'model', () => `must be a local path or a Hub id such as org/name, got ${describeValue(argument)}`);
  checkKnownFields(options, 'options', RESOLVE_OPTIONS);
  checkField(MODEL_ARGUMENT_KINDS.includes(options.kind), 'options.kind', () => `must be one of ${MODEL_ARGUMENT_KINDS.join(', ')}, got ${describeValue(options.kind)}`);
  checkField(options.revision === undefined || (typeof options.revision === 'string' && options.revision !== ''), 'options.revision', () => `must be a branch, tag or commit, got ${describeValue(options.revision)}`);
  checkFunction('options.onProgress', options.onProgress);
  checkFunction('options.onNote', options.onNote);
  checkField(options.signal === undefined || options.signal instanceof AbortSignal, 'options.signal', () => `must be an AbortSignal, got ${describeValue(options.signal)}`);
  if (existsSync(argument)) {
    // A revision of a local path would be ignored.
    if (options.revision !== undefined) throw new FieldError('revision', `applies to a Hub id only; ${argument} is a local path`);
    return argument;
  }
  const id = parseHubId(argument);
  if (!id) return argument;
  if (id.revision !== undefined && options.revision !== undefined && id.revision !== options.revision) {
    throw new UserError(`${argument}: names revision ${id.revision}, but revision ${options.revision} was also given`);
  }
  if (id.file && options.kind === 'model-dir') return argument; // org/name/sub is no model id: a missing local path
  const target: HubId = { ...id, revision: id.revision ?? options.revision ?? 'main' };
  const settings = hubSettings(options.settings);
  try {
    return settings.offline ? resolveOffline(settings, target, options.kind) : await resolveOnline(settings, target, options);
  } catch (error) {
    if (error instanceof HubLookupError) throw new UserError(`${argument}: no such local path, and as a Hub id: ${error.message}`);
    throw error;
  }
}

function resolveOffline(settings: HubSettings, id: HubId, kind: ModelArgumentKind): string {
  const name = describeHubId(id);
  const commit = cachedCommit(settings, id.repo, id.revision!);
  const snapshot = commit && path.join(repoCacheDir(settings, id.repo), 'snapshots', commit);
  const wanted = kind === 'model-dir' ? 'config.json' : id.file;
  if (!snapshot || !existsSync(snapshot) || (wanted && !existsSync(path.join(snapshot, wanted)))) {
    throw new HubLookupError(`${name}${id.file && kind === 'checkpoint-file' ? `/${id.file}` : ''} is not in the Hugging Face cache ${settings.cacheDir}, and HF_HUB_OFFLINE=1 forbids downloading it`);
  }
  if (kind === 'model-dir' || id.file) return kind === 'model-dir' ? snapshot : path.join(snapshot, id.file!);
  const ggufs = readdirSync(snapshot).filter((f) => f.endsWith('.gguf'));
  if (ggufs.length !== 1) throw new UserError(`${name}: the cached snapshot holds ${ggufs.length} .gguf files; name one as ${id.repo}/<file>`);
  return path.join(snapshot, ggufs[0]);
}

/** The files to fetch for a model directory; the index is fetched first to learn its shards. */
async function modelFiles(revision: RepoRevision, fetchOne: (file: RepoFile) => Promise<string>): Promise<RepoFile[]> {
  const byName = new Map(revision.files.map((f) => [f.name, f]));
  const name = describeHubId(revision);
  if (!byName.has('config.json')) throw new UserError(`${name}: the repository has no config.json (not a transformers model)`);
  const wanted = MODEL_FILES.filter((f) => byName.has(f));
  if (byName.has('model.safetensors')) return [...wanted, 'model.safetensors'].map((f) => byName.get(f)!);
  const index = byName.get('model.safetensors.index.json');
  if (!index) {
    const weights = revision.files.map((f) => f.name).filter((f) => /\.(bin|pt|pth|gguf|h5|msgpack)$/.test(f));
    throw new UserError(`${name}: no safetensors weights (model.safetensors or model.safetensors.index.json)${weights.length ? `; it has ${weights.slice(0, 3).join(', ')}${weights.length > 3 ? ', …' : ''}, which crepe does not read` : ''}`);
  }
  let weightMap: unknown;
  try {
    weightMap = (JSON.parse(readFileSync(await fetchOne(index), 'utf8')) as { weight_map?: unknown }).weight_map;
  } catch {
    throw new UserError(`${name}: model.safetensors.index.json is not valid JSON`);
  }
  if (typeof weightMap !== 'object' || weightMap === null) throw new UserError(`${name}: model.safetensors.index.json has no weight_map`);
  const shards = [...new Set(Object.values(weightMap as Record<string, unknown>).map(String))].sort();
  for (const shard of shards) if (!byName.has(shard)) throw new UserError(`${name}: the index names shard ${shard}, which the repository does not hold`);
  return [...wanted, 'model.safetensors.index.json', ...shards].map((f) => byName.get(f)!);
}

/** The file(s) to fetch for a checkpoint file: the named one or the repository's one .gguf. */
function checkpointFiles(revision: RepoRevision, file: string | undefined): RepoFile[] {
  const name = describeHubId(revision);
  const names = revision.files.map((f) => f.name);
  let chosen = file;
  if (chosen === undefined) {
    const ggufs = names.filter((f) => f.endsWith('.gguf'));
    if (ggufs.length !== 1) {
      throw new UserError(`${name}: ${ggufs.length === 0 ? 'no .gguf file' : `${ggufs.length} .gguf files (${ggufs.slice(0, 4).join(', ')}${ggufs.length > 4 ? ', …' : ''})`}; name one as ${revision.repo}/<file>`);
    }
    chosen = ggufs[0];
  }
  const entry = revision.files.find((f) => f.name === chosen);
  if (!entry) throw new UserError(`${name}: file "${chosen}" not found`);
  // A llama2.c checkpoint reads its tokenizer from beside it.
  const dir = path.posix.dirname(chosen);
  const tokenizers = chosen.endsWith('.bin')
    ? revision.files.filter((f) => path.posix.dirname(f.name) === dir && /^tok.*\.bin$/.test(path.posix.basename(f.name)) && f.name !== chosen)
    : [];
  return [entry, ...tokenizers];
}

async function resolveOnline(settings: HubSettings, id: HubId, options: ResolveOptions): Promise<string> {
  const revision = await fetchRevision(settings, id.repo, id.revision!, options.signal);
  const fetchIndex = (file: RepoFile) => downloadFile(settings, revision, file, undefined, options.signal, options.onNote);
  const files = options.kind === 'model-dir' ? await modelFiles(revision, fetchIndex) : checkpointFiles(revision, id.file);
  const total = files.reduce((sum, file) => sum + file.size, 0);
  let completed = 0;
  const paths: string[] = [];
  for (const file of files) {
    const report = (p: DownloadProgress) => options.onProgress?.({ file: p.file, done: completed + p.done, total });
    paths.push(await downloadFile(settings, revision, file, report, options.signal, options.onNote));
    completed += file.size;
  }
  writeRef(settings, revision);
  return options.kind === 'model-dir' ? path.join(repoCacheDir(settings, id.repo), 'snapshots', revision.commit) : paths[0];
}
