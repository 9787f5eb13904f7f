/**
 * `npm run bench`: runs the benchmark sections in turn and writes BENCHMARKS.md, headed by a
 * description of the machine. A section that fails is reported in the file, not fatal. Numbers to
 * compare are ratios measured in the same run: absolute times drift on shared machines.
 *
 *   node --import tsx bench/run.ts [SECTION…] [--only engine,prune-math,pipeline,pho,pho-scale,combos,startup,peer,zeroshot] [--quick] [--out FILE] [--keep-model]
 *
 * SECTION…  sections named on their own (`npm run bench -- pho-scale`), the same as --only.
 * --quick  smaller sizes for a smoke run (pipeline and PHO; the other sections have one size).
 * --only   run some sections; optional sections (zeroshot) run only when named here.
 * A full run writes BENCHMARKS.md; --quick and --only print to stdout unless --out names a file,
 * so a partial or smoke run never replaces the full report by accident.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { atomicWriteFile } from '../src/io/atomic.ts';
import { removeSyntheticModel, LLAMA2_7B_2_LAYERS, QUICK_MODEL, TINYLLAMA_2_LAYERS, TINYLLAMA_4_LAYERS } from './synthetic-model.ts';

type Log = (line: string) => void;
interface RunOptions { quick: boolean; keepModel: boolean }

/** Each section is imported only when it runs, so one broken module cannot stop the others. */
const SECTIONS: Record<string, (log: Log, options: RunOptions) => Promise<string>> = {
  engine: async (log) => (await import('./engine.ts')).benchEngine(log),
  'prune-math': async (log) => (await import('./prune-math.ts')).benchPruneMath(log),
  pipeline: async (log, options) => (await import('./pipeline.ts')).benchPipeline(log, options),
  pho: async (log, options) => (await import('./pho.ts')).benchPho(log, options),
  'pho-scale': async (log, options) => (await import('./pho-scale.ts')).benchPhoScale(log, options),
  combos: async (log) => (await import('./combos.ts')).benchCombos(log),
  startup: async (log) => (await import('./startup.ts')).benchStartup(log),
  peer: async (log, options) => (await import('./peer.ts')).benchPeer(log, options),
  zeroshot: async (log, options) => (await import('./zeroshot.ts')).benchZeroShot(log, options),
};
/** Sections a full run leaves out. */
const OPTIONAL = new Set(['zeroshot']);

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function packageVersion(name: string): string {
  try {
    const require = createRequire(path.join(repoRoot, 'package.json'));
    return (JSON.parse(readFileSync(require.resolve(`${name}/package.json`), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

function gitCommit(): string {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoRoot, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: repoRoot, encoding: 'utf8' }).trim() !== '';
    return dirty ? `${commit} (with uncommitted changes)` : commit;
  } catch {
    return 'unknown';
  }
}

const loadAtStart = os.loadavg()[0];

/** The CPU's vector-extension flags that decide GEMM speed (from /proc/cpuinfo, Linux). */
function simdFlags(): string {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('flags'));
    const flags = new Set(line?.split(':')[1]?.trim().split(/\s+/) ?? []);
    const wanted = ['avx', 'avx2', 'fma', 'f16c', 'avx512f', 'avx512bw', 'avx512vl', 'avx512_vnni', 'avx512_bf16', 'avx512_fp16', 'avx_vnni', 'amx_bf16', 'amx_int8', 'amx_tile'];
    const present = wanted.filter((flag) => flags.has(flag));
    return present.length > 0 ? `${present.join(' ')} (absent: ${wanted.filter((flag) => !flags.has(flag)).join(' ') || 'none'})` : 'unknown';
  } catch {
    return 'unknown';
  }
}

