/**
 * `crepe search`: find CRePE's coefficients for a model — PHO (CMA-ES on a proxy from one cached
 * dense pass), the slow hill-climbing baseline (real prune + held-out PPL per candidate), or
 * `--validate N` to measure how well each proxy tracks real perplexity.
 */
import { Option, type Command } from 'commander';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { replaceDirectory } from '../io/atomic.ts';
import path from 'node:path';
import { ModelCheckpoint } from '../model/checkpoint.ts';
import { TextTokenizer } from '../model/tokenizer.ts';
import { sampleCalibrationFile } from '../data/calibration.ts';
import { readEvalText } from '../data/text-sources.ts';
import type { CrepeParams } from '../prune/scores/crepe.ts';
import { pruneSettings, type PruneSettings } from '../prune/settings.ts';
import { parseTarget, type PruneTarget, type Selection } from '../prune/target.ts';
import { CREPE_CONFIG_FORMAT, loadCrepeConfig, type CrepeConfigFile } from '../search/crepe-config.ts';
import { ProxyContext, PROXY_NAMES, type ProxyName, type ProxyOptions } from '../search/proxy.ts';
import { DEFAULT_PROXY } from '../search/proxy-defaults.ts';
import { confirmOnHeldOut, runPho, type Confirmation } from '../search/pho.ts';
import { runHillClimb } from '../search/hillclimb.ts';
import { randomConfigurations, validateProxies } from '../search/validate.ts';
import { pruneAndMeasure } from '../search/trial.ts';
import type { SearchSpace } from '../search/space.ts';
import { scatterSvg } from '../util/svg-scatter.ts';
import { sha256File } from '../util/hash.ts';
import { createProgress } from '../util/progress.ts';
import { UserError, check } from '../util/errors.ts';
import type { EngineOptions } from '../engine/session.ts';
import { engineOptionList, engineOptionsFrom, finiteNumber, nonNegativeInt, positiveInt, printJson } from './options.ts';

interface SearchCliOptions {
  strategy: 'pho' | 'hillclimb';
  validate?: number;
  calib: string;
  sparsity?: number;
  pattern?: string;
  perRow?: boolean;
  perMatrix?: boolean;
  k?: string;
  config?: string;
  budget?: number;
  proxy?: ProxyName;
  proxySign?: '+1' | '-1';
  proxyFrom?: string;
  giniSubsample: string;
  searchA?: boolean;
  a: number;
  variant: 'normalized' | 'smooth';
  sigma0: number;
  confirm: number;
  heldout?: string;
  heldoutSeqlen?: number;
  heldoutMaxChunks?: number;
  nsamples: number;
  seqlen?: number;
  seed: number;
  out: string;
  overwrite?: boolean;
  json?: boolean;
  device: string;
  threads?: number;
}

/**
 * The proxy a validation run found most informative (largest |Spearman ρ| with held-out PPL) and
 * the sign to use it with: the measurement decides, as the issue asks.
 */
function proxyFromValidation(file: string): { proxy: ProxyName; sign: 1 | -1; spearman: number } {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new UserError(`--proxy-from ${file}: cannot read a validation result (${(error as Error).message})`);
  }
  const correlations = (json as { correlations?: Array<{ proxy: ProxyName; spearman: { estimate: number } }> }).correlations;
  check(Array.isArray(correlations) && correlations.length > 0, `--proxy-from ${file}: no "correlations" (expected the validation.json written by crepe search --validate)`);
  const best = correlations.reduce((a, b) => (Math.abs(b.spearman.estimate) > Math.abs(a.spearman.estimate) ? b : a));
  check((PROXY_NAMES as readonly string[]).includes(best.proxy), `--proxy-from ${file}: unknown proxy "${best.proxy}"`);
  return { proxy: best.proxy, sign: best.spearman.estimate >= 0 ? 1 : -1, spearman: best.spearman.estimate };
}

