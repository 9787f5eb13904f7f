// Every user mistake must stop the `crepe` command with exit code 2, exactly one line on stderr
// that starts with "crepe:" and names the problem, no stack trace, and nothing written: the --out
// directory, its .crepe-partial work directory and any temporary file beside them must not exist
// afterwards. Each case writes into its own empty scratch directory, which must still be empty at
// the end. The command line runs in this process (`main(argv, io)`); progress is drawn, so a
// refusal that came after the work had started would show a second line.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { C4_SAMPLE, STORIES_BIN, STORIES_GGUF, STORIES_TOK, WIKITEXT_TEST } from '../helpers/shared.ts';
import { scratchDir, storiesModelDir } from '../helpers/stories.ts';
import { runCli } from '../helpers/cli.ts';
import { buildGguf } from '../convert/gguf-builder.ts';

/**
 * Runs `crepe <args…> --out <fresh dir>/out` (`nested`: `<fresh dir>/new/deeper/out`, folders the
 * run creates) and checks the refusal contract; `problem` must match the one stderr line.
 */
async function expectRefusal(args: string[], problem: RegExp, opts: { out?: boolean; nested?: boolean } = {}): Promise<void> {
  const outParent = scratchDir('out');
  const out = path.join(outParent, ...(opts.nested ? ['new', 'deeper'] : []), 'out');
  const result = await runCli(opts.out === false ? args : [...args, '--out', out], { progress: true });
  const shown = `exit ${result.status}\nstderr:\n${result.stderr}`;
  assert.equal(result.status, 2, shown);
  assert.equal(result.stdout, '', shown);
  assert.ok(result.stderr.endsWith('\n'), shown);
  const lines = result.stderr.slice(0, -1).split('\n');
  assert.equal(lines.length, 1, `expected one line on stderr:\n${result.stderr}`);
  assert.match(lines[0], /^crepe: /);
  assert.doesNotMatch(result.stderr, /^\s+at /m, 'no stack trace');
  assert.match(lines[0], problem);
  assert.ok(!existsSync(out), `${out} must not exist`);
  assert.ok(!existsSync(`${out}.crepe-partial`), `${out}.crepe-partial must not exist`);
  assert.deepEqual(readdirSync(outParent), [], 'nothing may be written beside --out');
}

// ---- model directories with a damaged model.safetensors ----

interface Header {
  [name: string]: { dtype: string; shape: number[]; data_offsets: [number, number] } | Record<string, string>;
}

function readSafetensors(file: string): { header: Header; data: Buffer } {
  const bytes = readFileSync(file);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  return { header: JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Header, data: bytes.subarray(8 + headerLength) };
}

function writeSafetensors(file: string, header: Header, data: Uint8Array): void {
  let json = JSON.stringify(header);
  while (json.length % 8 !== 0) json += ' ';
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  writeFileSync(file, Buffer.concat([length, Buffer.from(json, 'utf8'), data]));
}

/** A copy of the converted stories260K directory whose model.safetensors `damage` rewrites. */
function damagedModel(source: string, name: string, damage: (file: string) => void): string {
  const dir = path.join(scratchDir('model'), name);
  mkdirSync(dir);
  for (const file of readdirSync(source)) copyFileSync(path.join(source, file), path.join(dir, file));
  damage(path.join(dir, 'model.safetensors'));
  return dir;
}

const NORM_A = 'model.layers.0.input_layernorm.weight';
const NORM_B = 'model.layers.0.post_attention_layernorm.weight';
const Q_PROJ_2 = 'model.layers.2.self_attn.q_proj.weight';

function writeText(name: string, text: string): string {
  const file = path.join(scratchDir('text'), name);
  writeFileSync(file, text);
  return file;
}

function writeConfig(name: string, config: unknown): string {
  return writeText(name, typeof config === 'string' ? config : JSON.stringify(config));
}

let model = '';
let foreignTokenizer = '';
const damaged: Record<string, string> = {};

