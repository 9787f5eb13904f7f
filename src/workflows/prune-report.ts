/**
 * The documents a pruning run writes next to its weights, from its report:
 *   - the model card (README.md): the input's card, its YAML front matter merged (tags pruned,
 *     crepe, sparse; base_model when known) and a "Pruning" section in the style of Hub model
 *     cards. A section crepe wrote earlier (the input was pruned by crepe) is replaced, not
 *     repeated; without an input card, one is created;
 *   - crepe-report.md: the run at a glance, with inline SVG charts (sparsity per layer and per
 *     linear, perplexity dense vs pruned, time per stage) and the storage order of permuted linears;
 *   - the one-screen summary the command line prints at the end.
 */
import path from 'node:path';
import { LINEAR_NAMES } from '../model/spec.ts';
import { stageTotals } from '../prune/layer-loop.ts';
import { describeTarget } from '../prune/target.ts';
import { barChartSvg } from '../util/svg-bars.ts';
import type { PruneReport } from './prune.ts';



const SECTION_START = '<!-- crepe:pruning -->';
const SECTION_END = '<!-- /crepe:pruning -->';
export const MODEL_CARD_TAGS = ['pruned', 'crepe', 'sparse'] as const;

const percent = (x: number, digits = 3): string => `${(x * 100).toFixed(digits)}%`;
const seconds = (s: number): string => (s >= 100 ? `${s.toFixed(0)}s` : `${s.toFixed(1)}s`);
const shortSha = (sha: string): string => sha.slice(0, 12);

/** "wanda, 2:4" / "crepe, 50.0% unstructured, per-matrix selection", with the options that changed the method. */
export function describeMethod(report: PruneReport): string {
  const { settings } = report;
  const parts = [settings.method, describeTarget(settings.target)];
  if (settings.target.kind === 'unstructured') parts.push(`${settings.selection} selection`);
  if (settings.owl) parts.push(`OWL (M ${settings.owl.m}, λ ${settings.owl.lambda})`);
  if (settings.dsnot) parts.push('DSnoT');
  if (settings.permute) parts.push(`${settings.permute.strategy} channel permutation`);
  if (settings.reconstruct) parts.push('reconstruction');
  if (settings.trueSequential) parts.push('true-sequential');
  return parts.join(', ');
}

/** "12.34 → 15.67 (+27.0%)" or null without a measurement. */
export function describePerplexity(report: PruneReport): string | null {
  const { baseline, evaluation } = report;
  if (!evaluation) return null;
  if (!baseline) return evaluation.ppl.toFixed(4);
  const change = (evaluation.ppl / baseline.ppl - 1) * 100;
  return `${baseline.ppl.toFixed(4)} → ${evaluation.ppl.toFixed(4)} (${change >= 0 ? '+' : ''}${change.toFixed(1)}%)`;
}

/** Seconds per stage of the run, in order. */
export function stageSeconds(report: PruneReport): Array<{ stage: string; seconds: number }> {
  const sum = stageTotals(report.layers);
  const layerTotal = sum.statistics + sum.pruning + sum.forward;
  const stages = [
    ...(report.auto ? [{ stage: 'auto (PHO, confirmation)', seconds: report.auto.seconds.total }] : []),
    ...(report.baseline ? [{ stage: 'dense perplexity', seconds: report.baseline.seconds }] : []),
    { stage: 'calibration statistics', seconds: sum.statistics },
    { stage: 'scoring and pruning', seconds: sum.pruning },
    { stage: 'forward to next layer', seconds: sum.forward },
    { stage: 'checks, writing, copying', seconds: Math.max(0, report.totals.pipelineSeconds - layerTotal) },
    ...(report.evaluation ? [{ stage: 'pruned perplexity', seconds: report.evaluation.seconds }] : []),
  ];
  return stages;
}

/** Block linears grouped by name over all layers: pruned fraction and count. */
export function sparsityByLinear(report: PruneReport): Array<{ name: string; sparsity: number; excluded: number }> {
  return LINEAR_NAMES.map((name) => {
    let pruned = 0;
    let total = 0;
    let excluded = 0;
    for (const layer of report.layers) {
      for (const linear of layer.linears) {
        if (linear.name !== name) continue;
        pruned += linear.pruned;
        total += linear.shape[0] * linear.shape[1];
        if (linear.excluded) excluded++;
      }
    }
    return { name, sparsity: total ? pruned / total : 0, excluded };
  });
}

