/**
 * RIA against CRePE out of the box on stories260K: `--method ria`, `--method crepe` (the shipped
 * per-target default) and `--method crepe --auto`, calibrated on C4 (16 × 128) with seeds 3, 4 and 5
 * (seeds no shipped default was chosen with), evaluated on the whole WikiText-2 test set in windows of
 * 256 tokens.
 * Each run is cached in results/acceptance/<id>.json (a cache written with other evaluation settings,
 * or a shipped-default or --auto run whose default has changed since, is measured again: --auto
 * confirms the default and takes its a and variant); the table is printed as Markdown (RESULTS.md, section "CRePE out of the box").
 *
 * --seeds measures other calibration seeds the same way (a diagnostic beyond the acceptance's three).
 *
 *   node --import tsx scripts/acceptance.ts [--targets u50,u60,2:4] [--arms ria,crepe,auto] [--seeds 3,4,5]
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { convertToHuggingFace } from '../src/model/convert.ts';
import { pruneModel, type PruneRequest } from '../src/workflows/prune.ts';
import type { PruneTarget } from '../src/prune/target.ts';
import { defaultCrepeConfigFor } from '../src/search/crepe-defaults.ts';
import { loadCrepeConfig } from '../src/search/crepe-config.ts';
import { mean, std } from '../src/util/stats.ts';
import { C4_SAMPLE, REPO_ROOT, STORIES_BIN, STORIES_TOK, WIKITEXT_TEST } from '../test/helpers/shared.ts';

const root = REPO_ROOT;
const DATA = { bin: STORIES_BIN, tok: STORIES_TOK, c4: C4_SAMPLE, wikitext: WIKITEXT_TEST };
const SEEDS = [3, 4, 5];
const TARGETS: Record<string, { label: string; target: PruneTarget }> = {
  u50: { label: '50 %', target: { kind: 'unstructured', sparsity: 0.5 } },
  u60: { label: '60 %', target: { kind: 'unstructured', sparsity: 0.6 } },
  '2:4': { label: '2:4', target: { kind: 'nm', n: 2, m: 4 } },
};
const ARMS = {
  ria: { label: 'RIA', fields: { method: 'ria' } },
  crepe: { label: 'CRePE (shipped default)', fields: { method: 'crepe' } },
  auto: { label: 'CRePE --auto', fields: { method: 'crepe', auto: true } },
} as const satisfies Record<string, { label: string; fields: Partial<PruneRequest> }>;
const cacheDir = path.join(root, 'results/acceptance');

/** The evaluation every run uses: the whole WikiText-2 test set (no window cap). */
const EVALUATION = { text: 'wiki.test.raw', seqlen: 256, maxChunks: null };

interface Run {
  id: string; ppl: number; seconds: number; evaluation: typeof EVALUATION & { windows: number }; config: unknown; auto: unknown;
  /** The shipped default's parameters when the run used one (the `crepe` and `auto` arms). */
  defaultParams?: unknown;
}

const argList = (flag: string) => {
  const i = process.argv.indexOf(flag);
  return i >= 0 ? process.argv[i + 1].split(',') : undefined;
};
const cached = (file: string, defaultParams: unknown): Run | undefined => {
  if (!existsSync(file)) return undefined;
  const run = JSON.parse(readFileSync(file, 'utf8')) as Run;
  const e = run.evaluation;
  const sameEvaluation = e && e.text === EVALUATION.text && e.seqlen === EVALUATION.seqlen && e.maxChunks === EVALUATION.maxChunks;
  const sameDefault = JSON.stringify(run.defaultParams ?? null) === JSON.stringify(defaultParams);
  return sameEvaluation && sameDefault ? run : undefined;
};
/** The parameters of the shipped default for `target`, as the `crepe` arm would load them. */
const shippedParams = (target: PruneTarget): unknown => {
  const { format, provenance, ...params } = loadCrepeConfig(defaultCrepeConfigFor(target).file);
  return params;
};

async function main(): Promise<void> {
  mkdirSync(cacheDir, { recursive: true });
  const targets = argList('--targets') ?? Object.keys(TARGETS);
  const arms = (argList('--arms') ?? Object.keys(ARMS)) as Array<keyof typeof ARMS>;
  const seeds = argList('--seeds')?.map(Number) ?? SEEDS;
  const work = mkdtempSync(path.join(os.tmpdir(), 'crepe-acceptance-'));
  const model = path.join(work, 'stories260K');
  await convertToHuggingFace(DATA.bin, model, { tokenizer: DATA.tok });
  const table: Record<string, Record<string, number[]>> = {};
  try {
    for (const t of targets) {
      table[t] = {};
      for (const arm of arms) {
        const { fields } = ARMS[arm];
        table[t][arm] = [];
        for (const seed of seeds) {
          const id = `${t.replace(':', '_')}-${arm}-s${seed}`;
          const file = path.join(cacheDir, `${id}.json`);
          const defaultParams = arm === 'ria' ? null : shippedParams(TARGETS[t].target);
          if (!cached(file, defaultParams)) {
            const result = await pruneModel({
              model, out: path.join(work, id), target: TARGETS[t].target, ...fields,
              calib: DATA.c4, nsamples: 16, seqlen: 128, seed, evalText: DATA.wikitext, evalSeqlen: EVALUATION.seqlen, threads: 2,
            } as PruneRequest);
            const run: Run = {
              id, ppl: result.evaluation!.ppl, seconds: result.totals.seconds, evaluation: { ...EVALUATION, windows: result.evaluation!.windows },
              config: result.crepeConfig ?? null, auto: result.auto ?? null, defaultParams,
            };
            writeFileSync(file, `${JSON.stringify(run, null, 2)}\n`);
            rmSync(path.join(work, id), { recursive: true, force: true });
            process.stderr.write(`[${id}] PPL ${run.ppl.toFixed(2)} (${run.seconds.toFixed(1)} s)\n`);
          }
          table[t][arm].push((JSON.parse(readFileSync(file, 'utf8')) as Run).ppl);
        }
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const lines = [`| target | ${arms.map((a) => ARMS[a].label).join(' | ')} |`, `|---|${arms.map(() => '---').join('|')}|`];
  for (const t of targets) {
    const ria = table[t].ria ? mean(table[t].ria) : Number.NaN;
    lines.push(`| ${TARGETS[t].label} | ${arms.map((arm) => {
      const v = table[t][arm];
      const rel = arm === 'ria' ? '' : ` (${((mean(v) / ria - 1) * 100).toFixed(1)} %)`;
      return `${mean(v).toFixed(2)} ± ${std(v).toFixed(2)}${rel}`;
    }).join(' | ')} |`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

await main();
