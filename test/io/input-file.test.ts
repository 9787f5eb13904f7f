// Every input file is opened without blocking, checked to be a regular file and read whole only
// up to a limit that fits its kind. The readers of every format go through it: a FIFO, /dev/zero, a
// directory or an oversized file as config.json, tokenizer.json, a CRePE config, a text, a
// safetensors / GGUF / llama2.c file is refused at once with one UserError naming the file. The
// cases that would hang run in a child process with a time limit, so a regression fails the test
// instead of blocking it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, copyFileSync, mkdirSync, openSync, ftruncateSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { INPUT_KINDS, formatBytes, openInputFile, parseJson, readInputFile, readInputJson } from '../../src/io/input-file.ts';
import { UserError } from '../../src/util/errors.ts';
import { readBytesAt } from '../../src/io/read-at.ts';
import { sha256File } from '../../src/util/hash.ts';
import { specToConfigJson } from '../../src/model/config.ts';
import type { ModelSpec } from '../../src/model/spec.ts';
import { REPO_ROOT, STORIES_BIN, STORIES_GGUF } from '../helpers/shared.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const TINY: ModelSpec = {
  family: 'llama', hiddenSize: 8, intermediateSize: 12, numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 2,
  vocabSize: 10, rmsNormEps: 1e-5, ropeTheta: 10000, ropeScaling: null, maxPositionEmbeddings: 64,
  tieWordEmbeddings: true, attentionBias: false, qkNorm: false, bosTokenId: 1, eosTokenId: 2, torchDtype: 'float32',
};

const tmp = tempDir('crepe-input-file');

function refused(run: () => unknown, ...fragments: (string | RegExp)[]): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof UserError, `expected a UserError, got ${String(error)}`);
    for (const f of fragments) {
      if (typeof f === 'string') assert.ok(error.message.includes(f), `"${error.message}" lacks "${f}"`);
      else assert.match(error.message, f);
    }
    return true;
  });
}

/** A sparse file of `bytes` bytes (no disk used). */
function sparseFile(name: string, bytes: number): string {
  const file = path.join(tmp, name);
  const fd = openSync(file, 'w');
  ftruncateSync(fd, bytes);
  closeSync(fd);
  return file;
}

