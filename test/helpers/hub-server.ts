/**
 * A Hugging Face Hub stand-in on 127.0.0.1 (random port) for the download tests: the API's
 * revision endpoint, `/{repo}/resolve/{commit}/{file}` (small files directly with their git-sha1
 * ETag, LFS files by a 302 to `/cdn/<sha256>` with X-Linked-Etag), Range requests, the Hub's
 * X-Error-Code answers, and injected faults: a transfer cut mid-body, one that stops sending
 * mid-body with the connection left open, a blob served with a byte changed. Every request is logged.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface HubFile {
  name: string;
  bytes: Uint8Array;
  /** Stored in LFS (redirected to the CDN path, sha256 etag). */
  lfs: boolean;
}

export interface HubRepo {
  commit: string;
  /** Revisions (branches, tags) that point to the commit; the commit itself always works. */
  refs: string[];
  files: HubFile[];
}

export interface LoggedRequest {
  method: string;
  url: string;
  range?: string;
  authorization?: string;
}

const gitSha1 = (bytes: Uint8Array): string => createHash('sha1').update(`blob ${bytes.byteLength}\0`).update(bytes).digest('hex');
const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');
const etagOf = (file: HubFile): string => (file.lfs ? sha256(file.bytes) : gitSha1(file.bytes));

export const newCommit = (): string => randomBytes(20).toString('hex');

export class HubServer {
  readonly requests: LoggedRequest[] = [];
  /** Blob sha256s whose next CDN transfer stops after half the bytes. */
  readonly cutNext = new Set<string>();
  /** Blob sha256s whose next CDN transfer sends half the bytes, then nothing, the connection left open. */
  readonly stallNext = new Set<string>();
  /** Blob sha256s served with their first byte flipped. */
  readonly corrupt = new Set<string>();
  private server: Server | null = null;
  endpoint = '';

  constructor(readonly repos: Map<string, HubRepo>) {}

  async start(): Promise<void> {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.endpoint = `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }

  private fail(res: ServerResponse, status: number, code: string | null): void {
    if (code) res.setHeader('X-Error-Code', code);
    res.writeHead(status, { 'content-type': 'text/plain' }).end(code ?? 'error');
  }

  private repoAt(repoName: string, revision: string): HubRepo | 'no-repo' | 'no-revision' {
    const repo = this.repos.get(repoName);
    if (!repo) return 'no-repo';
    return revision === repo.commit || repo.refs.includes(revision) ? repo : 'no-revision';
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', this.endpoint);
    this.requests.push({ method: req.method ?? 'GET', url: url.pathname, range: req.headers.range, authorization: req.headers.authorization });
    const api = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/([^/]+)$/.exec(url.pathname);
    if (api) {
      const repo = this.repoAt(api[1], decodeURIComponent(api[2]));
      if (repo === 'no-repo') return this.fail(res, 401, 'RepoNotFound');
      if (repo === 'no-revision') return this.fail(res, 404, 'RevisionNotFound');
      const siblings = repo.files.map((f) => ({
        rfilename: f.name,
        size: f.bytes.byteLength,
        blobId: f.lfs ? gitSha1(new TextEncoder().encode(`version https://git-lfs.github.com/spec/v1\noid sha256:${sha256(f.bytes)}\n`)) : gitSha1(f.bytes),
        ...(f.lfs ? { lfs: { sha256: sha256(f.bytes), size: f.bytes.byteLength, pointerSize: 134 } } : {}),
      }));
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: api[1], sha: repo.commit, siblings }));
      return;
    }
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    if (resolve) {
      const repo = this.repoAt(resolve[1], decodeURIComponent(resolve[2]));
      if (repo === 'no-repo') return this.fail(res, 401, 'RepoNotFound');
      if (repo === 'no-revision') return this.fail(res, 404, 'RevisionNotFound');
      const name = resolve[3].split('/').map(decodeURIComponent).join('/');
      const file = repo.files.find((f) => f.name === name);
      if (!file) return this.fail(res, 404, 'EntryNotFound');
      res.setHeader('X-Repo-Commit', repo.commit);
      if (file.lfs) {
        res.writeHead(302, { location: `${this.endpoint}/cdn/${sha256(file.bytes)}`, 'x-linked-etag': `"${etagOf(file)}"`, 'x-linked-size': String(file.bytes.byteLength) }).end();
        return;
      }
      return this.send(req, res, file.bytes, `"${etagOf(file)}"`);
    }
    const cdn = /^\/cdn\/([0-9a-f]{64})$/.exec(url.pathname);
    const blob = cdn && [...this.repos.values()].flatMap((r) => r.files).find((f) => f.lfs && sha256(f.bytes) === cdn[1]);
    if (cdn && blob) {
      let bytes = blob.bytes;
      if (this.corrupt.has(cdn[1])) {
        bytes = bytes.slice();
        bytes[0] ^= 0xff;
      }
      const fault = this.cutNext.delete(cdn[1]) ? 'cut' : this.stallNext.delete(cdn[1]) ? 'stall' : undefined;
      return this.send(req, res, bytes, `"cdn-${cdn[1].slice(0, 8)}"`, fault);
    }
    this.fail(res, 404, null);
  }

  /** The bytes (or the Range asked for); `cut`: send half, then drop the connection; `stall`: send half, then nothing. */
  private send(req: IncomingMessage, res: ServerResponse, bytes: Uint8Array, etag: string, fault?: 'cut' | 'stall'): void {
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = range ? Number(range[1]) : 0;
    if (start > bytes.byteLength) return this.fail(res, 416, null);
    const body = bytes.subarray(start);
    const headers: Record<string, string> = { etag, 'content-length': String(body.byteLength), 'accept-ranges': 'bytes' };
    if (range) headers['content-range'] = `bytes ${start}-${bytes.byteLength - 1}/${bytes.byteLength}`;
    res.writeHead(range ? 206 : 200, headers);
    if (req.method === 'HEAD') return void res.end();
    if (fault) {
      res.write(body.subarray(0, Math.floor(body.byteLength / 2)), () => (fault === 'cut' ? res.destroy() : undefined));
      return;
    }
    res.end(body);
  }
}