function machineHeader(names: string[], options: RunOptions, sectionSeconds: Map<string, number>): string {
  const cpus = os.cpus();
  const total = [...sectionSeconds.values()].reduce((a, b) => a + b, 0);
  return [
    '# crepe benchmarks',
    '',
    'Written by `npm run bench` (bench/run.ts). Absolute times drift on shared machines; compare the ratios, each measured within one run.',
    '',
    '| | |',
    '|---|---|',
    `| date | ${new Date().toISOString()} |`,
    `| CPU | ${cpus[0]?.model.trim() ?? 'unknown'}, ${cpus.length} logical CPUs |`,
    `| CPU flags (SIMD) | ${simdFlags()} |`,
    `| load average (1 min) | ${loadAtStart.toFixed(1)} at the start, ${os.loadavg()[0].toFixed(1)} at the end, on ${cpus.length} CPUs |`,
    `| memory | ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB |`,
    `| OS | ${os.type()} ${os.release()} (${os.arch()}) |`,
    `| Node | ${process.version} |`,
    `| onnxruntime-node | ${packageVersion('onnxruntime-node')} |`,
    `| crepe commit | ${gitCommit()} |`,
    `| sections | ${names.map((name) => `${name} (${(sectionSeconds.get(name) ?? 0).toFixed(0)} s)`).join(', ')}; total ${(total / 60).toFixed(1)} min${options.quick ? ' — **--quick smoke run, not the benchmark**' : ''} |`,
    '',
  ].join('\n');
}

function parseArgs(argv: string[]): { names: string[]; quick: boolean; out: string | null; keepModel: boolean } {
  const valueOf = (flag: string): string | undefined => {
    const at = argv.indexOf(flag);
    return at >= 0 ? argv[at + 1] : undefined;
  };
  const valueFlags = new Set(['--only', '--out']);
  const positional = argv.filter((arg, i) => !arg.startsWith('--') && !valueFlags.has(argv[i - 1]));
  const only = [valueOf('--only'), ...positional].filter((v) => v !== undefined).join(',') || undefined;
  const names = only ? only.split(',').map((s) => s.trim()).filter(Boolean) : Object.keys(SECTIONS).filter((name) => !OPTIONAL.has(name));
  const unknown = names.filter((name) => !(name in SECTIONS));
  if (unknown.length > 0) {
    console.error(`--only: unknown section(s) ${unknown.join(', ')}; expected some of ${Object.keys(SECTIONS).join(', ')}`);
    process.exit(2);
  }
  const quick = argv.includes('--quick');
  const partial = quick || only !== undefined;
  const out = valueOf('--out') ?? (partial ? null : path.join(repoRoot, 'BENCHMARKS.md'));
  return { names, quick, out, keepModel: argv.includes('--keep-model') };
}

async function main(): Promise<void> {
  const { names, quick, out, keepModel } = parseArgs(process.argv.slice(2));
  const options: RunOptions = { quick, keepModel };
  const runStarted = performance.now();
  const elapsed = (): string => `${((performance.now() - runStarted) / 1000).toFixed(0)} s`;
  const sections: string[] = [];
  const sectionSeconds = new Map<string, number>();
  const failed: string[] = [];

  try {
    for (const name of names) {
      const log: Log = (line) => console.error(`[${elapsed()}] ${line}`);
      log(`== ${name}`);
      const started = performance.now();
      try {
        sections.push((await SECTIONS[name](log, options)).trimEnd() + '\n');
      } catch (error) {
        failed.push(name);
        const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
        log(`${name} failed: ${message}`);
        sections.push(`## ${name}: failed\n\nThe section threw, so it has no numbers in this run:\n\n\`\`\`\n${message}\n\`\`\`\n`);
      }
      sectionSeconds.set(name, (performance.now() - started) / 1000);
      log(`${name} done in ${sectionSeconds.get(name)!.toFixed(0)} s`);
    }
  } finally {
    if (!keepModel) {
      removeSyntheticModel(TINYLLAMA_4_LAYERS);
      removeSyntheticModel(LLAMA2_7B_2_LAYERS);
      removeSyntheticModel(TINYLLAMA_2_LAYERS);
      removeSyntheticModel(QUICK_MODEL);
    }
  }

  const document = `${machineHeader(names, options, sectionSeconds)}\n${sections.join('\n')}`;
  if (out) {
    await atomicWriteFile(out, document);
    console.error(`wrote ${out} in ${elapsed()}${failed.length > 0 ? `; failed sections: ${failed.join(', ')}` : ''}`);
  } else {
    console.log(document);
    console.error(`done in ${elapsed()}${failed.length > 0 ? `; failed sections: ${failed.join(', ')}` : ''}`);
  }
  if (failed.length > 0) process.exitCode = 1;
}

await main();
