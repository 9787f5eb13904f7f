import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SafetensorsFile } from '../../src/io/safetensors.ts';
import { removePendingTemporaries } from '../../src/io/atomic.ts';
import { readModelConfig } from '../../src/model/config.ts';
import { convertToHuggingFace, interleavedToRotateHalfRows, type ConvertReport } from '../../src/model/convert.ts';
import { ModelCheckpoint } from '../../src/model/checkpoint.ts';
import { referenceLogits } from '../../src/model/reference-forward.ts';
import { TextTokenizer } from '../../src/model/tokenizer.ts';
import { GgufFile } from '../../src/io/gguf.ts';
import { Llama2cCheckpoint } from '../../src/io/llama2c.ts';
import { openGgufSource } from '../../src/model/convert/gguf.ts';
import { llama2cSource } from '../../src/model/convert/llama2c.ts';
import { UserError } from '../../src/util/errors.ts';
import { STORIES_BIN, STORIES_GGUF, STORIES_TOK } from '../helpers/shared.ts';
import { buildGguf, f32Bytes, type MetadataEntry } from './gguf-builder.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'crepe-convert-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

async function expectUserError(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof UserError, `expected a UserError, got ${String(error)}`);
    assert.match(error.message, pattern);
    return true;
  });
}

/** Rows of a [rows, cols] float32 matrix as arrays. */
function rowsOf(data: Float32Array, cols: number): number[][] {
  return Array.from({ length: data.length / cols }, (_, r) => Array.from(data.subarray(r * cols, (r + 1) * cols)));
}

/** A tensor copied unchanged: its stored bytes equal the source tensor's. */
function assertSameBytes(out: SafetensorsFile, name: string, source: SafetensorsFile | GgufFile, sourceName = name): void {
  assert.ok(Buffer.from(out.readRaw(name)).equals(source.readRaw(sourceName)), `${name} differs from ${sourceName}`);
}

describe('rotary row permutation (interleaved → rotate_half)', () => {
  it('moves rows (2i, 2i+1) of a head to (i, i + headDim/2): one head of 4 rows', () => {
    const rows = [[1, 2], [3, 4], [5, 6], [7, 8]]; // r0 r1 r2 r3
    const permuted = interleavedToRotateHalfRows(new Uint8Array(Float32Array.from(rows.flat()).buffer), 1, 4);
    assert.deepEqual(rowsOf(new Float32Array(permuted.buffer), 2), [[1, 2], [5, 6], [3, 4], [7, 8]]); // r0 r2 r1 r3
  });

  it('permutes each head on its own, and leaves headDim 2 unchanged', () => {
    const twoHeads = Float32Array.from([0, 1, 2, 3, 4, 5, 6, 7]); // 8 rows of 1 column: 2 heads of 4
    const out = new Float32Array(interleavedToRotateHalfRows(new Uint8Array(twoHeads.buffer), 2, 4).buffer);
    assert.deepEqual(Array.from(out), [0, 2, 1, 3, 4, 6, 5, 7]);
    const headDim2 = Float32Array.from([0, 1, 2, 3]);
    assert.deepEqual(Array.from(new Float32Array(interleavedToRotateHalfRows(new Uint8Array(headDim2.buffer), 2, 2).buffer)), [0, 1, 2, 3]);
  });

  it('permutes into a given buffer, and a source reads its tensors through the same two buffers', async () => {
    const rows = Float32Array.from([1, 2, 3, 4]); // one head of 4 rows of 1 column
    const out = new Uint8Array(16);
    assert.equal(interleavedToRotateHalfRows(new Uint8Array(rows.buffer), 1, 4, out), out);
    assert.deepEqual(Array.from(new Float32Array(out.buffer)), [1, 3, 2, 4]);
    assert.throws(() => interleavedToRotateHalfRows(new Uint8Array(rows.buffer), 1, 4, new Uint8Array(12)), /another buffer/);
    // stories260K, read in order as the writer does (the embedding, its largest tensor, first): all
    // tensors come from one buffer, Q and K rows from a second, not from a fresh buffer each.
    for (const open of [() => openGgufSource(STORIES_GGUF), () => llama2cSource(Llama2cCheckpoint.open(STORIES_BIN), STORIES_BIN, STORIES_TOK)]) {
      const source = open();
      try {
        const buffers = { rotary: new Set<ArrayBufferLike>(), other: new Set<ArrayBufferLike>() };
        for (const tensor of source.tensors) buffers[/[qk]_proj/.test(tensor.name) ? 'rotary' : 'other'].add(tensor.read().buffer);
        assert.deepEqual([buffers.rotary.size, buffers.other.size], [1, 1], source.format);
        assert.ok(!buffers.other.has([...buffers.rotary][0]), source.format);
      } finally {
        source.close();
      }
    }
  });

  it('works on 16-bit rows too (bytes, whatever the dtype)', () => {
    const halfRows = Uint16Array.from([10, 11, 20, 21, 30, 31, 40, 41, 50, 51, 60, 61]); // 6 rows × 2: one head of 6
    const out = new Uint16Array(interleavedToRotateHalfRows(new Uint8Array(halfRows.buffer), 1, 6).buffer);
    assert.deepEqual(Array.from(out), [10, 11, 30, 31, 50, 51, 20, 21, 40, 41, 60, 61]);
  });
});

