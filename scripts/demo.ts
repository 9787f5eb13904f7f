/**
 * `npm run demo`: the main job end to end on the bundled test model, with the command lines a
 * user would type. Converts stories260K (llama2.c) from ../shared/data to a Hugging Face
 * directory, measures its WikiText-2 perplexity, prunes it with RIA at 50 % (C4 calibration) and
 * measures the pruned model, then does the same with CRePE (the shipped configuration, found by
 * PHO on this model). Outputs go to demo-out/ (git-ignored).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { C4_SAMPLE, REPO_ROOT, STORIES_BIN, STORIES_TOK, WIKITEXT_TEST } from '../test/helpers/shared.ts';

const root = REPO_ROOT;
const out = path.join(root, 'demo-out');
const crepe = path.join(root, 'bin/crepe.js');

const model = STORIES_BIN;
const tokenizer = STORIES_TOK;
const wikitext = WIKITEXT_TEST;
const c4 = C4_SAMPLE;
for (const file of [model, tokenizer, wikitext, c4]) {
  if (!existsSync(file)) {
    process.stderr.write(`demo: ${file} is missing; the demo needs ../shared/data beside the repository\n`);
    process.exit(2);
  }
}

/** Runs one crepe command; JSON answers are parsed by the demo rather than echoed. */
function run(args: string[]): string {
  const shown = ['crepe', ...args.map((a) => (path.isAbsolute(a) ? path.relative(root, a) : a))].join(' ');
  process.stdout.write(`\n$ ${shown}\n`);
  const result = spawnSync(process.execPath, [crepe, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
  if (!args.includes('--json')) process.stdout.write(result.stdout);
  if (result.status !== 0) {
    process.stderr.write(`demo: step failed with exit code ${result.status}\n`);
    process.exit(result.status ?? 1);
  }
  return result.stdout;
}

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const dense = path.join(out, 'stories260K');
const pruned = path.join(out, 'stories260K-ria-50');

run(['convert', model, '--tokenizer', tokenizer, '--out', dense]);
const densePpl = JSON.parse(run(['eval', dense, '--eval-ppl', wikitext, '--seqlen', '512', '--json'])).ppl as number;
const report = JSON.parse(
  run(['prune', dense, '--method', 'ria', '--sparsity', '0.5', '--calib', c4, '--nsamples', '32', '--seqlen', '256',
    '--out', pruned, '--eval-ppl', wikitext, '--eval-seqlen', '512', '--json']),
);
const prunedPpl = report.evaluation.ppl as number;
const crepePruned = path.join(out, 'stories260K-crepe-50');
const crepeReport = JSON.parse(
  run(['prune', dense, '--method', 'crepe', '--sparsity', '0.5', '--calib', c4, '--nsamples', '32', '--seqlen', '256',
    '--out', crepePruned, '--eval-ppl', wikitext, '--eval-seqlen', '512', '--json']),
);
const sparsity = (r: { totals: { linearSparsity: number } }) => `${(r.totals.linearSparsity * 100).toFixed(2)}%`;
process.stdout.write(
  `\nstories260K on WikiText-2 test (seqlen 512):\n` +
    `  dense         PPL ${densePpl.toFixed(3)}\n` +
    `  RIA   50 %    PPL ${prunedPpl.toFixed(3)} (linear sparsity ${sparsity(report)})\n` +
    `  CRePE 50 %    PPL ${(crepeReport.evaluation.ppl as number).toFixed(3)} (linear sparsity ${sparsity(crepeReport)})\n` +
    `pruned models: ${path.relative(root, pruned)}/, ${path.relative(root, crepePruned)}/ (each with crepe-report.json)\n`,
);