/** Largest total size of the per-layer Hessians a search keeps for the output-error proxy. */
const GRAM_BUDGET_BYTES = 2 ** 30;

function parseKSet(text: string): number[] {
  const values = text.split(',').map((s) => Number(s.trim()));
  for (const k of values) check(Number.isInteger(k) && k >= 1 && k % 2 === 1, `--k expects a comma-separated list of odd window sizes ≥ 1, got "${text}"`);
  return [...new Set(values)];
}

function targetFromOptions(opts: SearchCliOptions): PruneTarget {
  check((opts.sparsity === undefined) !== (opts.pattern === undefined), 'give exactly one of --sparsity <s> or --pattern <n:m>');
  return opts.pattern !== undefined ? parseTarget(opts.pattern, 'pattern') : parseTarget(opts.sparsity as number, 'sparsity');
}

/** Writes the search outputs into a temporary directory and renames it into place when complete. */
function writeOutputs(outDir: string, files: Record<string, string>, overwrite: boolean): void {
  const target = path.resolve(outDir);
  check(!existsSync(target) || overwrite, `${target} already exists; pass --overwrite to replace it`);
  const temp = `${target}.crepe-partial`;
  rmSync(temp, { recursive: true, force: true });
  mkdirSync(temp, { recursive: true });
  for (const [name, content] of Object.entries(files)) writeFileSync(path.join(temp, name), content);
  replaceDirectory(temp, target);
}

