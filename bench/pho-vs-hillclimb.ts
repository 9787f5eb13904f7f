/**
 * PHO against hill climbing at a size where the search cost matters: the 4-layer TinyLlama-shaped
 * synthetic model. A whole hill climb there takes hours, so each side's unit costs are measured
 * once in this process and multiplied by the counts a real back-to-back search on stories260K used
 * (its two output directories, `--hillclimb DIR --pho DIR`):
 *   hill climbing = trials × (prune + held-out PPL), the trial hill climbing pays per candidate;
 *   PHO           = dense pass + evaluations × one proxy evaluation + confirmations × one confirmation.
 * Calibration 32 × 256 and held-out 200 × 256 random token ids: the stories260K protocol's sizes.
 *
 *   node --import tsx bench/pho-vs-hillclimb.ts --hillclimb DIR --pho DIR [--phase trial|pho|all] [--state FILE]
 *
 * The phases can run separately (each under its own lock, on a shared machine) into one state file;
 * the section is printed once both are in it.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ModelCheckpoint } from '../src/model/checkpoint.ts';
import { pruneSettings } from '../src/prune/settings.ts';
import type { PruneTarget } from '../src/prune/settings.ts';
import type { CrepeParams } from '../src/prune/scores/crepe.ts';
import { ProxyContext, type ProxyName } from '../src/search/proxy.ts';
import { concatWindows } from '../src/search/auto.ts';
import { pruneAndMeasure } from '../src/search/trial.ts';
import { argValue } from './child-process.ts';
import { benchCacheOptions, randomParams } from './pho.ts';
import { ensureSyntheticModel, randomTokenWindows, TINYLLAMA_4_LAYERS } from './synthetic-model.ts';

const NSAMPLES = 32;
const SEQLEN = 256;
const HELDOUT_WINDOWS = 200;
const EVALUATIONS = 4;

/** What the stories260K searches used, read from their output directories. */
interface SearchCounts {
  target: PruneTarget;
  hillClimbTrials: number;
  hillClimbSeconds: number;
  hillClimbBest: CrepeParams;
  phoEvaluations: number;
  phoSeconds: number;
  proxy: ProxyName;
  proxyRows: number;
  kSet: number[];
  confirmations: number;
  confirmWindows: number;
  confirmStatistics: string;
}

interface State {
  counts: SearchCounts;
  trial?: { seconds: number; ppl: number; load: number[] };
  pho?: { denseSeconds: number; evaluations: Record<string, number[]>; denseConfirmationSeconds: number; load: number[] };
}

const readJson = (file: string): any => JSON.parse(readFileSync(file, 'utf8'));

function searchCounts(hillClimbDir: string, phoDir: string | undefined): SearchCounts {
  const hc = readJson(path.join(hillClimbDir, 'crepe-config.json'));
  const hcLog = readJson(path.join(hillClimbDir, 'search-log.json'));
  // Without a PHO run yet (the trial phase needs only hill climbing's counts): its fields stay empty.
  const pho = phoDir ? readJson(path.join(phoDir, 'crepe-config.json')) : { provenance: { confirmations: [], kSet: [] } };
  const { provenance } = pho;
  const { format: _format, provenance: _provenance, ...hillClimbBest } = hc;
  return {
    target: hc.provenance.target,
    hillClimbTrials: hcLog.candidates.length,
    hillClimbSeconds: hc.provenance.searchSeconds,
    hillClimbBest,
    phoEvaluations: provenance.evaluations,
    phoSeconds: provenance.searchSeconds,
    proxy: provenance.proxy,
    proxyRows: provenance.proxyRows,
    kSet: provenance.kSet,
    confirmations: provenance.confirmations.length,
    confirmWindows: provenance.confirmation?.windows ?? 0,
    confirmStatistics: provenance.confirmation?.statistics ?? 'none',
  };
}