describe('readInputFile', () => {
  it('reads a regular file whole', () => {
    const file = path.join(tmp, 'small.json');
    writeFileSync(file, '{"a": [1, 2]}');
    assert.deepEqual(readInputJson(file, 'json'), { a: [1, 2] });
    assert.equal(readInputFile(file, 'json').toString('utf8'), '{"a": [1, 2]}');
  });

  it('refuses a file over its kind\'s limit by name, size and limit, before reading it', () => {
    const limit = INPUT_KINDS.json.limit;
    const file = sparseFile('huge-config.json', limit + 1);
    refused(() => readInputFile(file, 'json'), file, 'is larger than the 64 MiB limit for a JSON file');
    // The same bytes are fine as a kind with a larger limit.
    assert.equal(readInputFile(file, 'tokenizer').length, limit + 1);
    refused(() => readInputFile(sparseFile('huge.txt', INPUT_KINDS.text.limit + 1), 'text'), '500 MiB limit for a text file');
  });

  it('refuses a directory, a device and a missing file, naming the option that gave it', () => {
    refused(() => readInputFile(tmp, 'text', '--calib'), `--calib ${tmp}: is a directory, expected a text file`);
    refused(() => readInputFile('/dev/zero', 'json'), '/dev/zero: is a character device');
    refused(() => readInputFile(path.join(tmp, 'absent.txt'), 'text'), 'cannot open text file (no such file, ENOENT)');
  });

  it('follows a symbolic link to a regular file, and refuses one to a device', () => {
    const target = path.join(tmp, 'linked.json');
    writeFileSync(target, '[]');
    symlinkSync(target, path.join(tmp, 'link.json'));
    symlinkSync('/dev/zero', path.join(tmp, 'zero.json'));
    assert.deepEqual(readInputJson(path.join(tmp, 'link.json'), 'json'), []);
    refused(() => readInputJson(path.join(tmp, 'zero.json'), 'json'), 'zero.json: is a character device');
  });

  it('openInputFile returns the size of a regular file', () => {
    const file = path.join(tmp, 'sized.bin');
    writeFileSync(file, Buffer.alloc(37));
    const { fd, size } = openInputFile(file, 'file');
    closeSync(fd);
    assert.equal(size, 37);
  });

  it('a JSON parse failure is one line naming the file, even when the reason quotes text with line breaks', () => {
    const file = path.join(tmp, 'broken.json');
    writeFileSync(file, '{\n  "a": 1,\n  ,\n  "b": 2\n}');
    refused(() => readInputJson(file, 'json'), new RegExp(`^${file}: not valid JSON \\([^\\n]*\\)$`));
    refused(() => parseJson('[1,\n\n,2]', 'where'), /^where: not valid JSON \([^\n]*\)$/);
  });

  it('a leading byte-order mark is ignored (config.json or tokenizer.json saved by a Windows editor); one elsewhere is not', () => {
    const file = path.join(tmp, 'bom.json');
    writeFileSync(file, '\ufeff{"model_type": "llama"}');
    assert.deepEqual(readInputJson(file, 'json'), { model_type: 'llama' });
    refused(() => parseJson('[1, \ufeff2]', 'where'), /^where: not valid JSON/);
  });

  it('a read that the device fails (EIO) names the file, for whole files, ranges and hashes alike', { skip: process.platform !== 'linux' && 'needs /proc' }, () => {
    // /proc/self/mem is a regular file whose reads at offset 0 fail with EIO: a failing disk or
    // network mount as any user, root included (where chmod 000 would not stop a read).
    const failing = (file: string) => (e: unknown) => e instanceof UserError && e.message === `${file}: cannot read (input/output error, EIO)`;
    assert.throws(() => readInputFile('/proc/self/mem', 'text', '--calib'), failing('--calib /proc/self/mem'));
    const { fd } = openInputFile('/proc/self/mem', 'checkpoint');
    try {
      assert.throws(() => readBytesAt(fd, 0, 16, '/proc/self/mem'), failing('/proc/self/mem'));
    } finally {
      closeSync(fd);
    }
    assert.throws(() => sha256File('/proc/self/mem'), failing('/proc/self/mem'));
  });

  it('formatBytes', () => {
    assert.equal(formatBytes(812), '812 bytes');
    assert.equal(formatBytes(1536), '1.5 KiB');
    assert.equal(formatBytes(64 * 2 ** 20), '64 MiB');
    assert.equal(formatBytes(3 * 2 ** 30), '3 GiB');
  });
});

