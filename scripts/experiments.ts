/**
 * The experiments behind RESULTS.md, as exact `crepe` command lines. Each run's summary is cached
 * in results/runs/<id>.json (delete it to run again); RESULTS.md's tables are rendered from those
 * files by scripts/render-results.ts.
 *
 *   node --import tsx scripts/experiments.ts [--only baselines,crepe,combos,zeroshot]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { C4_SAMPLE, PTB_VALID, REPO_ROOT, STORIES_BIN, STORIES_TOK, TASK_DIR, WIKITEXT_TEST, sharedRelative } from '../test/helpers/shared.ts';

const root = REPO_ROOT;
const runsDir = path.join(root, 'results/runs');
const configsDir = path.join(root, 'results/configs');
const work = path.join(root, 'results/work');
const crepe = path.join(root, 'bin/crepe.js');

export const DATA = {
  bin: STORIES_BIN,
  tok: STORIES_TOK,
  wikitext: WIKITEXT_TEST,
  c4: C4_SAMPLE,
  ptbValid: PTB_VALID,
  tasks: TASK_DIR,
};
const model = path.join(work, 'stories260K');
/** Calibration and evaluation settings of every run (the golden file's). */
const calibration = (seed = 0): string[] => ['--calib', DATA.c4, '--nsamples', '32', '--seqlen', '256', '--seed', String(seed)];
const CALIB = calibration(0);
const EVAL = ['--eval-ppl', DATA.wikitext, '--eval-seqlen', '256'];
const SEEDS = [0, 1, 2];
export const SETTINGS: Record<string, string[]> = {
  'u50': ['--sparsity', '0.5'],
  'u60': ['--sparsity', '0.6'],
  '2:4': ['--pattern', '2:4'],
  '4:8': ['--pattern', '4:8', '--exclude', 'mlp.down_proj'],
};

export interface RunSummary {
  id: string;
  command: string;
  ppl: number;
  linearSparsity: number;
  seconds: number;
}

/** The command line as a user would type it, with paths relative to the repository. */
function display(args: string[]): string {
  return ['crepe', ...args].map(sharedRelative).join(' ');
}

function crepeRun(args: string[]): { stdout: string; seconds: number } {
  const started = performance.now();
  const result = spawnSync(process.execPath, [crepe, ...args], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 28 });
  if (result.status !== 0) throw new Error(`${display(args)} failed (${result.status}): ${result.stderr.split('\n').filter(Boolean).slice(-3).join(' | ')}`);
  return { stdout: result.stdout, seconds: (performance.now() - started) / 1000 };
}

function cached<T>(id: string, produce: () => T): T {
  const file = path.join(runsDir, `${id.replace(/[^\w.+-]/g, '_')}.json`);
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as T;
  const value = produce();
  writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);
  return value;
}

export function prune(id: string, args: string[]): RunSummary {
  return cached(id, () => {
    const out = path.join(work, `pruned-${id.replace(/[^\w.+-]/g, '_')}`);
    const full = ['prune', model, ...args, '--out', out, '--overwrite', ...EVAL, '--json'];
    process.stderr.write(`[${id}] ${display(full)}\n`);
    const { stdout, seconds } = crepeRun(full);
    const report = JSON.parse(stdout);
    rmSync(out, { recursive: true, force: true });
    return { id, command: display(full.filter((a) => a !== '--overwrite' && a !== '--json').map((a) => (a === out ? 'out/' : a))), ppl: report.evaluation.ppl, linearSparsity: report.totals.linearSparsity, seconds };
  });
}

function denseRun(): RunSummary {
  return cached('dense', () => {
    const full = ['eval', model, '--ppl', DATA.wikitext, '--seqlen', '256', '--json'];
    const { stdout, seconds } = crepeRun(full);
    return { id: 'dense', command: display(full.filter((a) => a !== '--json')), ppl: JSON.parse(stdout).ppl, linearSparsity: 0, seconds };
  });
}

export interface SearchSummary {
  id: string;
  command: string;
  seconds: number;
  config: Record<string, unknown>;
}

