// The command line never destroys a user's files and never publishes a mixed model: the issue's
// data-loss commands (an output that is, contains or lies inside an input, for prune, search and
// convert), --overwrite of a folder crepe did not write, two runs on one output, a stale lock, a
// tokenizer whose vocabulary reaches past the model's, and a full or read-only disk (a 1 MiB tmpfs
// where mounting is allowed). Every input tree is hashed before and after: nothing may change.
// The command line runs in this process (main(argv, io)).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SafetensorsFile } from '../../src/io/safetensors.ts';
import { C4_SAMPLE, REPO_ROOT, STORIES_BIN, STORIES_GGUF } from '../helpers/shared.ts';
import { scratchDir, storiesModelDir } from '../helpers/stories.ts';
import { runCli, type CliRun } from '../helpers/cli.ts';

const PRUNE = ['--method', 'wanda', '--sparsity', '0.5', '--nsamples', '4', '--seqlen', '64', '--calib', C4_SAMPLE, '--threads', '1'];
const SEARCH = ['--calib', C4_SAMPLE, '--nsamples', '2', '--seqlen', '32', '--sparsity', '0.5', '--crepe-k', '1', '--budget', '2', '--threads', '1'];

/** sha256 of every file under `root` (relative path → hash); symbolic links by their target. */
function treeHashes(root: string): Record<string, string> {
  const hashes: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const file = path.join(dir, name);
      const stats = statSync(file);
      if (stats.isDirectory()) walk(file);
      else hashes[path.relative(root, file)] = createHash('sha256').update(readFileSync(file)).digest('hex');
    }
  };
  walk(root);
  return hashes;
}

function copyModel(source: string, target: string): string {
  mkdirSync(target, { recursive: true });
  for (const file of readdirSync(source)) if (file !== '.crepe-output') copyFileSync(path.join(source, file), path.join(target, file));
  return target;
}

function assertRefused(result: CliRun, problem: RegExp): void {
  const shown = `exit ${result.status}\nstderr:\n${result.stderr}`;
  assert.equal(result.status, 2, shown);
  const lines = result.stderr.replace(/\n$/, '').split('\n');
  assert.equal(lines.length, 1, `one line expected:\n${result.stderr}`);
  assert.match(lines[0], /^crepe: /);
  assert.match(lines[0], problem);
}

let base = '';
before(async () => {
  base = await storiesModelDir();
});

describe('an output that is, contains or lies inside an input is refused, and the input is untouched', () => {
  it('prune m --out m --overwrite (the model directory itself, with a user file in it)', async () => {
    const scratch = scratchDir('self');
    const model = copyModel(base, path.join(scratch, 'm'));
    writeFileSync(path.join(model, 'my-notes.txt'), 'mine');
    const before = treeHashes(scratch);
    assertRefused(await runCli(['prune', model, ...PRUNE, '--out', model, '--overwrite']), /m holds the input .*m; choose another output directory/);
    assert.deepEqual(treeHashes(scratch), before);
  });

  it('prune p/model --out p --overwrite (the parent), spelled with a trailing slash, `..` and a symbolic link', async () => {
    const scratch = scratchDir('parent');
    const parent = path.join(scratch, 'p');
    const model = copyModel(base, path.join(parent, 'model'));
    writeFileSync(path.join(parent, 'thesis.tex'), 'precious');
    symlinkSync(parent, path.join(scratch, 'p-link'));
    const before = treeHashes(parent);
    for (const out of [parent, `${parent}/`, path.join(model, '..'), path.join(scratch, 'p-link')]) {
      assertRefused(await runCli(['prune', model, ...PRUNE, '--out', out, '--overwrite']), /holds the input/);
    }
    assert.deepEqual(treeHashes(parent), before);
  });

  it('prune with --out inside the model directory, and with the calibration file inside --out', async () => {
    const scratch = scratchDir('inside');
    const model = copyModel(base, path.join(scratch, 'model'));
    assertRefused(await runCli(['prune', model, ...PRUNE, '--out', path.join(model, 'pruned')]), /lies inside the input/);
    const out = path.join(scratch, 'out');
    mkdirSync(out);
    copyFileSync(C4_SAMPLE, path.join(out, 'calib.jsonl'));
    const args = ['prune', model, ...PRUNE.slice(0, -4), '--calib', path.join(out, 'calib.jsonl'), '--threads', '1', '--out', out, '--overwrite'];
    assertRefused(await runCli(args), /holds the input .*calib\.jsonl/);
    assert.ok(existsSync(path.join(out, 'calib.jsonl')));
  });

  it('search p/model --out p --overwrite', async () => {
    const scratch = scratchDir('search-parent');
    const parent = path.join(scratch, 'p');
    const model = copyModel(base, path.join(parent, 'model'));
    const before = treeHashes(parent);
    assertRefused(await runCli(['search', model, ...SEARCH, '--out', parent, '--overwrite']), /holds the input/);
    assert.deepEqual(treeHashes(parent), before);
  });

  it('convert with --out holding the input, and with --out the input file itself', async () => {
    const scratch = scratchDir('convert-self');
    const input = path.join(scratch, 'stories.gguf');
    copyFileSync(STORIES_GGUF, input);
    const before = treeHashes(scratch);
    assertRefused(await runCli(['convert', input, '--out', scratch, '--overwrite']), /holds the input/);
    assertRefused(await runCli(['convert', input, '--out', input, '--overwrite']), /holds the input/);
    assert.deepEqual(treeHashes(scratch), before);
  });
});