export async function runSearch(modelDir: string, opts: SearchCliOptions): Promise<Record<string, unknown>> {
  const started = performance.now();
  const target = targetFromOptions(opts);
  check(!(opts.perRow && opts.perMatrix), '--per-row and --per-matrix exclude each other');
  const selection: Selection = opts.perRow ? 'per-row' : 'per-matrix';
  const start = opts.config ? loadCrepeConfig(opts.config) : undefined;
  if (start) check(start.alpha > 0, `${opts.config}: "alpha" must be positive to start a search (the search runs over ratios to alpha)`);
  const kSet = parseKSet(opts.k ?? (start ? String(start.k) : '1,3,5,7,9'));
  const giniSubsample = opts.giniSubsample === 'exact' ? null : positiveInt('--gini-subsample')(opts.giniSubsample);
  check(existsSync(opts.calib), `--calib ${opts.calib}: no such file`);
  check(!existsSync(path.resolve(opts.out)) || opts.overwrite, `${path.resolve(opts.out)} already exists; pass --overwrite to replace it`);
  const needsHeldOut = opts.strategy === 'hillclimb' || opts.validate !== undefined || opts.confirm > 0;
  if (needsHeldOut) check(opts.heldout !== undefined, '--heldout <file> is needed: hill climbing, --validate and --confirm measure real perplexity on held-out text');

  const model = ModelCheckpoint.open(modelDir);
  try {
    const { spec } = model;
    const seqlen = opts.seqlen ?? Math.min(2048, spec.maxPositionEmbeddings);
    const engine: EngineOptions = engineOptionsFrom(opts);
    const tokenizer = TextTokenizer.load(modelDir);
    const encode = (text: string) => tokenizer.encode(text, { bos: true });
    const calibration = sampleCalibrationFile(opts.calib, encode, { nsamples: opts.nsamples, seqlen, seed: opts.seed });
    const space: SearchSpace = { searchA: Boolean(opts.searchA), fixedA: opts.a, variant: opts.variant };
    const proxyOptions: ProxyOptions = { target, selection, giniSubsample, seed: opts.seed };
    const measured = opts.proxyFrom ? proxyFromValidation(opts.proxyFrom) : null;
    const proxy = opts.proxy ?? measured?.proxy ?? DEFAULT_PROXY.name;
    const sign: 1 | -1 = opts.proxySign
      ? opts.proxySign === '-1' ? -1 : 1
      : measured && measured.proxy === proxy ? measured.sign : proxy === DEFAULT_PROXY.name ? DEFAULT_PROXY.sign : 1;

    const settingsFor = (params: CrepeParams): PruneSettings => pruneSettings({
      method: 'crepe',
      target,
      selection,
      crepe: params,
      calibration: { file: path.resolve(opts.calib), sha256: '', nsamples: opts.nsamples, seqlen, seed: opts.seed },
    });
    // output-error needs every layer's XᵀX; affordable for small models only.
    const gramsFit = ProxyContext.gramBytes(spec) <= GRAM_BUDGET_BYTES;
    if (proxy === 'output-error') check(gramsFit, `--proxy output-error needs ${(ProxyContext.gramBytes(spec) / 2 ** 30).toFixed(1)} GiB of Hessians for this model; use a gini proxy`);
    const withGram = gramsFit && (opts.validate !== undefined || proxy === 'output-error');
    const heldOut = opts.heldout
      ? { tokens: encode(readEvalText(opts.heldout)), seqlen: opts.heldoutSeqlen ?? seqlen, maxChunks: opts.heldoutMaxChunks }
      : null;
    if (heldOut) check(heldOut.tokens.length >= heldOut.seqlen, `--heldout ${opts.heldout}: ${heldOut.tokens.length} tokens is shorter than one window of ${heldOut.seqlen}`);
    const trial = (params: CrepeParams) => {
      if (!heldOut) throw new Error('internal: trial without held-out text');
      return pruneAndMeasure(model, settingsFor(params), calibration.windows, heldOut, engine);
    };
    const provenanceBase = {
      model: path.resolve(modelDir),
      modelSha256: sha256File(model.weights.info(model.weights.names()[0]).file),
      calibration: { file: path.resolve(opts.calib), nsamples: opts.nsamples, seqlen, seed: opts.seed },
      target,
      selection,
      heldout: opts.heldout ? path.resolve(opts.heldout) : null,
      date: new Date().toISOString(),
    };

    if (opts.validate !== undefined) {
      const contextProgress = createProgress('dense statistics', spec.numLayers);
      const context = await ProxyContext.build(model, calibration.windows, seqlen, engine, { withGram, progress: contextProgress });
      contextProgress.done();
      const configurations = randomConfigurations(opts.validate, kSet, space, opts.seed + 1);
      const progress = createProgress('validate', configurations.length);
      const result = await validateProxies(context, configurations, proxyOptions, trial, {
        bootstrapSeed: opts.seed,
        onPoint: (p, i) => progress.update(i + 1, `PPL ${p.ppl.toFixed(2)}`),
      });
      progress.done();
      const files: Record<string, string> = {
        'validation.json': `${JSON.stringify({ provenance: provenanceBase, ...result }, null, 2)}\n`,
      };
      for (const c of result.correlations) {
        files[`proxy-${c.proxy}.svg`] = scatterSvg(result.points.map((p) => ({ x: p.proxies[c.proxy], y: p.ppl })), {
          title: `${c.proxy} vs PPL (Spearman ${c.spearman.estimate.toFixed(2)} [${c.spearman.lower.toFixed(2)}, ${c.spearman.upper.toFixed(2)}])`,
          xLabel: c.proxy,
          yLabel: 'held-out PPL',
          logY: true,
        });
      }
      writeOutputs(opts.out, files, Boolean(opts.overwrite));
      return { kind: 'validation', out: path.resolve(opts.out), correlations: result.correlations, seconds: (performance.now() - started) / 1000 };
    }

    if (opts.strategy === 'pho') {
      const contextProgress = createProgress('dense statistics', spec.numLayers);
      const context = await ProxyContext.build(model, calibration.windows, seqlen, engine, { withGram, progress: contextProgress });
      contextProgress.done();
      const budgetPerK = opts.budget ?? 60;
      const progress = createProgress(`PHO (${proxy}, sign ${sign > 0 ? '+' : '−'})`, budgetPerK * kSet.length);
      let evaluated = 0;
      const result = runPho(context, { ...proxyOptions, kSet, budgetPerK, proxy, sign, space, sigma0: opts.sigma0, start }, (c) =>
        progress.update(++evaluated, `k=${c.k} ${proxy}=${c.proxies[proxy].toFixed(5)}`),
      );
      progress.done(`best k=${result.best.k} β=${result.best.params.beta.toPrecision(4)} γ=${result.best.params.gamma.toPrecision(4)}`);
      let confirmations: Confirmation[] = [];
      if (opts.confirm > 0 && heldOut) {
        const confirmProgress = createProgress('confirm on held-out text', Math.min(opts.confirm, result.bestPerK.length));
        confirmations = await confirmOnHeldOut(result, opts.confirm, trial, (c, i) =>
          confirmProgress.update(i + 1, `k=${c.params.k} PPL ${c.ppl.toFixed(3)}`),
        );
        confirmProgress.done();
      }
      const chosen = confirmations.length ? confirmations.reduce((a, b) => (b.ppl < a.ppl ? b : a)).params : result.best.params;
      const seconds = (performance.now() - started) / 1000;
      const config: CrepeConfigFile = {
        format: CREPE_CONFIG_FORMAT,
        ...chosen,
        provenance: {
          ...provenanceBase,
          strategy: confirmations.length ? 'pho+confirm' : 'pho',
          confirmations: confirmations.map((c) => ({ k: c.params.k, beta: c.params.beta, gamma: c.params.gamma, a: c.params.a, heldoutPpl: c.ppl })),
          proxy,
          proxySign: sign,
          proxySignSource: opts.proxySign ? '--proxy-sign' : measured && measured.proxy === proxy ? path.resolve(opts.proxyFrom ?? '') : 'default (RESULTS.md, 50 % validation)',
          proxyValue: result.best.proxies[proxy],
          kSet,
          budgetPerK,
          evaluations: result.candidates.length,
          denseStatisticsSeconds: context.denseSeconds,
          searchSeconds: seconds,
        },
      };
      writeOutputs(opts.out, {
        'crepe-config.json': `${JSON.stringify(config, null, 2)}\n`,
        'search-log.json': `${JSON.stringify({ strategy: 'pho', seconds: { ...result.seconds, wall: seconds, denseStatistics: context.denseSeconds }, bestPerK: result.bestPerK, confirmations, candidates: result.candidates }, null, 2)}\n`,
      }, Boolean(opts.overwrite));
      return { kind: 'pho', out: path.resolve(opts.out), config, seconds };
    }

    const budgetPerK = opts.budget ?? 12;
    const progress = createProgress('hill climbing', budgetPerK * kSet.length);
    let trials = 0;
    const result = await runHillClimb(trial, { kSet, space, budgetPerK, initialStep: 1, minStep: 0.25, start }, (c) =>
      progress.update(++trials, `k=${c.k} PPL ${c.ppl.toFixed(3)}${c.accepted ? ' (accepted)' : ''}`),
    );
    progress.done(`best k=${result.best.k} PPL ${result.best.ppl.toFixed(3)}`);
    const seconds = (performance.now() - started) / 1000;
    const config: CrepeConfigFile = {
      format: CREPE_CONFIG_FORMAT,
      ...result.best.params,
      provenance: { ...provenanceBase, strategy: 'hillclimb', heldoutPpl: result.best.ppl, kSet, budgetPerK, trials: result.candidates.length, searchSeconds: seconds },
    };
    writeOutputs(opts.out, {
      'crepe-config.json': `${JSON.stringify(config, null, 2)}\n`,
      'search-log.json': `${JSON.stringify({ strategy: 'hillclimb', seconds, bestPerK: result.bestPerK, candidates: result.candidates }, null, 2)}\n`,
    }, Boolean(opts.overwrite));
    return { kind: 'hillclimb', out: path.resolve(opts.out), config, seconds };
  } finally {
    model.close();
  }
}

