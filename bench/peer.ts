/**
 * Peer benchmark: the same work in crepe and in what a user would run instead — Hugging Face
 * transformers + PyTorch, float32, through the small scripts in bench/peer/ — back to back on this
 * machine, with the ratio of the two from one run:
 *
 *  (a) WikiText-2 test perplexity of stories260K at seqlen 256 (3,183 windows): crepe's
 *      `perplexity()` on its converted model directory, the peer (bench/peer/ppl.py) loading that
 *      same directory with `AutoModelForCausalLM` and evaluating the token ids crepe produced;
 *  (b) RIA 50 % (per-matrix, a = 0.5) of a 2-layer synthetic model with TinyLlama-1.1B's layer
 *      shapes (F16 weights), 32 × 512 C4 calibration windows: `crepe prune` (its CLI, in a child
 *      process) against the Wanda/RIA reference flow (bench/peer/ria.py); both write the pruned
 *      model, and their masks are compared.
 *
 * The peer is Python with torch and transformers, found through CREPE_PEER_PYTHON (a python
 * executable) or python3/python on PATH; without one the section says so and skips. crepe never
 * depends on Python. The peer runs with OMP_WAIT_POLICY=PASSIVE (the counterpart of crepe's
 * non-spinning ORT threads) and with whichever of 1 or 2 threads a short probe finds faster.
 *
 * Standalone: node --import tsx bench/peer.ts [--windows N] [--skip ria|ppl]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { convertToHuggingFace } from '../src/model/convert.ts';
import { ModelCheckpoint } from '../src/model/checkpoint.ts';
import { TextTokenizer } from '../src/model/tokenizer.ts';
import { readEvalText } from '../src/data/text-sources.ts';
import { sampleCalibrationFile, windowsSha256 } from '../src/data/calibration.ts';
import { perplexity, type PerplexityOptions } from '../src/eval/perplexity.ts';
import { stageTotals, type LayerReport } from '../src/prune/layer-loop.ts';
import { argValue, runJsonProcess } from './child-process.ts';
import { maskAgreement } from './mask-agreement.ts';
import { syntheticModelWithTokenizer, TINYLLAMA_2_LAYERS } from './synthetic-model.ts';
import { C4_SAMPLE, STORIES_BIN, STORIES_TOK, WIKITEXT_TEST } from '../test/helpers/shared.ts';
import { relaunchEnvForThisProcess } from '../src/util/huge-pages.ts';

type Log = (line: string) => void;
const here = path.dirname(fileURLToPath(import.meta.url));
const PEER_PPL = path.join(here, 'peer', 'ppl.py');
const PEER_RIA = path.join(here, 'peer', 'ria.py');
const CREPE_CLI_CHILD = path.join(here, 'crepe-cli-child.mjs');
const repoRoot = path.resolve(here, '..');
// No bytecode cache: the scripts import bench/peer/peer_common.py, which would leave __pycache__/ in the repository.
const PEER_ENV = { ...process.env, OMP_WAIT_POLICY: 'PASSIVE', TRANSFORMERS_VERBOSITY: 'error', HF_HUB_OFFLINE: '1', PYTHONDONTWRITEBYTECODE: '1' };

export interface Peer {
  python: string;
  versions: { python: string; torch: string; transformers: string };
}

const PROBE = 'import json, platform, torch, transformers, safetensors; '
  + 'print(json.dumps({"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__}))';

/** The peer's Python, or why there is none. */
export function findPeer(): Peer | { missing: string } {
  const fromEnv = process.env.CREPE_PEER_PYTHON;
  const candidates = fromEnv ? [fromEnv] : ['python3', 'python'];
  const reasons: string[] = [];
  for (const python of candidates) {
    const probe = spawnSync(python, ['-c', PROBE], { encoding: 'utf8', timeout: 180_000 });
    if (probe.error) {
      reasons.push(`${python}: ${(probe.error as NodeJS.ErrnoException).code ?? probe.error.message}`);
      continue;
    }
    if (probe.status !== 0) {
      reasons.push(`${python}: ${probe.stderr.trim().split('\n').at(-1) ?? `exit ${probe.status}`}`);
      continue;
    }
    return { python, versions: JSON.parse(probe.stdout.trim().split('\n').at(-1)!) as Peer['versions'] };
  }
  return { missing: `${fromEnv ? 'CREPE_PEER_PYTHON' : 'python3/python on PATH'} has no torch + transformers (${reasons.join('; ')})` };
}

interface Timed {
  wall: number;
  cpu: number;
}

