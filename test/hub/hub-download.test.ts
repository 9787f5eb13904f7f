// Models by Hub id, end to end against a stand-in Hub on 127.0.0.1 (never a real host): the
// standard cache layout, a 302 to a CDN path, a transfer cut mid-body and resumed with Range, a
// blob with a wrong checksum (refused, nothing kept), a 404 for a missing repository, revision or
// file, sharded weights at a tag, offline mode, progress, and eval/inspect/convert by id.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { writeCheckpoint } from '../../src/io/checkpoint-writer.ts';
import { SafetensorsWeights } from '../../src/io/safetensors.ts';
import { parseHubId } from '../../src/hub/hub-id.ts';
import { resolveModelArgument } from '../../src/hub/resolve.ts';
import { convertModel, evaluatePerplexity, inspectModel, type ProgressEvent } from '../../src/index.ts';
import { HubServer, newCommit, type HubFile } from '../helpers/hub-server.ts';
import { STORIES_GGUF, WIKITEXT_TEST } from '../helpers/shared.ts';
import { scratchDir, storiesModelDir } from '../helpers/stories.ts';

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');
const filesOf = (dir: string, names: string[], lfs: (name: string) => boolean): HubFile[] =>
  names.map((name) => ({ name, bytes: readFileSync(path.join(dir, name)), lfs: lfs(name) }));

const MODEL_FILES = ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'tokenizer.model', 'model.safetensors'];