export function register(program: Command): void {
  const command = program
    .command('search')
    .description('search CRePE coefficients: PHO (CMA-ES on a proxy), hill climbing on real PPL, or proxy validation')
    .argument('<model>', 'Hugging Face model directory')
    .addOption(new Option('--strategy <s>', 'pho: CMA-ES on a proxy; hillclimb: coordinate search on real held-out PPL').choices(['pho', 'hillclimb']).default('pho'))
    .option('--validate <n>', 'instead of searching, measure proxy vs real PPL on N random configurations', positiveInt('--validate'))
    .requiredOption('--calib <file>', 'calibration text (JSON Lines with "text", or plain text)')
    .option('--sparsity <s>', 'unstructured sparsity in (0, 1)', finiteNumber('--sparsity'))
    .option('--pattern <n:m>', 'N:M pattern, e.g. 2:4')
    .option('--per-row', 'per-row selection (default: one threshold per matrix)')
    .option('--per-matrix', 'one threshold per matrix (default)')
    .option('--k <list>', 'window sizes to search (default 1,3,5,7,9, or the --config file\'s k)')
    .option('--config <file>', 'start from this CRePE configuration (e.g. one found on another model) instead of the RIA point')
    .option('--budget <n>', 'per window size: proxy evaluations (pho, default 60) or real trials (hillclimb, default 12)', positiveInt('--budget'))
    .addOption(new Option('--proxy <name>', `PHO proxy (default ${DEFAULT_PROXY.name}, see RESULTS.md)`).choices([...PROXY_NAMES]))
    .addOption(new Option('--proxy-sign <sign>', '+1: minimise the proxy; -1: maximise it (default: the validated sign)').choices(['+1', '-1']))
    .option('--proxy-from <validation.json>', 'use the proxy (and sign) that a --validate run found most correlated with PPL')
    .option('--gini-subsample <n>', 'positions per matrix for the Gini index, or "exact"', '65536')
    .option('--search-a', 'also search the activation exponent a')
    .option('--a <x>', 'activation exponent when not searched', finiteNumber('--a'), 0.5)
    .addOption(new Option('--variant <v>', 'neighbourhood term').choices(['normalized', 'smooth']).default('normalized'))
    .option('--sigma0 <x>', 'CMA-ES initial step (log-ratio units)', finiteNumber('--sigma0'), 1.5)
    .option('--confirm <n>', 'PHO: give the best candidates of the N best window sizes one real held-out trial each and keep the best (needs --heldout)', nonNegativeInt('--confirm'), 0)
    .option('--heldout <file>', 'held-out text for real PPL (hillclimb, --validate, --confirm)')
    .option('--heldout-seqlen <n>', 'held-out window (default: --seqlen)', positiveInt('--heldout-seqlen'))
    .option('--heldout-max-chunks <k>', 'use only the first K held-out windows', positiveInt('--heldout-max-chunks'))
    .option('--nsamples <n>', 'calibration windows', positiveInt('--nsamples'), 128)
    .option('--seqlen <n>', 'tokens per calibration window', positiveInt('--seqlen'))
    .option('--seed <n>', 'calibration and search seed', nonNegativeInt('--seed'), 0)
    .requiredOption('--out <dir>', 'output directory (crepe-config.json, search-log.json; validation.json and plots)')
    .option('--overwrite', 'replace an existing output directory')
    .option('--json', 'print the result as JSON');
  for (const option of engineOptionList()) command.addOption(option);
  command.action(async (modelDir: string, opts: SearchCliOptions) => {
    const result = await runSearch(modelDir, opts);
    if (opts.json) return printJson(result);
    process.stdout.write(`wrote ${String(result.out)} (${Number(result.seconds).toFixed(1)}s)\n`);
  });
}

