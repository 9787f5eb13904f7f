/** `crepe prune`: calibrate, prune layer by layer, write the pruned checkpoint and its report. */
import { Option, type Command } from 'commander';
import path from 'node:path';
import { existsSync } from 'node:fs';
import { runPrunePipeline, publishOutput, workDirFor } from '../prune/pipeline.ts';
import type { CrepeParams, PruneSettings, PruneTarget, Selection } from '../prune/settings.ts';
import { describeTarget } from '../prune/settings.ts';
import { parsePattern } from '../prune/mask.ts';
import { SCORE_METHODS } from '../prune/scores/index.ts';
import { resolveCrepeParams } from '../prune/scores/crepe.ts';
import { loadCrepeConfig, DEFAULT_CREPE_CONFIG_PATH } from '../search/crepe-config.ts';
import { ModelCheckpoint } from '../model/checkpoint.ts';
import { LINEAR_NAMES, type LinearName } from '../model/spec.ts';
import { TextTokenizer } from '../model/tokenizer.ts';
import { sampleCalibrationFile, windowsSha256 } from '../data/calibration.ts';
import { atomicWriteJson } from '../io/atomic.ts';
import { sha256File } from '../util/hash.ts';
import { createProgress } from '../util/progress.ts';
import { check } from '../util/errors.ts';
import { evaluatePerplexityFile, type EvalPplReport } from './eval.ts';
import { engineOptionList, engineOptionsFrom, finiteNumber, nonNegativeInt, positiveInt, printJson } from './options.ts';
import { checkTasks, describeTaskReport, resolveTaskDir, runTaskEvaluation, TASK_DIR_HELP, TASKS_HELP } from './tasks.ts';
import type { ZeroShotReport } from '../eval/zeroshot.ts';

export const METHODS = ['magnitude', 'wanda', 'sparsegpt', 'ria', 'crepe'] as const;

interface PruneCliOptions {
  method: string;
  sparsity?: number;
  pattern?: string;
  perRow?: boolean;
  perMatrix?: boolean;
  riaA: number;
  config?: string;
  crepeK?: number;
  crepeAlpha?: number;
  crepeBeta?: number;
  crepeGamma?: number;
  crepeA?: number;
  crepeVariant?: 'normalized' | 'smooth';
  calib: string;
  nsamples: number;
  seqlen?: number;
  seed: number;
  trueSequential?: boolean;
  blocksize: number;
  percdamp: number;
  reconstruct?: boolean;
  owl?: boolean;
  owlM: number;
  owlLambda: number;
  dsnot?: boolean;
  dsnotCycles: number;
  dsnotThreshold: number;
  dsnotSkip: 'mlp' | 'none';
  dsnotSameSign?: boolean;
  permute?: 'reallocation' | 'lsa';
  permuteBlocks: number;
  exclude?: string;
  out: string;
  overwrite?: boolean;
  resume?: boolean;
  evalPpl?: string;
  evalSeqlen?: number;
  evalMaxChunks?: number;
  evalTasks?: string;
  evalTaskDir?: string;
  evalLimit?: number;
  json?: boolean;
  device: string;
  threads?: number;
}

