/** `crepe prune`: calibrate, prune layer by layer, write the pruned checkpoint and its report. */
import { Option, type Command } from 'commander';
import { METHOD_NAMES, type MethodName } from '../prune/methods.ts';
import {
  addEngineOptions, addTextsOptions, finiteNumber, interruption, positiveInt, printJson, refuseUnused, selectionOption, targetOption, textsFields, type CliIo, type TextsOptions,
} from './options.ts';
import { progressPrinter } from './progress.ts';
import { describeTaskReport, LIMIT_HELP, TASK_DIR_HELP, TASKS_HELP, taskDirOption } from './tasks.ts';

type PruneCliOptions = {
  method: MethodName; out: string; device: 'cpu' | 'cuda'; sparsity?: number; pattern?: string; config?: string;
  crepeVariant?: 'normalized' | 'smooth'; saveFormat: 'dense' | 'sparse-bitmask'; maxShardSize?: string; revision?: string; dsnotSkip?: 'mlp' | 'none'; permute?: 'reallocation' | 'lsa'; exclude?: string; baseModel?: string; sparsityConfig?: boolean;
  evalTasks?: string; evalTaskDir?: string; evalLimit?: number;
} & TextsOptions & Partial<Record<'riaA' | 'crepeK' | 'crepeAlpha' | 'crepeBeta' | 'crepeGamma' | 'crepeA' | 'blocksize'
  | 'percdamp' | 'owlM' | 'owlLambda' | 'dsnotCycles' | 'dsnotThreshold' | 'permuteBlocks' | 'threads', number>>
  & Partial<Record<'perRow' | 'perMatrix' | 'trueSequential' | 'reconstruct' | 'owl' | 'dsnot' | 'dsnotSameSign' | 'overwrite' | 'resume' | 'json' | 'auto', boolean>>;

