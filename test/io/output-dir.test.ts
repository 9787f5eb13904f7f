// The output rule every writing command follows (checkOutputDir, publishOutputDir): never an
// output that is, contains or lies inside an input — compared after `..`, trailing slashes and
// symbolic links, and including the work directory crepe creates beside it — and --overwrite
// replaces only an empty directory or one crepe wrote (its .crepe-output marker lists every file).
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { OUTPUT_MARKER, checkOutputDir, markOutput, publishOutputDir, replaceProblem } from '../../src/io/output-dir.ts';
import { FieldError, UserError } from '../../src/util/errors.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const tmp = tempDir('crepe-output-dir');
let n = 0;
/** A fresh scratch folder holding `files` (name → content; a trailing '/' makes a directory). */
function folder(files: Record<string, string> = {}): string {
  const dir = path.join(tmp, `case-${n++}`);
  mkdirSync(dir);
  for (const [name, content] of Object.entries(files)) {
    if (name.endsWith('/')) mkdirSync(path.join(dir, name), { recursive: true });
    else {
      mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
      writeFileSync(path.join(dir, name), content);
    }
  }
  return dir;
}

function refused(run: () => unknown, pattern: RegExp): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof UserError, String(error));
    assert.match(error.message, pattern);
    return true;
  });
}

describe('checkOutputDir: inputs', () => {
  it('refuses the input itself (the issue: prune m --out m --overwrite)', () => {
    const scratch = folder({ 'm/config.json': '{}', 'm/model.safetensors': 'w', 'm/notes.txt': 'mine' });
    const model = path.join(scratch, 'm');
    refused(() => checkOutputDir(model, { overwrite: true, inputs: [model] }), /m holds the input .*m; choose another output directory/);
  });

  it('refuses a parent of the input (prune p/model --out p --overwrite), however the path is spelled', () => {
    const scratch = folder({ 'p/model/config.json': '{}', 'p/other.txt': 'x', 'q/': '' });
    const parent = path.join(scratch, 'p');
    const model = path.join(parent, 'model');
    for (const out of [parent, `${parent}/`, `${parent}//`, path.join(scratch, 'q', '..', 'p'), `${parent}/./`]) {
      refused(() => checkOutputDir(out, { overwrite: true, inputs: [model] }), /holds the input/);
    }
    symlinkSync(parent, path.join(scratch, 'link-to-p'));
    refused(() => checkOutputDir(path.join(scratch, 'link-to-p'), { overwrite: true, inputs: [model] }), /holds the input/);
    refused(() => checkOutputDir(parent, { overwrite: true, inputs: [path.join(scratch, 'link-to-p', 'model', 'config.json')] }), /holds the input/);
  });

  it('refuses an output inside an input, even one that does not exist yet (realpath of the nearest existing ancestor)', () => {
    const scratch = folder({ 'model/config.json': '{}' });
    symlinkSync(path.join(scratch, 'model'), path.join(scratch, 'alias'));
    refused(() => checkOutputDir(path.join(scratch, 'alias', 'new', 'deeper'), { inputs: [path.join(scratch, 'model')] }), /lies inside the input/);
  });

  it('refuses an output whose work directory or lock would hold or replace an input', () => {
    const scratch = folder({ 'out.crepe-partial/config.json': '{}', 'x.crepe-lock': 'held' });
    refused(() => checkOutputDir(path.join(scratch, 'out'), { inputs: [path.join(scratch, 'out.crepe-partial')] }), /crepe would replace .*out\.crepe-partial, which holds the input/);
    refused(() => checkOutputDir(path.join(scratch, 'x'), { inputs: [path.join(scratch, 'x.crepe-lock')] }), /crepe would replace .*x\.crepe-lock/);
    refused(() => checkOutputDir(path.join(scratch, 'y'), { inputs: [path.join(scratch, 'y.crepe-auto-cache', 'c4.jsonl')] }), /crepe would replace .*y\.crepe-auto-cache/);
  });

  it('accepts a sibling whose name only starts like an input (out-2 next to out)', () => {
    const scratch = folder({ 'model/config.json': '{}' });
    assert.equal(checkOutputDir(path.join(scratch, 'model-pruned'), { inputs: [path.join(scratch, 'model')] }), path.join(scratch, 'model-pruned'));
  });

  it('refusals are FieldErrors of the output field', () => {
    const scratch = folder({ 'm/config.json': '{}' });
    assert.throws(() => checkOutputDir(path.join(scratch, 'm'), { inputs: [path.join(scratch, 'm')], field: 'out' }), (e: unknown) => e instanceof FieldError && e.field === 'out');
  });
});

