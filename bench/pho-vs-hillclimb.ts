/**
 * PHO against hill climbing at a size where the search cost matters: the 4-layer TinyLlama-shaped
 * synthetic model. A whole hill climb there takes hours, so its trial (prune + held-out PPL) is
 * measured (phase all: before and after PHO, the mean taken) and multiplied by the trial count
 * real searches on stories260K used (with several `--hillclimb` directories, one per calibration
 * seed, their mean: the count hill climbing needs, not one seed's draw);
 * PHO runs for real with the options of that run's PHO search (proxy, sign, row fraction, window
 * sizes, budget, race; their two output directories, `--hillclimb DIR --pho DIR`):
 *   hill climbing = trials × (prune + held-out PPL);
 *   PHO           = dense pass + the whole CMA-ES search + its confirmations (the shortlist
 *                   `crepe search` confirms with the stories260K run's --confirm, each trial with
 *                   its statistics and window count, run by the search's confirmation code).
 * Calibration 32 × 256 and held-out 200 × 256 random token ids: the stories260K protocol's sizes.
 *
 *   node --import tsx bench/pho-vs-hillclimb.ts --hillclimb DIR[,DIR…] --pho DIR [--phase trial|pho|all] [--state FILE]
 *
 * The first hill-climbing directory gives the configuration the trial prunes (the searches' choices
 * differ little in cost: the same prune and held-out PPL at another k).
 *
 * The two phases can run separately (each under its own lock, on a shared machine) into one state
 * file; the pho phase runs the confirmations in its process, with its proxy context open, as
 * `crepe search` does (a confirmation of the start configuration can then measure the dense pass's
 * own prune). The section is printed once both are in the state file.
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
import { CALIB_NLL_WINDOWS } from '../src/search/proxy-e2e.ts';
import { confirmationShortlist, confirmationTrial, runPho } from '../src/search/pho.ts';
import { startParams } from '../src/search/space.ts';
import { pruneAndMeasure } from '../src/search/trial.ts';
import type { HeldOutText } from '../src/search/trial.ts';
import { argValue } from './child-process.ts';
import { benchCacheOptions, SPACE } from './pho.ts';
import { ensureSyntheticModel, randomTokenWindows, TINYLLAMA_4_LAYERS } from './synthetic-model.ts';

const NSAMPLES = 32;
const SEQLEN = 256;
const HELDOUT_WINDOWS = 200;

/** What the stories260K searches used, read from their output directories. */
interface SearchCounts {
  target: PruneTarget;
  /** The mean trial count of the hill-climbing searches (one per calibration seed). */
  hillClimbTrials: number;
  /** Each search's trial count, in the order given. */
  hillClimbTrialsPerSearch: number[];
  hillClimbSeconds: number;
  hillClimbBest: CrepeParams;
  hillClimbPpl: number;
  phoEvaluations: number;
  phoSeconds: number;
  proxy: ProxyName;
  proxySign: 1 | -1;
  proxyRows: number;
  /** calib-nll's windows and text (null for a per-linear proxy). */
  nll: { windows: number; on: 'calibration' | 'heldout' } | null;
  kSet: number[];
  budgetPerK: number;
  /** The search's --race: the window sizes that continue after the first generation (null: all). */
  race: number | null;
  confirmations: number;
  /** The search's --confirm: the confirmed PHO candidates (the start configuration is confirmed besides, unless among them). */
  confirm: number;
  confirmOn: string;
  confirmWindows: number;
  confirmStatistics: 'dense' | 'sequential';
  /** The configuration whose layer-by-layer prune gave PHO's statistics (--proxy-statistics start); null for the dense model's. */
  statisticsFrom: CrepeParams | null;
}

/** Wall and CPU seconds (user + system, all threads) of one step. */
interface Cost { seconds: number; cpuSeconds: number }

interface State {
  counts: SearchCounts;
  /** The hill-climbing trial, each time it was measured (phase all: before and after PHO); their mean is the trial's cost. */
  trials?: Trial[];
  pho?: { dense: Cost; search: Cost; evaluations: number; load: number[] };
  /** Each confirmation's cost; `prune` when it measured the dense pass's own prune (ConfirmationTrial). */
  confirm?: { trials: (Cost & { source: string; k: number; prune?: string })[]; load: number[] };
}

const readJson = (file: string): any => JSON.parse(readFileSync(file, 'utf8'));