describe('models by Hub id (loopback Hub)', () => {
  let stories = '';
  let hub: HubServer;
  const main = newCommit();
  const shardedCommit = newCommit();
  let modelBlob = '';
  let cache = '';
  const settings = () => ({ endpoint: hub.endpoint, cacheDir: cache, token: 'hf_test_token', offline: false });

  before(async () => {
    stories = await storiesModelDir();
    const sharded = scratchDir('hub-sharded');
    const weights = SafetensorsWeights.open(stories);
    const { files: shardFiles } = await writeCheckpoint(sharded, weights, { maxShardSize: 400_000 });
    weights.close();
    const files = filesOf(stories, MODEL_FILES, (n) => n.endsWith('.safetensors'));
    files.push({ name: 'README.md', bytes: new TextEncoder().encode('# stories260K\n'), lfs: false });
    files.push({ name: 'pytorch_model.bin', bytes: new Uint8Array(16), lfs: true }); // not fetched
    modelBlob = sha256(files.find((f) => f.name === 'model.safetensors')!.bytes);
    hub = new HubServer(new Map([
      ['crepe-test/stories260K', { commit: main, refs: ['main'], files }],
      ['crepe-test/stories260K-sharded', {
        commit: shardedCommit,
        refs: ['v1'],
        files: [...filesOf(stories, MODEL_FILES.slice(0, 5), () => false), ...filesOf(sharded, shardFiles, (n) => n.endsWith('.safetensors'))],
      }],
      ['crepe-test/twice', { commit: newCommit(), refs: ['main'], files: filesOf(stories, MODEL_FILES, (n) => n.endsWith('.safetensors')) }],
      ['crepe-test/stalls', { commit: newCommit(), refs: ['main'], files: filesOf(stories, ['config.json', 'model.safetensors'], (n) => n.endsWith('.safetensors')) }],
      ['crepe-test/corrupt', { commit: newCommit(), refs: ['main'], files: filesOf(stories, ['config.json', 'model.safetensors'], (n) => n.endsWith('.safetensors')) }],
      ['crepe-test/stories260K-gguf', { commit: newCommit(), refs: ['main'], files: [{ name: 'stories260K-f32.gguf', bytes: readFileSync(STORIES_GGUF), lfs: true }] }],
      ['crepe-test/weights-bin-only', { commit: newCommit(), refs: ['main'], files: [...filesOf(stories, ['config.json'], () => false), { name: 'pytorch_model.bin', bytes: new Uint8Array(8), lfs: true }] }],
    ]));
    await hub.start();
    cache = scratchDir('hf-cache');
  });
  after(() => hub.stop());

  it('parses ids: org/name, @revision, a file, and leaves paths alone', () => {
    assert.deepEqual(parseHubId('org/name'), { repo: 'org/name' });
    assert.deepEqual(parseHubId('org/name@v1.0'), { repo: 'org/name', revision: 'v1.0' });
    assert.deepEqual(parseHubId('org/name/sub/f.gguf@refs/pr/1'), { repo: 'org/name', revision: 'refs/pr/1', file: 'sub/f.gguf' });
    for (const path of ['/abs/dir', './rel/dir', 'name', 'org/../x', 'org/-x', 'a--b/c', 'org/name@']) assert.equal(parseHubId(path), null, path);
  });

  it('downloads what a model needs into the standard cache layout, through a 302, resuming a cut transfer with Range', async () => {
    hub.cutNext.add(modelBlob);
    const events: Array<{ done: number; total: number; file: string }> = [];
    const snapshot = await resolveModelArgument('crepe-test/stories260K', { kind: 'model-dir', settings: settings(), onProgress: (p) => events.push(p) });
    const repoDir = path.join(cache, 'models--crepe-test--stories260K');
    assert.equal(snapshot, path.join(repoDir, 'snapshots', main));
    assert.deepEqual(readdirSync(snapshot).sort(), [...MODEL_FILES, 'README.md'].sort());
    for (const name of MODEL_FILES) assert.ok(readFileSync(path.join(snapshot, name)).equals(readFileSync(path.join(stories, name))), name);
    assert.ok(lstatSync(path.join(snapshot, 'model.safetensors')).isSymbolicLink());
    assert.equal(readlinkSync(path.join(snapshot, 'model.safetensors')), `../../blobs/${modelBlob}`);
    assert.equal(readFileSync(path.join(repoDir, 'refs', 'main'), 'utf8'), main);
    assert.ok(!readdirSync(path.join(repoDir, 'blobs')).some((f) => f.endsWith('.incomplete')));

    const cdn = hub.requests.filter((r) => r.url === `/cdn/${modelBlob}`);
    assert.equal(cdn.length, 2, 'the cut transfer and its resumption');
    const size = readFileSync(path.join(stories, 'model.safetensors')).byteLength;
    assert.equal(cdn[0].range, undefined);
    assert.equal(cdn[1].range, `bytes=${Math.floor(size / 2)}-`);
    assert.ok(hub.requests.some((r) => r.url === '/crepe-test/stories260K/resolve/' + main + '/model.safetensors'));
    assert.ok(!hub.requests.some((r) => r.url.includes('pytorch_model.bin')), 'only the files a model needs');
    assert.ok(hub.requests.filter((r) => r.url.startsWith('/api/')).every((r) => r.authorization === 'Bearer hf_test_token'));

    const total = MODEL_FILES.concat('README.md').reduce((n, f) => n + readFileSync(path.join(snapshot, f)).byteLength, 0);
    assert.ok(events.length > 0 && events.every((e) => e.total === total));
    assert.equal(events.at(-1)!.done, total);

    // Everything cached: one API request, no download.
    const before = hub.requests.length;
    assert.equal(await resolveModelArgument('crepe-test/stories260K@main', { kind: 'model-dir', settings: settings() }), snapshot);
    assert.deepEqual(hub.requests.slice(before).map((r) => r.url), [`/api/models/crepe-test/stories260K/revision/main`]);
  });

  it('two runs that need the same model at once: each blob is downloaded once, one run waits for the other', async () => {
    const before = hub.requests.length;
    const notes: string[] = [];
    const resolveIt = () => resolveModelArgument('crepe-test/twice', { kind: 'model-dir', settings: settings(), onNote: (note) => notes.push(note) });
    const [a, b] = await Promise.all([resolveIt(), resolveIt()]);
    assert.equal(a, b);
    for (const name of MODEL_FILES) assert.ok(readFileSync(path.join(a, name)).equals(readFileSync(path.join(stories, name))), name);
    const fetched = hub.requests.slice(before).filter((r) => r.url === `/cdn/${modelBlob}` || r.url.includes('/resolve/'));
    assert.equal(fetched.filter((r) => r.url === `/cdn/${modelBlob}`).length, 1, 'the weights once');
    assert.equal(fetched.filter((r) => r.url.endsWith('/config.json')).length, 1, 'config.json once');
    assert.ok(notes.length >= 1);
    for (const note of notes) assert.match(note, new RegExp(`^waiting for crepe process ${process.pid} \\(since [^)]+\\), which holds the download of crepe-test/twice@main "[^"]+"$`));
    assert.deepEqual(readdirSync(path.join(cache, '.locks', 'models--crepe-test--twice')), [], 'no lock left behind');
    assert.ok(!readdirSync(path.join(cache, 'models--crepe-test--twice', 'blobs')).some((f) => f.endsWith('.incomplete')));
  });

  it('offline: the cached snapshot without a request; an uncached id is refused clearly', async () => {
    const before = hub.requests.length;
    const offline = { ...settings(), offline: true };
    const snapshot = await resolveModelArgument('crepe-test/stories260K', { kind: 'model-dir', settings: offline });
    assert.equal(snapshot, path.join(cache, 'models--crepe-test--stories260K', 'snapshots', main));
    await assert.rejects(resolveModelArgument('crepe-test/stories260K-sharded@v1', { kind: 'model-dir', settings: offline }), {
      message: `crepe-test/stories260K-sharded@v1: no such local path, and as a Hub id: crepe-test/stories260K-sharded@v1 is not in the Hugging Face cache ${cache}, and HF_HUB_OFFLINE=1 forbids downloading it`,
    });
    assert.equal(hub.requests.length, before);
  });

  it('a sharded repository at a tag: the index, then the shards it names', async () => {
    const snapshot = await resolveModelArgument('crepe-test/stories260K-sharded', { kind: 'model-dir', revision: 'v1', settings: settings() });
    const shards = readdirSync(snapshot).filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f));
    assert.ok(shards.length >= 2 && readdirSync(snapshot).includes('model.safetensors.index.json'));
    assert.equal(readFileSync(path.join(cache, 'models--crepe-test--stories260K-sharded', 'refs', 'v1'), 'utf8'), shardedCommit);
    const a = SafetensorsWeights.open(snapshot);
    const b = SafetensorsWeights.open(stories);
    try {
      for (const name of b.names()) assert.ok(Buffer.from(a.readRaw(name)).equals(Buffer.from(b.readRaw(name))), name);
    } finally {
      a.close();
      b.close();
    }
  });

  it('a wrong checksum is refused and nothing is kept', async () => {
    const file = readFileSync(path.join(stories, 'model.safetensors'));
    hub.corrupt.add(sha256(file));
    try {
      await assert.rejects(resolveModelArgument('crepe-test/corrupt', { kind: 'model-dir', settings: settings() }), (error: Error) => {
        assert.match(error.message, /^crepe-test\/corrupt@main: "model\.safetensors" failed its checksum \(\d+ bytes, sha256 [0-9a-f]{64}; the Hub lists \d+ bytes, [0-9a-f]{64}\); nothing was kept$/);
        return true;
      });
    } finally {
      hub.corrupt.clear();
    }
    const repoDir = path.join(cache, 'models--crepe-test--corrupt');
    assert.ok(!existsSync(path.join(repoDir, 'blobs', sha256(file))));
    assert.ok(!existsSync(path.join(repoDir, 'blobs', `${sha256(file)}.incomplete`)));
    const snapshots = path.join(repoDir, 'snapshots');
    const kept = existsSync(snapshots) ? readdirSync(snapshots).flatMap((c) => readdirSync(path.join(snapshots, c))) : [];
    assert.ok(!kept.includes('model.safetensors'), kept.join(', '));
  });

  it('404s name the repository, revision or file', async () => {
    const resolveIt = (id: string, kind: 'model-dir' | 'checkpoint-file' = 'model-dir') => resolveModelArgument(id, { kind, settings: settings() });
    await assert.rejects(resolveIt('crepe-test/missing'), {
      message: 'crepe-test/missing: no such local path, and as a Hub id: crepe-test/missing@main: no such model repository on the Hugging Face Hub (or it is private: set HF_TOKEN)',
    });
    await assert.rejects(resolveIt('crepe-test/stories260K@nope'), { message: 'crepe-test/stories260K@nope: no such revision (branch, tag or commit)' });
    await assert.rejects(resolveIt('crepe-test/stories260K/missing.gguf', 'checkpoint-file'), { message: 'crepe-test/stories260K@main: file "missing.gguf" not found' });
    await assert.rejects(resolveIt('crepe-test/weights-bin-only'), /crepe-test\/weights-bin-only@main: no safetensors weights .*; it has pytorch_model\.bin, which crepe does not read/);
    await assert.rejects(resolveIt('crepe-test/stories260K', 'checkpoint-file'), /crepe-test\/stories260K@main: no \.gguf file; name one as crepe-test\/stories260K\/<file>/);
  });

  it('unreachable endpoint: one line saying so', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const endpoint = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    await assert.rejects(resolveModelArgument('crepe-test/elsewhere', { kind: 'model-dir', settings: { ...settings(), endpoint } }), {
      message: `crepe-test/elsewhere: no such local path, and as a Hub id: cannot reach the Hugging Face Hub at ${endpoint} (ECONNREFUSED); set HF_HUB_OFFLINE=1 to use the local cache only`,
    });
  });

  it('a Hub that stops sending: one that never answers is given up after the timeout; a transfer that stalls mid-body is resumed', async () => {
    const connections = new Set<Socket>();
    const mute = createNetServer((socket) => connections.add(socket));
    await new Promise<void>((resolve) => mute.listen(0, '127.0.0.1', resolve));
    const endpoint = `http://127.0.0.1:${(mute.address() as AddressInfo).port}`;
    try {
      await assert.rejects(resolveModelArgument('crepe-test/elsewhere', { kind: 'model-dir', settings: { ...settings(), endpoint, timeoutMs: 300 } }), {
        message: `crepe-test/elsewhere: no such local path, and as a Hub id: the Hugging Face Hub at ${endpoint} sent nothing for 0.3 s (HF_HUB_DOWNLOAD_TIMEOUT sets the wait); set HF_HUB_OFFLINE=1 to use the local cache only`,
      });
    } finally {
      for (const socket of connections) socket.destroy();
      await new Promise<void>((resolve) => mute.close(() => resolve()));
    }

    hub.stallNext.add(modelBlob);
    const before = hub.requests.length;
    const snapshot = await resolveModelArgument('crepe-test/stalls', { kind: 'model-dir', settings: { ...settings(), cacheDir: scratchDir('hf-cache-stall'), timeoutMs: 300 } });
    assert.ok(readFileSync(path.join(snapshot, 'model.safetensors')).equals(readFileSync(path.join(stories, 'model.safetensors'))));
    const cdn = hub.requests.slice(before).filter((r) => r.url === `/cdn/${modelBlob}`);
    const size = readFileSync(path.join(stories, 'model.safetensors')).byteLength;
    assert.deepEqual(cdn.map((r) => r.range), [undefined, `bytes=${Math.floor(size / 2)}-`], 'the stalled transfer and its resumption');
  });

  it('eval, inspect and convert take the id (HF_ENDPOINT, HF_HUB_CACHE from the environment); download progress is reported', async () => {
    const saved = { ...process.env };
    Object.assign(process.env, { HF_ENDPOINT: hub.endpoint, HF_HUB_CACHE: cache, HF_TOKEN: 'hf_env' });
    delete process.env.HF_HUB_OFFLINE;
    try {
      const byId = await evaluatePerplexity({ model: 'crepe-test/stories260K', text: WIKITEXT_TEST, seqlen: 64, maxChunks: 1, threads: 1 });
      const local = await evaluatePerplexity({ model: stories, text: WIKITEXT_TEST, seqlen: 64, maxChunks: 1, threads: 1 });
      assert.equal(byId.ppl, local.ppl);
      const inspected = await inspectModel({ model: 'crepe-test/stories260K-sharded@v1' });
      assert.equal(inspected.total.parameters, 260_032);

      const events: ProgressEvent[] = [];
      const out = path.join(scratchDir('hub-convert'), 'out');
      await convertModel({ input: 'crepe-test/stories260K-gguf', out, onProgress: (e) => events.push(e) });
      assert.ok(existsSync(path.join(out, 'model.safetensors')));
      const size = readFileSync(STORIES_GGUF).byteLength;
      assert.deepEqual(events[0], { kind: 'start', stage: 'download crepe-test/stories260K-gguf', done: 0, total: size });
      assert.equal(events.at(-1)!.kind, 'done');
      assert.ok(hub.requests.filter((r) => r.url.startsWith('/api/models/crepe-test/stories260K-gguf')).every((r) => r.authorization === 'Bearer hf_env'));
    } finally {
      for (const key of ['HF_ENDPOINT', 'HF_HUB_CACHE', 'HF_TOKEN']) delete process.env[key];
      Object.assign(process.env, saved);
    }
  });
});
