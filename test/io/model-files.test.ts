// copyModelFiles: every non-weight file of a model directory arrives byte-identical (subdirectories
// and links to files included); weights, indexes, crepe's reports, hidden entries, FIFOs, dangling
// links and links to directories are skipped with the reason (and a note where a user should hear).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { copyModelFiles, isWeightFile } from '../../src/io/model-files.ts';

const root = mkdtempSync(path.join(os.tmpdir(), 'crepe-model-files-'));
after(() => rmSync(root, { recursive: true, force: true }));

describe('copyModelFiles', () => {
  it('copies every non-weight file byte for byte and skips the rest with its reason', () => {
    const model = path.join(root, 'model');
    const out = path.join(root, 'out');
    mkdirSync(path.join(model, 'original'), { recursive: true });
    mkdirSync(out);
    const texts: Record<string, string | Buffer> = {
      'config.json': '{"model_type":"llama"}\n',
      'tokenizer_config.json': '{"chat_template":"{% for m in messages %}{{ m[\'content\'] }}\\n{% endfor %}","bos_token":"<s>"}',
      'chat_template.jinja': '{{ bos_token }}{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}{% endfor %}\r\n',
      'README.md': '---\nlicense: mit\n---\n# A model ✓\n',
      'generation_config.json': '{"do_sample":false}',
      'special_tokens_map.json': '{}',
      'tokenizer.model': Buffer.from([0x0a, 0x00, 0xff, 0x80, 0x12]),
      'original/params.json': '{"dim":64}',
      'notes.txt': '',
    };
    for (const [name, content] of Object.entries(texts)) writeFileSync(path.join(model, name), content);
    const weights = ['model.safetensors', 'model-00001-of-00002.safetensors', 'model.safetensors.index.json', 'pytorch_model.bin',
      'pytorch_model.bin.index.json', 'original/consolidated.00.pth', 'model.gguf', 'tf_model.h5'];
    for (const name of weights) writeFileSync(path.join(model, name), 'weights');
    writeFileSync(path.join(model, 'crepe-report.json'), '{}');
    writeFileSync(path.join(model, '.gitattributes'), '*.safetensors filter=lfs\n');
    writeFileSync(path.join(root, 'linked-vocab.txt'), 'a\nb\n');
    symlinkSync(path.join(root, 'linked-vocab.txt'), path.join(model, 'vocab.txt'));
    symlinkSync(path.join(root, 'missing'), path.join(model, 'dangling.json'));
    symlinkSync(path.join(model, 'original'), path.join(model, 'loop'));
    execFileSync('mkfifo', [path.join(model, 'pipe')]);

    const result = copyModelFiles(model, out);

    const expected = [...Object.keys(texts), 'vocab.txt'].sort();
    assert.deepEqual([...result.copied].sort(), expected);
    for (const name of Object.keys(texts)) {
      assert.ok(readFileSync(path.join(out, name)).equals(readFileSync(path.join(model, name))), `${name} differs`);
    }
    assert.equal(readFileSync(path.join(out, 'vocab.txt'), 'utf8'), 'a\nb\n');
    const reasons = Object.fromEntries(result.skipped.map((s) => [s.file, s.reason]));
    for (const name of weights) assert.equal(reasons[name], 'weights', name);
    assert.equal(reasons['crepe-report.json'], 'crepe output');
    assert.equal(reasons['.gitattributes'], 'hidden');
    assert.equal(reasons['dangling.json'], 'not a regular file');
    assert.equal(reasons.loop, 'link to a directory');
    assert.equal(reasons.pipe, 'not a regular file');
    const noted = result.skipped.filter((s) => s.note).map((s) => s.file).sort();
    assert.deepEqual(noted, ['dangling.json', 'loop', 'pipe']);
    assert.match(result.skipped.find((s) => s.file === 'pipe')!.note!, /named pipe/);
    // Nothing else arrived: the output holds the copies alone.
    assert.deepEqual(readdirSync(out).sort(), [...Object.keys(texts).filter((n) => !n.includes('/')), 'original', 'vocab.txt'].sort());
    assert.deepEqual(readdirSync(path.join(out, 'original')), ['params.json']);
  });

  it('knows the weight files by name', () => {
    for (const name of ['model.safetensors', 'model-00003-of-00010.safetensors', 'model.safetensors.index.json', 'pytorch_model-00001-of-00002.bin', 'flax_model.msgpack']) {
      assert.equal(isWeightFile(name), true, name);
    }
    for (const name of ['tokenizer.json', 'config.json', 'tokenizer.model', 'chat_template.jinja', 'index.json', 'README.md']) {
      assert.equal(isWeightFile(name), false, name);
    }
  });
});