async function measureTrial(modelDir: string, counts: SearchCounts): Promise<State['trial']> {
  const model = ModelCheckpoint.open(modelDir);
  try {
    const windows = randomTokenWindows(NSAMPLES, SEQLEN, model.spec.vocabSize, 0);
    const heldOut = concatWindows(randomTokenWindows(HELDOUT_WINDOWS, SEQLEN, model.spec.vocabSize, 1));
    const settings = pruneSettings({
      method: 'crepe', target: counts.target, selection: 'per-matrix', crepe: counts.hillClimbBest,
      calibration: { file: 'random tokens', sha256: '', nsamples: NSAMPLES, seqlen: SEQLEN, seed: 0 },
    });
    console.error(`pho-vs-hillclimb: one hill-climbing trial (prune ${NSAMPLES} × ${SEQLEN}, PPL on ${HELDOUT_WINDOWS} × ${SEQLEN}) …`);
    const started = performance.now();
    const result = await pruneAndMeasure(model, settings, windows, { tokens: heldOut, seqlen: SEQLEN }, { device: 'cpu', threads: os.availableParallelism() });
    return { seconds: (performance.now() - started) / 1000, ppl: result.ppl, load: os.loadavg() };
  } finally {
    model.close();
  }
}

/** The proxies measured: PHO's default for the target (from the stories260K run) and the cheapest per-linear one. */
const CHEAP: { proxy: ProxyName; rows: number } = { proxy: 'gini-ref', rows: 0.1 };
const DENSE_CONFIRM_WINDOWS = 32;

async function measurePho(modelDir: string, counts: SearchCounts): Promise<State['pho']> {
  const model = ModelCheckpoint.open(modelDir);
  const cacheDir = path.join(os.tmpdir(), `crepe-bench-pho-hc-cache-${process.pid}`);
  rmSync(cacheDir, { recursive: true, force: true });
  try {
    const windows = randomTokenWindows(NSAMPLES, SEQLEN, model.spec.vocabSize, 0);
    const heldOut = concatWindows(randomTokenWindows(HELDOUT_WINDOWS, SEQLEN, model.spec.vocabSize, 1));
    const threads = os.availableParallelism();
    console.error(`pho-vs-hillclimb: PHO's dense pass (${NSAMPLES} × ${SEQLEN}, neighbourhood terms of k = ${counts.kSet.join(', ')}) …`);
    let started = performance.now();
    const context = await ProxyContext.open(model, windows, SEQLEN, { device: 'cpu', threads }, benchCacheOptions(cacheDir, modelDir, counts.kSet, threads, 2 ** 30));
    const denseSeconds = (performance.now() - started) / 1000;
    try {
      const base = { target: counts.target, selection: 'per-matrix' as const, giniSubsample: 65536, seed: 0 };
      const evaluations: Record<string, number[]> = {};
      for (const { proxy, rows } of [{ proxy: counts.proxy, rows: counts.proxyRows }, CHEAP]) {
        const label = `${proxy} rows ${rows}`;
        evaluations[label] = [];
        for (const params of randomParams(EVALUATIONS, 2, counts.kSet.filter((k) => k > 1))) {
          console.error(`pho-vs-hillclimb: one ${label} evaluation …`);
          started = performance.now();
          await context.evaluate(params, { ...base, rows }, [proxy]);
          evaluations[label].push((performance.now() - started) / 1000);
        }
      }
      console.error(`pho-vs-hillclimb: one confirmation with the dense statistics on ${DENSE_CONFIRM_WINDOWS} held-out windows …`);
      started = performance.now();
      await context.prunedPerplexity(counts.hillClimbBest, base, heldOut, { seqlen: SEQLEN, maxChunks: DENSE_CONFIRM_WINDOWS });
      const denseConfirmationSeconds = (performance.now() - started) / 1000;
      return { denseSeconds, evaluations, denseConfirmationSeconds, load: os.loadavg() };
    } finally {
      await context.close();
    }
  } finally {
    model.close();
    rmSync(cacheDir, { recursive: true, force: true });
  }
}

const fmt = (seconds: number): string => (seconds >= 3600 ? `${(seconds / 3600).toFixed(2)} h` : seconds >= 60 ? `${(seconds / 60).toFixed(1)} min` : `${seconds.toFixed(1)} s`);
const mean = (values: number[]): number => values.reduce((a, b) => a + b, 0) / values.length;

