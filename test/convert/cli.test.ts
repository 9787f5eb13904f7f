import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { STORIES_BIN } from '../helpers/shared.ts';
import { runCli } from '../helpers/cli.ts';
import { buildGguf } from './gguf-builder.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'crepe-convert-cli-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('crepe convert', () => {
  it('converts a llama2.c checkpoint (tokenizer found beside it) and prints JSON', async () => {
    const out = path.join(tmp, 'stories');
    const result = await runCli(['convert', STORIES_BIN, '--out', out, '--json']);
    assert.equal(result.status, 0, result.stderr);
    const report = JSON.parse(result.stdout);
    assert.equal(report.format, 'llama2c');
    assert.equal(report.tensors, 47);
    assert.equal(report.parameters, 260_032);
    assert.match(report.tokenizerSource, /tok512\.bin$/);
    assert.ok(existsSync(path.join(out, 'tokenizer.json')));
  });

  it('stops a quantized GGUF with one line naming the tensor type, exit code 2, nothing written', async () => {
    const file = path.join(tmp, 'q8.gguf');
    writeFileSync(file, buildGguf({ version: 3, tensors: [{ name: 'token_embd.weight', ggmlDims: [32, 2], type: 8, data: new Uint8Array(68) }] }));
    const out = path.join(tmp, 'q8');
    const result = await runCli(['convert', file, '--out', out]);
    assert.equal(result.status, 2);
    assert.equal(result.stdout, '');
    assert.match(result.stderr, /^crepe: .*q8\.gguf: tensor "token_embd\.weight" has type Q8_0; crepe reads only F32, F16 and BF16/);
    assert.equal(result.stderr.trim().split('\n').length, 1);
    assert.ok(!existsSync(out));
  });
});