/** Pruned fraction of each layer's block linears. */
export function sparsityByLayer(report: PruneReport): number[] {
  return report.layers.map((layer) => {
    let pruned = 0;
    let total = 0;
    for (const linear of layer.linears) {
      pruned += linear.pruned;
      total += linear.shape[0] * linear.shape[1];
    }
    return total ? pruned / total : 0;
  });
}

/** "5 down_proj" style counts of module names by their linear. */
function countByLinear(modules: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const module of modules) {
    const linear = module.split('.').pop()!;
    counts.set(linear, (counts.get(linear) ?? 0) + 1);
  }
  return [...counts].map(([linear, count]) => `${count} ${linear}`).join(', ');
}

/** One sentence on the storage order of permuted N:M linears, or null without a permutation. */
export function describeStorage(report: PruneReport): string | null {
  if (!report.storage) return null;
  const { foldedIntoWeights, needRuntimePermutation } = report.storage;
  const stored = foldedIntoWeights.length ? `N:M as stored: ${countByLinear(foldedIntoWeights)} (permutation folded into gate/up rows and down columns)` : 'no linear is N:M as stored';
  const runtime = needRuntimePermutation.length
    ? `N:M only after permuting their input at run time (order in crepe-report.json): ${countByLinear(needRuntimePermutation)}`
    : 'no linear needs a runtime permutation';
  return `${stored}; ${runtime}`;
}

// ---------------------------------------------------------------------------------------------
// Model card

/** The YAML front matter (without its fences) and the rest of a README. */
export function splitFrontMatter(text: string): { yaml: string | null; body: string } {
  const match = /^---\r?\n([\s\S]*?)\r?\n(?:---|\.\.\.)[ \t]*(?:\r?\n|$)/.exec(text);
  if (!match) return { yaml: null, body: text };
  return { yaml: match[1], body: text.slice(match[0].length) };
}

const TOP_LEVEL_KEY = /^([A-Za-z_][\w-]*)[ \t]*:(.*)$/;

/** Splits YAML into top-level blocks: each a key (null for leading comments/blank lines) and its lines. */
function topLevelBlocks(yaml: string): Array<{ key: string | null; lines: string[] }> {
  const blocks: Array<{ key: string | null; lines: string[] }> = [];
  for (const line of yaml.split(/\r?\n/)) {
    const key = TOP_LEVEL_KEY.exec(line);
    // A block sequence may sit at the key's own indentation ("tags:\n- a"), so "- " continues it.
    if (key) blocks.push({ key: key[1], lines: [line] });
    else if (blocks.length === 0) blocks.push({ key: null, lines: [line] });
    else blocks[blocks.length - 1].lines.push(line);
  }
  return blocks;
}

