/**
 * `crepe search`: find CRePE's coefficients for a model — PHO (CMA-ES on a proxy from one cached
 * dense pass), the slow hill-climbing baseline (real prune + held-out PPL per candidate), or
 * `--validate N` to measure how well each proxy tracks real perplexity.
 */
import { Option, type Command } from 'commander';
import { PROXY_NAMES, type ProxyName } from '../search/proxy-defaults.ts';
import { parseDecimal } from '../util/decimal.ts';
import { UserError } from '../util/errors.ts';
import { describeValue } from '../util/fields.ts';
import type { ProxyCorrelation } from '../search/validate.ts';
import type { ConfidenceInterval } from '../util/stats.ts';
import {
  addAliases, addEngineOptions, addTextsOptions, finiteNumber, interruption, nonNegativeInt, positiveInt, printJson, selectionOption, targetOption, textsFields,
  type CliIo, type TextsOptions,
} from './options.ts';
import { progressPrinter } from './progress.ts';

type SearchCliOptions = {
  strategy: 'pho' | 'hillclimb'; out: string; device: 'cpu' | 'cuda'; sparsity?: number; pattern?: string;
  crepeK?: string; config?: string; proxy?: ProxyName; proxySign?: '+1' | '-1'; proxyFrom?: string; giniSubsample?: string;
  crepeVariant?: 'normalized' | 'smooth'; proxyCache?: string; revision?: string; confirmStatistics?: 'dense' | 'sequential';
  confirmOn?: 'heldout' | 'calibration'; nllOn?: 'calibration' | 'heldout'; proxyStatistics?: 'dense' | 'start';
} & TextsOptions & Partial<Record<'validate' | 'budget' | 'race' | 'crepeA' | 'sigma0' | 'confirm' | 'confirmWindows' | 'nllWindows' | 'threads' | 'proxyRows' | 'proxyCacheBudget', number>>
  & Partial<Record<'perRow' | 'perMatrix' | 'searchA' | 'overwrite' | 'json', boolean>>;

/** "1,3,5" → [1, 3, 5] (the library checks that they are odd and positive). */
function kList(text: string): number[] {
  const values = text.split(',').map((s) => parseDecimal(s));
  if (values.some((k) => k === null || !Number.isSafeInteger(k))) throw new UserError(`--crepe-k expects a comma-separated list of odd window sizes ≥ 1, got ${describeValue(text)}`);
  return values as number[];
}

/** A path as a shell word: quoted only when it needs to be. */
const quote = (word: string): string => (/^[\w./:@%+=,-]+$/.test(word) ? word : `'${word.replace(/'/g, "'\\''")}'`);

const signed = (x: number): string => `${x >= 0 ? '+' : '−'}${Math.abs(x).toFixed(3)}`;
const interval = (ci: ConfidenceInterval): string => `${signed(ci.estimate)} [${signed(ci.lower)}, ${signed(ci.upper)}]`;

/** One line per proxy: Spearman and Pearson correlation with real PPL and their bootstrap intervals, strongest first. */
export function correlationLines(correlations: readonly ProxyCorrelation[]): string {
  if (correlations.length === 0) return '';
  const sorted = [...correlations].sort((a, b) => Math.abs(b.spearman.estimate) - Math.abs(a.spearman.estimate));
  const width = Math.max(...sorted.map((c) => c.proxy.length));
  const level = Math.round(sorted[0].spearman.level * 100);
  const lines = sorted.map((c, i) =>
    `  ${c.proxy.padEnd(width)}  Spearman ρ ${interval(c.spearman)}  Pearson r ${interval(c.pearson)}  ${c.sign > 0 ? 'minimise' : 'maximise'}${i === 0 ? '  ← strongest (--proxy-from uses it)' : ''}`);
  return `proxy vs real PPL (${level}% bootstrap intervals):\n${lines.join('\n')}\n`;
}