describe('--overwrite replaces only crepe\'s own output', () => {
  it('a folder crepe did not write is refused, saying why; crepe\'s output is replaced; a user file added to it blocks that', async () => {
    const scratch = scratchDir('overwrite');
    const out = path.join(scratch, 'out');
    mkdirSync(out);
    writeFileSync(path.join(out, 'results.csv'), 'mine');
    assertRefused(await runCli(['prune', base, ...PRUNE, '--out', out, '--overwrite']), /holds files crepe did not write \(no \.crepe-output marker\), e\.g\. results\.csv; (--)?overwrite replaces only/);
    assert.equal(readFileSync(path.join(out, 'results.csv'), 'utf8'), 'mine');

    const mine = path.join(scratch, 'mine');
    assert.equal((await runCli(['prune', base, ...PRUNE, '--out', mine])).status, 0);
    assert.ok(existsSync(path.join(mine, '.crepe-output')));
    assert.equal((await runCli(['prune', base, ...PRUNE, '--out', mine, '--overwrite'])).status, 0);
    writeFileSync(path.join(mine, 'notes.txt'), 'added by the user');
    assertRefused(await runCli(['prune', base, ...PRUNE, '--out', mine, '--overwrite']), /holds notes\.txt, which crepe did not write there/);
    assert.ok(existsSync(path.join(mine, 'notes.txt')));
  });

  it('a file of crepe\'s output edited since (the model card) blocks --overwrite; one only touched does not', async () => {
    const out = path.join(scratchDir('edited'), 'out');
    assert.equal((await runCli(['prune', base, ...PRUNE, '--out', out])).status, 0);
    const card = path.join(out, 'README.md');
    const later = new Date(Date.now() + 60_000);
    utimesSync(card, later, later);
    assert.equal((await runCli(['prune', base, ...PRUNE, '--out', out, '--overwrite'])).status, 0, 'same bytes, another time: still crepe\'s');
    writeFileSync(card, `${readFileSync(card, 'utf8')}\nMy evaluation notes.\n`);
    const before = treeHashes(out);
    assertRefused(await runCli(['prune', base, ...PRUNE, '--out', out, '--overwrite']), /^crepe: --out \S+out holds README\.md, changed since crepe wrote it; --overwrite replaces only/);
    assert.deepEqual(treeHashes(out), before);
  });
});

/** Fraction of zeros in every layer's q_proj of a published model. */
function qProjSparsity(dir: string): number[] {
  const file = SafetensorsFile.open(path.join(dir, 'model.safetensors'));
  try {
    return [0, 1, 2, 3, 4].map((layer) => {
      const w = file.readF32(`model.layers.${layer}.self_attn.q_proj.weight`);
      return w.filter((x) => x === 0).length / w.length;
    });
  } finally {
    file.close();
  }
}