export function register(program: Command, io: CliIo, argv: readonly string[]): void {
  const command = program
    .command('prune')
    .description('prune a Hugging Face model layer by layer and write the pruned checkpoint')
    .argument('<model>', 'Hugging Face model directory, or a Hub id org/name[@revision] (downloaded into the Hugging Face cache)')
    .option('--revision <rev>', 'branch, tag or commit of a Hub id (default main)')
    .requiredOption('--method <name>', `scoring method: ${METHOD_NAMES.join(', ')}`)
    .option('--sparsity <s>', 'unstructured sparsity in (0, 1)', finiteNumber('--sparsity'))
    .option('--pattern <n:m>', 'N:M semi-structured: prune n of every m consecutive inputs per row (e.g. 2:4)')
    .option('--per-row', 'select per output row (Wanda\'s default)')
    .option('--per-matrix', 'one threshold per matrix (magnitude/RIA/CRePE default)')
    .option('--ria-a <a>', 'RIA activation exponent (default 0.5)', finiteNumber('--ria-a'))
    .option('--config <file>', 'CRePE configuration JSON (from `crepe search`); default: the shipped one for the target (configs/crepe-50|60|70|2of4|4of8.json: nearest sparsity, an N:M pattern\'s own)')
    .option('--auto', 'CRePE: search this model\'s k, β and γ (PHO; a and the variant stay the configuration\'s), then keep the best of the top candidates, the target\'s shipped default and the RIA point by perplexity on held-out calibration windows (disjoint from the statistics windows)')
    .option('--crepe-k <k>', 'CRePE window size, odd (default: the configuration\'s, see --config)', positiveInt('--crepe-k'))
    .option('--crepe-alpha <x>', 'CRePE row coefficient (default: the configuration\'s)', finiteNumber('--crepe-alpha'))
    .option('--crepe-beta <x>', 'CRePE column coefficient (default: the configuration\'s)', finiteNumber('--crepe-beta'))
    .option('--crepe-gamma <x>', 'CRePE neighbourhood coefficient (default: the configuration\'s)', finiteNumber('--crepe-gamma'))
    .option('--crepe-a <x>', 'CRePE activation exponent (default: the configuration\'s)', finiteNumber('--crepe-a'))
    .addOption(new Option('--crepe-variant <v>', 'CRePE neighbourhood term (default: the configuration\'s)').choices(['normalized', 'smooth']))
    .option('--true-sequential', 'collect statistics group by group on the partly pruned block')
    .option('--blocksize <n>', 'SparseGPT column block (default 128)', positiveInt('--blocksize'))
    .option('--percdamp <x>', 'SparseGPT dampening, fraction of the mean Hessian diagonal (default 0.01)', finiteNumber('--percdamp'))
    .option('--reconstruct', 'SparseGPT weight update under the method\'s fixed mask')
    .option('--owl', 'outlier-weighted layer-wise sparsity (OWL)')
    .option('--owl-m <m>', 'OWL outlier threshold M (default 5)', finiteNumber('--owl-m'))
    .option('--owl-lambda <x>', 'OWL sparsity spread λ (default 0.08)', finiteNumber('--owl-lambda'))
    .option('--dsnot', 'DSnoT prune-and-grow re-pruning')
    .option('--dsnot-cycles <n>', 'DSnoT maximum cycles (default 50)', positiveInt('--dsnot-cycles'))
    .option('--dsnot-threshold <x>', 'DSnoT update threshold (default 0.1)', finiteNumber('--dsnot-threshold'))
    .option('--dsnot-same-sign', 'DSnoT: only swap while the row\'s error keeps its sign (off in the reference\'s unstructured path)')
    .addOption(new Option('--dsnot-skip <which>', 'sublayers DSnoT leaves alone (default mlp)').choices(['mlp', 'none']))
    .addOption(new Option('--permute <strategy>', 'channel permutation for N:M').choices(['reallocation', 'lsa']))
    .option('--permute-blocks <n>', 'LSA blocks per layer (RIA --fast uses 4/8/16; default 1)', positiveInt('--permute-blocks'))
    .option('--exclude <linears>', 'leave these linears dense in every layer, e.g. mlp.down_proj or down_proj,o_proj')
    .requiredOption('--out <dir>', 'output model directory')
    .addOption(new Option('--save-format <fmt>', 'weights as stored: dense, or compressed-tensors\' sparse-bitmask (smaller; transformers with compressed-tensors and crepe read it)').choices(['dense', 'sparse-bitmask']).default('dense'))
    .option('--no-sparsity-config', 'leave config.json without compressed-tensors\' sparsity_config (plain transformers loads it without the compressed-tensors package; dense saves only)')
    .option('--max-shard-size <s>', 'largest weight file, e.g. 2GB or 500MiB; larger models are sharded with an index (default 5GB)')
    .option('--overwrite', 'replace an existing output directory')
    .option('--resume', 'continue an interrupted run from its last finished layer')
    .option('--base-model <id>', 'Hub id of the input model for the model card\'s base_model (default: config.json\'s _name_or_path when it is one)')
    .option('--eval-tasks <list>', `zero-shot accuracy of the pruned model (checked before pruning starts): ${TASKS_HELP}`)
    .option('--eval-task-dir <dir>', TASK_DIR_HELP)
    .option('--eval-limit <n>', LIMIT_HELP, positiveInt('--eval-limit'))
    .option('--json', 'print the report as JSON');
  addTextsOptions(command, {
    seed: 'calibration sampler seed, as Python\'s random.seed (default 0)',
    evalPpl: 'measure the pruned model\'s perplexity on this text (checked before pruning starts)',
  });
  addEngineOptions(command);
  command.action(async (model: string, opts: PruneCliOptions) => {
    if (!opts.owl) refuseUnused('--owl', { '--owl-m': opts.owlM, '--owl-lambda': opts.owlLambda });
    if (!opts.dsnot) refuseUnused('--dsnot', { '--dsnot-cycles': opts.dsnotCycles, '--dsnot-threshold': opts.dsnotThreshold, '--dsnot-same-sign': opts.dsnotSameSign, '--dsnot-skip': opts.dsnotSkip });
    if (!opts.permute) refuseUnused('--permute', { '--permute-blocks': opts.permuteBlocks });
    const { interruptedPruneNote, pruneModel } = await import('../workflows/prune.ts');
    interruption.note = () => interruptedPruneNote(opts.out);
    const { pruneSummary } = await import('../workflows/prune-report.ts');
    const crepe = { k: opts.crepeK, alpha: opts.crepeAlpha, beta: opts.crepeBeta, gamma: opts.crepeGamma, a: opts.crepeA, variant: opts.crepeVariant };
    const report = await pruneModel({
      model,
      revision: opts.revision,
      out: opts.out,
      method: opts.method,
      target: targetOption(opts),
      selection: selectionOption(opts),
      ...textsFields(opts),
      riaA: opts.riaA,
      crepeConfig: opts.config,
      auto: opts.auto,
      crepe,
      trueSequential: opts.trueSequential,
      sparsegpt: { blockSize: opts.blocksize, percdamp: opts.percdamp },
      reconstruct: opts.reconstruct,
      owl: opts.owl ? { m: opts.owlM, lambda: opts.owlLambda } : null,
      dsnot: opts.dsnot ? { maxCycles: opts.dsnotCycles, updateThreshold: opts.dsnotThreshold, skip: opts.dsnotSkip, sameSign: opts.dsnotSameSign } : null,
      permute: opts.permute ? { strategy: opts.permute, blocks: opts.permuteBlocks } : null,
      exclude: opts.exclude?.split(',').map((name) => name.trim()),
      overwrite: opts.overwrite,
      saveFormat: opts.saveFormat,
      maxShardSize: opts.maxShardSize,
      sparsityMetadata: opts.sparsityConfig,
      resume: opts.resume,
      command: ['crepe', ...argv].join(' '),
      baseModel: opts.baseModel,
      evalTasks: opts.evalTasks,
      evalTaskDir: opts.evalTasks === undefined ? opts.evalTaskDir : taskDirOption(opts.evalTaskDir, '--eval-task-dir'),
      evalLimit: opts.evalLimit,
      device: opts.device,
      threads: opts.threads,
      onProgress: progressPrinter(io),
    });
    if (opts.json) return printJson(io.stdout, report);
    if (report.crepeConfig) io.stdout.write(`CRePE configuration: ${report.crepeConfig.reason}\n`);
    io.stdout.write(pruneSummary(report));
    if (report.zeroShot) io.stdout.write(describeTaskReport(report.zeroShot));
  });
}