/** Turns the command line into validated settings; every refusal names its option. */
export function settingsFromOptions(opts: PruneCliOptions, calibSha256: string, seqlen: number): PruneSettings {
  check((METHODS as readonly string[]).includes(opts.method), `--method "${opts.method}" is unknown; expected one of ${METHODS.join(', ')}`);
  check((opts.sparsity === undefined) !== (opts.pattern === undefined), 'give exactly one of --sparsity <s> (unstructured) or --pattern <n:m>');
  const target: PruneTarget = opts.pattern !== undefined ? parsePattern(opts.pattern) : parsePattern(String(opts.sparsity), '--sparsity');
  check(!(opts.perRow && opts.perMatrix), '--per-row and --per-matrix exclude each other');
  const selection: Selection = opts.perRow ? 'per-row' : opts.perMatrix ? 'per-matrix' : defaultSelection(opts.method);

  let crepe: CrepeParams | null = null;
  if (opts.method === 'crepe') {
    const base = loadCrepeConfig(opts.config ?? DEFAULT_CREPE_CONFIG_PATH);
    crepe = resolveCrepeParams(
      {
        k: opts.crepeK ?? base.k,
        alpha: opts.crepeAlpha ?? base.alpha,
        beta: opts.crepeBeta ?? base.beta,
        gamma: opts.crepeGamma ?? base.gamma,
        a: opts.crepeA ?? base.a,
        variant: opts.crepeVariant ?? base.variant,
        border: base.border,
      },
      'CRePE options',
    );
  } else {
    check(opts.config === undefined, '--config applies to --method crepe only');
  }

  if (opts.permute) check(target.kind === 'nm', '--permute needs an N:M --pattern; channel permutation does nothing for unstructured sparsity');
  if (opts.dsnot) check(opts.method !== 'sparsegpt', '--dsnot re-prunes a score-based mask; it does not apply to --method sparsegpt');
  if (opts.reconstruct) check(opts.method !== 'sparsegpt', '--reconstruct is built into --method sparsegpt already');
  if (opts.owl && target.kind === 'unstructured') {
    check(opts.owlLambda > 0 && opts.owlLambda < target.sparsity, `--owl-lambda must be in (0, ${target.sparsity}) for --sparsity ${target.sparsity}, got ${opts.owlLambda}`);
  }
  check(opts.percdamp > 0, `--percdamp must be positive, got ${opts.percdamp}`);

  return {
    method: opts.method,
    target,
    selection,
    riaA: opts.riaA,
    crepe,
    calibration: { file: path.resolve(opts.calib), sha256: calibSha256, nsamples: opts.nsamples, seqlen, seed: opts.seed },
    trueSequential: Boolean(opts.trueSequential),
    sparsegpt: { blockSize: opts.blocksize, percdamp: opts.percdamp },
    reconstruct: Boolean(opts.reconstruct),
    owl: opts.owl ? { m: opts.owlM, lambda: opts.owlLambda } : null,
    dsnot: opts.dsnot ? { maxCycles: opts.dsnotCycles, updateThreshold: opts.dsnotThreshold, skip: opts.dsnotSkip, ...(opts.dsnotSameSign ? { sameSign: true } : {}) } : null,
    permute: opts.permute ? { strategy: opts.permute, blocks: opts.permuteBlocks } : null,
    exclude: parseExclude(opts.exclude),
  };
}

/** --exclude q_proj,mlp.down_proj → full linear names; unknown names are refused. */
function parseExclude(text: string | undefined): LinearName[] {
  if (!text) return [];
  return text.split(',').map((part) => {
    const wanted = part.trim();
    const match = LINEAR_NAMES.find((name) => name === wanted || name.endsWith(`.${wanted}`));
    check(match !== undefined, `--exclude "${wanted}" is not a linear of a decoder block; expected some of ${LINEAR_NAMES.join(', ')}`);
    return match;
  });
}

function defaultSelection(method: string): Selection {
  const entry = SCORE_METHODS[method as keyof typeof SCORE_METHODS];
  return entry ? entry.defaultSelection : 'per-matrix';
}