describe('converting stories260K (GGUF v1 and llama2.c .bin)', () => {
  const fromGguf = path.join(tmp, 'from-gguf');
  const fromBin = path.join(tmp, 'from-bin');
  let ggufReport: ConvertReport;
  let binReport: ConvertReport;

  before(async () => {
    ggufReport = await convertToHuggingFace(STORIES_GGUF, fromGguf);
    binReport = await convertToHuggingFace(STORIES_BIN, fromBin, { tokenizer: STORIES_TOK });
  });

  it('reports format, sizes and the tied classifier', () => {
    assert.equal(ggufReport.format, 'gguf');
    assert.equal(ggufReport.formatVersion, 1);
    assert.equal(binReport.format, 'llama2c');
    for (const report of [ggufReport, binReport]) {
      assert.equal(report.tensors, 47); // embedding + 5 × 9 + final norm; lm_head tied
      assert.equal(report.parameters, 512 * 64 + 5 * (2 * 64 + 64 * 64 * 2 + 32 * 64 * 2 + 3 * 172 * 64) + 64);
      assert.equal(report.dtype, 'F32');
      assert.equal(report.spec.tieWordEmbeddings, true);
    }
    assert.match(ggufReport.notes.join('\n'), /output\.weight is bit-identical to token_embd\.weight/);
    assert.deepEqual(ggufReport.spec, binReport.spec);
  });

  it('writes the Hugging Face files, and config.json reads back as the same spec', () => {
    for (const dir of [fromGguf, fromBin]) {
      assert.deepEqual(readdirSync(dir).sort(), [
        '.crepe-output', 'config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer.model', 'tokenizer_config.json',
      ]);
      const config = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));
      assert.equal(config.model_type, 'llama');
      assert.equal(config.torch_dtype, 'float32');
      assert.equal(config.rms_norm_eps, 1e-5);
      assert.deepEqual(readModelConfig(dir), ggufReport.spec);
      assert.deepEqual(JSON.parse(readFileSync(path.join(dir, 'generation_config.json'), 'utf8')), { bos_token_id: 1, eos_token_id: 2 });
    }
    assert.deepEqual(readdirSync(tmp).filter((name) => name.startsWith('.')), [], 'no temporary directory left behind');
  });

  it('gives bit-identical tensors from both sources', () => {
    const a = SafetensorsFile.open(path.join(fromGguf, 'model.safetensors'));
    const b = SafetensorsFile.open(path.join(fromBin, 'model.safetensors'));
    try {
      assert.deepEqual([...a.tensors.keys()], [...b.tensors.keys()]);
      assert.ok(!a.tensors.has('lm_head.weight'));
      for (const name of a.tensors.keys()) {
        assert.equal(a.info(name).dtype, 'F32');
        assert.deepEqual(a.info(name).shape, b.info(name).shape);
        assertSameBytes(a, name, b);
      }
    } finally {
      a.close();
      b.close();
    }
  });

  it('permutes Q (8 heads) and K (4 KV heads) rows, and copies the rest as stored', () => {
    const gguf = GgufFile.open(STORIES_GGUF);
    const out = SafetensorsFile.open(path.join(fromGguf, 'model.safetensors'));
    try {
      const headDim = 8;
      for (const [source, target, heads] of [
        ['blk.2.attn_q.weight', 'model.layers.2.self_attn.q_proj.weight', 8],
        ['blk.2.attn_k.weight', 'model.layers.2.self_attn.k_proj.weight', 4],
      ] as const) {
        const before = rowsOf(gguf.readF32(source), 64);
        const afterRows = rowsOf(out.readF32(target), 64);
        assert.equal(afterRows.length, heads * headDim);
        for (let head = 0; head < heads; head++) {
          for (let i = 0; i < headDim / 2; i++) {
            assert.deepEqual(afterRows[head * headDim + i], before[head * headDim + 2 * i]);
            assert.deepEqual(afterRows[head * headDim + headDim / 2 + i], before[head * headDim + 2 * i + 1]);
          }
        }
      }
      assertSameBytes(out, 'model.layers.2.self_attn.v_proj.weight', gguf, 'blk.2.attn_v.weight');
      assertSameBytes(out, 'model.layers.4.mlp.up_proj.weight', gguf, 'blk.4.ffn_up.weight');
      assertSameBytes(out, 'model.norm.weight', gguf, 'output_norm.weight');
    } finally {
      gguf.close();
      out.close();
    }
  });

  it('generates llama2.c\'s greedy stories260K sample (rotary layout right end to end)', () => {
    // doc/stories260K.md of llama2.c: the temperature-0 sample from BOS begins with this sentence.
    const expected = 'Once upon a time, there was a little girl named Lily.';
    const model = ModelCheckpoint.open(fromBin);
    const tokenizer = TextTokenizer.load(fromBin);
    try {
      const tokens = [1];
      while (tokenizer.decode(tokens).length < expected.length) {
        const logits = referenceLogits(model, Int32Array.from(tokens));
        const last = logits.subarray((tokens.length - 1) * model.spec.vocabSize);
        let best = 0;
        for (let v = 1; v < last.length; v++) if (last[v] > last[best]) best = v;
        tokens.push(best);
      }
      assert.equal(tokenizer.decode(tokens).slice(0, expected.length), expected);
    } finally {
      model.close();
    }
  });

  it('refuses an existing output directory unless --overwrite, which replaces only crepe\'s own output, whole', async () => {
    const target = path.join(tmp, 'existing');
    mkdirSync(target);
    writeFileSync(path.join(target, 'stale.txt'), 'old');
    // Not crepe's: refused saying why, with or without overwrite (which could not replace it either).
    await expectUserError(convertToHuggingFace(STORIES_GGUF, target), /holds files crepe did not write \(no \.crepe-output marker\), e\.g\. stale\.txt/);
    await expectUserError(convertToHuggingFace(STORIES_GGUF, target, { overwrite: true }), /holds files crepe did not write \(no \.crepe-output marker\), e\.g\. stale\.txt/);
    assert.deepEqual(readdirSync(target), ['stale.txt']);
    rmSync(path.join(target, 'stale.txt'));
    await expectUserError(convertToHuggingFace(STORIES_GGUF, target), /already exists; pass overwrite to replace it/);
    await convertToHuggingFace(STORIES_GGUF, target, { overwrite: true }); // an empty directory may be replaced
    await convertToHuggingFace(STORIES_GGUF, target, { overwrite: true }); // and so may crepe's own output
    assert.deepEqual(readdirSync(target).sort(), ['.crepe-output', 'config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer.model', 'tokenizer_config.json']);
    await expectUserError(convertToHuggingFace(STORIES_GGUF, path.dirname(STORIES_GGUF), { overwrite: true }), /holds the input/);
  });

  it('an interrupted conversion leaves nothing: its unfinished directory is one that a signal removes (what Ctrl-C does)', async () => {
    const parent = path.join(tmp, 'interrupted');
    mkdirSync(parent);
    const target = path.join(parent, 'out');
    let seen: string[] = [];
    // The command line's signal handler calls removePendingTemporaries; here it runs mid-write.
    const conversion = convertToHuggingFace(STORIES_BIN, target, {
      progress: () => ({
        update: () => {
          if (seen.length > 0) return;
          seen = readdirSync(parent);
          removePendingTemporaries();
        },
        log: () => {},
        done: () => {},
      }),
    });
    await assert.rejects(conversion);
    assert.equal(seen.length, 2, `the lock and the unfinished output, beside --out: ${seen.join(', ')}`);
    assert.ok(seen.includes('out.crepe-lock'));
    assert.match(seen.find((name) => name !== 'out.crepe-lock')!, /^\.out\.tmp-/);
    assert.deepEqual(readdirSync(parent), [], 'removed, and nothing published');
  });
});