before(async () => {
  model = await storiesModelDir();
  // An added token "Once" with id 5000, beyond the model's 512 embeddings.
  foreignTokenizer = damagedModel(model, 'foreign-tokenizer', () => {});
  const tokenizerFile = path.join(foreignTokenizer, 'tokenizer.json');
  const tokenizer = JSON.parse(readFileSync(tokenizerFile, 'utf8')) as { added_tokens: object[] };
  tokenizer.added_tokens.push({ id: 5000, content: 'Once', single_word: false, lstrip: false, rstrip: false, normalized: false, special: false });
  writeFileSync(tokenizerFile, JSON.stringify(tokenizer));
  damaged.truncated = damagedModel(model, 'truncated', (file) => {
    const bytes = readFileSync(file);
    writeFileSync(file, bytes.subarray(0, bytes.length - 1000));
  });
  damaged.headerPastEof = damagedModel(model, 'header-past-eof', (file) => {
    const bytes = readFileSync(file);
    bytes.writeBigUInt64LE(BigInt(bytes.length + 4096), 0);
    writeFileSync(file, bytes);
  });
  damaged.unknownDtype = damagedModel(model, 'unknown-dtype', (file) => {
    const { header, data } = readSafetensors(file);
    (header[NORM_A] as { dtype: string }).dtype = 'F33';
    writeSafetensors(file, header, data);
  });
  damaged.shapeMismatch = damagedModel(model, 'shape-mismatch', (file) => {
    const { header, data } = readSafetensors(file);
    (header[NORM_A] as { shape: number[] }).shape = [65];
    writeSafetensors(file, header, data);
  });
  damaged.overlap = damagedModel(model, 'overlap', (file) => {
    // Two tensors of the same size share one byte range (the other range becomes a hole, found later).
    const { header, data } = readSafetensors(file);
    (header[NORM_B] as { data_offsets: [number, number] }).data_offsets = [...(header[NORM_A] as { data_offsets: [number, number] }).data_offsets];
    writeSafetensors(file, header, data);
  });
  damaged.nanWeight = damagedModel(model, 'nan-weight', (file) => {
    const bytes = readFileSync(file);
    const headerLength = Number(bytes.readBigUInt64LE(0));
    const entry = (JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Header)[Q_PROJ_2] as { data_offsets: [number, number] };
    bytes.writeFloatLE(Number.NaN, 8 + headerLength + entry.data_offsets[0] + 4 * 7);
    writeFileSync(file, bytes);
  });
  // A stale single file beside shards (or the reverse): which one is the model is not clear.
  damaged.bothWeightFiles = damagedModel(model, 'both-weight-files', (file) => {
    writeFileSync(path.join(path.dirname(file), 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: {} }));
  });
  damaged.unknownModelType = damagedModel(model, 'unknown-model-type', () => {});
  const configFile = path.join(damaged.unknownModelType, 'config.json');
  writeFileSync(configFile, JSON.stringify({ ...JSON.parse(readFileSync(configFile, 'utf8')), model_type: 'gpt_neox' }));
  // stories260K as a Mistral with a 64-token sliding window (Mistral-7B v0.1 has 4096 of 32768).
  damaged.slidingWindow = damagedModel(model, 'sliding-window', () => {});
  const slidingConfig = path.join(damaged.slidingWindow, 'config.json');
  writeFileSync(slidingConfig, JSON.stringify({ ...JSON.parse(readFileSync(slidingConfig, 'utf8')), model_type: 'mistral', sliding_window: 64 }));
});

const pruneWith = (method: string, modelDir: string, ...extra: string[]): string[] => [
  'prune', modelDir, '--method', method, '--calib', C4_SAMPLE, '--nsamples', '2', '--seqlen', '64', ...extra,
];
const pruneArgs = (modelDir: string, ...extra: string[]): string[] => pruneWith('wanda', modelDir, ...extra);