function search(id: string, args: string[]): SearchSummary {
  return cached(id, () => {
    const out = path.join(work, `search-${id.replace(/[^\w.+-]/g, '_')}`);
    const full = ['search', model, ...CALIB, ...args, '--out', out, '--overwrite', '--json'];
    process.stderr.write(`[${id}] ${display(full)}\n`);
    const { seconds } = crepeRun(full);
    const config = JSON.parse(readFileSync(path.join(out, 'crepe-config.json'), 'utf8'));
    copyFileSync(path.join(out, 'crepe-config.json'), path.join(configsDir, `${id.replace(/[^\w.+-]/g, '_')}.json`));
    copyFileSync(path.join(out, 'search-log.json'), path.join(configsDir, `${id.replace(/[^\w.+-]/g, '_')}.log.json`));
    return { id, command: display(full.filter((a) => a !== '--overwrite' && a !== '--json').map((a) => (a === out ? 'out/' : a))), seconds, config };
  });
}

function validation(id: string, args: string[]): SearchSummary {
  return cached(id, () => {
    const out = path.join(root, 'results/validation', id.replace(/[^\w.+-]/g, '_'));
    const full = ['search', model, ...CALIB, ...args, '--out', out, '--overwrite', '--json'];
    process.stderr.write(`[${id}] ${display(full)}\n`);
    const { stdout, seconds } = crepeRun(full);
    return { id, command: display(full.filter((a) => a !== '--overwrite' && a !== '--json')), seconds, config: JSON.parse(stdout) };
  });
}

const HELD_OUT = ['--heldout', DATA.ptbValid, '--heldout-max-chunks', '200'];
const fileId = (id: string): string => id.replace(/[^\w.+-]/g, '_');
const configPath = (id: string) => path.join(configsDir, `${fileId(id)}.json`);

function baselines(): void {
  denseRun();
  for (const [setting, flags] of Object.entries(SETTINGS)) {
    for (const method of ['magnitude', 'wanda', 'sparsegpt', 'ria']) prune(`${method}-${setting}`, ['--method', method, ...flags, ...CALIB]);
  }
}

function crepeStudy(): void {
  for (const setting of ['u50', 'u60', '2:4']) {
    const flags = SETTINGS[setting];
    validation(`validate-${setting}`, ['--validate', '32', ...flags, ...HELD_OUT]);
    search(`pho-${setting}`, ['--strategy', 'pho', ...flags, '--proxy-from', path.join(root, 'results/validation', `validate-${fileId(setting)}`, 'validation.json'), '--confirm', '5', ...HELD_OUT]);
    search(`hillclimb-${setting}`, ['--strategy', 'hillclimb', ...flags, '--budget', '40', ...HELD_OUT]);
    for (const seed of SEEDS) {
      const calib = calibration(seed);
      prune(`ria-${setting}-s${seed}`, ['--method', 'ria', ...flags, ...calib]);
      prune(`crepe-pho-${setting}-s${seed}`, ['--method', 'crepe', '--config', configPath(`pho-${setting}`), ...flags, ...calib]);
      prune(`crepe-hc-${setting}-s${seed}`, ['--method', 'crepe', '--config', configPath(`hillclimb-${setting}`), ...flags, ...calib]);
    }
  }
}

/** PHO with the default proxy (gini-ref, sign + from the 50 % validation) instead of each setting's own validated proxy. */
function phoDefaultProxy(): void {
  for (const setting of ['u50', 'u60', '2:4']) {
    const flags = SETTINGS[setting];
    search(`pho-default-${setting}`, ['--strategy', 'pho', ...flags, '--confirm', '5', ...HELD_OUT]);
    for (const seed of SEEDS) {
      prune(`crepe-pho-default-${setting}-s${seed}`, ['--method', 'crepe', '--config', configPath(`pho-default-${setting}`), ...flags, ...calibration(seed)]);
    }
  }
}

/** PHO and hill climbing back to back under the same machine load: the search-cost ratio. */
function timing(): void {
  search('timing-pho-u50', ['--strategy', 'pho', ...SETTINGS.u50, '--confirm', '5', ...HELD_OUT]);
  search('timing-hillclimb-u50', ['--strategy', 'hillclimb', ...SETTINGS.u50, '--budget', '40', ...HELD_OUT]);
  search('timing-pho-noconfirm-u50', ['--strategy', 'pho', ...SETTINGS.u50]);
}

/** Transfer: the configuration PHO found at 50 % unstructured, applied unchanged to other settings. */
function transfer(): void {
  for (const setting of ['u60', '2:4']) {
    for (const seed of SEEDS) {
      prune(`crepe-transfer-${setting}-s${seed}`, ['--method', 'crepe', '--config', configPath('pho-u50'), ...SETTINGS[setting], ...calibration(seed)]);
    }
  }
}

/** The shipped default configuration (no --config) at every setting. */
function shippedDefault(): void {
  for (const setting of ['u60', '2:4']) {
    for (const seed of SEEDS) prune(`crepe-default-${setting}-s${seed}`, ['--method', 'crepe', ...SETTINGS[setting], ...calibration(seed)]);
  }
}