/** Wall and CPU seconds (this process, all threads) of `fn`. */
async function timed<T>(fn: () => Promise<T>): Promise<{ value: T } & Timed> {
  const cpu = process.cpuUsage();
  const started = performance.now();
  const value = await fn();
  const used = process.cpuUsage(cpu);
  return { value, wall: (performance.now() - started) / 1000, cpu: (used.user + used.system) / 1e6 };
}

const s = (seconds: number): string => `${seconds.toFixed(1)} s`;
const ratio = (peer: number, crepe: number): string => `**${(peer / crepe).toFixed(2)}×**`;
const loadNow = (): string => os.loadavg().map((l) => l.toFixed(1)).join(' / ');

interface PeerPpl { ppl: number; windows: number; seconds: number; cpuSeconds: number; threads: number }

/** (a): stories260K WikiText-2 PPL, crepe and the peer alternating, two rounds each. */
async function benchPpl(peer: Peer, work: string, log: Log, maxWindows?: number): Promise<string[]> {
  const seqlen = 256;
  const modelDir = path.join(work, 'stories260K');
  await convertToHuggingFace(STORIES_BIN, modelDir, { tokenizer: STORIES_TOK });
  const tokens = TextTokenizer.load(modelDir).encode(readEvalText(WIKITEXT_TEST), { bos: true });
  const idsFile = path.join(work, 'wikitext2-test.i32');
  writeFileSync(idsFile, new Uint8Array(tokens.buffer, tokens.byteOffset, tokens.byteLength));
  const model = ModelCheckpoint.open(modelDir);
  const windows = Math.min(Math.floor(tokens.length / seqlen), maxWindows ?? Infinity);

  const runPeer = async (threads: number, limit: number): Promise<PeerPpl & { wallSeconds: number }> => {
    const args = [PEER_PPL, '--model', modelDir, '--tokens', idsFile, '--seqlen', String(seqlen), '--batch', '8', '--threads', String(threads), '--max-windows', String(limit)];
    const { result, wallSeconds } = await runJsonProcess<PeerPpl>(peer.python, args, () => undefined, PEER_ENV);
    return { ...result, wallSeconds };
  };
  const runCrepe = (opts: Partial<PerplexityOptions> = {}) =>
    timed(() => perplexity(model, tokens, { device: 'cpu', seqlen, maxChunks: windows, ...opts }));

  try {
    // The peer's thread count: whichever of 1 and 2 evaluates 200 windows faster right now.
    log('peer: probing the peer\'s thread count on 200 windows …');
    const probe = [await runPeer(1, 200), await runPeer(2, 200)];
    const peerThreads = probe[0].seconds <= probe[1].seconds ? 1 : 2;
    log(`peer: thread probe 1 → ${s(probe[0].seconds)}, 2 → ${s(probe[1].seconds)}; using ${peerThreads}`);

    const crepeRuns: Timed[] = [];
    const peerRuns: PeerPpl[] = [];
    let crepePpl = 0;
    for (let round = 0; round < 2; round++) {
      log(`peer: PPL round ${round + 1}: crepe …`);
      const c = await runCrepe();
      crepePpl = c.value.ppl;
      crepeRuns.push(c);
      log(`peer: PPL round ${round + 1}: crepe ${s(c.wall)} (cpu ${s(c.cpu)}); peer …`);
      const p = await runPeer(peerThreads, windows);
      peerRuns.push(p);
      log(`peer: PPL round ${round + 1}: peer ${s(p.seconds)} (cpu ${s(p.cpuSeconds)})`);
    }
    // crepe's own variants in the same run: the layer-major path and spinning ORT threads.
    log('peer: crepe variants (layer-major, spinning threads) …');
    const layerMajor = await runCrepe({ mode: 'layer-major' });
    const spinning = await runCrepe({ spinning: true });

    const best = <T extends object>(runs: T[], key: keyof T): T => runs.reduce((a, b) => ((a[key] as number) <= (b[key] as number) ? a : b));
    const crepeBest = best(crepeRuns, 'wall');
    const peerBest = best(peerRuns, 'seconds');
    const peerPpl = peerRuns[0].ppl;
    return [
      `### (a) WikiText-2 test perplexity of stories260K, seqlen ${seqlen} (${windows} windows)`,
      '',
      `crepe: \`perplexity()\` on the converted model directory (whole-model ONNX graph, default threads, ${crepeBest === crepeRuns[0] ? 'first' : 'second'} round fastest); `
        + `peer: \`AutoModelForCausalLM\` on the same directory and the same token ids, batches of 8 windows, ${peerThreads} thread(s) (probe on 200 windows: 1 → ${s(probe[0].seconds)}, 2 → ${s(probe[1].seconds)}). `
        + 'Times exclude loading; crepe\'s include building its session. Fastest of two alternating rounds each.',
      '',
      '| | crepe | peer | peer / crepe |',
      '|---|---:|---:|---:|',
      `| wall time | ${s(crepeBest.wall)} | ${s(peerBest.seconds)} | ${ratio(peerBest.seconds, crepeBest.wall)} |`,
      `| CPU time (all threads) | ${s(crepeBest.cpu)} | ${s(peerBest.cpuSeconds)} | ${ratio(peerBest.cpuSeconds, crepeBest.cpu)} |`,
      `| PPL | ${crepePpl.toFixed(4)} | ${peerPpl.toFixed(4)} | relative difference ${(Math.abs(crepePpl - peerPpl) / peerPpl).toExponential(1)} |`,
      '',
      `All rounds, wall (CPU) seconds — crepe: ${crepeRuns.map((r) => `${r.wall.toFixed(1)} (${r.cpu.toFixed(1)})`).join(', ')}; `
        + `peer: ${peerRuns.map((r) => `${r.seconds.toFixed(1)} (${r.cpuSeconds.toFixed(1)})`).join(', ')}. `
        + `crepe variants in the same run: layer-major path (one block per run, hidden states through JavaScript) ${s(layerMajor.wall)} (CPU ${s(layerMajor.cpu)}); `
        + `whole-model with spinning ORT threads ${s(spinning.wall)} (CPU ${s(spinning.cpu)}). Load average after: ${loadNow()}.`,
      '',
    ];
  } finally {
    model.close();
  }
}

