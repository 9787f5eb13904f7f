/**
 * The property test's worker (test/cli/fuzz.test.ts starts it as a child process, so that a case
 * that hangs can be stopped from outside): builds seeded random cases — a byte-level corruption of
 * one input (safetensors, GGUF, llama2.c .bin or tokenizer, config.json, tokenizer.json, CRePE
 * config, calibration text) and random option values — runs each through the command line in this
 * process (main(argv, io)) and checks the contract: exit 2 with one `crepe:` line and no stack
 * frame, or exit 0 with a valid output; never any other exit, never a changed input. Prints one
 * JSON line per case ("start" before it runs, then the verdict).
 *
 * Usage: node --import tsx test/helpers/fuzz-runner.ts <setup.json>
 */
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { main } from '../../src/cli/main.ts';
import { ModelCheckpoint } from '../../src/model/checkpoint.ts';
import { TextTokenizer } from '../../src/model/tokenizer.ts';
import { loadCrepeConfig } from '../../src/search/crepe-config.ts';
import { seededRandom } from './random.ts';

export interface FuzzSetup {
  seed: number;
  cases: number;
  /** Scratch folder for this run's corrupted copies and outputs. */
  work: string;
  /** Pristine inputs. */
  model: string;
  gguf: string;
  llama2cBin: string;
  llama2cTokenizer: string;
  calib: string;
  evalText: string;
  crepeConfig: string;
}

export interface FuzzVerdict {
  index: number;
  kind: string;
  argv: string[];
  status: number;
  stderr: string;
  /** Empty when the contract held. */
  problems: string[];
}

const setup = JSON.parse(readFileSync(process.argv[2], 'utf8')) as FuzzSetup;
const random = seededRandom(setup.seed);
const int = (n: number): number => Math.floor(random() * n);
const pick = <T>(items: readonly T[]): T => items[int(items.length)];

/** One random byte-level corruption of `bytes`: flips, a cut, an insertion, a zeroed or repeated range. */
function corrupt(bytes: Buffer): { bytes: Buffer; how: string } {
  const at = int(bytes.length);
  switch (int(5)) {
    case 0: {
      const out = Buffer.from(bytes);
      const flips = 1 + int(8);
      // Half the time near the start, where headers live.
      const span = random() < 0.5 ? Math.min(bytes.length, 4096) : bytes.length;
      for (let i = 0; i < flips; i++) out[int(span)] = int(256);
      return { bytes: out, how: `${flips} random bytes in the first ${span}` };
    }
    case 1:
      return { bytes: bytes.subarray(0, at), how: `truncated to ${at} bytes` };
    case 2: {
      const junk = Buffer.from(Array.from({ length: 1 + int(64) }, () => int(256)));
      return { bytes: Buffer.concat([bytes.subarray(0, at), junk, bytes.subarray(at)]), how: `${junk.length} bytes inserted at ${at}` };
    }
    case 3: {
      const out = Buffer.from(bytes);
      const length = 1 + int(Math.min(4096, bytes.length - at));
      out.fill(random() < 0.5 ? 0 : 0xff, at, at + length);
      return { bytes: out, how: `${length} bytes at ${at} set to ${out[at]}` };
    }
    default: {
      const length = 1 + int(Math.min(256, bytes.length - at));
      const piece = bytes.subarray(at, at + length);
      return { bytes: Buffer.concat([bytes.subarray(0, at + length), piece, bytes.subarray(at + length)]), how: `${length} bytes at ${at} repeated` };
    }
  }
}

/** sha256 of every file under `root`. */
function treeHashes(root: string): Map<string, string> {
  const hashes = new Map<string, string>();
  const stats = statSync(root);
  if (!stats.isDirectory()) return new Map([[root, createHash('sha256').update(readFileSync(root)).digest('hex')]]);
  for (const name of readdirSync(root)) for (const [file, hash] of treeHashes(path.join(root, name))) hashes.set(file, hash);
  return hashes;
}

