/**
 * `npm run gpu-check`: the GPU path checked against the CPU. Runs, on each device, the WikiText-2
 * evaluation and RIA / SparseGPT 50 % prunes (C4 calibration, with the pruned model's WikiText-2
 * perplexity) of stories260K and of a 2-layer synthetic model with TinyLlama-1.1B's layer shapes,
 * then compares the perplexities and the masks (the zero pattern of every pruned linear) and
 * records the times. Writes gpu-check.json and gpu-check.md into --out (default gpu-check-out/)
 * and prints the markdown.
 *
 *   node --import tsx scripts/gpu-check.ts [--devices cuda,cpu] [--out DIR] [--quick]
 *
 * Refuses with one line (exit 2) when this onnxruntime-node has no CUDA execution provider or it
 * cannot start. `--devices cpu,cpu` runs the same comparison on the CPU twice (a check of the script
 * itself on a machine without a GPU). Exit 1 when the devices disagree: PPL beyond 0.1 % relative,
 * or masks agreeing on fewer than 99.9 % of the linear weights.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { convertToHuggingFace } from '../src/model/convert.ts';
import { evaluatePerplexity } from '../src/workflows/eval.ts';
import { pruneModel } from '../src/workflows/prune.ts';
import { cudaAvailable, createSession } from '../src/engine/session.ts';
import { GraphBuilder } from '../src/engine/onnx-builder.ts';
import { UserError } from '../src/util/errors.ts';
import { maskAgreement } from '../bench/mask-agreement.ts';
import { syntheticModelWithTokenizer, TINYLLAMA_2_LAYERS } from '../bench/synthetic-model.ts';
import { C4_SAMPLE, STORIES_BIN, STORIES_TOK, WIKITEXT_TEST } from '../test/helpers/shared.ts';

type Device = 'cpu' | 'cuda';
const PPL_TOLERANCE = 1e-3;
const MASK_AGREEMENT_MIN = 0.999;

function argValue(name: string): string | undefined {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? process.argv[at + 1] : undefined;
}

function refuse(message: string): never {
  process.stderr.write(`gpu-check: ${message}\n`);
  process.exit(2);
}

/** Refuses unless `device` can run a session here. */
async function checkDevice(device: Device): Promise<void> {
  if (device !== 'cuda') return;
  if (!cudaAvailable()) {
    refuse('this onnxruntime-node install has no CUDA execution provider (libonnxruntime_providers_cuda.so beside its binding); '
      + 'on a machine with an NVIDIA GPU reinstall it with ONNXRUNTIME_NODE_INSTALL=cuda12 (see README), or run --devices cpu,cpu to check this script');
  }
  const g = new GraphBuilder('probe');
  g.output(g.neg(g.input('x', [1])), 'y', [1]);
  try {
    await (await createSession(g.toBytes(), { device: 'cuda' })).release();
  } catch (error) {
    refuse(error instanceof UserError ? error.message : `the CUDA execution provider did not start: ${(error as Error).message}`);
  }
}

interface Case {
  model: 'stories260K' | 'tinyllama-2-layers';
  work: 'eval' | 'ria' | 'sparsegpt';
}

interface CaseRun {
  device: Device;
  seconds: number;
  ppl: number;
  out?: string;
}

interface CaseResult extends Case {
  runs: CaseRun[];
  pplRelativeDifference: number;
  maskAgreement?: number;
  agree: boolean;
}

