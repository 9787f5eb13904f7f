/**
 * Start-up time of `crepe --help`: the compiled CLI (bin/crepe.js → dist/) against the TypeScript
 * sources run through tsx's loader (what bin/crepe.js did before the package shipped compiled
 * JavaScript), next to a bare `node` and bare imports of the dependencies the CLI loads at start-up
 * (each in its own process: what importing it lazily could save). Builds dist/ first.
 * Each command runs once to warm the file cache, then RUNS times, the commands taking turns so that
 * all see the same machine load; the table gives the median, min and max wall time.
 *
 * Standalone: node --import tsx bench/startup.ts
 */
import { execFileSync, spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const RUNS = 10;
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

interface Variant { name: string; args: string[] }

const VARIANTS: Variant[] = [
  { name: '`node -e 0` (bare Node start)', args: ['-e', '0'] },
  ...['commander', 'onnxruntime-node', 'onnx-proto', '@huggingface/tokenizers'].map((dependency) => ({
    name: `import of ${dependency} alone`, args: ['--input-type=module', '-e', `await import('${dependency}')`],
  })),
  { name: 'import of the whole library (dist/index.js: what a CLI loading it eagerly would pay)', args: ['--input-type=module', '-e', "await import('./dist/index.js')"] },
  { name: '**before**: `node --import tsx src/cli/main.ts --help` (TypeScript through tsx)', args: ['--import', 'tsx', 'src/cli/main.ts', '--help'] },
  { name: '**after**: `node bin/crepe.js --help` (compiled dist/)', args: ['bin/crepe.js', '--help'] },
];

function timeOnce(args: string[]): number {
  const started = process.hrtime.bigint();
  const result = spawnSync(process.execPath, args, { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (result.status !== 0) throw new Error(`node ${args.join(' ')} exited with ${result.status}: ${result.stderr.trim().split('\n').at(-1)}`);
  return ms;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

export async function benchStartup(log: (line: string) => void): Promise<string> {
  log('building dist/ (tsc -p tsconfig.build.json)');
  execFileSync(process.execPath, [path.join(repoRoot, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: repoRoot, stdio: 'pipe' });
  const times = VARIANTS.map((): number[] => []);
  for (const variant of VARIANTS) timeOnce(variant.args);
  for (let run = 0; run < RUNS; run++) {
    VARIANTS.forEach((variant, i) => times[i].push(timeOnce(variant.args)));
    log(`run ${run + 1}/${RUNS}: ${times.map((t) => `${t[run].toFixed(0)} ms`).join(', ')}`);
  }
  const medians = times.map(median);
  const [bare, before, after] = [medians[0], medians.at(-2)!, medians.at(-1)!];
  const rows = VARIANTS.map((variant, i) =>
    `| ${variant.name} | ${medians[i].toFixed(0)} | ${Math.min(...times[i]).toFixed(0)} | ${Math.max(...times[i]).toFixed(0)} |`);
  return [
    '## Start-up: `crepe --help`, compiled vs tsx',
    '',
    `Wall time of one process, ${RUNS} runs each after one warm-up, the commands taking turns (bench/startup.ts).`,
    '',
    '| command | median (ms) | min | max |',
    '|---|---:|---:|---:|',
    ...rows,
    '',
    `**Compiled start-up: ${(before / after).toFixed(2)}× faster than through tsx** (median ${before.toFixed(0)} → ${after.toFixed(0)} ms); ` +
      `over a bare Node start: ${(before - bare).toFixed(0)} → ${(after - bare).toFixed(0)} ms.`,
    '',
  ].join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  console.log(await benchStartup((line) => console.error(line)));
}