let caseDir = '';
/** A copy of `source` (file or model folder) in this case's folder, with `file` (inside it) corrupted. */
function corruptedCopy(source: string, file?: string): { path: string; how: string } {
  const target = path.join(caseDir, path.basename(source));
  let how = 'unchanged';
  if (statSync(source).isDirectory()) {
    mkdirSync(target);
    for (const name of readdirSync(source)) if (name !== '.crepe-output') copyFileSync(path.join(source, name), path.join(target, name));
    if (file) {
      const result = corrupt(readFileSync(path.join(source, file)));
      writeFileSync(path.join(target, file), result.bytes);
      how = `${file}: ${result.how}`;
    }
  } else {
    const result = corrupt(readFileSync(source));
    writeFileSync(target, result.bytes);
    how = result.how;
  }
  return { path: target, how };
}

/** Option values: the first `valid` of each list are accepted, the rest are hostile. */
const SPARSITY = { valid: 3, values: ['0.5', '0.3', '2:4', '0', '1', '-0.5', '1e308', 'nan', '4:2', 'abc'] };
const NSAMPLES = { valid: 3, values: ['1', '2', '3', '0', '-2', '1.5', '1e12', 'x'] };
const SEQLEN = { valid: 3, values: ['16', '32', '64', '0', '513', '100000', '7.5'] };
const METHODS = { valid: 5, values: ['magnitude', 'wanda', 'ria', 'sparsegpt', 'crepe', 'bogus'] };
/** Each case is hostile in its options or not, so that valid runs (and their outputs) are checked too. */
let hostile = false;
const option = (list: { valid: number; values: readonly string[] }): string =>
  hostile && random() < 0.5 ? pick(list.values) : list.values[int(list.valid)];
/** A random extra option (or none). */
const extra = (): string[] => (!hostile ? [] : pick([
  () => [], () => ['--per-row'], () => ['--ria-a', pick(['0', '2', '1e9', '-1'])],
  () => ['--blocksize', pick(['8', '0', '9007199254740991'])], () => ['--percdamp', pick(['0.01', '1e308', '-1'])],
  () => ['--owl'], () => ['--exclude', pick(['q_proj', 'nothing'])],
])());

interface Case {
  kind: string;
  argv: string[];
  inputs: string[];
  /** Checks a successful run's output; returns problems. */
  validate: (stdout: string) => string[];
}

function validModel(dir: string): string[] {
  try {
    const model = ModelCheckpoint.open(dir);
    try {
      model.checkAllFinite();
    } finally {
      model.close();
    }
    TextTokenizer.load(dir);
    readFileSync(path.join(dir, '.crepe-output'));
    return [];
  } catch (error) {
    return [`the output ${dir} is not a valid model: ${(error as Error).message}`];
  }
}

