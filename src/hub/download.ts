/**
 * Files of a Hugging Face Hub repository, downloaded into huggingface_hub's cache layout so that
 * crepe, transformers and the `hf` command share one copy:
 *
 *   <cache>/models--<org>--<name>/blobs/<etag>                 the file's bytes (etag: the LFS sha256,
 *                                                              or the git blob sha1 of a small file)
 *   <cache>/models--<org>--<name>/blobs/<etag>.incomplete      a download in progress (resumed with Range)
 *   <cache>/models--<org>--<name>/snapshots/<commit>/<file>    → ../../blobs/<etag> (relative symlink)
 *   <cache>/models--<org>--<name>/refs/<revision>              the commit a branch or tag pointed to
 *   <cache>/.locks/models--<org>--<name>/<etag>.crepe-lock     the crepe process downloading that blob
 *
 * The file list and checksums come from `GET {endpoint}/api/models/{repo}/revision/{revision}?blobs=true`
 * (`sha`, `siblings[].rfilename/size/blobId/lfs.sha256`); each file from
 * `GET {endpoint}/{repo}/resolve/{commit}/{file}`, whose X-Repo-Commit and X-Linked-Etag (or ETag)
 * are checked against the list, following redirects (a CDN: Authorization is sent to the
 * endpoint's origin only). A finished download is checked — sha256 for LFS files, the git blob
 * sha1 otherwise — before it enters blobs/; a mismatch keeps nothing. Two crepe processes that need
 * the same blob at once (two prunes of one model) do not both write it: the second waits for the
 * first's lock and then finds the blob in place.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync, openSync, closeSync, writeSync } from 'node:fs';
import path from 'node:path';
import { waitForLock } from '../io/output-lock.ts';
import { UserError } from '../util/errors.ts';
import { describeHubId } from './hub-id.ts';
import { DEFAULT_HUB_TIMEOUT_MS, type HubSettings } from './settings.ts';

export interface RepoFile {
  /** Path inside the repository. */
  name: string;
  size: number;
  /** Blob name in the cache: the LFS sha256, or the git blob sha1. */
  etag: string;
  lfs: boolean;
}

export interface RepoRevision {
  repo: string;
  revision: string;
  commit: string;
  files: RepoFile[];
}

/** Bytes of one file as they arrive. */
export interface DownloadProgress {
  file: string;
  done: number;
  total: number;
}

const COMMIT = /^[0-9a-f]{40}$/;
const MAX_REDIRECTS = 10;
const MAX_ATTEMPTS = 5;

/** `models--org--name` under the cache directory. */
export const repoCacheDir = (settings: HubSettings, repo: string): string => path.join(settings.cacheDir, `models--${repo.replace('/', '--')}`);

/** Path segments of a repository file, each percent-encoded. */
const encodePath = (file: string): string => file.split('/').map(encodeURIComponent).join('/');

/**
 * The Hub has no such repository, or cannot be asked: for an argument that is no local path
 * either, the resolver says both.
 */
export class HubLookupError extends UserError {}

function unreachable(settings: HubSettings, error: unknown): UserError {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  const reason = cause?.code ?? cause?.message ?? (error as Error).message;
  return new HubLookupError(`cannot reach the Hugging Face Hub at ${settings.endpoint} (${reason}); set HF_HUB_OFFLINE=1 to use the local cache only`);
}

/**
 * Gives up a request when the Hub sends nothing for `ms`: armed from the start, re-armed by
 * kick() at each chunk of the body, ended by stop(). A server that accepts the connection and
 * never answers would otherwise keep crepe waiting, silent, for minutes.
 */
class Watchdog {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly ms: number) {
    this.kick();
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get fired(): boolean {
    return this.controller.signal.aborted;
  }

  kick(): void {
    this.stop();
    this.timer = setTimeout(() => this.controller.abort(), this.ms);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}

/** The refusal of a request the watchdog gave up. */
function silent(settings: HubSettings): UserError {
  const seconds = (settings.timeoutMs ?? DEFAULT_HUB_TIMEOUT_MS) / 1000;
  return new HubLookupError(`the Hugging Face Hub at ${settings.endpoint} sent nothing for ${seconds} s (HF_HUB_DOWNLOAD_TIMEOUT sets the wait); set HF_HUB_OFFLINE=1 to use the local cache only`);
}

/**
 * One request, following redirects itself: Authorization goes to the endpoint's origin only.
 * Returns the final response, the first one (whose X-Repo-Commit / X-Linked-Etag describe the file)
 * and the watchdog the caller kicks while it reads the body and stops when done.
 */
async function hubFetch(settings: HubSettings, url: string, init: { method?: string; headers?: Record<string, string>; signal?: AbortSignal }): Promise<{ first: Response; last: Response; watchdog: Watchdog }> {
  const origin = new URL(settings.endpoint).origin;
  const watchdog = new Watchdog(settings.timeoutMs ?? DEFAULT_HUB_TIMEOUT_MS);
  const signal = init.signal ? AbortSignal.any([init.signal, watchdog.signal]) : watchdog.signal;
  let current = url;
  let first: Response | null = null;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const headers: Record<string, string> = { 'user-agent': 'crepe', 'accept-encoding': 'identity', ...init.headers };
    if (settings.token && new URL(current).origin === origin) headers.authorization = `Bearer ${settings.token}`;
    let response: Response;
    try {
      response = await fetch(current, { method: init.method ?? 'GET', headers, redirect: 'manual', signal });
    } catch (error) {
      watchdog.stop();
      if (init.signal?.aborted) throw init.signal.reason;
      if (watchdog.fired) throw silent(settings);
      throw unreachable(settings, error);
    }
    watchdog.kick();
    first ??= response;
    const location = response.headers.get('location');
    if (response.status >= 300 && response.status < 400 && location) {
      await response.body?.cancel();
      current = new URL(location, current).toString();
      continue;
    }
    return { first, last: response, watchdog };
  }
  watchdog.stop();
  throw new UserError(`${url}: more than ${MAX_REDIRECTS} redirects`);
}