function combos(methods: string[]): void {
  for (const setting of ['u50', 'u60', '2:4']) {
    const flags = SETTINGS[setting];
    const techniques: Record<string, string[]> = {
      alone: [],
      owl: ['--owl'],
      dsnot: ['--dsnot'],
      reconstruct: setting === '2:4' ? [] : ['--reconstruct'],
      'permute-realloc': setting === '2:4' ? ['--permute', 'reallocation'] : [],
      'permute-lsa': setting === '2:4' ? ['--permute', 'lsa'] : [],
    };
    for (const method of methods) {
      const methodFlags = method === 'crepe' ? ['--method', 'crepe', '--config', configPath(`pho-${setting}`)] : ['--method', method];
      for (const [technique, extra] of Object.entries(techniques)) {
        if (technique !== 'alone' && extra.length === 0) continue;
        for (const seed of SEEDS) {
          const calib = calibration(seed);
          prune(`combo-${method}-${technique}-${setting}-s${seed}`, [...methodFlags, ...flags, ...extra, ...calib]);
        }
      }
    }
  }
}

export interface ZeroShotSummary {
  id: string;
  command: string;
  ppl: number | null;
  linearSparsity: number;
  seconds: number;
  tasks: { task: string; docs: number; skipped: number; truncatedRequests: number; metrics: Record<string, { value: number; stderr: number | null }> }[];
}

/** Zero-shot accuracy on all eight tasks: dense, and RIA / CRePE (shipped config) at 50 %, seed 0. */
function zeroShot(): void {
  const TASKS = ['--tasks', 'all', '--task-dir', DATA.tasks];
  const keep = (tasks: (ZeroShotSummary['tasks'][number] & { seconds?: number })[]) => tasks.map(({ seconds: _seconds, ...rest }) => rest);
  cached<ZeroShotSummary>('zeroshot-dense', () => {
    const full = ['eval', model, ...TASKS, '--json'];
    process.stderr.write(`[zeroshot-dense] ${display(full)}\n`);
    const { stdout, seconds } = crepeRun(full);
    return { id: 'zeroshot-dense', command: display(full.filter((a) => a !== '--json')), ppl: null, linearSparsity: 0, seconds, tasks: keep(JSON.parse(stdout).tasks) };
  });
  for (const method of ['ria', 'crepe']) {
    const id = `zeroshot-${method}-u50-s0`;
    cached<ZeroShotSummary>(id, () => {
      const out = path.join(work, `pruned-${id}`);
      const full = ['prune', model, '--method', method, ...SETTINGS.u50, ...CALIB, '--out', out, '--overwrite', ...EVAL, '--eval-tasks', 'all', '--eval-task-dir', DATA.tasks, '--json'];
      process.stderr.write(`[${id}] ${display(full)}\n`);
      const { stdout, seconds } = crepeRun(full);
      const report = JSON.parse(stdout);
      rmSync(out, { recursive: true, force: true });
      const command = display(full.filter((a) => a !== '--overwrite' && a !== '--json').map((a) => (a === out ? 'out/' : a)));
      return { id, command, ppl: report.evaluation.ppl, linearSparsity: report.totals.linearSparsity, seconds, tasks: keep(report.zeroShot.tasks) };
    });
  }
}

function main(): void {
  const onlyIndex = process.argv.indexOf('--only');
  const only = onlyIndex > 0 ? process.argv[onlyIndex + 1].split(',') : ['baselines', 'crepe', 'transfer', 'combos', 'zeroshot'];
  for (const dir of [runsDir, configsDir, work]) mkdirSync(dir, { recursive: true });
  if (!existsSync(path.join(model, 'model.safetensors'))) crepeRun(['convert', DATA.bin, '--tokenizer', DATA.tok, '--out', model, '--overwrite']);
  if (only.includes('baselines')) baselines();
  if (only.includes('crepe')) crepeStudy();
  if (only.includes('pho-default')) phoDefaultProxy();
  if (only.includes('timing')) timing();
  if (only.includes('transfer')) transfer();
  if (only.includes('default')) shippedDefault();
  if (only.includes('zeroshot')) zeroShot();
  const methodsIndex = process.argv.indexOf('--combo-methods');
  if (only.includes('combos')) combos(methodsIndex > 0 ? process.argv[methodsIndex + 1].split(',') : ['wanda', 'ria', 'crepe']);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) main();