/** The scalar items of a YAML list block (flow `[a, b]`, block `- a`, or a single scalar). */
function listItems(lines: readonly string[]): string[] {
  const unquote = (item: string) => item.trim().replace(/^(['"])(.*)\1$/, '$2');
  const inline = TOP_LEVEL_KEY.exec(lines[0])![2].trim();
  if (inline.startsWith('[')) return inline.replace(/^\[|\]$/g, '').split(',').map(unquote).filter(Boolean);
  if (inline && !inline.startsWith('#')) return [unquote(inline)];
  return lines.slice(1).map((line) => /^\s*-\s+(.*)$/.exec(line)?.[1]).filter((item): item is string => item !== undefined).map(unquote);
}

const yamlString = (value: string): string => (/^[\w./-]+$/.test(value) && !/^[\d.-]/.test(value) ? value : JSON.stringify(value));

/**
 * `yaml` with MODEL_CARD_TAGS added to its tags and base_model set when known; every other key is
 * kept as written.
 */
export function mergeFrontMatter(yaml: string | null, baseModel: string | null): string {
  const blocks = yaml === null ? [] : topLevelBlocks(yaml);
  const tagsBlock = blocks.find((b) => b.key === 'tags');
  const tags = tagsBlock ? listItems(tagsBlock.lines) : [];
  for (const tag of MODEL_CARD_TAGS) if (!tags.includes(tag)) tags.push(tag);
  const newTags = ['tags:', ...tags.map((tag) => `- ${yamlString(tag)}`)];
  if (tagsBlock) tagsBlock.lines = newTags;
  else blocks.push({ key: 'tags', lines: newTags });
  if (baseModel) {
    const line = `base_model: ${yamlString(baseModel)}`;
    const existing = blocks.find((b) => b.key === 'base_model');
    if (existing) existing.lines = [line];
    else blocks.push({ key: 'base_model', lines: [line] });
  }
  return blocks.flatMap((b) => b.lines).join('\n').replace(/\n+$/, '');
}

/** Markdown table cell text: pipes escaped, one line. */
const cell = (text: string): string => text.replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ');

/** The "Pruning" section of the model card (between crepe's markers). */
export function pruningSection(report: PruneReport): string {
  const { settings, totals, calibration } = report;
  const rows: Array<[string, string]> = [
    ['Method', describeMethod(report)],
    ['Target', describeTarget(settings.target)],
  ];
  if (settings.target.kind === 'unstructured') rows.push(['Selection', settings.selection]);
  if (settings.crepe) {
    const c = settings.crepe;
    rows.push(['CRePE coefficients', `k ${c.k}, α ${c.alpha}, β ${c.beta}, γ ${c.gamma}, a ${c.a}, ${c.variant}`]);
  }
  if (settings.exclude?.length) rows.push(['Left dense', settings.exclude.join(', ')]);
  const cal = settings.calibration;
  rows.push([
    'Calibration',
    `${path.basename(cal.file)} (sha256 ${shortSha(cal.sha256)}…), ${cal.nsamples} windows × ${cal.seqlen} tokens, seed ${cal.seed} (windows sha256 ${shortSha(calibration.windowsSha256)}…)`,
  ]);
  rows.push(['Linear sparsity reached', `${percent(totals.linearSparsity)} (${totals.prunedWeights} of ${totals.linearWeights} block-linear weights; embeddings, norms and lm_head dense)`]);
  const ppl = describePerplexity(report);
  if (ppl && report.evaluation) {
    const e = report.evaluation;
    rows.push([`Perplexity${report.baseline ? ' dense → pruned' : ' (pruned)'}`, `${ppl} on ${path.basename(e.file)}, ${e.windows} windows × ${e.seqlen} tokens`]);
  }
  const storage = describeStorage(report);
  if (storage) rows.push(['Storage order', storage]);
  rows.push(['Tool', `crepe ${report.crepeVersion}`]);
  if (report.command) rows.push(['Command', `\`${report.command.replace(/`/g, "'")}\``]);
  return [
    SECTION_START,
    '## Pruning',
    '',
    `This model was pruned after training with crepe: ${describeMethod(report)}. ` +
      'Pruned weights are stored as zeros in the original tensors and dtypes; the details of the run are in `crepe-report.json` and `crepe-report.md`.',
    '',
    '| | |',
    '|---|---|',
    ...rows.map(([name, value]) => `| ${cell(name)} | ${cell(value)} |`),
    SECTION_END,
  ].join('\n');
}

/**
 * The output's README.md from the input's (null when it had none): front matter merged, crepe's
 * earlier section replaced or the new one appended. `title` heads a card created from nothing.
 */
export function modelCard(input: string | null, report: PruneReport, opts: { title: string; baseModel: string | null }): string {
  const { yaml, body } = splitFrontMatter(input ?? '');
  let text = input === null ? `# ${opts.title}\n` : body;
  const start = text.indexOf(SECTION_START);
  const end = text.indexOf(SECTION_END, start);
  const section = pruningSection(report);
  if (start >= 0 && end > start) text = text.slice(0, start) + section + text.slice(end + SECTION_END.length);
  else text = `${text.replace(/\s+$/, '')}${text.trim() ? '\n\n' : ''}${section}\n`;
  return `---\n${mergeFrontMatter(yaml, opts.baseModel)}\n---\n${text.startsWith('\n') ? '' : '\n'}${text}`;
}

// ---------------------------------------------------------------------------------------------
// crepe-report.md

/** crepe-report.md: the run in tables and inline SVG charts. */
export function reportMarkdown(report: PruneReport): string {
  const { settings, totals } = report;
  const lines: string[] = [
    `# crepe pruning report`,
    '',
    `**${describeMethod(report)}** on \`${report.model.dir}\` — linear sparsity ${percent(totals.linearSparsity)}, ${seconds(totals.seconds)} in all.`,
    '',
    '| | |',
    '|---|---|',
    `| Model | ${cell(report.model.spec.family)} — ${report.model.spec.numLayers} layers, hidden ${report.model.spec.hiddenSize}, intermediate ${report.model.spec.intermediateSize} |`,
    `| Calibration | ${cell(path.basename(settings.calibration.file))}, ${settings.calibration.nsamples} × ${settings.calibration.seqlen} tokens, seed ${settings.calibration.seed} |`,
    `| Pruned weights | ${totals.prunedWeights} of ${totals.linearWeights} block-linear weights (${percent(totals.linearSparsity)}) |`,
  ];
  const ppl = describePerplexity(report);
  if (ppl) lines.push(`| Perplexity${report.baseline ? ' dense → pruned' : ''} | ${ppl} on ${cell(path.basename(report.evaluation!.file))} |`);
  const storage = describeStorage(report);
  if (storage) lines.push(`| Storage order | ${cell(storage)} |`);
  lines.push(`| crepe | ${report.crepeVersion} |`);
  if (report.command) lines.push(`| Command | \`${cell(report.command.replace(/`/g, "'"))}\` |`);

  lines.push('', '## Sparsity per layer', '');
  lines.push(barChartSvg(sparsityByLayer(report).map((value, layer) => ({ label: `layer ${layer}`, value })), {
    title: 'Pruned fraction of the block linears, per layer', xLabel: 'sparsity', max: 1, format: (v) => percent(v, 1),
  }));
  lines.push('## Sparsity per linear (all layers)', '');
  lines.push(barChartSvg(sparsityByLinear(report).map(({ name, sparsity }) => ({ label: name, value: sparsity })), {
    title: 'Pruned fraction per linear', xLabel: 'sparsity', max: 1, format: (v) => percent(v, 1),
  }));
  if (report.evaluation) {
    lines.push('## Perplexity', '');
    const bars = [
      ...(report.baseline ? [{ label: 'dense', value: report.baseline.ppl, color: '#7f7f7f' }] : []),
      { label: 'pruned', value: report.evaluation.ppl, color: '#d62728' },
    ];
    lines.push(barChartSvg(bars, { title: `Perplexity on ${path.basename(report.evaluation.file)} (lower is better)`, xLabel: 'perplexity', format: (v) => v.toFixed(3) }));
  }
  lines.push('## Time per stage', '');
  lines.push(barChartSvg(stageSeconds(report).map(({ stage, seconds: value }) => ({ label: stage, value })), {
    title: 'Wall-clock seconds per stage', xLabel: 'seconds', format: (v) => v.toFixed(2),
  }));
  if (report.storage) {
    lines.push('## Storage order of permuted N:M linears', '');
    lines.push(`Folded into the stored weights (N:M as written): ${report.storage.foldedIntoWeights.length ? report.storage.foldedIntoWeights.join(', ') : 'none'}.`, '');
    lines.push(
      `Need their input permuted at run time (the order is each linear's \`permutation.order\` in crepe-report.json; the residual stream and attention heads cannot be reordered for free): ${report.storage.needRuntimePermutation.length ? report.storage.needRuntimePermutation.join(', ') : 'none'}.`,
      '',
    );
  }
  lines.push('## Files', '');
  lines.push(`Copied from the input: ${report.files.copied.length ? report.files.copied.map((f) => `\`${f}\``).join(', ') : 'none'}.`, '');
  const skipped = report.files.skipped.filter((s) => s.reason !== 'hidden');
  if (skipped.length) lines.push(`Not copied: ${skipped.map((s) => `\`${s.file}\` (${s.reason})`).join(', ')}.`, '');
  return `${lines.join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------
// Terminal summary

/** The one-screen summary printed at the end of a run. */
export function pruneSummary(report: PruneReport & { out: string }): string {
  const { totals } = report;
  const stages = stageSeconds(report).filter((s) => s.seconds >= 0.05).map((s) => `${s.stage} ${s.seconds.toFixed(1)}s`);
  const rows: Array<[string, string]> = [
    ['method', describeMethod(report)],
    ['sparsity', `${(totals.linearSparsity * 100).toFixed(3)}% of ${totals.linearWeights} block-linear weights (${totals.prunedWeights} pruned)`],
    ['time', `${totals.seconds.toFixed(1)}s${stages.length ? ` (${stages.join(', ')})` : ''}`],
  ];
  const ppl = describePerplexity(report);
  if (ppl && report.evaluation) rows.push([report.baseline ? 'PPL dense → pruned' : 'PPL', `${ppl} on ${report.evaluation.file} (${report.evaluation.windows} windows × ${report.evaluation.seqlen})`]);
  const storage = describeStorage(report);
  if (storage) rows.push(['storage', storage]);
  rows.push(['wrote', `${report.out} (weights, crepe-report.json/.md, README.md model card, ${report.files.copied.length} file${report.files.copied.length === 1 ? '' : 's'} copied)`]);
  const width = Math.max(...rows.map(([name]) => name.length));
  return `crepe prune: done\n${rows.map(([name, value]) => `  ${name.padEnd(width)}  ${value}`).join('\n')}\n`;
}