function makeCase(index: number): Case {
  caseDir = path.join(setup.work, `case-${index}`);
  mkdirSync(caseDir, { recursive: true });
  const out = path.join(caseDir, 'out');
  const options = () => ['--nsamples', option(NSAMPLES), '--seqlen', option(SEQLEN), '--threads', '1'];
  hostile = random() < 0.5;
  const kind = pick(['convert-gguf', 'convert-gguf', 'convert-llama2c', 'convert-llama2c-tokenizer', 'prune', 'prune', 'prune', 'prune', 'eval', 'search'] as const);
  switch (kind) {
    case 'convert-gguf': {
      const input = corruptedCopy(setup.gguf);
      return { kind: `${kind} (${input.how})`, argv: ['convert', input.path, '--out', out], inputs: [input.path], validate: () => validModel(out) };
    }
    case 'convert-llama2c':
    case 'convert-llama2c-tokenizer': {
      const bin = kind === 'convert-llama2c' ? corruptedCopy(setup.llama2cBin) : { path: setup.llama2cBin, how: '' };
      const tok = kind === 'convert-llama2c' ? { path: setup.llama2cTokenizer, how: '' } : corruptedCopy(setup.llama2cTokenizer);
      return {
        kind: `${kind} (${bin.how}${tok.how})`, argv: ['convert', bin.path, '--tokenizer', tok.path, '--out', out], inputs: [bin.path, tok.path], validate: () => validModel(out),
      };
    }
    case 'prune': {
      const target = pick(['model.safetensors', 'config.json', 'tokenizer.json', 'calib', 'crepe-config', 'none'] as const);
      const model = corruptedCopy(setup.model, ['model.safetensors', 'config.json', 'tokenizer.json'].includes(target) ? target : undefined);
      const calib = target === 'calib' ? corruptedCopy(setup.calib) : { path: setup.calib, how: '' };
      const config = target === 'crepe-config' ? corruptedCopy(setup.crepeConfig) : { path: setup.crepeConfig, how: '' };
      const method = target === 'crepe-config' ? 'crepe' : option(METHODS);
      const sparsity = option(SPARSITY);
      const argv = ['prune', model.path, '--method', method, sparsity.includes(':') ? '--pattern' : '--sparsity', sparsity, '--calib', calib.path, ...options(), ...extra(), '--out', out];
      if (method === 'crepe') argv.push('--config', config.path);
      return {
        kind: `prune ${target} (${model.how}${calib.how}${config.how})`,
        argv,
        inputs: [model.path, calib.path, config.path],
        validate: () => {
          const problems = validModel(out);
          try {
            const report = JSON.parse(readFileSync(path.join(out, 'crepe-report.json'), 'utf8')) as { totals: { linearSparsity: number } };
            if (!(report.totals.linearSparsity > 0 && report.totals.linearSparsity < 1)) problems.push(`report sparsity ${report.totals.linearSparsity}`);
          } catch (error) {
            problems.push(`no readable crepe-report.json: ${(error as Error).message}`);
          }
          return problems;
        },
      };
    }
    case 'eval': {
      const target = pick(['model.safetensors', 'config.json', 'tokenizer.json', 'text', 'none'] as const);
      const model = corruptedCopy(setup.model, target === 'text' || target === 'none' ? undefined : target);
      const text = target === 'text' ? corruptedCopy(setup.evalText) : { path: setup.evalText, how: '' };
      return {
        kind: `eval ${target} (${model.how}${text.how})`,
        argv: ['eval', model.path, '--eval-ppl', text.path, '--seqlen', option(SEQLEN), '--max-chunks', option({ valid: 2, values: ['1', '2', '0', '-1'] }), '--threads', '1'],
        inputs: [model.path, text.path],
        validate: (stdout) => (/PPL \d/.test(stdout) ? [] : [`no PPL on stdout: ${stdout}`]),
      };
    }
    case 'search': {
      const config = random() < 0.5 ? corruptedCopy(setup.crepeConfig) : { path: setup.crepeConfig, how: 'unchanged' };
      return {
        kind: `search (crepe config: ${config.how})`,
        argv: ['search', setup.model, '--calib', setup.calib, '--sparsity', option({ valid: 2, values: ['0.5', '0.3', '2:4', '0', '1e308'] }), ...options(), '--crepe-k', option({ valid: 2, values: ['1', '1,3', '2', '-1'] }), '--budget', option({ valid: 2, values: ['2', '3', '0'] }), '--config', config.path, '--out', out],
        inputs: [setup.model, setup.calib, config.path],
        validate: () => {
          try {
            loadCrepeConfig(path.join(out, 'crepe-config.json'));
            return [];
          } catch (error) {
            return [`no valid crepe-config.json: ${(error as Error).message}`];
          }
        },
      };
    }
  }
}

for (let index = 0; index < setup.cases; index++) {
  const testCase = makeCase(index);
  const before = testCase.inputs.map(treeHashes);
  process.stdout.write(`${JSON.stringify({ start: index, kind: testCase.kind, argv: testCase.argv })}\n`);
  let stdout = '';
  let stderr = '';
  const status = await main(testCase.argv, {
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
    progress: false,
  });
  const problems: string[] = [];
  if (status === 2) {
    const lines = stderr.replace(/\n$/, '').split('\n');
    if (lines.length !== 1 || !lines[0].startsWith('crepe: ')) problems.push('a refusal must be exactly one "crepe:" line');
    if (/^\s+at /m.test(stderr)) problems.push('a stack frame on stderr');
  } else if (status === 0) {
    problems.push(...testCase.validate(stdout));
  } else {
    problems.push(`exit ${status} (only 0 and 2 are allowed)`);
  }
  testCase.inputs.forEach((input, i) => {
    const after = treeHashes(input);
    for (const [file, hash] of before[i]) if (after.get(file) !== hash) problems.push(`input ${file} changed`);
  });
  const verdict: FuzzVerdict = { index, kind: testCase.kind, argv: testCase.argv, status, stderr, problems };
  process.stdout.write(`${JSON.stringify(verdict)}\n`);
}