function searchCounts(hillClimbDirs: string[], phoDir: string | undefined): SearchCounts {
  const hc = readJson(path.join(hillClimbDirs[0], 'crepe-config.json'));
  const perSearch = hillClimbDirs.map((dir) => readJson(path.join(dir, 'search-log.json')).candidates.length as number);
  // Without a PHO run yet (the trial phase needs only hill climbing's counts): its fields stay empty.
  const pho = phoDir ? readJson(path.join(phoDir, 'crepe-config.json')) : { provenance: { confirmations: [], kSet: [] } };
  const { provenance } = pho;
  const { format: _format, provenance: _provenance, ...hillClimbBest } = hc;
  return {
    target: hc.provenance.target,
    hillClimbTrials: perSearch.reduce((a, b) => a + b, 0) / perSearch.length,
    hillClimbTrialsPerSearch: perSearch,
    hillClimbSeconds: hc.provenance.searchSeconds,
    hillClimbBest,
    hillClimbPpl: hc.provenance.heldoutPpl,
    phoEvaluations: provenance.evaluations,
    phoSeconds: provenance.searchSeconds,
    proxy: provenance.proxy,
    proxySign: provenance.proxySign,
    proxyRows: provenance.proxyRows,
    nll: provenance.proxy === 'calib-nll' ? { windows: provenance.nllWindows ?? CALIB_NLL_WINDOWS, on: provenance.nllOn ?? 'calibration' } : null,
    kSet: provenance.kSet,
    budgetPerK: provenance.budgetPerK,
    race: provenance.race ?? null,
    confirmations: provenance.confirmations.length,
    confirm: provenance.confirmations.filter((c: { source: string }) => c.source === 'pho').length,
    confirmOn: provenance.confirmation?.on ?? 'heldout',
    confirmWindows: provenance.confirmation?.windows ?? 0,
    confirmStatistics: provenance.confirmation?.statistics ?? 'sequential',
    statisticsFrom: provenance.proxyStatistics?.from ?? null,
  };
}

/** Runs `step` and returns its result with its wall and CPU seconds. */
async function timed<T>(step: () => Promise<T>): Promise<[T, Cost]> {
  const cpu = process.cpuUsage();
  const started = performance.now();
  const value = await step();
  const used = process.cpuUsage(cpu);
  return [value, { seconds: (performance.now() - started) / 1000, cpuSeconds: (used.user + used.system) / 1e6 }];
}

const threads = os.availableParallelism();
const engine = { device: 'cpu' as const, threads };
const calibrationOf = (spec: { vocabSize: number }) => randomTokenWindows(NSAMPLES, SEQLEN, spec.vocabSize, 0);
const settingsFor = (counts: SearchCounts, crepe: CrepeParams) => pruneSettings({
  method: 'crepe', target: counts.target, selection: 'per-matrix', crepe,
  calibration: { file: 'random tokens', sha256: '', nsamples: NSAMPLES, seqlen: SEQLEN, seed: 0 },
});

type Trial = Cost & { ppl: number; load: number[] };

async function measureTrial(modelDir: string, counts: SearchCounts): Promise<Trial> {
  const model = ModelCheckpoint.open(modelDir);
  try {
    const windows = calibrationOf(model.spec);
    const heldOut = heldOutOf(model.spec);
    // As `crepe search` does once before its trials: later reads skip the finite check.
    model.hashAndCheckFinite();
    console.error(`pho-vs-hillclimb: one hill-climbing trial (prune ${NSAMPLES} × ${SEQLEN}, PPL on ${HELDOUT_WINDOWS} × ${SEQLEN}) …`);
    const [result, cost] = await timed(() => pruneAndMeasure(model, settingsFor(counts, counts.hillClimbBest), windows, { tokens: heldOut, seqlen: SEQLEN }, engine));
    return { ...cost, ppl: result.ppl, load: os.loadavg() };
  } finally {
    model.close();
  }
}

// Per process: the cache is removed at the start and end of a run, so a shared name would pull it from under a concurrent run.
const cacheDir = path.join(os.tmpdir(), `crepe-bench-pho-vs-hillclimb-cache-${process.pid}`);
const proxyOptions = (counts: SearchCounts) => ({ target: counts.target, selection: 'per-matrix' as const, giniSubsample: 65536, seed: 0, rows: counts.proxyRows });
const heldOutOf = (spec: { vocabSize: number }) => concatWindows(randomTokenWindows(HELDOUT_WINDOWS, SEQLEN, spec.vocabSize, 1));
const openContext = (model: ModelCheckpoint, modelDir: string, counts: SearchCounts) =>
  ProxyContext.open(model, calibrationOf(model.spec), SEQLEN, engine, {
    ...benchCacheOptions(cacheDir, modelDir, counts.kSet, threads, 2 ** 30),
    // As `crepe search` opens it: for its one proxy (calib-nll alone: the cache in the natural layout).
    proxies: [counts.proxy],
    // calib-nll on the held-out windows when the stories260K search measured it on its held-out text.
    ...(counts.nll ? { nllWindows: counts.nll.windows, nllText: counts.nll.on === 'heldout' ? { tokens: heldOutOf(model.spec), seqlen: SEQLEN } : undefined } : {}),
    ...(counts.statisticsFrom ? { statisticsFrom: { params: counts.statisticsFrom, target: counts.target, selection: 'per-matrix' as const } } : {}),
  });