describe('converter errors and other GGUF shapes', () => {
  it('an input whose read fails (EIO: /proc/self/mem) is one error naming it', { skip: process.platform !== 'linux' && 'needs /proc' }, async () => {
    await expectUserError(convertToHuggingFace('/proc/self/mem', path.join(tmp, 'eio')), /^\/proc\/self\/mem: cannot read \(input\/output error, EIO\)$/);
    assert.ok(!existsSync(path.join(tmp, 'eio')));
  });

  it('finds the one tok*.bin beside a llama2.c checkpoint, and asks for --tokenizer otherwise', async () => {
    const dir = path.join(tmp, 'bin-alone');
    mkdirSync(dir);
    copyFileSync(STORIES_BIN, path.join(dir, 'model.bin'));
    await expectUserError(convertToHuggingFace(path.join(dir, 'model.bin'), path.join(tmp, 'x1')), /^tokenizer is needed for the llama2\.c checkpoint .*model\.bin: name its tok\*\.bin file \(none is beside it\)/);
    copyFileSync(STORIES_TOK, path.join(dir, 'tok512.bin'));
    const report = await convertToHuggingFace(path.join(dir, 'model.bin'), path.join(tmp, 'x2'));
    assert.equal(report.tokenizerSource, path.join(dir, 'tok512.bin'));
    copyFileSync(STORIES_TOK, path.join(dir, 'tokenizer.bin'));
    await expectUserError(convertToHuggingFace(path.join(dir, 'model.bin'), path.join(tmp, 'x3')), /several are beside it: tok512\.bin, tokenizer\.bin/);
    assert.ok(!existsSync(path.join(tmp, 'x1')) && !existsSync(path.join(tmp, 'x3')));
  });

  it('refuses a file that is neither GGUF nor llama2.c', async () => {
    const file = path.join(tmp, 'junk.bin');
    writeFileSync(file, Buffer.from('hello world, this is not a model at all'));
    await expectUserError(convertToHuggingFace(file, path.join(tmp, 'junk-out')), /junk\.bin: not a GGUF file \(no "GGUF" magic\) and not a valid llama2\.c checkpoint: header dim=/);
    assert.ok(!existsSync(path.join(tmp, 'junk-out')));
  });

  // A two-layer llama GGUF v3 with F16 matrices, F32 norms and an untied output.
  const hidden = 4;
  const ffn = 6;
  const heads = 2;
  const vocab = ['<unk>', '<s>', '</s>', ...Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`), '▁a', 'a', '▁'];
  const f16 = (count: number, seed: number) => new Uint8Array(Uint16Array.from({ length: count }, (_, i) => 0x3c00 + ((i * 7 + seed) % 512)).buffer);
  function tinyLlamaGguf(matrixType: number, matrixBytes: (count: number, seed: number) => Uint8Array): Uint8Array {
    const metadata: MetadataEntry[] = [
      { key: 'general.architecture', type: 'string', value: 'llama' },
      { key: 'llama.context_length', type: 'u32', value: 128 },
      { key: 'llama.embedding_length', type: 'u32', value: hidden },
      { key: 'llama.block_count', type: 'u32', value: 2 },
      { key: 'llama.feed_forward_length', type: 'u32', value: ffn },
      { key: 'llama.attention.head_count', type: 'u32', value: heads },
      { key: 'llama.attention.layer_norm_rms_epsilon', type: 'f32', value: 1e-6 },
      { key: 'llama.rope.freq_base', type: 'f32', value: 500000 },
      { key: 'tokenizer.ggml.model', type: 'string', value: 'llama' },
      { key: 'tokenizer.ggml.tokens', type: 'string[]', value: vocab },
      { key: 'tokenizer.ggml.scores', type: 'f32[]', value: vocab.map((_, id) => (id < 259 ? 0 : -id)) },
      { key: 'tokenizer.ggml.token_type', type: 'i32[]', value: vocab.map((_, id) => (id === 0 ? 2 : id < 3 ? 3 : id < 259 ? 6 : 1)) },
    ];
    const tensors = [{ name: 'token_embd.weight', ggmlDims: [hidden, vocab.length], type: matrixType, data: matrixBytes(hidden * vocab.length, 1) }];
    let seed = 2;
    for (let layer = 0; layer < 2; layer++) {
      const matrix = (name: string, rows: number, cols: number) => ({ name: `blk.${layer}.${name}`, ggmlDims: [cols, rows], type: matrixType, data: matrixBytes(rows * cols, seed++) });
      tensors.push(
        { name: `blk.${layer}.attn_norm.weight`, ggmlDims: [hidden], type: 0, data: f32Bytes([1, 2, 3, 4]) },
        matrix('attn_q.weight', hidden, hidden), matrix('attn_k.weight', hidden, hidden), matrix('attn_v.weight', hidden, hidden),
        matrix('attn_output.weight', hidden, hidden),
        { name: `blk.${layer}.ffn_norm.weight`, ggmlDims: [hidden], type: 0, data: f32Bytes([4, 3, 2, 1]) },
        matrix('ffn_gate.weight', ffn, hidden), matrix('ffn_up.weight', ffn, hidden), matrix('ffn_down.weight', hidden, ffn),
      );
    }
    tensors.push(
      { name: 'output_norm.weight', ggmlDims: [hidden], type: 0, data: f32Bytes([1, 1, 1, 1]) },
      { name: 'output.weight', ggmlDims: [hidden, vocab.length], type: matrixType, data: matrixBytes(hidden * vocab.length, 99) },
    );
    return buildGguf({ version: 3, metadata, tensors });
  }

  it('keeps F16 weights F16, writes an untied lm_head, and reads the GGUF hyperparameters', async () => {
    const file = path.join(tmp, 'tiny-f16.gguf');
    writeFileSync(file, tinyLlamaGguf(1, f16));
    const out = path.join(tmp, 'tiny-f16');
    const report = await convertToHuggingFace(file, out);
    assert.equal(report.formatVersion, 3);
    assert.equal(report.dtype, 'F16');
    assert.equal(report.tensors, 1 + 2 * 9 + 2);
    assert.deepEqual(
      { ...report.spec },
      {
        family: 'llama', hiddenSize: 4, intermediateSize: 6, numLayers: 2, numHeads: 2, numKvHeads: 2, headDim: 2, vocabSize: 262,
        rmsNormEps: 1e-6, ropeTheta: 500000, ropeScaling: null, maxPositionEmbeddings: 128, tieWordEmbeddings: false,
        attentionBias: false, qkNorm: false, bosTokenId: 1, eosTokenId: 2, torchDtype: 'float16',
      },
    );
    const gguf = GgufFile.open(file);
    const st = SafetensorsFile.open(path.join(out, 'model.safetensors'));
    try {
      assert.equal(st.info('model.layers.1.mlp.down_proj.weight').dtype, 'F16');
      assert.deepEqual(st.info('model.layers.1.mlp.down_proj.weight').shape, [4, 6]);
      assert.equal(st.info('model.layers.0.input_layernorm.weight').dtype, 'F32');
      assertSameBytes(st, 'lm_head.weight', gguf, 'output.weight');
      assertSameBytes(st, 'model.layers.1.mlp.down_proj.weight', gguf, 'blk.1.ffn_down.weight');
      // headDim 2: the rotary permutation is the identity.
      assertSameBytes(st, 'model.layers.0.self_attn.q_proj.weight', gguf, 'blk.0.attn_q.weight');
    } finally {
      gguf.close();
      st.close();
    }
    assert.deepEqual(Array.from(TextTokenizer.load(out).encode('aa a')), [1, 259, 260, 259]); // <s> ▁a a ▁a
  });

  it('refuses a quantized GGUF by tensor and type, writing nothing', async () => {
    const q4 = (count: number) => new Uint8Array((count / 32) * 18);
    const file = path.join(tmp, 'tiny-q4.gguf');
    // Q4_0 needs rows that are a multiple of 32 wide: the reader refuses before any shape check.
    writeFileSync(file, tinyLlamaGguf(2, (count) => q4(Math.ceil(count / 32) * 32)));
    const out = path.join(tmp, 'tiny-q4');
    await expectUserError(convertToHuggingFace(file, out), /tensor "token_embd\.weight" has type Q4_0/);
    assert.ok(!existsSync(out));
  });
});