describe('crepe refuses bad input: one line, exit 2, nothing written', { concurrency: true }, () => {
  describe('damaged checkpoints', { concurrency: true }, () => {
    it('truncated safetensors', () =>
      expectRefusal(pruneArgs(damaged.truncated, '--sparsity', '0.5'), /model\.safetensors: .*(truncated|end of file|holds only)/));
    it('header length past the end of the file', () =>
      expectRefusal(pruneArgs(damaged.headerPastEof, '--sparsity', '0.5'), /model\.safetensors: .*header/i));
    it('unknown dtype', () =>
      expectRefusal(pruneArgs(damaged.unknownDtype, '--sparsity', '0.5'), /model\.safetensors: .*unknown dtype "F33"/));
    it('shape × dtype size ≠ byte range', () =>
      expectRefusal(pruneArgs(damaged.shapeMismatch, '--sparsity', '0.5'), /model\.safetensors: tensor "model\.layers\.0\.input_layernorm\.weight" claims bytes .* needs 260 bytes/));
    it('overlapping byte ranges', () =>
      expectRefusal(pruneArgs(damaged.overlap, '--sparsity', '0.5'), /model\.safetensors: .*overlap/));
    it('model.safetensors and model.safetensors.index.json side by side (prune, inspect)', async () => {
      const both = /^crepe: .*both-weight-files: holds both model\.safetensors and model\.safetensors\.index\.json, which may be different models; move the one that is not the model out of the directory$/;
      await expectRefusal(pruneArgs(damaged.bothWeightFiles, '--sparsity', '0.5'), both);
      await expectRefusal(['inspect', damaged.bothWeightFiles], both, { out: false });
    });
    it('unknown model_type in config.json', () =>
      expectRefusal(pruneArgs(damaged.unknownModelType, '--sparsity', '0.5'), /config\.json: model_type "gpt_neox" is not supported \(supported: .*llama/));
    it('unknown model_type in config.json (eval)', () =>
      expectRefusal(['eval', damaged.unknownModelType, '--eval-ppl', WIKITEXT_TEST], /model_type "gpt_neox" is not supported/, { out: false }));
    it('quantized GGUF tensor (convert)', async () => {
      const file = path.join(scratchDir('gguf'), 'q4.gguf');
      writeFileSync(file, buildGguf({ version: 3, tensors: [{ name: 'token_embd.weight', ggmlDims: [32, 2], type: 2, data: new Uint8Array(36) }] }));
      await expectRefusal(['convert', file], /q4\.gguf: tensor "token_embd\.weight" has type Q4_0/);
    });
    it('a NaN weight (prune)', () =>
      expectRefusal(pruneArgs(damaged.nanWeight, '--sparsity', '0.5'), /model\.layers\.2\.self_attn\.q_proj\.weight.*NaN/));
    it('a NaN weight found mid-run, with --out in folders that do not exist yet: none of them is left', () =>
      expectRefusal(pruneArgs(damaged.nanWeight, '--sparsity', '0.5'), /model\.layers\.2\.self_attn\.q_proj\.weight.*NaN/, { nested: true }));
    it('a NaN weight (eval)', () =>
      expectRefusal(['eval', damaged.nanWeight, '--eval-ppl', WIKITEXT_TEST, '--max-chunks', '1'], /model\.layers\.2\.self_attn\.q_proj\.weight" holds NaN/, { out: false }));
  });

  describe('texts too short', { concurrency: true }, () => {
    it('an empty or blank evaluation text', async () => {
      for (const [name, text] of [['empty.txt', ''], ['blank.txt', ' \n\n  \n']]) {
        await expectRefusal(['eval', model, '--eval-ppl', writeText(name, text)], new RegExp(`^crepe: --eval-ppl \\S*${name.replace('.', '\\.')}: holds no text$`), { out: false });
      }
    });
    it('an empty calibration text, and a JSON Lines file without documents', async () => {
      await expectRefusal(['prune', model, '--method', 'wanda', '--sparsity', '0.5', '--calib', writeText('empty.txt', '')], /^crepe: --calib \S*empty\.txt: holds no text$/);
      await expectRefusal(['prune', model, '--method', 'wanda', '--sparsity', '0.5', '--calib', writeText('blank.jsonl', '\n \n')],
        /^crepe: --calib \S*blank\.jsonl: holds no documents \(expected JSON Lines: one object with a "text" field per line\)$/);
    });
    it('evaluation text shorter than one window', () =>
      expectRefusal(['eval', model, '--eval-ppl', writeText('short.txt', 'Once upon a time there was a cat.'), '--seqlen', '512'], /--eval-ppl .*short\.txt: \d+ tokens is shorter than one window of --seqlen 512/, { out: false }));
    it('calibration text shorter than one window', () =>
      expectRefusal(['prune', model, '--method', 'wanda', '--sparsity', '0.5', '--calib', writeText('calib.txt', 'Once upon a time there was a cat.'), '--seqlen', '64'], /calib\.txt.*(shorter|fewer|window)/));
    it('a JSONL without any document longer than seqlen', () => {
      const docs = ['A cat sat.', 'The dog ran home.', 'Lily saw a bird.'].map((text) => JSON.stringify({ text })).join('\n');
      return expectRefusal(['prune', model, '--method', 'wanda', '--sparsity', '0.5', '--calib', writeText('short.jsonl', `${docs}\n`), '--seqlen', '64'], /short\.jsonl.*(longer than|more than|64)/);
    });
  });

  describe('JSON Lines where plain text is read: the JSON syntax, URLs and timestamps would be calibrated or measured on', { concurrency: true }, () => {
    const c4Lines = () => readFileSync(C4_SAMPLE, 'utf8').split('\n').slice(0, 50).join('\n');
    it('--calib with C4 documents in a .txt file', () =>
      expectRefusal(['prune', model, '--method', 'wanda', '--sparsity', '0.5', '--calib', writeText('c4.txt', c4Lines()), '--seqlen', '64'],
        /^crepe: --calib \S*c4\.txt: holds JSON Lines documents \(line 1 is an object with a "text" field\) but would be read as plain text, JSON syntax included, as its name does not end in \.jsonl or \.json; rename it$/));
    it('eval --eval-ppl on a .jsonl file', () =>
      expectRefusal(['eval', model, '--eval-ppl', C4_SAMPLE], /^crepe: --eval-ppl \S*\.jsonl: holds JSON Lines documents; perplexity is measured on plain text \(write the documents' "text" fields into a text file\)$/, { out: false }));
    it('prune --eval-ppl on C4 documents in a .txt file', () =>
      expectRefusal(pruneArgs(model, '--sparsity', '0.5', '--eval-ppl', writeText('c4.txt', c4Lines())), /^crepe: --eval-ppl \S*c4\.txt: holds JSON Lines documents; perplexity is measured on plain text/));
  });

  describe('prune options', { concurrency: true }, () => {
    for (const value of ['0', '1', '1.5', '-0.1']) {
      it(`--sparsity ${value} (outside (0, 1))`, () =>
        expectRefusal(pruneArgs(model, `--sparsity=${value}`), new RegExp(`--sparsity .*between 0 and 1.*got ${value.replace('.', '\\.')}`)));
    }
    it('--sparsity abc', () => expectRefusal(pruneArgs(model, '--sparsity', 'abc'), /--sparsity expects a number, got "abc"/));
    // Number() reads these as 1 and 16: a typing slip would become a value.
    it('--sparsity 0x1 and --owl-m 0x10 (hexadecimal)', async () => {
      await expectRefusal(pruneArgs(model, '--sparsity', '0x1'), /^crepe: --sparsity expects a number, got "0x1"$/);
      await expectRefusal(pruneArgs(model, '--sparsity', '1e309'), /^crepe: --sparsity expects a finite number, got "1e309"$/);
      await expectRefusal(pruneArgs(model, '--sparsity', '0.5', '--owl', '--owl-m', '0x10'), /^crepe: --owl-m expects a number, got "0x10"$/);
    });
    it('a value pasted by mistake (100,000 characters) is quoted by its start and its length, not whole', async () => {
      const long = '9'.repeat(100_000);
      const cut = `"${'9'.repeat(80)}"… \\(100000 characters\\)`;
      await expectRefusal(pruneArgs(model, '--sparsity', long), new RegExp(`^crepe: --sparsity expects a finite number, got ${cut}$`));
      await expectRefusal(pruneArgs(model, '--sparsity', '0.5', '--nsamples', long), new RegExp(`^crepe: --nsamples expects a positive integer, got ${cut}$`));
      await expectRefusal(pruneArgs(model, '--pattern', `2:${long}x`), /^crepe: --pattern must be n:m with whole numbers, .*got "2:9{78}"… \(100003 characters\)$/);
      await expectRefusal(['search', model, '--calib', C4_SAMPLE, '--sparsity', '0.5', '--crepe-k', long], new RegExp(`^crepe: --crepe-k expects .*, got ${cut}$`));
      // Commander's own refusals (a bad choice, an unknown option) quote with single quotes.
      await expectRefusal(pruneArgs(model, '--sparsity', '0.5', '--crepe-variant', long), /^crepe: option '--crepe-variant <v>' argument '9{80}…' \(100000 characters\) is invalid\./);
      await expectRefusal(pruneArgs(model, '--sparsity', '0.5', `--${'x'.repeat(1000)}`), /^crepe: unknown option '--x{78}…' \(1002 characters\) \(see --help\)$/);
    });
    it('--pattern 4:4 (n = m)', () => expectRefusal(pruneArgs(model, '--pattern', '4:4'), /--pattern 4:4 .*n must be smaller than m/));
    it('--pattern 5:4 (n > m)', () => expectRefusal(pruneArgs(model, '--pattern', '5:4'), /--pattern 5:4 .*n must be smaller than m/));
    it('--pattern 2:8 on a width not divisible by 8 (intermediate 172)', () =>
      expectRefusal(pruneArgs(model, '--pattern', '2:8'), /--pattern 2:8: mlp\.down_proj has 172 inputs, not a multiple of 8/));
    // A sparsity given as --pattern would prune unstructured where semi-structured was asked for.
    it('--pattern 0.5 (a sparsity, not n:m)', () =>
      expectRefusal(pruneArgs(model, '--pattern', '0.5'), /^crepe: --pattern must be n:m with whole numbers, e\.g\. 2:4 \(n of every m consecutive weights pruned\), got "0\.5"$/));
    it('search --pattern 0.5', () =>
      expectRefusal(['search', model, '--calib', C4_SAMPLE, '--pattern', '0.5'], /^crepe: --pattern must be n:m with whole numbers, .*got "0\.5"$/));
    it('inspect --pattern 2:x', () => expectRefusal(['inspect', model, '--pattern', '2:x'], /^crepe: --pattern must be n:m with whole numbers, .*got "2:x"$/, { out: false }));
    // Plain words, none of them a request field that the command line would turn into a flag.
    it('--per-row with --per-matrix', () =>
      expectRefusal(pruneArgs(model, '--sparsity', '0.5', '--per-row', '--per-matrix'), /^crepe: give at most one of --per-row or --per-matrix$/));
    it('--no-sparsity-config with --save-format sparse-bitmask: both flags named (not the request field saveFormat)', () =>
      expectRefusal(pruneArgs(model, '--sparsity', '0.5', '--no-sparsity-config', '--save-format', 'sparse-bitmask'),
        /^crepe: --no-sparsity-config cannot be combined with --save-format sparse-bitmask, whose readers find the format in config\.json's sparsity_config$/));
    it('unknown --method', () =>
      expectRefusal(['prune', model, '--method', 'obs', '--sparsity', '0.5', '--calib', C4_SAMPLE], /--method "obs" is unknown; expected one of .*wanda/));
    it('an existing --out directory without --overwrite is refused and left untouched', async () => {
      const parent = scratchDir('existing');
      const out = path.join(parent, 'pruned');
      mkdirSync(out);
      writeFileSync(path.join(out, 'keep.txt'), 'mine');
      const before = statSync(path.join(out, 'keep.txt')).mtimeMs;
      const result = await runCli([...pruneArgs(model, '--sparsity', '0.5'), '--out', out]);
      assert.equal(result.status, 2, result.stderr);
      // Not crepe's output, so --overwrite would be refused too: the message says why rather than suggesting it.
      assert.match(result.stderr, /^crepe: --out .*pruned holds files crepe did not write \(no \.crepe-output marker\), e\.g\. keep\.txt; --overwrite replaces only an empty directory or one crepe wrote — choose another output or remove it yourself\n$/);
      assert.deepEqual(readdirSync(out), ['keep.txt']);
      assert.equal(readFileSync(path.join(out, 'keep.txt'), 'utf8'), 'mine');
      assert.equal(statSync(path.join(out, 'keep.txt')).mtimeMs, before);
      assert.deepEqual(readdirSync(parent), ['pruned']);
    });
  });

  describe('CRePE configuration files', { concurrency: true }, () => {
    const crepeArgs = (config: string): string[] => ['prune', model, '--method', 'crepe', '--sparsity', '0.5', '--calib', C4_SAMPLE, '--config', config];
    const base = { k: 3, alpha: 1, beta: 1, gamma: 0.5 };
    it('malformed JSON', () => expectRefusal(crepeArgs(writeConfig('bad.json', '{"k": 3, "alpha": ')), /bad\.json: not valid JSON/));
    it('not an object', () => expectRefusal(crepeArgs(writeConfig('array.json', [3, 1, 1, 0])), /array\.json: expected a JSON object/));
    it('k even', () => expectRefusal(crepeArgs(writeConfig('k-even.json', { ...base, k: 4 })), /k-even\.json: k .*odd integer in \[1, 63\], got 4/));
    it('k < 1', () => expectRefusal(crepeArgs(writeConfig('k-neg.json', { ...base, k: -1 })), /k-neg\.json: k .*odd integer in \[1, 63\], got -1/));
    it('negative coefficient', () => expectRefusal(crepeArgs(writeConfig('neg.json', { ...base, beta: -0.5 })), /neg\.json: beta must be a finite number ≥ 0, got -0\.5/));
    it('a misspelt field ("gama" would leave gamma at its default)', () =>
      expectRefusal(crepeArgs(writeConfig('typo.json', { ...base, gama: 2 })), /^crepe: \S*typo\.json: gama is not a field of a CRePE configuration; did you mean gamma\?$/));
    it('all-zero coefficients', () =>
      expectRefusal(crepeArgs(writeConfig('zero.json', { k: 3, alpha: 0, beta: 0, gamma: 0 })), /zero\.json: alpha, beta and gamma are all zero/));
    it('--crepe-k 2 on the command line', () =>
      expectRefusal(['prune', model, '--method', 'crepe', '--sparsity', '0.5', '--calib', C4_SAMPLE, '--crepe-k', '2'], /^crepe: --crepe-k \(the neighbourhood window size\) must be an odd integer in \[1, 63\], got 2$/));
    it('a huge --crepe-k is refused before anything is allocated', () =>
      expectRefusal(['prune', model, '--method', 'crepe', '--sparsity', '0.5', '--calib', C4_SAMPLE, '--crepe-k', '1000001'], /^crepe: --crepe-k .*in \[1, 63\], got 1000001$/));
    it('--crepe-k wider than a matrix of the model (stories260K: k/v_proj have 32 rows)', () =>
      expectRefusal(['prune', model, '--method', 'crepe', '--sparsity', '0.5', '--calib', C4_SAMPLE, '--crepe-k', '33'], /^crepe: --crepe-k 33 is larger than the smallest pruned matrix dimension of this model \(32\)$/));
    it('a --config file\'s k wider than a matrix of the model names the file and its k, not --crepe-k', async () => {
      const file = writeConfig('k-wide.json', { ...base, k: 63 });
      const refused = new RegExp(`^crepe: ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: k 63 is larger than the smallest pruned matrix dimension of this model \\(32\\)$`);
      await expectRefusal(crepeArgs(file), refused);
      await expectRefusal(['search', model, '--calib', C4_SAMPLE, '--sparsity', '0.5', '--config', file], refused);
      // --crepe-k overrides the file's k: then the flag is what is refused.
      await expectRefusal([...crepeArgs(file), '--crepe-k', '33'], /^crepe: --crepe-k 33 is larger than the smallest pruned matrix dimension of this model \(32\)$/);
    });
    it('--crepe-alpha/beta/gamma all zero name the flag', () =>
      expectRefusal(['prune', model, '--method', 'crepe', '--sparsity', '0.5', '--calib', C4_SAMPLE, '--crepe-alpha', '0', '--crepe-beta', '0', '--crepe-gamma', '0'], /^crepe: --crepe-gamma is zero, and so are alpha and beta/));
    it('crepe search --crepe-k with an even window size', () =>
      expectRefusal(['search', model, '--calib', C4_SAMPLE, '--sparsity', '0.5', '--crepe-k', '3,4'], /--crepe-k expects odd window sizes in \[1, 63\], got 3,4/));
    it('crepe search --crepe-k with an empty entry, or in hexadecimal (were read as 0 and 3)', async () => {
      for (const k of ['', '1,,3', '0x3']) {
        await expectRefusal(['search', model, '--calib', C4_SAMPLE, '--sparsity', '0.5', '--crepe-k', k], new RegExp(`^crepe: --crepe-k expects a comma-separated list of odd window sizes ≥ 1, got "${k}"$`));
      }
    });
    it('crepe search --k 0 (the old spelling)', () =>
      expectRefusal(['search', model, '--calib', C4_SAMPLE, '--sparsity', '0.5', '--k', '0'], /--crepe-k expects odd window sizes in \[1, 63\], got 0/));
    it('crepe search --config with a malformed file', () =>
      expectRefusal(['search', model, '--calib', C4_SAMPLE, '--sparsity', '0.5', '--config', writeConfig('search-bad.json', '{')], /search-bad\.json: not valid JSON/));
  });

  describe('permutation, OWL, DSnoT options', { concurrency: true }, () => {
    it('--permute with unstructured --sparsity', () =>
      expectRefusal(pruneArgs(model, '--sparsity', '0.5', '--permute', 'lsa'), /--permute needs an N:M target/));
    it('--owl-lambda ≥ target', () =>
      expectRefusal(pruneArgs(model, '--sparsity', '0.5', '--owl', '--owl-lambda', '0.6'), /--owl-lambda must be in \(0, 0\.5\) .*got 0\.6/));
    it('--owl-lambda 0', () => expectRefusal(pruneArgs(model, '--sparsity', '0.5', '--owl', '--owl-lambda', '0'), /--owl-lambda must be in \(0, 0\.5\) .*got 0/));
    it('--owl-lambda negative', () => expectRefusal(pruneArgs(model, '--sparsity', '0.5', '--owl', '--owl-lambda', '-0.1'), /--owl-lambda must be in \(0, 0\.5\) .*got -0\.1/));
    it('--exclude naming every linear (nothing would be pruned)', () =>
      expectRefusal(pruneArgs(model, '--sparsity', '0.5', '--exclude', 'q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj'), /^crepe: --exclude names every linear of a decoder block \(self_attn\.q_proj, .*mlp\.down_proj\), so nothing would be pruned$/));
    // Options of a pass or method that does not run would be ignored.
    it('--owl-lambda without --owl, --dsnot-cycles/--dsnot-skip without --dsnot, --permute-blocks without --permute', async () => {
      await expectRefusal(pruneArgs(model, '--sparsity', '0.5', '--owl-m', '3', '--owl-lambda', '0.1'), /^crepe: --owl-m and --owl-lambda apply to --owl only$/);
      await expectRefusal(pruneArgs(model, '--sparsity', '0.5', '--dsnot-cycles', '3'), /^crepe: --dsnot-cycles applies to --dsnot only$/);
      await expectRefusal(pruneArgs(model, '--sparsity', '0.5', '--dsnot-skip', 'none'), /^crepe: --dsnot-skip applies to --dsnot only$/);
      await expectRefusal(pruneArgs(model, '--pattern', '2:4', '--permute-blocks', '4'), /^crepe: --permute-blocks applies to --permute only$/);
    });
    it('--ria-a with another method, --blocksize/--percdamp without SparseGPT', async () => {
      await expectRefusal(pruneWith('crepe', model, '--sparsity', '0.5', '--ria-a', '0.3'), /^crepe: --ria-a applies to --method ria only \(CRePE's exponent is --crepe-a\)$/);
      await expectRefusal(pruneArgs(model, '--sparsity', '0.5', '--blocksize', '64'), /^crepe: --blocksize applies to --method sparsegpt and to --reconstruct only$/);
      await expectRefusal(pruneArgs(model, '--sparsity', '0.5', '--percdamp', '0.1'), /^crepe: --percdamp applies to --method sparsegpt and to --reconstruct only$/);
    });
    it('unknown --dsnot-skip value', () =>
      expectRefusal(pruneArgs(model, '--sparsity', '0.5', '--dsnot', '--dsnot-skip', 'foo'), /--dsnot-skip .*foo.*mlp, none/));
  });
  describe('numbers that parse but cannot be run', { concurrency: true }, () => {
    const sparsegpt = (...extra: string[]) => pruneWith('sparsegpt', model, '--sparsity', '0.5', ...extra);
    it('--percdamp 1e308 (overflowed the Hessian)', () => expectRefusal(sparsegpt('--percdamp', '1e308'), /--percdamp must be a number in \(0, 1\], got 1e\+308/));
    it('--percdamp 0', () => expectRefusal(sparsegpt('--percdamp', '0'), /--percdamp must be a number in \(0, 1\], got 0/));
    it('--ria-a 100 (scores overflow to ties)', () =>
      expectRefusal(pruneWith('ria', model, '--sparsity', '0.5', '--ria-a', '100'), /--ria-a .*must be a number in \[0, 4\], got 100/));
    it('--ria-a -100', () =>
      expectRefusal(pruneWith('ria', model, '--sparsity', '0.5', '--ria-a', '-100'), /--ria-a .*must be a number in \[0, 4\], got -100/));
    it('--crepe-a 100', () =>
      expectRefusal(pruneWith('crepe', model, '--sparsity', '0.5', '--crepe-a', '100'), /\ba .*must be a number in \[0, 4\], got 100/));
    it('search --crepe-a 100', () =>
      expectRefusal(['search', model, '--calib', C4_SAMPLE, '--sparsity', '0.5', '--crepe-a', '100'], /--crepe-a .*must be a number in \[0, 4\], got 100/));
    it('search --sigma0 -1', () =>
      expectRefusal(['search', model, '--calib', C4_SAMPLE, '--sparsity', '0.5', '--sigma0', '-1'], /--sigma0 must be a number in \(0, 18\], got -1/));
    it('search --sigma0 1e308', () =>
      expectRefusal(['search', model, '--calib', C4_SAMPLE, '--sparsity', '0.5', '--sigma0', '1e308'], /--sigma0 must be a number in \(0, 18\], got 1e\+308/));
    it('search --validate 2 (a correlation needs three points)', () =>
      expectRefusal(['search', model, '--calib', C4_SAMPLE, '--sparsity', '0.5', '--validate', '2', '--eval-ppl', WIKITEXT_TEST], /--validate must be an integer ≥ 3, got 2/));
    it('eval --threads 100000 (ONNX Runtime would not finish starting them)', () =>
      expectRefusal(['eval', model, '--eval-ppl', WIKITEXT_TEST, '--threads', '100000'], /^crepe: --threads must be at most 1024 \(more than any machine's cores\), got 100000$/, { out: false }));
    it('prune --threads 5000', () => expectRefusal(pruneArgs(model, '--sparsity', '0.5', '--threads', '5000'), /^crepe: --threads must be at most 1024 .*got 5000$/));
    it('--auto with --config: both flags named', () =>
      expectRefusal(pruneWith('crepe', model, '--sparsity', '0.5', '--auto', '--config', writeConfig('auto.json', { k: 3, alpha: 1, beta: 1, gamma: 0.5 })), /^crepe: --auto searches the configuration itself: give --config or --auto, not both$/));
    it('a CRePE option with another method', () =>
      expectRefusal(pruneArgs(model, '--sparsity', '0.5', '--crepe-k', '5'), /--crepe-k applies to --method crepe only/));
  });

  describe('windows longer than the model\'s context (512): refused the same way everywhere', { concurrency: true }, () => {
    const tooLong = /--seqlen 100000 is longer than the model's context of 512 tokens/;
    it('eval --seqlen 100000 (was a 40 GB allocation)', () => expectRefusal(['eval', model, '--eval-ppl', WIKITEXT_TEST, '--seqlen', '100000'], tooLong, { out: false }));
    it('prune --seqlen 100000', () => expectRefusal(pruneArgs(model, '--sparsity', '0.5', '--seqlen', '100000'), tooLong));
    it('prune --seqlen 1024', () => expectRefusal(pruneArgs(model, '--sparsity', '0.5', '--seqlen', '1024'), /--seqlen 1024 is longer than the model's context of 512/));
    it('prune --eval-seqlen 1024', () =>
      expectRefusal(pruneArgs(model, '--sparsity', '0.5', '--eval-ppl', WIKITEXT_TEST, '--eval-seqlen', '1024'), /--eval-seqlen 1024 is longer than the model's context of 512/));
    it('search --seqlen 100000', () => expectRefusal(['search', model, '--calib', C4_SAMPLE, '--sparsity', '0.5', '--seqlen', '100000'], tooLong));
    // Beyond a sliding window transformers attends to fewer keys than crepe's causal attention:
    // the PPL would be that of another model.
    it('eval --seqlen 128 on a model with a 64-token sliding window', () =>
      expectRefusal(['eval', damaged.slidingWindow, '--eval-ppl', WIKITEXT_TEST, '--seqlen', '128'], /^crepe: --seqlen 128 is longer than the model's context of 64 tokens \(sliding_window in config\.json\)$/, { out: false }));
    it('prune --eval-seqlen 128 on a model with a 64-token sliding window', () =>
      expectRefusal(pruneArgs(damaged.slidingWindow, '--sparsity', '0.5', '--eval-ppl', WIKITEXT_TEST, '--eval-seqlen', '128'), /^crepe: --eval-seqlen 128 is longer than the model's context of 64 tokens \(sliding_window in config\.json\)$/));
    // A one-token window predicts nothing: its perplexity would be NaN, and PHO would pick a
    // configuration from NaN proxy values.
    const oneToken = (flag: string) => new RegExp(`^crepe: ${flag} must be at least 2 tokens \\(a window predicts each token from the ones before it\\), got 1$`);
    it('eval --seqlen 1', () => expectRefusal(['eval', model, '--eval-ppl', WIKITEXT_TEST, '--seqlen', '1'], oneToken('--seqlen'), { out: false }));
    it('prune --eval-seqlen 1', () => expectRefusal(pruneArgs(model, '--sparsity', '0.5', '--eval-ppl', WIKITEXT_TEST, '--eval-seqlen', '1'), oneToken('--eval-seqlen')));
    it('search --seqlen 1', () => expectRefusal(['search', model, '--calib', C4_SAMPLE, '--sparsity', '0.5', '--seqlen', '1'], oneToken('--seqlen')));
  });

  describe('inputs checked before the first expensive step', { concurrency: true }, () => {
    it('prune --eval-ppl missing.txt', () =>
      expectRefusal(pruneArgs(model, '--sparsity', '0.5', '--eval-ppl', path.join(scratchDir('missing'), 'missing.txt')), /--eval-ppl .*missing\.txt: .*no such file/));
    // The window is named by the option it came from: --eval-seqlen when given, else --seqlen.
    it('prune --eval-ppl with a text shorter than one window of --seqlen', () =>
      expectRefusal(pruneArgs(model, '--sparsity', '0.5', '--eval-ppl', writeText('short-eval.txt', 'Once upon a time.')), /--eval-ppl .*short-eval\.txt: \d+ tokens is shorter than one window of --seqlen 64$/));
    it('prune --eval-ppl with a text shorter than one window of --eval-seqlen', () =>
      expectRefusal(pruneArgs(model, '--sparsity', '0.5', '--eval-ppl', writeText('short-eval2.txt', 'Once upon a time.'), '--eval-seqlen', '32'), /--eval-ppl .*short-eval2\.txt: \d+ tokens is shorter than one window of --eval-seqlen 32$/));
    it('a model path that does not exist, or is a file', async () => {
      const missing = path.join(scratchDir('no-model'), 'nope');
      await expectRefusal(['eval', missing, '--eval-ppl', WIKITEXT_TEST], new RegExp(`^crepe: ${missing}: no such directory \\(expected a Hugging Face model directory: config\\.json, model\\.safetensors, tokenizer\\.json\\)$`), { out: false });
      const file = path.join(model, 'config.json');
      await expectRefusal(['inspect', file], new RegExp(`^crepe: ${file}: not a directory \\(expected a Hugging Face model directory`), { out: false });
      await expectRefusal(pruneArgs(file, '--sparsity', '0.5'), new RegExp(`^crepe: ${file}: not a directory`));
    });
    it('--eval-seqlen / --eval-max-chunks without --eval-ppl (they would be ignored)', async () => {
      await expectRefusal(pruneArgs(model, '--sparsity', '0.5', '--eval-seqlen', '128'), /^crepe: --eval-seqlen applies to --eval-ppl only \(the text a perplexity is measured on\)$/);
      await expectRefusal(['search', model, '--calib', C4_SAMPLE, '--sparsity', '0.5', '--eval-max-chunks', '3'], /^crepe: --eval-max-chunks applies to --eval-ppl only/);
    });
    it('--revision with a local model directory (it would be ignored)', () =>
      expectRefusal(['eval', model, '--eval-ppl', WIKITEXT_TEST, '--revision', 'v1'], new RegExp(`^crepe: --revision applies to a Hub id only; ${model} is a local path$`), { out: false }));
    it('prune --calib <a directory>', () => {
      const dir = scratchDir('calib-dir');
      return expectRefusal(['prune', model, '--method', 'wanda', '--sparsity', '0.5', '--calib', dir], new RegExp(`--calib ${dir}: is a directory`));
    });
    it('search --calib <a directory>', () => {
      const dir = scratchDir('calib-dir');
      return expectRefusal(['search', model, '--sparsity', '0.5', '--calib', dir], new RegExp(`--calib ${dir}: is a directory`));
    });
    // An empty name would resolve to the working directory: an output, a cache or a file read there.
    it('prune --out "" (and with --overwrite)', async () => {
      await expectRefusal([...pruneArgs(model, '--sparsity', '0.5'), '--out', ''], /^crepe: --out must name an output directory$/, { out: false });
      await expectRefusal([...pruneArgs(model, '--sparsity', '0.5'), '--out', '', '--overwrite'], /^crepe: --out must name an output directory$/, { out: false });
    });
    it('convert a GGUF with --tokenizer (a GGUF carries its own; the file would be ignored)', () =>
      expectRefusal(['convert', STORIES_GGUF, '--tokenizer', STORIES_TOK], /^crepe: --tokenizer .*tok512\.bin: applies to a llama2\.c \.bin checkpoint only; the GGUF file .*\.gguf carries its own tokenizer$/));
    it('convert --out " "', () => expectRefusal(['convert', STORIES_BIN, '--out', ' '], /^crepe: --out must name an output directory$/, { out: false }));
    it('search --proxy-cache ""', () =>
      expectRefusal(['search', model, '--calib', C4_SAMPLE, '--sparsity', '0.5', '--proxy-cache', ''], /^crepe: --proxy-cache must name a directory$/));
    it('prune --method crepe --config ""', () =>
      expectRefusal(['prune', model, '--method', 'crepe', '--sparsity', '0.5', '--calib', C4_SAMPLE, '--config', ''], /^crepe: --config must name a file$/));
    it('search --config ""', () =>
      expectRefusal(['search', model, '--calib', C4_SAMPLE, '--sparsity', '0.5', '--config', ''], /^crepe: --config must name a file$/));
    // Options the run would ignore.
    it('search --strategy hillclimb with a PHO option (--proxy, --sigma0, --proxy-cache)', async () => {
      const hillclimb = ['search', model, '--calib', C4_SAMPLE, '--sparsity', '0.5', '--strategy', 'hillclimb', '--eval-ppl', WIKITEXT_TEST];
      await expectRefusal([...hillclimb, '--proxy', 'gini-own'], /^crepe: --proxy applies to PHO and --validate only \(hill climbing measures each trial for real\)$/);
      await expectRefusal([...hillclimb, '--sigma0', '1'], /^crepe: --sigma0 applies to PHO and --validate only/);
      await expectRefusal([...hillclimb, '--race', '2'], /^crepe: --race applies to PHO and --validate only/);
      await expectRefusal([...hillclimb, '--proxy-cache', path.join(scratchDir('cache'), 'c')], /^crepe: --proxy-cache applies to PHO and --validate only/);
    });
    it('search: --confirm-on, --confirm-statistics without --confirm', async () => {
      const pho = ['search', model, '--calib', C4_SAMPLE, '--sparsity', '0.5', '--eval-ppl', WIKITEXT_TEST];
      await expectRefusal([...pho, '--confirm-on', 'calibration'], /^crepe: --confirm-on applies to --confirm only \(what each confirmation trial measures\)$/);
      await expectRefusal([...pho, '--confirm', '0', '--confirm-statistics', 'dense'], /^crepe: --confirm-statistics applies to --confirm only \(how each confirmation trial prunes\)$/);
    });
    it('search --proxy-cache inside the model directory (its files are copied into every pruned model)', async () => {
      const copy = path.join(scratchDir('model-copy'), 'm');
      mkdirSync(copy);
      for (const file of readdirSync(model)) copyFileSync(path.join(model, file), path.join(copy, file));
      const before = readdirSync(copy).sort();
      await expectRefusal(['search', copy, '--calib', C4_SAMPLE, '--sparsity', '0.5', '--proxy-cache', path.join(copy, 'cache')],
        new RegExp(`^crepe: --proxy-cache ${copy}/cache is inside the model directory ${copy}, whose files are copied into every model pruned from it; name a directory outside it$`));
      assert.deepEqual(readdirSync(copy).sort(), before);
    });
    it('search --confirm-windows without --confirm', () =>
      expectRefusal(['search', model, '--calib', C4_SAMPLE, '--sparsity', '0.5', '--confirm-windows', '3'], /^crepe: --confirm-windows applies to --confirm only \(the windows each confirmation trial measures\)$/));
    it('search --strategy hillclimb without held-out text', () =>
      expectRefusal(['search', model, '--calib', C4_SAMPLE, '--sparsity', '0.5', '--strategy', 'hillclimb'], /--eval-ppl is needed/));
    it('a tokenizer that gives ids outside the vocabulary (eval)', () =>
      expectRefusal(['eval', foreignTokenizer, '--eval-ppl', writeText('once.txt', 'Once upon a time there was a cat. '.repeat(40))], /tokenizer\.json gives token id 5000 .*outside the model's vocabulary of 512/, { out: false }));
    it('a tokenizer that gives ids outside the vocabulary (prune, found before pruning)', () =>
      expectRefusal(pruneArgs(foreignTokenizer, '--sparsity', '0.5', '--eval-ppl', writeText('once.txt', 'Once upon a time there was a cat. '.repeat(40))), /tokenizer\.json gives token id 5000/));
  });
});
