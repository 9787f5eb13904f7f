/** `crepe prune`: calibrate, prune layer by layer, write the pruned checkpoint and its report. */
import { Option, type Command } from 'commander';
import { METHOD_NAMES, type MethodName } from '../prune/methods.ts';
import {
  addEngineOptions, addTextsOptions, finiteNumber, positiveInt, printJson, selectionOption, targetOption, textsFields, type CliIo, type TextsOptions,
} from './options.ts';
import { progressPrinter } from './progress.ts';

type PruneCliOptions = {
  method: MethodName; out: string; device: 'cpu' | 'cuda'; sparsity?: number; pattern?: string; config?: string;
  crepeVariant?: 'normalized' | 'smooth'; dsnotSkip?: 'mlp' | 'none'; permute?: 'reallocation' | 'lsa'; exclude?: string;
} & TextsOptions & Partial<Record<'riaA' | 'crepeK' | 'crepeAlpha' | 'crepeBeta' | 'crepeGamma' | 'crepeA' | 'blocksize'
  | 'percdamp' | 'owlM' | 'owlLambda' | 'dsnotCycles' | 'dsnotThreshold' | 'permuteBlocks' | 'threads', number>>
  & Partial<Record<'perRow' | 'perMatrix' | 'trueSequential' | 'reconstruct' | 'owl' | 'dsnot' | 'dsnotSameSign' | 'overwrite' | 'resume' | 'json', boolean>>;

export function register(program: Command, io: CliIo, argv: readonly string[]): void {
  const command = program
    .command('prune')
    .description('prune a Hugging Face model layer by layer and write the pruned checkpoint')
    .argument('<model>', 'Hugging Face model directory')
    .requiredOption('--method <name>', `scoring method: ${METHOD_NAMES.join(', ')}`)
    .option('--sparsity <s>', 'unstructured sparsity in (0, 1)', finiteNumber('--sparsity'))
    .option('--pattern <n:m>', 'N:M semi-structured: prune n of every m consecutive inputs per row (e.g. 2:4)')
    .option('--per-row', 'select per output row (Wanda\'s default)')
    .option('--per-matrix', 'one threshold per matrix (magnitude/RIA/CRePE default)')
    .option('--ria-a <a>', 'RIA activation exponent (default 0.5)', finiteNumber('--ria-a'))
    .option('--config <file>', 'CRePE configuration JSON (from `crepe search`); default: the shipped config')
    .option('--crepe-k <k>', 'CRePE window size (odd)', positiveInt('--crepe-k'))
    .option('--crepe-alpha <x>', 'CRePE row coefficient', finiteNumber('--crepe-alpha'))
    .option('--crepe-beta <x>', 'CRePE column coefficient', finiteNumber('--crepe-beta'))
    .option('--crepe-gamma <x>', 'CRePE neighbourhood coefficient', finiteNumber('--crepe-gamma'))
    .option('--crepe-a <x>', 'CRePE activation exponent', finiteNumber('--crepe-a'))
    .addOption(new Option('--crepe-variant <v>', 'CRePE neighbourhood term').choices(['normalized', 'smooth']))
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
    .addOption(new Option('--dsnot-skip <which>', 'sublayers DSnoT leaves alone').choices(['mlp', 'none']).default('mlp'))
    .addOption(new Option('--permute <strategy>', 'channel permutation for N:M').choices(['reallocation', 'lsa']))
    .option('--permute-blocks <n>', 'LSA blocks per layer (RIA --fast uses 4/8/16; default 1)', positiveInt('--permute-blocks'))
    .option('--exclude <linears>', 'leave these linears dense in every layer, e.g. mlp.down_proj or down_proj,o_proj')
    .requiredOption('--out <dir>', 'output model directory')
    .option('--overwrite', 'replace an existing output directory')
    .option('--resume', 'continue an interrupted run from its last finished layer')
    .option('--json', 'print the report as JSON');
  addTextsOptions(command, {
    seed: 'calibration sampler seed, as Python\'s random.seed (default 0)',
    evalPpl: 'measure the pruned model\'s perplexity on this text (checked before pruning starts)',
  });
  addEngineOptions(command);
  command.action(async (model: string, opts: PruneCliOptions) => {
    const { pruneModel } = await import('../workflows/prune.ts');
    const crepe = { k: opts.crepeK, alpha: opts.crepeAlpha, beta: opts.crepeBeta, gamma: opts.crepeGamma, a: opts.crepeA, variant: opts.crepeVariant };
    const report = await pruneModel({
      model,
      out: opts.out,
      method: opts.method,
      target: targetOption(opts),
      selection: selectionOption(opts),
      ...textsFields(opts),
      riaA: opts.riaA,
      crepeConfig: opts.config,
      crepe,
      trueSequential: opts.trueSequential,
      sparsegpt: { blockSize: opts.blocksize, percdamp: opts.percdamp },
      reconstruct: opts.reconstruct,
      owl: opts.owl ? { m: opts.owlM, lambda: opts.owlLambda } : null,
      dsnot: opts.dsnot ? { maxCycles: opts.dsnotCycles, updateThreshold: opts.dsnotThreshold, skip: opts.dsnotSkip, sameSign: opts.dsnotSameSign } : null,
      permute: opts.permute ? { strategy: opts.permute, blocks: opts.permuteBlocks } : null,
      exclude: opts.exclude?.split(',').map((name) => name.trim()),
      overwrite: opts.overwrite,
      resume: opts.resume,
      command: ['crepe', ...argv].join(' '),
      device: opts.device,
      threads: opts.threads,
      onProgress: progressPrinter(io),
    });
    if (opts.json) return printJson(io.stdout, report);
    const evaluation = report.evaluation ? `, PPL ${report.evaluation.ppl.toFixed(4)} on ${report.evaluation.file}` : '';
    io.stdout.write(`wrote ${report.out}: linear sparsity ${(report.totals.linearSparsity * 100).toFixed(3)}% in ${report.totals.seconds.toFixed(1)}s${evaluation}\n`);
  });
}
