import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { Llama2cCheckpoint, llama2cFileSize, llama2cLayout, readLlama2cTokenizer, type Llama2cConfig } from '../../src/io/llama2c.ts';
import { UserError } from '../../src/util/errors.ts';
import { STORIES_BIN, STORIES_GGUF, STORIES_TOK } from '../helpers/shared.ts';
import { GgufFile } from '../../src/io/gguf.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'crepe-llama2c-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function expectUserError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof UserError, `expected a UserError, got ${String(error)}`);
    assert.match(error.message, pattern);
    return true;
  });
}

function header(values: number[]): Uint8Array {
  return new Uint8Array(Int32Array.from(values).buffer);
}

describe('llama2.c checkpoint', () => {
  it('reads the stories260K header and checks the size against it', () => {
    const checkpoint = Llama2cCheckpoint.open(STORIES_BIN);
    try {
      assert.deepEqual(checkpoint.config, {
        dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512, seqLen: 512, sharedClassifier: true,
      });
      // PROVENANCE.md: 28 + 264,128 × 4 bytes.
      assert.equal(llama2cFileSize(checkpoint.config), 1_056_540);
      assert.deepEqual(checkpoint.array('wk').shape, [5, 32, 64]);
      assert.equal(checkpoint.readF32('wk', 4).length, 32 * 64);
    } finally {
      checkpoint.close();
    }
  });

  it('lays the weights out in run.c order, bit-identical to the GGUF copy of the same model', () => {
    const checkpoint = Llama2cCheckpoint.open(STORIES_BIN);
    const gguf = GgufFile.open(STORIES_GGUF);
    try {
      assert.deepEqual(llama2cLayout(checkpoint.config).map((a) => a.kind), [
        'token_embedding_table', 'rms_att_weight', 'wq', 'wk', 'wv', 'wo', 'rms_ffn_weight', 'w1', 'w2', 'w3',
        'rms_final_weight', 'freq_cis_real', 'freq_cis_imag',
      ]);
      // The GGUF file stores the same arrays (Q/K in the same interleaved order), so bytes match.
      const same = (kind: string, layer: number | undefined, ggufName: string) =>
        assert.ok(Buffer.from(checkpoint.readRaw(kind, layer)).equals(gguf.readRaw(ggufName)), `${kind} ${layer} vs ${ggufName}`);
      same('token_embedding_table', undefined, 'token_embd.weight');
      same('wq', 0, 'blk.0.attn_q.weight');
      same('wk', 3, 'blk.3.attn_k.weight');
      same('w1', 4, 'blk.4.ffn_gate.weight');
      same('w2', 2, 'blk.2.ffn_down.weight');
      same('w3', 1, 'blk.1.ffn_up.weight');
      same('rms_final_weight', undefined, 'output_norm.weight');
    } finally {
      checkpoint.close();
      gguf.close();
    }
  });

  it('refuses a truncated or padded file, naming both sizes', () => {
    const bytes = readFileSync(STORIES_BIN);
    const truncated = path.join(tmp, 'truncated.bin');
    writeFileSync(truncated, bytes.subarray(0, bytes.length - 100));
    expectUserError(() => Llama2cCheckpoint.open(truncated), /file is 1056440 bytes but its header .* announces 1056540 .*truncated/);
    const padded = path.join(tmp, 'padded.bin');
    writeFileSync(padded, Buffer.concat([bytes, Buffer.alloc(4)]));
    expectUserError(() => Llama2cCheckpoint.open(padded), /file is 1056544 bytes/);
    const tiny = path.join(tmp, 'tiny.bin');
    writeFileSync(tiny, bytes.subarray(0, 10));
    expectUserError(() => Llama2cCheckpoint.open(tiny), /too short for the 28-byte llama2\.c header/);
  });

  it('refuses impossible headers and the newer "ak42" export format', () => {
    const file = path.join(tmp, 'bad.bin');
    writeFileSync(file, header([64, 172, 5, 8, 3, 512, 512]));
    expectUserError(() => Llama2cCheckpoint.open(file), /n_heads must be a multiple of n_kv_heads/);
    writeFileSync(file, header([64, 172, 0, 8, 4, 512, 512]));
    expectUserError(() => Llama2cCheckpoint.open(file), /non-positive sizes/);
    writeFileSync(file, Buffer.concat([Buffer.from('24ka', 'latin1'), Buffer.alloc(252)]));
    expectUserError(() => Llama2cCheckpoint.open(file), /"ak42" export/);
  });

  it('finds an untied classifier after the legacy freq_cis arrays (negative vocab_size)', () => {
    const config: Llama2cConfig = { dim: 4, hiddenDim: 6, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 3, seqLen: 2, sharedClassifier: false };
    const floats = (llama2cFileSize(config) - 28) / 4;
    const values = Float32Array.from({ length: floats }, (_, i) => i);
    const file = path.join(tmp, 'untied.bin');
    writeFileSync(file, Buffer.concat([header([4, 6, 1, 2, 1, -3, 2]), Buffer.from(values.buffer)]));
    const checkpoint = Llama2cCheckpoint.open(file);
    assert.equal(checkpoint.config.sharedClassifier, false);
    // wcls is the last vocab × dim floats of the file.
    assert.deepEqual(Array.from(checkpoint.readF32('wcls')), Array.from(values.subarray(floats - 12)));
    // wk of layer 0 ([1·2, 4]) follows embedding (12), rms_att (4) and wq (16).
    assert.deepEqual(Array.from(checkpoint.readF32('wk', 0)), [32, 33, 34, 35, 36, 37, 38, 39]);
    checkpoint.close();
  });
});

describe('llama2.c tokenizer file', () => {
  it('reads tok512.bin: 512 tokens with scores, spaces as spaces', () => {
    const vocab = readLlama2cTokenizer(STORIES_TOK, 512);
    assert.equal(vocab.maxTokenLength, 7);
    assert.deepEqual(vocab.pieces.slice(0, 4), ['<unk>', '\n<s>\n', '\n</s>\n', '<0x00>']);
    assert.deepEqual(vocab.pieces.slice(259, 262), [' t', 'he', ' a']);
    assert.deepEqual(Array.from(vocab.scores.subarray(259, 262)), [-0, -1, -2]);
  });

  it('refuses a tokenizer with fewer or more tokens than the model', () => {
    expectUserError(() => readLlama2cTokenizer(STORIES_TOK, 513), /holds only 512 tokens, the model expects 513/);
    expectUserError(() => readLlama2cTokenizer(STORIES_TOK, 511), /bytes after the model's 511 tokens/);
  });
});