describe('one run at a time per output', () => {
  it('a second prune --overwrite on the same --out is refused naming the first run\'s pid; the published model is the first run\'s alone', async () => {
    const out = path.join(scratchDir('two-runs'), 'out');
    const first = runCli(['prune', base, ...PRUNE, '--out', out]);
    const lock = `${out}.crepe-lock`;
    for (let i = 0; i < 5000 && !existsSync(lock); i++) await new Promise((resolve) => setTimeout(resolve, 1));
    assert.ok(existsSync(lock), 'the first run holds the lock');
    const secondArgs = ['prune', base, ...PRUNE.map((a) => (a === '0.5' ? '0.7' : a)), '--out', out, '--overwrite'];
    assertRefused(await runCli(secondArgs), new RegExp(`is in use by crepe process ${process.pid} .*\\.crepe-lock`));
    assert.equal((await first).status, 0);
    const report = JSON.parse(readFileSync(path.join(out, 'crepe-report.json'), 'utf8')) as { settings: { target: { sparsity: number } } };
    assert.equal(report.settings.target.sparsity, 0.5);
    assert.deepEqual(qProjSparsity(out), [0.5, 0.5, 0.5, 0.5, 0.5], 'every layer from the 50 % run');
    assert.ok(!existsSync(lock), 'the lock is released');
  });

  it('a stale lock from a killed run is reported and taken over', async () => {
    const out = path.join(scratchDir('stale-lock'), 'out');
    const dead = Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);
    writeFileSync(`${out}.crepe-lock`, JSON.stringify({ pid: dead, hostname: (await import('node:os')).hostname(), processStarted: '2026-01-01T00:00:00.000Z', locked: '2026-01-01T00:00:00.000Z', token: 'x' }));
    const result = await runCli(['prune', base, ...PRUNE, '--out', out], { progress: true });
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stderr, new RegExp(`took over the stale lock .*\\.crepe-lock of crepe process ${dead} .*no longer running`));
    assert.ok(existsSync(path.join(out, 'model.safetensors')));
    assert.ok(!existsSync(`${out}.crepe-lock`));
  });
});

describe('a tokenizer whose ids reach past the model\'s vocabulary', () => {
  it('a vocabulary entry remapped to id 9999: one line naming the tokenizer file and the id, before any work directory exists', async () => {
    const scratch = scratchDir('remapped');
    const model = copyModel(base, path.join(scratch, 'model'));
    const file = path.join(model, 'tokenizer.json');
    const tokenizer = JSON.parse(readFileSync(file, 'utf8')) as { model: { vocab: Record<string, number> } };
    const piece = Object.keys(tokenizer.model.vocab).find((p) => p === '▁the') ?? Object.keys(tokenizer.model.vocab)[300];
    tokenizer.model.vocab[piece] = 9999;
    writeFileSync(file, JSON.stringify(tokenizer));
    const out = path.join(scratch, 'out');
    assertRefused(await runCli(['prune', model, ...PRUNE, '--out', out]), /tokenizer\.json gives token id 9999 .*outside the model's vocabulary of 512/);
    assert.ok(!existsSync(out) && !existsSync(`${out}.crepe-partial`) && !existsSync(`${out}.crepe-lock`));
  });
});

describe('FIFOs and devices as inputs never hang the command line (one child process, 90 s limit)', () => {
  it('--calib, --eval-ppl, convert input and tokenizer, model.safetensors, config.json, tokenizer.json, --config: each one line, exit 2', async () => {
    const scratch = scratchDir('special');
    const fifo = path.join(scratch, 'fifo');
    assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
    const withFile = (name: string, file: string, target: string) => {
      const model = copyModel(base, path.join(scratch, name));
      rmSync(path.join(model, file));
      symlinkSync(target, path.join(model, file));
      return model;
    };
    const out = path.join(scratch, 'out');
    const cases: [string[], RegExp][] = [
      [['prune', base, ...PRUNE.slice(0, -4), '--calib', fifo, '--out', out], /fifo: is a named pipe \(FIFO\)/],
      [['prune', base, ...PRUNE.slice(0, -4), '--calib', '/dev/zero', '--out', out], /\/dev\/zero: is a character device/],
      [['eval', base, '--eval-ppl', fifo], /fifo: is a named pipe/],
      [['eval', base, '--eval-ppl', '/dev/zero'], /\/dev\/zero: is a character device/],
      [['convert', fifo, '--out', out], /fifo: is a named pipe/],
      [['convert', STORIES_BIN, '--tokenizer', '/dev/zero', '--out', out], /\/dev\/zero: is a character device/],
      [['eval', withFile('weights-fifo', 'model.safetensors', fifo), '--eval-ppl', C4_SAMPLE], /model\.safetensors: is a named pipe/],
      [['eval', withFile('config-zero', 'config.json', '/dev/zero'), '--eval-ppl', C4_SAMPLE], /config\.json: is a character device/],
      [['prune', withFile('tokenizer-zero', 'tokenizer.json', '/dev/zero'), ...PRUNE, '--out', out], /tokenizer\.json: is a character device/],
      [['prune', base, ...PRUNE.map((a) => (a === 'wanda' ? 'crepe' : a)), '--config', '/dev/zero', '--out', out], /\/dev\/zero: is a character device/],
    ];
    const script = `
      const { main } = await import('./src/cli/main.ts');
      const results = [];
      for (const argv of ${JSON.stringify(cases.map(([argv]) => argv))}) {
        let stderr = '';
        const status = await main(argv, { stdout: { write() {} }, stderr: { write: (t) => (stderr += t) }, progress: false });
        results.push({ status, stderr });
        process.stdout.write(JSON.stringify({ status, stderr }) + '\\n');
      }
    `;
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 90_000 });
    const results = child.stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line) as CliRun);
    assert.equal(child.signal, null, `hung after ${results.length} cases, in: crepe ${cases[results.length]?.[0].join(' ')}\n${child.stderr}`);
    assert.equal(results.length, cases.length, child.stderr);
    cases.forEach(([argv, expected], i) => {
      assert.equal(results[i].status, 2, `crepe ${argv.join(' ')}\n${results[i].stderr}`);
      assertRefused({ ...results[i], stdout: '' }, expected);
    });
    assert.ok(!existsSync(out) && !existsSync(`${out}.crepe-partial`));
  });
});