/** How to prune with the configuration a search wrote: the same model, target and calibration windows. */
export function applyHint(model: string, out: string, opts: Pick<SearchCliOptions, 'revision' | 'pattern' | 'sparsity' | 'perRow' | 'calib' | 'nsamples' | 'seqlen' | 'seed'>): string {
  const target = opts.pattern !== undefined ? `--pattern ${opts.pattern}` : `--sparsity ${opts.sparsity}${opts.perRow ? ' --per-row' : ''}`;
  const given = (['revision', 'nsamples', 'seqlen', 'seed'] as const).filter((o) => opts[o] !== undefined).map((o) => ` --${o} ${quote(String(opts[o]))}`).join('');
  return `apply it: crepe prune ${quote(model)} --method crepe --config ${quote(`${out}/crepe-config.json`)} ${target} --calib ${quote(opts.calib)}${given} --out <pruned-dir>\n`;
}

export function register(program: Command, io: CliIo): void {
  const command = program
    .command('search')
    .description('search CRePE coefficients: PHO (CMA-ES on a proxy), hill climbing on real PPL, or proxy validation')
    .argument('<model>', 'Hugging Face model directory, or a Hub id org/name[@revision] (downloaded into the Hugging Face cache)')
    .option('--revision <rev>', 'branch, tag or commit of a Hub id (default main)')
    .addOption(new Option('--strategy <s>', 'pho: CMA-ES on a proxy; hillclimb: coordinate search on real held-out PPL').choices(['pho', 'hillclimb']).default('pho'))
    .option('--validate <n>', 'instead of searching, measure proxy vs real PPL on N ≥ 3 random configurations', positiveInt('--validate'))
    .option('--sparsity <s>', 'unstructured sparsity in (0, 1)', finiteNumber('--sparsity'))
    .option('--pattern <n:m>', 'N:M pattern, e.g. 2:4')
    .option('--per-row', 'per-row selection (default: one threshold per matrix)')
    .option('--per-matrix', 'one threshold per matrix (default)')
    .option('--crepe-k <list>', 'window sizes to search (default 1,3,5,7,9, or the --config file\'s k)')
    .option('--config <file>', 'start from this CRePE configuration (e.g. one found on another model) instead of the RIA point')
    .option('--budget <n>', 'per window size: proxy evaluations (pho, default 60; rounded up to whole CMA-ES generations of 6, 7 with --search-a) or real trials (hillclimb, default 12)', positiveInt('--budget'))
    .option('--race <n>', 'PHO: after one CMA-ES generation at every window size, continue only the N window sizes with the best proxy so far (default: all continue)', positiveInt('--race'))
    .addOption(new Option('--proxy <name>', 'PHO proxy (default: the validated one for the target, see RESULTS.md "Proxy validation")').choices([...PROXY_NAMES]))
    .addOption(new Option('--proxy-sign <sign>', '+1: minimise the proxy; -1: maximise it (default: the validated sign)').choices(['+1', '-1']))
    .option('--proxy-from <validation.json>', 'use the proxy (and sign) that a --validate run found most correlated with PPL')
    .option('--gini-subsample <n>', 'positions per matrix for the Gini index, or "exact" (default 65536)')
    .option('--nll-windows <n>', 'windows the calib-nll proxy runs on (the first of its text; default 8)', positiveInt('--nll-windows'))
    .addOption(new Option('--nll-on <text>', 'what the calib-nll proxy measures: calibration = the first statistics windows (default); heldout = --eval-ppl\'s first windows, the text hill climbing climbs on').choices(['calibration', 'heldout']))
    .option('--proxy-rows <f>', 'compute a per-linear proxy on this fraction of each linear\'s rows (a fixed random subset; default all rows, or where they would visit more than 2e11 weights in the search a one-digit fraction within it: 0.1 for 7B at the default budget); --validate also reports its Spearman ρ with the full proxy', finiteNumber('--proxy-rows'))
    .addOption(new Option('--proxy-statistics <s>', 'the input statistics candidates are pruned with inside PHO: dense = the dense model\'s (default); start = the model pruned layer by layer by the start configuration, nearer to what a real prune sees').choices(['dense', 'start']))
    .option('--proxy-cache <dir>', 'proxy cache directory: the dense pass\'s per-linear terms, reused by later searches and validations on the same model and calibration windows, continued after an interruption (default: <out>.proxy-cache)')
    .option('--proxy-cache-budget <MiB>', 'memory for proxy terms kept between candidates, all threads together (default 1024)', nonNegativeInt('--proxy-cache-budget'))
    .option('--search-a', 'also search the activation exponent a')
    .option('--crepe-a <x>', 'activation exponent when not searched (default: the --config file\'s, else 0.5)', finiteNumber('--crepe-a'))
    .addOption(new Option('--crepe-variant <v>', 'neighbourhood term (default: the --config file\'s, else normalized)').choices(['normalized', 'smooth']))
    .option('--sigma0 <x>', 'CMA-ES initial step in log-ratio units (default 1.5)', finiteNumber('--sigma0'))
    .option('--confirm <n>', 'PHO: give the best candidates of the N best window sizes, and the start configuration, one real held-out trial each and keep the best (needs --eval-ppl unless --confirm-on calibration)', nonNegativeInt('--confirm'))
    .addOption(new Option('--confirm-statistics <s>', 'how a confirmation trial prunes: sequential = the full prune; dense = with the dense pass\'s statistics PHO searched on (no statistics pass, cheaper); default sequential').choices(['dense', 'sequential']))
    .addOption(new Option('--confirm-on <text>', 'what a confirmation trial measures: heldout = --eval-ppl\'s first windows; calibration = held-out calibration windows (the draw continued, disjoint from the statistics windows); default heldout').choices(['heldout', 'calibration']))
    .option('--confirm-windows <n>', 'windows each confirmation trial measures, at most what the text holds (default: heldout all, up to --eval-max-chunks; calibration 32, or as many as the text yields, with a note)', positiveInt('--confirm-windows'))
    .requiredOption('--out <dir>', 'output directory (crepe-config.json, search-log.json; validation.json and plots)')
    .option('--overwrite', 'replace an existing output directory')
    .option('--json', 'print the result as JSON');
  addTextsOptions(command, {
    seed: 'calibration and search seed (default 0)',
    evalPpl: 'held-out text for real PPL (hillclimb, --validate, --confirm)',
  });
  addEngineOptions(command);
  addAliases(command, {
    '--k': '--crepe-k', '--a': '--crepe-a', '--variant': '--crepe-variant',
    '--heldout': '--eval-ppl', '--heldout-seqlen': '--eval-seqlen', '--heldout-max-chunks': '--eval-max-chunks',
  });
  command.action(async (model: string, opts: SearchCliOptions) => {
    const { interruptedSearchNote, searchCoefficients } = await import('../workflows/search.ts');
    interruption.note = () => interruptedSearchNote(opts.out, opts.proxyCache);
    const result = await searchCoefficients({
      model,
      revision: opts.revision,
      out: opts.out,
      overwrite: opts.overwrite,
      strategy: opts.strategy,
      validate: opts.validate,
      target: targetOption(opts),
      selection: selectionOption(opts),
      ...textsFields(opts),
      kSet: opts.crepeK === undefined ? undefined : kList(opts.crepeK),
      crepeConfig: opts.config,
      budget: opts.budget,
      race: opts.race,
      proxy: opts.proxy,
      proxySign: opts.proxySign === undefined ? undefined : opts.proxySign === '-1' ? -1 : 1,
      proxyFrom: opts.proxyFrom,
      giniSubsample: opts.giniSubsample === undefined ? undefined : opts.giniSubsample === 'exact' ? null : positiveInt('--gini-subsample')(opts.giniSubsample),
      proxyRows: opts.proxyRows,
      proxyCache: opts.proxyCache,
      proxyCacheBudget: opts.proxyCacheBudget,
      searchA: opts.searchA,
      crepe: { a: opts.crepeA, variant: opts.crepeVariant },
      sigma0: opts.sigma0,
      confirm: opts.confirm,
      nllWindows: opts.nllWindows,
      nllOn: opts.nllOn,
      proxyStatistics: opts.proxyStatistics,
      confirmStatistics: opts.confirmStatistics,
      confirmOn: opts.confirmOn,
      confirmWindows: opts.confirmWindows,
      device: opts.device,
      threads: opts.threads,
      onProgress: progressPrinter(io),
    });
    if (opts.json) return printJson(io.stdout, result);
    io.stdout.write(`wrote ${result.out} (${result.seconds.toFixed(1)}s)\n`);
    if (result.kind === 'validation') {
      io.stdout.write(correlationLines(result.correlations));
      return;
    }
    io.stdout.write(applyHint(model, result.out, opts));
  });
}