async function main(): Promise<void> {
  const devices = (argValue('devices') ?? 'cuda,cpu').split(',').map((d) => d.trim()) as Device[];
  if (devices.length !== 2 || devices.some((d) => d !== 'cpu' && d !== 'cuda')) refuse(`--devices expects two of cpu, cuda (e.g. cuda,cpu), got ${argValue('devices')}`);
  for (const file of [STORIES_BIN, STORIES_TOK, WIKITEXT_TEST, C4_SAMPLE]) if (!existsSync(file)) refuse(`${file} is missing; the check needs ../shared/data beside the repository`);
  for (const device of new Set(devices)) await checkDevice(device);
  const quick = process.argv.includes('--quick');
  const outDir = path.resolve(argValue('out') ?? 'gpu-check-out');
  mkdirSync(outDir, { recursive: true });
  const work = mkdtempSync(path.join(os.tmpdir(), 'crepe-gpu-check-'));
  const log = (line: string): void => void process.stderr.write(`${line}\n`);

  try {
    const stories = path.join(work, 'stories260K');
    await convertToHuggingFace(STORIES_BIN, stories, { tokenizer: STORIES_TOK });
    const models = {
      stories260K: { dir: stories, layers: 5, seqlen: 256, nsamples: quick ? 8 : 32, evalMaxChunks: quick ? 64 : undefined },
      'tinyllama-2-layers': {
        dir: await syntheticModelWithTokenizer(TINYLLAMA_2_LAYERS, stories, path.join(work, 'tinyllama-2-layers'), log),
        layers: 2, seqlen: 512, nsamples: quick ? 4 : 32, evalMaxChunks: quick ? 4 : 32,
      },
    };
    const cases: Case[] = [];
    for (const model of Object.keys(models) as Case['model'][]) for (const what of ['eval', 'ria', 'sparsegpt'] as const) cases.push({ model, work: what });

    const results: CaseResult[] = [];
    for (const c of cases) {
      const m = models[c.model];
      const runs: CaseRun[] = [];
      for (const [index, device] of devices.entries()) {
        log(`gpu-check: ${c.model} ${c.work} on ${device} …`);
        const started = performance.now();
        if (c.work === 'eval') {
          const result = await evaluatePerplexity({ model: m.dir, text: WIKITEXT_TEST, seqlen: m.seqlen, maxChunks: m.evalMaxChunks, device });
          runs.push({ device, seconds: (performance.now() - started) / 1000, ppl: result.ppl });
        } else {
          const out = path.join(work, `${c.model}-${c.work}-${index}-${device}`);
          const result = await pruneModel({
            model: m.dir, out, method: c.work, target: { kind: 'unstructured', sparsity: 0.5 }, device,
            calib: C4_SAMPLE, nsamples: m.nsamples, seqlen: m.seqlen, seed: 0,
            evalText: WIKITEXT_TEST, evalSeqlen: m.seqlen, evalMaxChunks: m.evalMaxChunks,
          });
          runs.push({ device, seconds: (performance.now() - started) / 1000, ppl: result.evaluation?.ppl ?? NaN, out });
        }
      }
      const [a, b] = runs;
      const pplRelativeDifference = Math.abs(a.ppl - b.ppl) / Math.abs(b.ppl);
      let agreement: number | undefined;
      if (a.out && b.out) {
        const masks = maskAgreement(a.out, b.out, m.layers);
        agreement = masks.same / masks.total;
        for (const run of runs) rmSync(run.out!, { recursive: true, force: true });
      }
      const agree = pplRelativeDifference <= PPL_TOLERANCE && (agreement === undefined || agreement >= MASK_AGREEMENT_MIN);
      results.push({ ...c, runs: runs.map(({ out: _out, ...run }) => run), pplRelativeDifference, maskAgreement: agreement, agree });
      log(`gpu-check: ${c.model} ${c.work}: PPL ${a.ppl.toFixed(4)} vs ${b.ppl.toFixed(4)}${agreement === undefined ? '' : `, masks agree on ${(agreement * 100).toFixed(4)} %`}`);
    }

    const markdown = [
      `## GPU check: ${devices[0]} against ${devices[1]}`,
      '',
      `${new Date().toISOString()}, ${os.cpus()[0]?.model ?? 'unknown CPU'}; written by scripts/gpu-check.ts${quick ? ' (--quick)' : ''}. `
        + `PPL: WikiText-2 test (the pruned model's, for prunes); prunes at 50 % unstructured with C4 calibration (seed 0). Agreement: PPL within ${PPL_TOLERANCE * 100} % and masks on ≥ ${MASK_AGREEMENT_MIN * 100} % of the linear weights.`,
      '',
      `| model | work | ${devices[0]} time | ${devices[1]} time | speed-up | ${devices[0]} PPL | ${devices[1]} PPL | PPL rel. diff | masks agree | verdict |`,
      '|---|---|---:|---:|---:|---:|---:|---:|---:|---|',
      ...results.map((r) => `| ${r.model} | ${r.work} | ${r.runs[0].seconds.toFixed(1)} s | ${r.runs[1].seconds.toFixed(1)} s | ${(r.runs[1].seconds / r.runs[0].seconds).toFixed(2)}× | `
        + `${r.runs[0].ppl.toFixed(4)} | ${r.runs[1].ppl.toFixed(4)} | ${r.pplRelativeDifference.toExponential(1)} | `
        + `${r.maskAgreement === undefined ? '—' : `${(r.maskAgreement * 100).toFixed(4)} %`} | ${r.agree ? 'agree' : '**differ**'} |`),
      '',
    ].join('\n');
    writeFileSync(path.join(outDir, 'gpu-check.json'), `${JSON.stringify({ devices, quick, results }, null, 2)}\n`);
    writeFileSync(path.join(outDir, 'gpu-check.md'), markdown);
    process.stdout.write(markdown);
    log(`gpu-check: wrote ${path.join(outDir, 'gpu-check.json')} and gpu-check.md`);
    if (results.some((r) => !r.agree)) process.exitCode = 1;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