export function renderSection(state: Required<State>): string {
  const { counts, trial, pho } = state;
  const hillClimb = counts.hillClimbTrials * trial.seconds;
  const { layers, hidden, intermediate } = TINYLLAMA_4_LAYERS;
  const target = counts.target.kind === 'nm' ? `${counts.target.n}:${counts.target.m}` : `${counts.target.sparsity * 100} %`;
  // A sequential confirmation on all held-out windows is a hill-climbing trial: the same prune and the same PPL.
  const confirmations = counts.confirmations;
  const variants: Array<[string, string, number, string, number]> = [];
  for (const [label, times] of Object.entries(pho.evaluations)) {
    const evaluation = mean(times);
    variants.push([label, `sequential, ${HELDOUT_WINDOWS} windows`, evaluation, 'trial', trial.seconds]);
    variants.push([label, `dense statistics, ${DENSE_CONFIRM_WINDOWS} windows`, evaluation, 'dense', pho.denseConfirmationSeconds]);
  }
  const rows = variants.map(([label, confirm, evaluation, , confirmSeconds]) => {
    const search = pho.denseSeconds + counts.phoEvaluations * evaluation;
    const total = search + confirmations * confirmSeconds;
    return `| ${label} | ${fmt(evaluation)} | ${confirm} (${fmt(confirmSeconds)} each) | ${fmt(search)} | ${fmt(total)} | ${(hillClimb / search).toFixed(1)}× | **${(hillClimb / total).toFixed(1)}×** |`;
  });
  return [
    `Synthetic model: ${layers} layers, hidden ${hidden}, intermediate ${intermediate}, vocabulary 32000 (TinyLlama-1.1B's shapes), F16; ${target} per-matrix;`
      + ` calibration ${NSAMPLES} × ${SEQLEN}, held-out ${HELDOUT_WINDOWS} × ${SEQLEN} random token ids; ${os.availableParallelism()} threads.`
      + ` Counts from the stories260K back-to-back run: hill climbing ${counts.hillClimbTrials} trials; PHO ${counts.phoEvaluations} evaluations`
      + ` (k ∈ {${counts.kSet.join(', ')}}) and ${confirmations} confirmations (the best of the ${confirmations - 1} best window sizes and the start configuration).`,
    '',
    `Measured once each: hill-climbing trial (sequential prune + PPL on ${HELDOUT_WINDOWS} windows) ${fmt(trial.seconds)}, so hill climbing = ${counts.hillClimbTrials} × ${fmt(trial.seconds)} = **${fmt(hillClimb)}**;`
      + ` PHO's dense pass (proxy cache, neighbourhood terms of every k) ${fmt(pho.denseSeconds)}; one proxy evaluation: mean of ${EVALUATIONS}.`,
    '',
    '| PHO proxy | per evaluation | confirmation | PHO without confirmation | PHO with confirmation | HC / PHO without | HC / PHO with |',
    '|---|---:|---|---:|---:|---:|---:|',
    ...rows,
    '',
    `Load average (1, 5, 15 min) after the trial ${trial.load.map((l) => l.toFixed(1)).join(', ')}, after PHO's steps ${pho.load.map((l) => l.toFixed(1)).join(', ')}.`,
    '',
  ].join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const stateFile = argValue('state') ?? path.join(os.tmpdir(), 'crepe-bench-pho-vs-hillclimb.json');
  const phase = argValue('phase') ?? 'all';
  const hc = argValue('hillclimb');
  const phoDir = argValue('pho');
  let state: State;
  if (hc) state = { ...(existsSync(stateFile) ? readJson(stateFile) : {}), counts: searchCounts(hc, phoDir) };
  else if (existsSync(stateFile)) state = readJson(stateFile);
  else throw new Error('--hillclimb DIR [--pho DIR] (the stories260K search outputs) are needed');
  const modelDir = await ensureSyntheticModel(TINYLLAMA_4_LAYERS, (line) => console.error(line));
  if (phase === 'trial' || phase === 'all') state.trial = await measureTrial(modelDir, state.counts);
  writeFileSync(stateFile, JSON.stringify(state, null, 2));
  if (phase === 'pho' || phase === 'all') state.pho = await measurePho(modelDir, state.counts);
  writeFileSync(stateFile, JSON.stringify(state, null, 2));
  if (state.trial && state.pho) console.log(renderSection(state as Required<State>));
  else console.error(`pho-vs-hillclimb: state in ${stateFile}; run the other phase to print the section`);
}