describe('files that are not regular files never hang a reader (child process, 60 s limit)', () => {
  const dir = path.join(tmp, 'special');
  const fifo = path.join(dir, 'fifo');
  let results: Record<string, string> = {};

  before(() => {
    mkdirSync(dir);
    assert.equal(spawnSync('mkfifo', [fifo]).status, 0, 'mkfifo');
    // A model directory whose config.json / tokenizer.json / model.safetensors is a FIFO or /dev/zero.
    const model = (name: string, file: string, target: string) => {
      const d = path.join(dir, name);
      mkdirSync(d);
      if (file !== 'config.json') writeFileSync(path.join(d, 'config.json'), JSON.stringify(specToConfigJson(TINY)));
      symlinkSync(target, path.join(d, file));
      return d;
    };
    model('config-fifo', 'config.json', fifo);
    const zeroConfig = path.join(dir, 'config-zero');
    mkdirSync(zeroConfig);
    symlinkSync('/dev/zero', path.join(zeroConfig, 'config.json'));
    model('weights-fifo', 'model.safetensors', fifo);
    model('tokenizer-zero', 'tokenizer.json', '/dev/zero');
    copyFileSync(STORIES_BIN, path.join(dir, 'model.bin'));
    symlinkSync(fifo, path.join(dir, 'tok.bin'));

    const script = `
      const tryIt = async (name, run) => {
        try { await run(); out[name] = 'no error'; }
        catch (e) { out[name] = (e && e.name === 'UserError' ? 'UserError: ' : 'OTHER ' + (e && e.name) + ': ') + (e && e.message); }
      };
      const out = {};
      const d = ${JSON.stringify(dir)};
      const fifo = ${JSON.stringify(fifo)};
      const { readModelConfig } = await import('./src/model/config.ts');
      const { ModelCheckpoint } = await import('./src/model/checkpoint.ts');
      const { TextTokenizer } = await import('./src/model/tokenizer.ts');
      const { readEvalText, readJsonlDocuments } = await import('./src/data/text-sources.ts');
      const { loadCrepeConfig } = await import('./src/search/crepe-config.ts');
      const { sha256File } = await import('./src/util/hash.ts');
      const { SafetensorsFile } = await import('./src/io/safetensors.ts');
      const { GgufFile } = await import('./src/io/gguf.ts');
      const { Llama2cCheckpoint, readLlama2cTokenizer } = await import('./src/io/llama2c.ts');
      const { convertToHuggingFace } = await import('./src/model/convert.ts');
      await tryIt('config fifo', () => readModelConfig(d + '/config-fifo'));
      await tryIt('config zero', () => readModelConfig(d + '/config-zero'));
      await tryIt('weights fifo', () => ModelCheckpoint.open(d + '/weights-fifo'));
      await tryIt('tokenizer zero', () => TextTokenizer.load(d + '/tokenizer-zero'));
      await tryIt('text fifo', () => readEvalText(fifo));
      await tryIt('text zero', () => readEvalText('/dev/zero'));
      await tryIt('jsonl fifo', () => readJsonlDocuments(fifo + '.jsonl'));
      await tryIt('crepe config zero', () => loadCrepeConfig('/dev/zero'));
      await tryIt('sha256 fifo', () => sha256File(fifo));
      await tryIt('safetensors fifo', () => SafetensorsFile.open(fifo));
      await tryIt('gguf fifo', () => GgufFile.open(fifo));
      await tryIt('llama2c fifo', () => Llama2cCheckpoint.open(fifo));
      await tryIt('llama2c tokenizer zero', () => readLlama2cTokenizer('/dev/zero', 512));
      await tryIt('convert fifo', () => convertToHuggingFace(fifo, d + '/out-a'));
      await tryIt('convert tokenizer fifo', () => convertToHuggingFace(d + '/model.bin', d + '/out-b', { tokenizer: d + '/tok.bin' }));
      process.stdout.write(JSON.stringify(out));
    `;
    // The .jsonl name makes the FIFO a documents file for readJsonlDocuments.
    symlinkSync(fifo, `${fifo}.jsonl`);
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: REPO_ROOT, encoding: 'utf8', timeout: 60_000,
    });
    assert.equal(child.signal, null, `the readers hung (killed after 60 s); stderr:\n${child.stderr}`);
    assert.equal(child.status, 0, child.stderr);
    results = JSON.parse(child.stdout) as Record<string, string>;
  });

  const expectations: [string, RegExp][] = [
    ['config fifo', /config\.json: is a named pipe \(FIFO\), expected a JSON file/],
    ['config zero', /config\.json: is a character device, expected a JSON file/],
    ['weights fifo', /model\.safetensors: is a named pipe \(FIFO\), expected a safetensors file/],
    ['tokenizer zero', /tokenizer\.json: is a character device, expected a tokenizer\.json/],
    ['text fifo', /fifo: is a named pipe \(FIFO\), expected a text file/],
    ['text zero', /\/dev\/zero: is a character device, expected a text file/],
    ['jsonl fifo', /fifo\.jsonl: is a named pipe \(FIFO\), expected a JSON Lines file/],
    ['crepe config zero', /\/dev\/zero: is a character device, expected a CRePE configuration/],
    ['sha256 fifo', /fifo: is a named pipe/],
    ['safetensors fifo', /is a named pipe \(FIFO\), expected a safetensors file/],
    ['gguf fifo', /is a named pipe \(FIFO\), expected a GGUF file/],
    ['llama2c fifo', /is a named pipe \(FIFO\), expected a llama2\.c checkpoint/],
    ['llama2c tokenizer zero', /is a character device, expected a llama2\.c tokenizer/],
    ['convert fifo', /fifo: is a named pipe \(FIFO\), expected a checkpoint/],
    ['convert tokenizer fifo', /tok\.bin: is a named pipe \(FIFO\), expected a llama2\.c tokenizer/],
  ];
  for (const [name, expected] of expectations) {
    it(`${name}: one UserError naming the file`, () => {
      assert.match(results[name] ?? 'not run', /^UserError: /, results[name]);
      assert.match(results[name], expected);
    });
  }
});

describe('a GGUF file read as input is untouched by the checks', () => {
  it('opens a real GGUF through the same helper', () => {
    const { fd, size } = openInputFile(STORIES_GGUF, 'GGUF file');
    closeSync(fd);
    assert.ok(size > 1000);
  });
});