describe('checkOutputDir: what --overwrite may replace', () => {
  it('an existing output needs overwrite', () => {
    const out = folder();
    refused(() => checkOutputDir(out), /already exists; pass overwrite to replace it/);
    const written = folder({ 'config.json': '{}' });
    markOutput(written, 'prune');
    refused(() => checkOutputDir(written), /already exists; pass overwrite to replace it/);
  });

  it('without overwrite, what overwrite could not replace says why instead of suggesting it', () => {
    const plain = folder({ 'thesis.tex': 'precious' });
    refused(() => checkOutputDir(plain), /holds files crepe did not write \(no \.crepe-output marker\), e\.g\. thesis\.tex; overwrite replaces only an empty directory or one crepe wrote — choose another output or remove it yourself$/);
    const file = path.join(folder({ 'f.txt': 'x' }), 'f.txt');
    refused(() => checkOutputDir(file), /f\.txt is a file, not a directory crepe wrote; overwrite replaces only/);
  });

  it('replaces an empty directory', () => {
    const out = folder();
    assert.equal(checkOutputDir(out, { overwrite: true }), out);
  });

  it('replaces a directory crepe wrote, and nothing more than crepe wrote', () => {
    const out = folder({ 'model.safetensors': 'w', 'config.json': '{}' });
    markOutput(out, 'prune');
    assert.deepEqual(JSON.parse(readFileSync(path.join(out, OUTPUT_MARKER), 'utf8')), {
      tool: 'crepe',
      command: 'prune',
      files: ['config.json', 'model.safetensors'],
      stamps: {
        // sha256("{}") and sha256("w")
        'config.json': { bytes: 2, sha256: '44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a' },
        'model.safetensors': { bytes: 1, sha256: '50e721e49c013f00c62cf59f2163542a9d8df02464efeb615d31051b0fddc326' },
      },
    });
    assert.equal(checkOutputDir(out, { overwrite: true }), out);
    writeFileSync(path.join(out, 'my-notes.txt'), 'added later by the user');
    refused(() => checkOutputDir(out, { overwrite: true }), /holds my-notes\.txt, which crepe did not write there; overwrite replaces only an empty directory or one crepe wrote/);
  });

  it('a file crepe wrote and the user changed since (same size included) blocks overwrite; a marker without stamps (older crepe) does not check', () => {
    const out = folder({ 'README.md': 'card', 'config.json': '{}' });
    markOutput(out, 'prune');
    writeFileSync(path.join(out, 'README.md'), 'mine');
    refused(() => checkOutputDir(out, { overwrite: true }), /holds README\.md, changed since crepe wrote it; overwrite replaces only/);
    writeFileSync(path.join(out, OUTPUT_MARKER), JSON.stringify({ tool: 'crepe', command: 'prune', files: ['README.md', 'config.json'] }));
    assert.equal(checkOutputDir(out, { overwrite: true }), out);
  });

  it('refuses a directory without the marker, a file and a symbolic link, saying why', () => {
    const plain = folder({ 'thesis.tex': 'precious' });
    refused(() => checkOutputDir(plain, { overwrite: true }), /holds files crepe did not write \(no \.crepe-output marker\), e\.g\. thesis\.tex/);
    const file = path.join(folder({ 'f.txt': 'x' }), 'f.txt');
    refused(() => checkOutputDir(file, { overwrite: true }), /f\.txt is a file, not a directory crepe wrote/);
    const scratch = folder({ 'target/': '' });
    symlinkSync(path.join(scratch, 'target'), path.join(scratch, 'link'));
    refused(() => checkOutputDir(path.join(scratch, 'link'), { overwrite: true }), /is a symbolic link/);
  });

  it('a marker that is not crepe\'s JSON counts as unreadable', () => {
    const out = folder({ [OUTPUT_MARKER]: 'not json', 'a.txt': '' });
    assert.match(replaceProblem(out) ?? '', /unreadable \.crepe-output marker/);
  });
});

describe('publishOutputDir', () => {
  it('marks the finished directory and moves it into place, replacing crepe\'s old output', () => {
    const scratch = folder();
    const target = path.join(scratch, 'out');
    const first = folder({ 'a.json': '1' });
    publishOutputDir(first, target, { command: 'search' });
    assert.deepEqual(readdirSync(target).sort(), [OUTPUT_MARKER, 'a.json']);
    const second = folder({ 'b.json': '2' });
    publishOutputDir(second, target, { command: 'search', overwrite: true });
    assert.deepEqual(readdirSync(target).sort(), [OUTPUT_MARKER, 'b.json']);
    assert.ok(!existsSync(second) && !existsSync(`${target}.crepe-old`));
  });

  it('refuses to replace a target that gained a user file while the run worked, and keeps the finished output', () => {
    const scratch = folder();
    const target = path.join(scratch, 'out');
    publishOutputDir(folder({ 'a.json': '1' }), target, { command: 'search' });
    writeFileSync(path.join(target, 'mine.txt'), 'user');
    const finished = folder({ 'b.json': '2' });
    refused(() => publishOutputDir(finished, target, { command: 'search', overwrite: true }), /cannot replace .*out: it holds mine\.txt, which crepe did not write there; the finished output is in/);
    assert.ok(existsSync(path.join(finished, 'b.json')));
    assert.equal(readFileSync(path.join(target, 'mine.txt'), 'utf8'), 'user');
  });

  it('without overwrite, an output that appeared while the run worked is not replaced', () => {
    const scratch = folder();
    const target = path.join(scratch, 'out');
    publishOutputDir(folder({ 'a.json': '1' }), target, { command: 'search' });
    const finished = folder({ 'b.json': '2' });
    refused(() => publishOutputDir(finished, target, { command: 'search' }), /cannot replace .*out: it appeared while crepe ran; the finished output is in/);
    assert.deepEqual(readdirSync(target).sort(), [OUTPUT_MARKER, 'a.json']);
  });
});
