/**
 * `npm run bench`: runs the benchmark sections in turn and writes BENCHMARKS.md, headed by a
 * description of the machine. A section that fails is reported in the file, not fatal. Numbers to
 * compare are ratios measured in the same run: absolute times drift on shared machines. The usage
 * (`--help`) is USAGE below.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { atomicWriteFile } from '../src/io/atomic.ts';
import { followRelauncher, runInChild } from '../src/cli/relaunch.ts';
import { mallocHugePages, relaunchEnvForThisProcess } from '../src/util/huge-pages.ts';
import { removeWrittenSyntheticModels } from './synthetic-model.ts';

const USAGE = `usage: npm run bench -- [SECTION…] [--only LIST] [--quick] [--out FILE] [--keep-model] [--remove-models]
       (or node --import tsx bench/run.ts …)

  SECTION…         sections named on their own (npm run bench -- pho-scale), the same as --only
  --only LIST      comma-separated sections: engine, prune-math, pipeline, pho, pho-scale, combos,
                   startup, peer, zeroshot; optional sections (zeroshot) run only when named
  --quick          smaller sizes for a smoke run (pipeline and PHO; the other sections have one size)
  --out FILE       where the report goes. A full run writes BENCHMARKS.md; --quick and --only print
                   to stdout unless --out names a file, so a partial or smoke run never replaces the
                   full report by accident
  --keep-model     also keep pho-scale's proxy cache when this run built it (it is removed at the end
                   otherwise; a cache the run found is always kept)
  --remove-models  after the run, remove the synthetic models this run wrote
  --help           this text

Synthetic models (random weights with TinyLlama's or Llama-2-7B's layer shapes) are shared by
every run on this machine:
  ${path.join(os.tmpdir(), 'crepe-bench-model-*')}
The first run that needs one writes it, later runs reuse it, and no run removes a model it did not
write (another run may be using it). They are kept unless --remove-models is given; remove them by
hand when no benchmark is running.`;

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
    `| memory | ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB; ${mallocHugePages() ? 'transparent huge pages for malloc (as the crepe command runs)' : '4 KiB pages for malloc (no THP, or THP not advised)'} |`,
    `| OS | ${os.type()} ${os.release()} (${os.arch()}) |`,
    `| Node | ${process.version} |`,
    `| onnxruntime-node | ${packageVersion('onnxruntime-node')} |`,
    `| crepe commit | ${gitCommit()} |`,
    `| sections | ${names.map((name) => `${name} (${(sectionSeconds.get(name) ?? 0).toFixed(0)} s)`).join(', ')}; total ${(total / 60).toFixed(1)} min${options.quick ? ' — **--quick smoke run, not the benchmark**' : ''} |`,
    '',
  ].join('\n');
}

/** A usage error: one line and the usage, exit 2. */
function refuse(message: string): never {
  console.error(`bench: ${message}\n\n${USAGE}`);
  process.exit(2);
}

function parseArgs(argv: string[]): { names: string[]; quick: boolean; out: string | null; keepModel: boolean; removeModels: boolean } {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(USAGE);
    process.exit(0);
  }
  const valueFlags = new Set(['--only', '--out']);
  const switches = new Set(['--quick', '--keep-model', '--remove-models']);
  for (const [i, arg] of argv.entries()) {
    if (!arg.startsWith('-') || valueFlags.has(argv[i - 1])) continue;
    if (valueFlags.has(arg) && (i + 1 >= argv.length || argv[i + 1].startsWith('-'))) refuse(`${arg} needs a value`);
    if (!valueFlags.has(arg) && !switches.has(arg)) refuse(`unknown option ${arg}`);
  }
  const valueOf = (flag: string): string | undefined => {
    const at = argv.indexOf(flag);
    return at >= 0 ? argv[at + 1] : undefined;
  };
  const positional = argv.filter((arg, i) => !arg.startsWith('-') && !valueFlags.has(argv[i - 1]));
  const only = [valueOf('--only'), ...positional].filter((v) => v !== undefined).join(',') || undefined;
  const names = only ? only.split(',').map((s) => s.trim()).filter(Boolean) : Object.keys(SECTIONS).filter((name) => !OPTIONAL.has(name));
  const unknown = names.filter((name) => !(name in SECTIONS));
  if (unknown.length > 0) refuse(`unknown section(s) ${unknown.join(', ')}; expected some of ${Object.keys(SECTIONS).join(', ')}`);
  const quick = argv.includes('--quick');
  const partial = quick || only !== undefined;
  const out = valueOf('--out') ?? (partial ? null : path.join(repoRoot, 'BENCHMARKS.md'));
  return { names, quick, out, keepModel: argv.includes('--keep-model'), removeModels: argv.includes('--remove-models') };
}

async function main(): Promise<void> {
  const { names, quick, out, keepModel, removeModels } = parseArgs(process.argv.slice(2));
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
    if (removeModels) {
      const removed = removeWrittenSyntheticModels();
      console.error(removed.length > 0 ? `removed the synthetic models this run wrote: ${removed.join(', ')}` : 'this run wrote no synthetic model; none removed');
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

// The benchmarks measure crepe in the environment the `crepe` command runs in: where it would
// start itself again for huge pages (util/huge-pages.ts), so does the benchmark.
const hugePagesEnv = relaunchEnvForThisProcess();
const relaunched = hugePagesEnv ? await runInChild(process.argv[1], process.argv.slice(2), hugePagesEnv) : null;
if (relaunched !== null) process.exitCode = relaunched;
else {
  followRelauncher();
  await main();
}