/** The Hub's reason for a refused request, as one line naming the repository (and file). */
function refusal(response: Response, id: string, file?: string): UserError {
  const code = response.headers.get('x-error-code');
  const what = file ? `${id}: file "${file}"` : id;
  if (code === 'RepoNotFound' || (!file && (response.status === 401 || response.status === 404) && code !== 'RevisionNotFound')) {
    return new HubLookupError(`${id}: no such model repository on the Hugging Face Hub (or it is private: set HF_TOKEN)`);
  }
  if (code === 'RevisionNotFound') return new UserError(`${id}: no such revision (branch, tag or commit)`);
  if (code === 'EntryNotFound' || response.status === 404) return new UserError(`${what} not found`);
  if (code === 'GatedRepo' || response.status === 403) return new UserError(`${id}: access is restricted (a gated model: accept its terms on the Hub and set HF_TOKEN)`);
  if (response.status === 401) return new UserError(`${what}: not authorized (set HF_TOKEN to a token that can read it)`);
  return new UserError(`${what}: the Hub answered HTTP ${response.status}`);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The commit and files of `repo` at `revision`, from the Hub's API. */
export async function fetchRevision(settings: HubSettings, repo: string, revision: string, signal?: AbortSignal): Promise<RepoRevision> {
  const id = describeHubId({ repo, revision });
  const url = `${settings.endpoint}/api/models/${repo}/revision/${encodeURIComponent(revision)}?blobs=true`;
  const { last, watchdog } = await hubFetch(settings, url, { signal });
  let body: unknown;
  try {
    if (!last.ok) throw refusal(last, id);
    body = await last.json();
  } catch (error) {
    if (error instanceof UserError) throw error;
    if (signal?.aborted) throw signal.reason;
    if (watchdog.fired) throw silent(settings);
    throw new UserError(`${id}: the Hub's answer is not JSON`);
  } finally {
    watchdog.stop();
  }
  const malformed = (what: string) => new UserError(`${id}: unexpected answer from ${settings.endpoint} (${what})`);
  if (!isPlainObject(body) || typeof body.sha !== 'string' || !COMMIT.test(body.sha)) throw malformed('no commit "sha"');
  if (!Array.isArray(body.siblings)) throw malformed('no "siblings"');
  const files = body.siblings.map((sibling: unknown): RepoFile => {
    if (!isPlainObject(sibling) || typeof sibling.rfilename !== 'string') throw malformed('a sibling without "rfilename"');
    const lfs = isPlainObject(sibling.lfs) ? sibling.lfs : null;
    const etag = lfs ? lfs.sha256 : sibling.blobId;
    const size = lfs ? lfs.size : sibling.size;
    if (typeof etag !== 'string' || !/^[0-9a-f]{40}([0-9a-f]{24})?$/.test(etag)) throw malformed(`no checksum for "${sibling.rfilename}"`);
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw malformed(`no size for "${sibling.rfilename}"`);
    return { name: sibling.rfilename, size, etag, lfs: lfs !== null };
  });
  return { repo, revision, commit: body.sha, files };
}

/** The checksum a finished blob must have: sha256 of the bytes (LFS), or the git blob sha1. */
async function checksumOf(file: string, size: number, lfs: boolean): Promise<string> {
  const digest = createHash(lfs ? 'sha256' : 'sha1');
  if (!lfs) digest.update(`blob ${size}\0`);
  for await (const chunk of createReadStream(file)) digest.update(chunk as Buffer);
  return digest.digest('hex');
}

const normalizeEtag = (etag: string | null): string | null => etag?.replace(/^W\//, '').replace(/"/g, '') ?? null;

/**
 * Downloads one file into blobs/<etag> (resuming an `.incomplete` one) and links it into the
 * commit's snapshot. Returns the snapshot path. While another crepe process downloads the same blob,
 * waits for it (`onNote` is told once).
 */
export async function downloadFile(
  settings: HubSettings,
  revision: RepoRevision,
  file: RepoFile,
  onProgress?: (progress: DownloadProgress) => void,
  signal?: AbortSignal,
  onNote?: (message: string) => void,
): Promise<string> {
  const repoDir = repoCacheDir(settings, revision.repo);
  const blob = path.join(repoDir, 'blobs', file.etag);
  const snapshot = path.join(repoDir, 'snapshots', revision.commit, ...file.name.split('/'));
  const id = describeHubId(revision);
  if (!existsSync(blob)) {
    const lockPath = path.join(settings.cacheDir, '.locks', path.basename(repoDir), `${file.etag}.crepe-lock`);
    const lock = await waitForLock(lockPath, `the download of ${id} "${file.name}"`, { onWait: onNote, signal });
    try {
      if (!existsSync(blob)) await downloadBlob(settings, revision, file, blob, onProgress, signal);
    } finally {
      lock.release();
    }
  }
  if (!existsSync(snapshot)) {
    mkdirSync(path.dirname(snapshot), { recursive: true });
    try {
      symlinkSync(path.relative(path.dirname(snapshot), blob), snapshot);
    } catch (error) {
      // Another process linked it between the check and here.
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
  return snapshot;
}

/** Downloads `file` into `blob` through `<blob>.incomplete` (resumed with Range), checked before it is renamed into place. */
async function downloadBlob(
  settings: HubSettings,
  revision: RepoRevision,
  file: RepoFile,
  blob: string,
  onProgress: ((progress: DownloadProgress) => void) | undefined,
  signal: AbortSignal | undefined,
): Promise<void> {
  const id = describeHubId(revision);
  mkdirSync(path.dirname(blob), { recursive: true });
  const partial = `${blob}.incomplete`;
  const url = `${settings.endpoint}/${revision.repo}/resolve/${revision.commit}/${encodePath(file.name)}`;
  for (let attempt = 1; ; attempt++) {
    const have = existsSync(partial) ? statSync(partial).size : 0;
    if (have > file.size) rmSync(partial, { force: true });
    const start = have > file.size ? 0 : have;
    onProgress?.({ file: file.name, done: start, total: file.size });
    if (start === file.size) break;
    const { first, last, watchdog } = await hubFetch(settings, url, { headers: start > 0 ? { range: `bytes=${start}-` } : {}, signal });
    watchdog.stop();
    if (!last.ok) {
      await last.body?.cancel();
      if (last.status === 416) {
        rmSync(partial, { force: true });
        continue;
      }
      throw refusal(last, id, file.name);
    }
    const commit = first.headers.get('x-repo-commit');
    const etag = normalizeEtag(first.headers.get('x-linked-etag') ?? first.headers.get('etag'));
    if ((commit && commit !== revision.commit) || (etag && etag !== file.etag)) {
      await last.body?.cancel();
      throw new UserError(`${id}: file "${file.name}" changed while it was downloaded (commit ${commit}, etag ${etag}; expected ${revision.commit}, ${file.etag}); run again`);
    }
    const resumed = start > 0 && last.status === 206;
    const fd = openSync(partial, resumed ? 'a' : 'w');
    let done = resumed ? start : 0;
    try {
      watchdog.kick();
      for await (const chunk of last.body as unknown as AsyncIterable<Uint8Array>) {
        watchdog.kick();
        writeSync(fd, chunk);
        done += chunk.byteLength;
        onProgress?.({ file: file.name, done, total: file.size });
      }
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      const reason = watchdog.fired ? `nothing arrived for ${(settings.timeoutMs ?? DEFAULT_HUB_TIMEOUT_MS) / 1000} s` : (error as Error).message;
      if (attempt >= MAX_ATTEMPTS) throw new UserError(`${id}: download of "${file.name}" failed ${attempt} times (${reason}); run again to resume`);
      continue;
    } finally {
      watchdog.stop();
      closeSync(fd);
    }
    if (done >= file.size || attempt >= MAX_ATTEMPTS) break;
  }
  const size = statSync(partial).size;
  const sum = await checksumOf(partial, size, file.lfs);
  if (size !== file.size || sum !== file.etag) {
    rmSync(partial, { force: true });
    throw new UserError(
      `${id}: "${file.name}" failed its checksum (${size} bytes, ${file.lfs ? 'sha256' : 'git sha1'} ${sum}; the Hub lists ${file.size} bytes, ${file.etag}); nothing was kept`,
    );
  }
  renameSync(partial, blob);
}

/** Records which commit `revision` (a branch or tag) pointed to, as huggingface_hub does. */
export function writeRef(settings: HubSettings, revision: RepoRevision): void {
  if (revision.revision === revision.commit) return;
  const ref = path.join(repoCacheDir(settings, revision.repo), 'refs', ...revision.revision.split('/'));
  mkdirSync(path.dirname(ref), { recursive: true });
  writeFileSync(ref, revision.commit);
}

/** The commit of `revision` in the cache (a commit itself, or what refs/<revision> names), or null. */
export function cachedCommit(settings: HubSettings, repo: string, revision: string): string | null {
  if (COMMIT.test(revision)) return revision;
  const ref = path.join(repoCacheDir(settings, repo), 'refs', ...revision.split('/'));
  if (!existsSync(ref)) return null;
  const commit = readFileSync(ref, 'utf8').trim();
  return COMMIT.test(commit) ? commit : null;
}