interface CrepePruneChild {
  cpuSeconds: number;
  report: {
    calibration: { windowsSha256: string };
    totals: { linearSparsity: number };
    layers: LayerReport[];
  };
}

interface PeerRia {
  seconds: { import: number; load: number; forward: number; score: number; select: number; prune: number; save: number; total: number; cpu: number };
  threads: number;
}

/** (b): RIA 50 % on the 2-layer TinyLlama-shaped model, `crepe prune` then the peer. */
async function benchRia(peer: Peer, work: string, log: Log): Promise<string[]> {
  const nsamples = 32;
  const seqlen = 512;
  // The synthetic model has no tokenizer: C4 is tokenised with stories260K's (ids < 512, valid
  // for the 32000-row embedding), which its directory gets beside the weights.
  const stories = path.join(work, 'stories260K');
  const modelDir = await syntheticModelWithTokenizer(TINYLLAMA_2_LAYERS, stories, path.join(work, 'tinyllama-2-layers'), log);

  const tokenizer = TextTokenizer.load(stories);
  const calibration = sampleCalibrationFile(C4_SAMPLE, (text) => tokenizer.encode(text, { bos: true }), { nsamples, seqlen, seed: 0 });
  const windowsFile = path.join(work, 'c4-windows.i32');
  const all = new Int32Array(nsamples * seqlen);
  calibration.windows.forEach((w, i) => all.set(w, i * seqlen));
  writeFileSync(windowsFile, new Uint8Array(all.buffer));

  const crepeOut = path.join(work, 'ria-crepe');
  const peerOut = path.join(work, 'ria-peer');
  // crepe as an installed crepe runs it: the compiled CLI, not the sources through tsx's loader
  // (which would add its transpiling to crepe's start-up).
  log('peer: building dist/ (tsc -p tsconfig.build.json)');
  execFileSync(process.execPath, [path.join(repoRoot, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: repoRoot, stdio: 'pipe' });
  log(`peer: RIA, crepe prune (child process), load ${loadNow()} …`);
  const cliArgs = ['prune', modelDir, '--method', 'ria', '--sparsity', '0.5', '--per-matrix', '--calib', C4_SAMPLE,
    '--nsamples', String(nsamples), '--seqlen', String(seqlen), '--seed', '0', '--out', crepeOut, '--json'];
  // In the environment the `crepe` command would start itself again with (huge pages where THP is
  // madvise); that second start-up (about 0.25 s, "Huge pages for the command line") is not timed.
  const crepe = await runJsonProcess<CrepePruneChild>(process.execPath, [CREPE_CLI_CHILD, ...cliArgs], log, relaunchEnvForThisProcess() ?? process.env);
  if (crepe.result.report.calibration.windowsSha256 !== windowsSha256(calibration.windows)) {
    throw new Error('crepe prune drew other calibration windows than the ones given to the peer');
  }
  log(`peer: RIA crepe ${s(crepe.wallSeconds)}; the peer, load ${loadNow()} …`);
  const peerRun = await runJsonProcess<PeerRia>(peer.python, [PEER_RIA, '--model', modelDir, '--windows', windowsFile, '--seqlen', String(seqlen), '--out', peerOut], () => undefined, PEER_ENV);
  log(`peer: RIA peer ${s(peerRun.wallSeconds)}`);
  const agreement = maskAgreement(crepeOut, peerOut, 2);
  const t = peerRun.result.seconds;
  const c = stageTotals(crepe.result.report.layers);
  return [
    '### (b) RIA 50 %, 2-layer TinyLlama-shaped model (F16), C4 32 × 512',
    '',
    'crepe: `crepe prune --method ria --sparsity 0.5 --per-matrix` (calibration sampled by crepe from the C4 sample, seed 0, tokenised with stories260K\'s tokenizer), '
      + 'the compiled CLI (dist/) in its own process, end to end (start-up, reading, hashing, calibration, pruning, writing the F16 model; CPU time from process start). '
      + `Peer: the Wanda/RIA reference flow on the same windows (hooks collecting Σx² per linear, one sample per forward, RIA score, torch.sort threshold, re-forward), ${peerRun.result.threads} threads, `
      + 'end to end (Python imports, loading, pruning, `save_pretrained` in F16). Wall times from process start to exit; one run each, back to back.',
    '',
    '| | crepe | peer | peer / crepe |',
    '|---|---:|---:|---:|',
    `| wall time, end to end | ${s(crepe.wallSeconds)} | ${s(peerRun.wallSeconds)} | ${ratio(peerRun.wallSeconds, crepe.wallSeconds)} |`,
    `| CPU time of the pruning process | ${s(crepe.result.cpuSeconds)} | ${s(t.cpu)} | ${ratio(t.cpu, crepe.result.cpuSeconds)} |`,
    '',
    `crepe breakdown: statistics passes ${s(c.statistics)}, forward passes ${s(c.forward)}, scoring ${s(c.score)}, selection ${s(c.select)}, `
      + `other pruning work ${s(c.pruning - c.score - c.select)}, the rest (start-up, hashing and checking the input, calibration, embedding, writing layers and the model) `
      + `${s(crepe.wallSeconds - c.statistics - c.forward - c.pruning)}.`,
    `Peer breakdown: imports ${s(t.import)}, loading ${s(t.load)}, forward passes ${s(t.forward)}, scoring ${s(t.score)}, `
      + `torch.sort selection ${s(t.select)}, zeroing ${s(t.prune)}, saving ${s(t.save)}.`,
    `Masks: ${((agreement.same / agreement.total) * 100).toFixed(3)} % of the ${(agreement.total / 1e6).toFixed(1)} M linear weights agree (zero in both or in neither); `
      + `zeros crepe ${((agreement.aZeros / agreement.total) * 100).toFixed(3)} %, peer ${((agreement.bZeros / agreement.total) * 100).toFixed(3)} % `
      + '(per-matrix thresholds prune floor(N·s)+1 plus ties; the peer\'s statistics are float32 sums in another order, so near-threshold weights can differ).',
    '',
  ];
}

export async function benchPeer(log: Log, options: { quick?: boolean; maxWindows?: number; skip?: string[] } = {}): Promise<string> {
  const found = findPeer();
  const header = ['## Peer: Hugging Face transformers + PyTorch on the same CPU', ''];
  if ('missing' in found) {
    return [...header, `Skipped: no peer — ${found.missing}. Set CREPE_PEER_PYTHON to a Python with torch and transformers (e.g. a virtual environment outside the repository) to run this section.`, ''].join('\n');
  }
  const lines = [
    ...header,
    `Peer: Python ${found.versions.python}, torch ${found.versions.torch}, transformers ${found.versions.transformers} (${found.python}), float32, OMP_WAIT_POLICY=PASSIVE. `
      + `crepe: ONNX Runtime, float32, default threads. Load average (1/5/15 min) at the start: ${loadNow()} on ${os.cpus().length} CPUs.`,
    '',
  ];
  const work = mkdtempSync(path.join(os.tmpdir(), 'crepe-bench-peer-'));
  try {
    if (!options.skip?.includes('ppl')) lines.push(...await benchPpl(found, work, log, options.maxWindows ?? (options.quick ? 400 : undefined)));
    else await convertToHuggingFace(STORIES_BIN, path.join(work, 'stories260K'), { tokenizer: STORIES_TOK });
    if (!options.skip?.includes('ria') && !options.quick) lines.push(...await benchRia(found, work, log));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return lines.join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const skip = argValue('skip')?.split(',');
  const windows = argValue('windows');
  console.log(await benchPeer((line) => console.error(line), { skip, maxWindows: windows === undefined ? undefined : Number(windows) }));
}