/** The dense pass, the whole PHO search and its confirmations, with the stories260K run's options. */
async function measurePho(modelDir: string, counts: SearchCounts): Promise<{ pho: State['pho']; confirm: State['confirm'] }> {
  const model = ModelCheckpoint.open(modelDir);
  rmSync(cacheDir, { recursive: true, force: true });
  try {
    console.error(`pho-vs-hillclimb: PHO's dense pass (${NSAMPLES} × ${SEQLEN}, neighbourhood terms of k = ${counts.kSet.join(', ')}) …`);
    // `crepe search` hashes and finite-checks the weights once before its dense pass; counted with it.
    const [context, dense] = await timed(() => {
      model.hashAndCheckFinite();
      return openContext(model, modelDir, counts);
    });
    try {
      console.error(`pho-vs-hillclimb: PHO (${counts.proxy}, rows ${counts.proxyRows}, ${counts.budgetPerK} per k) …`);
      const [result, search] = await timed(() => runPho(context, {
        ...proxyOptions(counts), kSet: counts.kSet, budgetPerK: counts.budgetPerK, race: counts.race ?? undefined, proxy: counts.proxy, sign: counts.proxySign, space: SPACE, sigma0: 1.5,
      }));
      const pho = { dense, search, evaluations: result.candidates.length, load: os.loadavg() };
      // What `crepe search --confirm N` confirms: the best of the N best window sizes, then the start configuration.
      const shortlist = confirmationShortlist(result, counts.confirm, startParams(SPACE, counts.kSet));
      const text: HeldOutText = { tokens: concatWindows(randomTokenWindows(counts.confirmWindows, SEQLEN, model.spec.vocabSize, 2)), seqlen: SEQLEN, maxChunks: counts.confirmWindows };
      const trial = confirmationTrial(context, counts.confirmStatistics, {
        model, settingsFor: (params) => settingsFor(counts, params), windows: calibrationOf(model.spec), text, engine, options: proxyOptions(counts),
      });
      const trials: NonNullable<State['confirm']>['trials'] = [];
      for (const { source, params } of shortlist) {
        console.error(`pho-vs-hillclimb: one confirmation (${source} k=${params.k}, ${counts.confirmStatistics} statistics, ${counts.confirmWindows} windows) …`);
        const [measured, cost] = await timed(() => trial(params));
        trials.push({ ...cost, source, k: params.k, ...(measured.prune ? { prune: measured.prune } : {}) });
      }
      return { pho, confirm: { trials, load: os.loadavg() } };
    } finally {
      await context.close();
    }
  } finally {
    model.close();
    rmSync(cacheDir, { recursive: true, force: true });
  }
}

const fmt = (seconds: number): string => (seconds >= 3600 ? `${(seconds / 3600).toFixed(2)} h` : seconds >= 60 ? `${(seconds / 60).toFixed(1)} min` : `${seconds.toFixed(1)} s`);
const sum = (costs: Cost[], key: keyof Cost): number => costs.reduce((a, c) => a + c[key], 0);
// A state file written before several searches were read holds one search's count only.
const trialCounts = ({ hillClimbTrials, hillClimbTrialsPerSearch: per = [hillClimbTrials] }: SearchCounts): string =>
  per.length === 1 ? `${hillClimbTrials} trials` : `${hillClimbTrials.toFixed(1)} trials (the mean of ${per.length} calibration seeds' searches: ${per.join(', ')})`;
const loads = (load: number[]): string => load.map((l) => l.toFixed(1)).join(', ');