export async function runPrune(modelDir: string, opts: PruneCliOptions): Promise<Record<string, unknown>> {
  const started = Date.now();
  const outDir = path.resolve(opts.out);
  check(existsSync(path.join(modelDir, 'config.json')), `${modelDir} is not a model directory (no config.json)`);
  check(!existsSync(outDir) || opts.overwrite, `${outDir} already exists; pass --overwrite to replace it`);
  check(existsSync(opts.calib), `--calib ${opts.calib}: no such file`);
  const spec = (() => {
    const model = ModelCheckpoint.open(modelDir);
    try {
      return model.spec;
    } finally {
      model.close();
    }
  })();
  const seqlen = opts.seqlen ?? Math.min(2048, spec.maxPositionEmbeddings);
  const calibSha256 = sha256File(opts.calib);
  const settings = settingsFromOptions(opts, calibSha256, seqlen);
  const evalTaskDir = opts.evalTasks !== undefined ? resolveTaskDir(opts.evalTaskDir, '--eval-task-dir') : undefined;
  if (opts.evalTasks !== undefined) checkTasks(opts.evalTasks, evalTaskDir!, opts.evalLimit);

  const tokenizer = TextTokenizer.load(modelDir);
  const calibration = sampleCalibrationFile(opts.calib, (text) => tokenizer.encode(text, { bos: true }), {
    nsamples: opts.nsamples,
    seqlen,
    seed: opts.seed,
  });

  const progress = createProgress(`prune ${settings.method} ${describeTarget(settings.target)}`, spec.numLayers);
  const result = await runPrunePipeline({
    modelDir,
    outDir,
    settings,
    windows: calibration.windows,
    engine: engineOptionsFrom(opts),
    resume: Boolean(opts.resume),
    overwrite: Boolean(opts.overwrite),
    progress,
  });
  progress.done(`linear sparsity ${(result.linearSparsity * 100).toFixed(3)}%`);

  let evaluation: EvalPplReport | null = null;
  if (opts.evalPpl) {
    evaluation = await evaluatePerplexityFile(workDirFor(outDir), opts.evalPpl, {
      seqlen: opts.evalSeqlen ?? seqlen,
      maxChunks: opts.evalMaxChunks,
      device: opts.device,
      threads: opts.threads,
    });
  }

  let zeroShot: ZeroShotReport | null = null;
  if (opts.evalTasks !== undefined) {
    const evaluated = await runTaskEvaluation(workDirFor(outDir), { tasks: opts.evalTasks, taskDir: evalTaskDir!, limit: opts.evalLimit, device: opts.device, threads: opts.threads });
    zeroShot = { ...evaluated, model: outDir };
  }

  const report = {
    tool: 'crepe',
    command: ['crepe', 'prune', ...process.argv.slice(3)].join(' '),
    model: { dir: path.resolve(modelDir), spec, inputSha256: result.inputSha256 },
    settings,
    calibration: { windows: calibration.windows.length, windowsSha256: windowsSha256(calibration.windows), draws: calibration.draws },
    layerTargets: result.layerTargets,
    layers: result.layers,
    totals: {
      linearSparsity: result.linearSparsity,
      prunedWeights: result.prunedWeights,
      linearWeights: result.linearWeights,
      pipelineSeconds: result.seconds,
      seconds: (Date.now() - started) / 1000,
    },
    evaluation,
    zeroShot,
  };
  await atomicWriteJson(path.join(workDirFor(outDir), 'crepe-report.json'), report);
  publishOutput(outDir);
  return report;
}