describe('a full or read-only disk (1 MiB tmpfs)', () => {
  const mounts: string[] = [];
  /** A fresh tmpfs of `size`, or null where this process may not mount. */
  function tmpfs(options: string): string | null {
    const dir = scratchDir('tmpfs');
    const result = spawnSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir]);
    if (result.status !== 0) return null;
    mounts.push(dir);
    return dir;
  }
  after(() => {
    for (const dir of mounts) spawnSync('umount', [dir]);
  });

  it('prune onto a full disk: one line naming the path and ENOSPC; only committed layers stay, and the message says where', async (t) => {
    const disk = tmpfs('size=1m');
    if (!disk) return t.skip('mounting a tmpfs needs root');
    const out = path.join(disk, 'p');
    const result = await runCli(['prune', base, ...PRUNE, '--out', out]);
    assertRefused(result, new RegExp(`cannot write ${disk}/p\\.crepe-partial/\\S+: no space left on device \\(ENOSPC\\)`));
    assert.ok(!existsSync(out));
    const left = existsSync(`${out}.crepe-partial`) ? readdirSync(`${out}.crepe-partial`) : [];
    assert.ok(!left.some((name) => name.includes('.tmp-') || name === 'model.safetensors'), `no partial file left: ${left.join(', ')}`);
    if (left.length > 0) {
      assert.match(result.stderr, /finished layers? stay in .*p\.crepe-partial for (--)?resume/);
      assert.ok(left.includes('state.json'), 'what stays is a committed state');
    }
    assert.deepEqual(readdirSync(disk).filter((name) => name !== 'p.crepe-partial'), [], 'no lock or temporary beside it');
  });

  it('convert onto a full disk: one line naming the path, nothing left', async (t) => {
    const disk = tmpfs('size=512k');
    if (!disk) return t.skip('mounting a tmpfs needs root');
    assertRefused(await runCli(['convert', STORIES_GGUF, '--out', path.join(disk, 'c')]), new RegExp(`cannot write ${disk}/\\S+: no space left on device \\(ENOSPC\\)`));
    assert.deepEqual(readdirSync(disk), []);
  });

  it('standard output on a full device (`--json > results.json` on a full disk): one line and exit 2, not Node\'s trace; standard error on one: the run goes on', (t) => {
    if (!existsSync('/dev/full')) return t.skip('no /dev/full');
    const full = openSync('/dev/full', 'w');
    try {
      for (const args of [['inspect', base, '--json'], ['--help']]) {
        const child = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: REPO_ROOT, encoding: 'utf8', stdio: ['ignore', full, 'pipe'] });
        assert.equal(child.status, 2, child.stderr);
        assert.equal(child.stderr, 'crepe: cannot write to standard output: no space left on device (ENOSPC)\n');
      }
      // Progress that cannot be written (`2> log` on a full disk) does not stop the run.
      const out = path.join(scratchDir('stderr-full'), 'out');
      const pruned = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'prune', base, ...PRUNE, '--out', out], { cwd: REPO_ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', full] });
      assert.equal(pruned.status, 0);
      assert.match(pruned.stdout, /wrote +\S+out/);
      assert.ok(existsSync(path.join(out, 'model.safetensors')));
    } finally {
      closeSync(full);
    }
  });

  it('a read-only target: EROFS named, not ENOENT', async (t) => {
    const disk = tmpfs('size=1m,ro');
    if (!disk) return t.skip('mounting a tmpfs needs root');
    assertRefused(await runCli(['prune', base, ...PRUNE, '--out', path.join(disk, 'p')]), new RegExp(`cannot write ${disk}/p\\S*: read-only file system \\(EROFS\\)`));
    assertRefused(await runCli(['convert', STORIES_GGUF, '--out', path.join(disk, 'sub', 'c')]), new RegExp(`cannot write ${disk}/sub: read-only file system \\(EROFS\\)`));
  });
});