export function renderSection(state: Required<State>): string {
  const { counts, trials, pho, confirm } = state;
  const trial: Cost = { seconds: sum(trials, 'seconds') / trials.length, cpuSeconds: sum(trials, 'cpuSeconds') / trials.length };
  const { layers, hidden, intermediate } = TINYLLAMA_4_LAYERS;
  const target = counts.target.kind === 'nm' ? `${counts.target.n}:${counts.target.m}` : `${counts.target.sparsity * 100} %`;
  const row = (key: keyof Cost, label: string): string => {
    const hillClimb = counts.hillClimbTrials * trial[key];
    const confirmations = sum(confirm.trials, key);
    const search = pho.dense[key] + pho.search[key];
    const total = search + confirmations;
    return `| ${label} | ${fmt(trial[key])} | **${fmt(hillClimb)}** | ${fmt(pho.dense[key])} | ${fmt(pho.search[key])} (${fmt(pho.search[key] / pho.evaluations)} each) | ${fmt(confirmations)} | **${fmt(total)}** | ${(hillClimb / search).toFixed(1)}× | **${(hillClimb / total).toFixed(1)}×** |`;
  };
  return [
    `Synthetic model: ${layers} layers, hidden ${hidden}, intermediate ${intermediate}, vocabulary 32000 (TinyLlama-1.1B's shapes), F16; ${target} per-matrix;`
      + ` calibration ${NSAMPLES} × ${SEQLEN}, held-out ${HELDOUT_WINDOWS} × ${SEQLEN} random token ids; ${threads} threads.`
      + ` From the stories260K runs: hill climbing ${trialCounts(counts)}; PHO ${counts.proxy} (sign ${counts.proxySign > 0 ? '+' : '−'})`
      + (counts.nll ? ` on ${counts.nll.windows} ${counts.nll.on === 'heldout' ? 'held-out' : 'calibration'} windows,` : ` on ${counts.proxyRows} of the rows,`)
      + (counts.statisticsFrom ? ' statistics of the start configuration\'s prune (--proxy-statistics start),' : '')
      + ` k ∈ {${counts.kSet.join(', ')}}, ${counts.budgetPerK} per k${counts.race ? ` (racing: ${counts.race} continue after the first generation)` : ''} (${counts.phoEvaluations} evaluations there, ${pho.evaluations} here), ${counts.confirmations} confirmations`
      + ` (${counts.confirmStatistics} statistics, ${counts.confirmWindows} ${counts.confirmOn === 'calibration' ? 'held-out calibration' : 'held-out'} windows each).`,
    '',
    `Hill climbing = trials × one trial (sequential prune + PPL on the held-out windows; the mean of ${trials.length === 1 ? 'one measurement' : `${trials.length} measurements, ${trials.map((t) => `${fmt(t.seconds)} (${fmt(t.cpuSeconds)} CPU)`).join(', ')}${trials.length === 2 ? ', before and after PHO' : ''}`}); PHO = its dense pass, the whole search and every confirmation, run here.`
      + ' CPU = user + system seconds of all threads.',
    '',
    '| time | one HC trial | hill climbing | PHO dense pass | PHO search | PHO confirmations | PHO total | HC / PHO without confirmation | HC / PHO |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    row('seconds', 'wall'),
    row('cpuSeconds', 'CPU'),
    '',
    `Confirmations: ${confirm.trials.map((t) => `${t.source} k=${t.k} ${fmt(t.seconds)}${t.prune ? ' (the dense pass\'s prune, measured without pruning again)' : ''}`).join(', ')}.`,
    `Load average (1, 5, 15 min) after the trial ${trials.map((t) => loads(t.load)).join(' / ')}, after PHO's search ${loads(pho.load)}, after the confirmations ${loads(confirm.load)}.`,
    '',
  ].join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const stateFile = argValue('state') ?? path.join(os.tmpdir(), 'crepe-bench-pho-vs-hillclimb.json');
  const phase = argValue('phase') ?? 'all';
  const hc = argValue('hillclimb');
  const phoDir = argValue('pho');
  let state: State;
  if (hc) state = { ...(existsSync(stateFile) ? readJson(stateFile) : {}), counts: searchCounts(hc.split(','), phoDir) };
  else if (existsSync(stateFile)) state = readJson(stateFile);
  else throw new Error('--hillclimb DIR[,DIR…] [--pho DIR] (the stories260K search outputs) are needed');
  const save = () => writeFileSync(stateFile, JSON.stringify(state, null, 2));
  const modelDir = await ensureSyntheticModel(TINYLLAMA_4_LAYERS, (line) => console.error(line));
  if (phase === 'confirm') throw new Error('the confirmations run in the pho phase (with its proxy context open, as crepe search runs them): --phase trial|pho|all');
  // Phase all measures the trial before and after PHO, so that a drift of the machine's speed during the run moves both sides.
  const trial = async () => {
    state.trials = [...(state.trials ?? []), await measureTrial(modelDir, state.counts)];
    save();
  };
  if (phase === 'all') state.trials = [];
  if (phase === 'trial' || phase === 'all') await trial();
  if (phase === 'pho' || phase === 'all') Object.assign(state, await measurePho(modelDir, state.counts));
  save();
  if (phase === 'all') await trial();
  if (state.trials?.length && state.pho && state.confirm) console.log(renderSection(state as Required<State>));
  else console.error(`pho-vs-hillclimb: state in ${stateFile}; run the other phases to print the section`);
}