export function register(program: Command): void {
  const command = program
    .command('prune')
    .description('prune a Hugging Face model layer by layer and write the pruned checkpoint')
    .argument('<model>', 'Hugging Face model directory')
    .requiredOption('--method <name>', `scoring method: ${METHODS.join(', ')}`)
    .option('--sparsity <s>', 'unstructured sparsity in (0, 1)', finiteNumber('--sparsity'))
    .option('--pattern <n:m>', 'N:M semi-structured: prune n of every m consecutive inputs per row (e.g. 2:4)')
    .option('--per-row', 'select per output row (Wanda\'s default)')
    .option('--per-matrix', 'one threshold per matrix (magnitude/RIA/CRePE default)')
    .option('--ria-a <a>', 'RIA activation exponent', finiteNumber('--ria-a'), 0.5)
    .option('--config <file>', 'CRePE configuration JSON (from `crepe search`); default: the shipped config')
    .option('--crepe-k <k>', 'CRePE window size (odd)', positiveInt('--crepe-k'))
    .option('--crepe-alpha <x>', 'CRePE row coefficient', finiteNumber('--crepe-alpha'))
    .option('--crepe-beta <x>', 'CRePE column coefficient', finiteNumber('--crepe-beta'))
    .option('--crepe-gamma <x>', 'CRePE neighbourhood coefficient', finiteNumber('--crepe-gamma'))
    .option('--crepe-a <x>', 'CRePE activation exponent', finiteNumber('--crepe-a'))
    .addOption(new Option('--crepe-variant <v>', 'CRePE neighbourhood term').choices(['normalized', 'smooth']))
    .requiredOption('--calib <file>', 'calibration text: JSON Lines with a "text" field (C4 protocol) or plain text')
    .option('--nsamples <n>', 'calibration windows', positiveInt('--nsamples'), 128)
    .option('--seqlen <n>', 'tokens per calibration window (default: min(2048, model context))', positiveInt('--seqlen'))
    .option('--seed <n>', 'calibration sampler seed (Python random.seed)', nonNegativeInt('--seed'), 0)
    .option('--true-sequential', 'collect statistics group by group on the partly pruned block')
    .option('--blocksize <n>', 'SparseGPT column block', positiveInt('--blocksize'), 128)
    .option('--percdamp <x>', 'SparseGPT dampening, fraction of the mean Hessian diagonal', finiteNumber('--percdamp'), 0.01)
    .option('--reconstruct', 'SparseGPT weight update under the method\'s fixed mask')
    .option('--owl', 'outlier-weighted layer-wise sparsity (OWL)')
    .option('--owl-m <m>', 'OWL outlier threshold M', finiteNumber('--owl-m'), 5)
    .option('--owl-lambda <x>', 'OWL sparsity spread λ', finiteNumber('--owl-lambda'), 0.08)
    .option('--dsnot', 'DSnoT prune-and-grow re-pruning')
    .option('--dsnot-cycles <n>', 'DSnoT maximum cycles', positiveInt('--dsnot-cycles'), 50)
    .option('--dsnot-threshold <x>', 'DSnoT update threshold', finiteNumber('--dsnot-threshold'), 0.1)
    .option('--dsnot-same-sign', 'DSnoT: only swap while the row\'s error keeps its sign (off in the reference\'s unstructured path)')
    .addOption(new Option('--dsnot-skip <which>', 'sublayers DSnoT leaves alone').choices(['mlp', 'none']).default('mlp'))
    .addOption(new Option('--permute <strategy>', 'channel permutation for N:M').choices(['reallocation', 'lsa']))
    .option('--permute-blocks <n>', 'LSA blocks per layer (RIA --fast uses 4/8/16)', positiveInt('--permute-blocks'), 1)
    .option('--exclude <linears>', 'leave these linears dense in every layer, e.g. mlp.down_proj or down_proj,o_proj')
    .requiredOption('--out <dir>', 'output model directory')
    .option('--overwrite', 'replace an existing output directory')
    .option('--resume', 'continue an interrupted run from its last finished layer')
    .option('--eval-ppl <file>', 'measure the pruned model\'s perplexity on this text')
    .option('--eval-seqlen <n>', 'perplexity window (default: --seqlen)', positiveInt('--eval-seqlen'))
    .option('--eval-max-chunks <k>', 'evaluate only the first K windows', positiveInt('--eval-max-chunks'))
    .option('--eval-tasks <list>', `zero-shot accuracy of the pruned model: ${TASKS_HELP}`)
    .option('--eval-task-dir <dir>', TASK_DIR_HELP)
    .option('--eval-limit <n>', 'zero-shot: only the first N documents of each task', positiveInt('--eval-limit'))
    .option('--json', 'print the report as JSON');
  for (const option of engineOptionList()) command.addOption(option);
  command.action(async (modelDir: string, opts: PruneCliOptions) => {
    const report = await runPrune(modelDir, opts);
    if (opts.json) printJson(report);
    else {
      const totals = report.totals as { linearSparsity: number; seconds: number };
      const evaluation = report.evaluation as EvalPplReport | null;
      process.stdout.write(`wrote ${path.resolve(opts.out)}: linear sparsity ${(totals.linearSparsity * 100).toFixed(3)}% in ${totals.seconds.toFixed(1)}s`);
      process.stdout.write(evaluation ? `, PPL ${evaluation.ppl.toFixed(4)} on ${evaluation.file}\n` : '\n');
      const zeroShot = report.zeroShot as ZeroShotReport | null;
      if (zeroShot) process.stdout.write(describeTaskReport(zeroShot));
    }
  });
}

