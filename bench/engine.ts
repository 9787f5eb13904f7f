/**
 * Engine benchmark: a synthetic decoder block with TinyLlama-1.1B's layer shape at seqLen 2048,
 * its achieved FLOP/s as a ratio of the best fp32 GEMM rate ONNX Runtime reaches from Node on this
 * machine, measured in the same run (MatMul and Gemm-with-transB, B as an input and as a
 * pre-packed constant), in wall time and in CPU time (on a loaded machine the CPU time is the
 * steadier of the two); fp16 and bf16 MatMul against fp32; the statistics variants, and the head
 * graph's cost next to a block; then, for stories260K's shape, the time per sequence of a block
 * and a head run against the number of sequences per run.
 *
 * Standalone: node --import tsx bench/engine.ts [--threads N]
 */
import os from 'node:os';
import { pathToFileURL } from 'node:url';
import { BlockEngine, concatSequences, type ConstantBlockWeights } from '../src/engine/block-engine.ts';
import { argValue, runJsonProcess, sendChildResult } from './child-process.ts';
import { blockBatchSize, headBatchSize } from '../src/engine/batch-size.ts';
import { HeadEngine } from '../src/engine/head-engine.ts';
import onnxProto from 'onnx-proto';
import ort from 'onnxruntime-node';
import { ATTENTION_CHUNK, TOKENS, decoderBlock } from '../src/engine/block-graph.ts';
import { GraphBuilder } from '../src/engine/onnx-builder.ts';
import { createSession, floatTensor, type EngineOptions } from '../src/engine/session.ts';
import { mallocHugePages } from '../src/util/huge-pages.ts';
import { ropeTables, rotaryDim } from '../src/model/rope.ts';
import {
  blockTensorNames, blockTensorShape, LINEAR_NAMES, linearShape,
  type BlockWeights, type ModelSpec,
} from '../src/model/spec.ts';

const SEQ_LEN = 2048;
/** Products per timed GEMM call: 4 × 47.2 GFLOP, about one block's 197.6 (see gemmContender). */
const GEMM_REPEATS = 4;
/** Rounds of the GEMM forms and the two blocks after the race that includes the statistics graphs. */
const EXTRA_ROUNDS = 10;

/** TinyLlama-1.1B's shape (one layer is all the benchmark runs). */
export const TINYLLAMA_SHAPE: ModelSpec = {
  family: 'llama', hiddenSize: 2048, intermediateSize: 5632, numLayers: 22, numHeads: 32, numKvHeads: 4,
  headDim: 64, vocabSize: 32000, rmsNormEps: 1e-5, ropeTheta: 10000, ropeScaling: null,
  maxPositionEmbeddings: 2048, tieWordEmbeddings: false, attentionBias: false, qkNorm: false,
  bosTokenId: 1, eosTokenId: 2, torchDtype: 'bfloat16',
};

/** stories260K's shape (the test model): tiny matrices, so per-run overhead and cache decide. */
export const STORIES260K_SHAPE: ModelSpec = {
  ...TINYLLAMA_SHAPE, hiddenSize: 64, intermediateSize: 172, numLayers: 5, numHeads: 8, numKvHeads: 4,
  headDim: 8, vocabSize: 512, maxPositionEmbeddings: 512, tieWordEmbeddings: true, torchDtype: 'float32',
};

/** Fast deterministic fill (xorshift32) scaled to ±amplitude. */
function randomArray(n: number, amplitude: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let state = seed >>> 0 || 1;
  const toUnit = amplitude / 2147483648;
  for (let i = 0; i < n; i++) {
    state ^= state << 13; state ^= state >>> 17; state ^= state << 5;
    out[i] = (state | 0) * toUnit;
  }
  return out;
}

function randomBlock(spec: ModelSpec): BlockWeights {
  const weights: BlockWeights = {};
  let seed = 1;
  for (const name of blockTensorNames(spec)) {
    const shape = blockTensorShape(spec, name);
    const size = shape.reduce((a, b) => a * b, 1);
    weights[name] = name.endsWith('norm.weight')
      ? new Float32Array(size).fill(1)
      : randomArray(size, Math.sqrt(3 / shape[shape.length - 1]), seed++);
  }
  return weights;
}

/** Seconds of one call. */
async function seconds(fn: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

/**
 * Fastest of `runs` timed calls after two warm-up calls (ORT's arena and memory pattern settle
 * only after the second run). The minimum, not the median: on a shared machine other processes
 * only ever add time.
 */
async function bestSeconds(runs: number, fn: () => Promise<unknown>): Promise<number> {
  await fn();
  await fn();
  let best = Infinity;
  for (let i = 0; i < runs; i++) best = Math.min(best, await seconds(fn));
  return best;
}

/**
 * FLOPs of the block's matrix products: projections 2·L·Σ d_in·d_out, plus attention's two
 * products counted over the causal half of the L×L square (2·2·heads·head_dim·L(L+1)/2): the
 * useful work, not the masked work the graph also does on its diagonal chunks.
 */
export function blockFlops(spec: ModelSpec, seqLen: number): { projections: number; attention: number } {
  let weightsPerToken = 0;
  for (const name of LINEAR_NAMES) {
    const [dOut, dIn] = linearShape(spec, name);
    weightsPerToken += dOut * dIn;
  }
  return {
    projections: 2 * seqLen * weightsPerToken,
    attention: 2 * 2 * ((seqLen * (seqLen + 1)) / 2) * spec.numHeads * spec.headDim,
  };
}

/** Wall and CPU seconds (this process, all threads) of one call. */
async function timedRun(fn: () => Promise<unknown>): Promise<{ wall: number; cpu: number }> {
  const cpu = process.cpuUsage();
  const wall = await seconds(fn);
  const used = process.cpuUsage(cpu);
  return { wall, cpu: (used.user + used.system) / 1e6 };
}

interface Contender {
  name: string;
  flops: number;
  run: () => Promise<unknown>;
  release: () => Promise<void>;
  wall: number;
  cpu: number;
}

/**
 * Runs the contenders in turn, `rounds` times after `warmUps` warm-up rounds, keeping each one's
 * fastest wall and CPU time (over this and earlier races): alternating, so that all see the same
 * machine load.
 */
async function race(contenders: Contender[], rounds: number, warmUps = 2): Promise<void> {
  for (let r = 0; r < warmUps; r++) for (const c of contenders) await c.run();
  for (let r = 0; r < rounds; r++) {
    for (const c of contenders) {
      const t = await timedRun(c.run);
      c.wall = Math.min(c.wall, t.wall);
      c.cpu = Math.min(c.cpu, t.cpu);
    }
  }
}

/**
 * One fp32 GEMM [m×k]·[k×n] as ORT runs it for the block: MatMul (B [k, n]) or Gemm with transB
 * (B [n, k], the stored weight layout), with B as a graph input (packed on every run) or as a
 * constant (packed once when the session starts). The product is reduced to its column sums before
 * leaving ORT: copying a 46 MB output into JavaScript would measure the binding, not the GEMM.
 * A timed call runs the product `GEMM_REPEATS` times (session runs back to back), so that it does
 * about the block's work and lasts about as long: the fastest of a few calls is otherwise biased
 * towards the shorter contender on a shared machine, where a short call finds an undisturbed
 * stretch far more often than a long one.
 */
async function gemmContender(m: number, k: number, n: number, form: 'matmul' | 'gemm', b: 'input' | 'constant', opts: EngineOptions): Promise<Contender> {
  const g = new GraphBuilder('gemm');
  const a = g.input('a', [m, k]);
  const shape = form === 'matmul' ? [k, n] : [n, k];
  const data = randomArray(k * n, 1, 8);
  const bValue = b === 'input' ? g.input('b', shape) : g.weight('b', data, shape);
  const product = form === 'matmul' ? g.matmul(a, bValue) : g.gemm(a, bValue, { transB: true });
  g.output(g.reduceSum(product, [0], false), 'c', [n]);
  const session = await createSession(g.toBytes(), opts, g.externalData());
  const feeds: Record<string, ort.Tensor> = { a: floatTensor(randomArray(m * k, 1, 7), [m, k]) };
  if (b === 'input') feeds.b = floatTensor(data, shape);
  return {
    name: `${form === 'matmul' ? 'MatMul' : 'Gemm transB'}, B ${b === 'input' ? 'an input' : 'a pre-packed constant'}`,
    flops: GEMM_REPEATS * 2 * m * k * n,
    run: async () => { for (let i = 0; i < GEMM_REPEATS; i++) await session.run(feeds); },
    release: () => session.release(), wall: Infinity, cpu: Infinity,
  };
}

/** The decoder block with its weights as constants (what the whole-model graph runs). */
async function constantBlock(spec: ModelSpec, seqLen: number, weights: BlockWeights, hidden: Float32Array, opts: EngineOptions) {
  const g = new GraphBuilder('block_constants');
  const x = g.input('hidden', [TOKENS, spec.hiddenSize]);
  const tables = ropeTables(spec, seqLen);
  const r = rotaryDim(spec);
  const rope = { cos: g.weight('cos', tables.cos, [seqLen, r]), sin: g.weight('sin', tables.sin, [seqLen, r]) };
  const w: Record<string, string> = {};
  for (const name of blockTensorNames(spec)) w[name] = g.weight(name, weights[name], blockTensorShape(spec, name));
  g.output(decoderBlock(g, spec, seqLen, x, w, rope).output(), 'hidden_out', [TOKENS, spec.hiddenSize]);
  const session = await createSession(g.toBytes(), opts, g.externalData());
  const feeds = { hidden: floatTensor(hidden, [hidden.length / spec.hiddenSize, spec.hiddenSize]) };
  return { run: () => session.run(feeds), release: () => session.release() };
}

/**
 * fp32 against fp16 and bf16 MatMul [m×k]·[k×n] (both operands inputs): whether ORT's CPU provider
 * has the kernel, and its rate. Values are all 1/1024-ish, so no overflow in either format.
 */
async function reducedPrecision(m: number, k: number, n: number, opts: EngineOptions): Promise<{ name: string; wall?: number; cpu?: number; error?: string }[]> {
  const onnx = onnxProto.onnx;
  const types = [['float32', onnx.TensorProto.DataType.FLOAT], ['float16', onnx.TensorProto.DataType.FLOAT16], ['bfloat16', onnx.TensorProto.DataType.BFLOAT16]] as const;
  const contenders: Contender[] = [];
  const results: { name: string; wall?: number; cpu?: number; error?: string }[] = [];
  for (const [name, elemType] of types) {
    const vi = (value: string, dims: number[]) => ({ name: value, type: { tensorType: { elemType, shape: { dim: dims.map((d) => ({ dimValue: d })) } } } });
    const model = onnx.ModelProto.encode(onnx.ModelProto.create({
      irVersion: 8, opsetImport: [{ domain: '', version: 15 }],
      graph: { name: 'mm', node: [{ opType: 'MatMul', input: ['a', 'b'], output: ['y'] }], input: [vi('a', [m, k]), vi('b', [k, n])], output: [vi('y', [m, n])] },
    })).finish();
    const tensor = (count: number, dims: number[]): ort.Tensor => (name === 'float32'
      ? new ort.Tensor('float32', new Float32Array(count).fill(1 / 1024), dims)
      // 1/1024 in each 16-bit format: fp16 0x1400, bf16 0x3A80.
      : new ort.Tensor(name as 'float16', new Uint16Array(count).fill(name === 'float16' ? 0x1400 : 0x3a80), dims));
    try {
      const session = await createSession(model, opts);
      const feeds = { a: tensor(m * k, [m, k]), b: tensor(k * n, [k, n]) };
      contenders.push({ name, flops: 2 * m * k * n, run: () => session.run(feeds), release: () => session.release(), wall: Infinity, cpu: Infinity });
    } catch (error) {
      results.push({ name, error: (error as Error).message.split('\n')[0] });
    }
  }
  await race(contenders, 4);
  for (const c of contenders) {
    results.push({ name: c.name, wall: c.wall, cpu: c.cpu });
    await c.release();
  }
  return results;
}

/** Runs per weight set in one pass of a 128-window calibration at seqLen 2048 (one sequence per run). */
const CALIBRATION_RUNS = 128;

/** What a per-layer session with the weights as constants costs, measured in a child process. */
interface SessionCost {
  hugePages: boolean;
  /** EngineOptions.blockWeights 'auto' for CALIBRATION_RUNS runs. */
  autoChoosesConstants: boolean;
  /** Graph built, session created (ORT copies and packs the weights). */
  create: { wall: number; cpu: number };
  /** The first two runs' time beyond two steady runs (the arena's first growth). */
  warm: { wall: number; cpu: number };
  /** Page faults while creating and warming. */
  faults: number;
}

/**
 * Child side: the cost of `BlockEngine.withWeights` giving TinyLlama's layer a session of its own
 * (build, create, and the extra time of the first two runs), lowest of three tries. Huge pages
 * depend on the process's environment (GLIBC_TUNABLES), hence a child per setting.
 */
async function measureSessionCost(opts: EngineOptions): Promise<SessionCost> {
  const spec = TINYLLAMA_SHAPE;
  const weights = randomBlock(spec);
  const hidden = randomArray(SEQ_LEN * spec.hiddenSize, 1, 99);
  const rope = ropeTables(spec, SEQ_LEN);
  const engine = await BlockEngine.create(spec, SEQ_LEN, { ...opts, stats: 'none', blockWeights: 'constants' });
  const auto = await BlockEngine.create(spec, SEQ_LEN, { ...opts, stats: 'none', maxBatch: 1 });
  const best: SessionCost = {
    hugePages: mallocHugePages(), autoChoosesConstants: auto.constantsFor(CALIBRATION_RUNS),
    create: { wall: Infinity, cpu: Infinity }, warm: { wall: Infinity, cpu: Infinity }, faults: Infinity,
  };
  await auto.release();
  for (let attempt = 0; attempt < 3; attempt++) {
    const faults = process.resourceUsage().minorPageFault;
    const started = process.hrtime.bigint();
    const cpuStart = process.cpuUsage();
    await engine.withWeights(weights, CALIBRATION_RUNS, async (held) => {
      const used = process.cpuUsage(cpuStart);
      const create = { wall: Number(process.hrtime.bigint() - started) / 1e9, cpu: (used.user + used.system) / 1e6 };
      const runs: { wall: number; cpu: number }[] = [];
      for (let i = 0; i < 4; i++) runs.push(await timedRun(() => engine.run(hidden, held, rope)));
      const extra = (by: 'wall' | 'cpu'): number => runs[0][by] + runs[1][by] - 2 * Math.min(runs[2][by], runs[3][by]);
      if (create.wall + extra('wall') < best.create.wall + best.warm.wall) {
        best.create = create;
        best.warm = { wall: extra('wall'), cpu: extra('cpu') };
        best.faults = process.resourceUsage().minorPageFault - faults;
      }
    });
  }
  await engine.release();
  return best;
}

/** The weights as `engine.withWeights` hands them to its callback, held until `release`. */
async function holdWeights(engine: BlockEngine, weights: BlockWeights): Promise<{ weights: BlockWeights | ConstantBlockWeights; release: () => Promise<void> }> {
  let release: () => void = () => {};
  let handOver: (w: BlockWeights | ConstantBlockWeights) => void = () => {};
  const handed = new Promise<BlockWeights | ConstantBlockWeights>((resolve) => { handOver = resolve; });
  const done = engine.withWeights(weights, CALIBRATION_RUNS, (w) => {
    handOver(w);
    return new Promise<void>((resolve) => { release = resolve; });
  });
  const held = await Promise.race([handed, done.then(() => { throw new Error('withWeights returned before handing over the weights'); })]);
  return { weights: held, release: async () => { release(); await done; } };
}

/** `measureSessionCost` in a child process with glibc's huge pages asked for or not. */
async function sessionCost(hugePages: boolean, threads: number | undefined, log: (s: string) => void): Promise<SessionCost> {
  const env = { ...process.env };
  if (hugePages) env.GLIBC_TUNABLES = 'glibc.malloc.hugetlb=1';
  else delete env.GLIBC_TUNABLES;
  const args = ['--import', 'tsx', new URL(import.meta.url).pathname, '--child', 'session-cost', ...(threads ? ['--threads', String(threads)] : [])];
  return (await runJsonProcess<SessionCost>(process.execPath, args, log, env)).result;
}

/** Milliseconds per sequence of block (stats none / full) and head runs on stories260K's shape, by batch size. */
async function benchSmallBatches(opts: EngineOptions, log: (s: string) => void): Promise<string[]> {
  const spec = STORIES260K_SHAPE;
  const weights = randomBlock(spec);
  const lmHead = randomArray(spec.vocabSize * spec.hiddenSize, 0.2, 3);
  const finalNorm = new Float32Array(spec.hiddenSize).fill(1);
  const rows = ['| seqLen | B (sequences/run) | block ms/seq | block+stats=full ms/seq | head ms/seq |', '|---:|---:|---:|---:|---:|'];
  for (const seqLen of [256, 512]) {
    log(`engine: stories260K shape, seqLen ${seqLen}, batch sizes …`);
    const rope = ropeTables(spec, seqLen);
    const plain = await BlockEngine.create(spec, seqLen, { ...opts, stats: 'none' });
    const full = await BlockEngine.create(spec, seqLen, { ...opts, stats: 'full' });
    const head = await HeadEngine.create(spec, seqLen, { ...opts, output: 'nll' });
    const chosen = [blockBatchSize(spec, seqLen), headBatchSize(spec, seqLen)];
    for (const B of [1, 2, 4, 8, 16, 32]) {
      const sequences = Array.from({ length: B }, (_, s) => randomArray(seqLen * spec.hiddenSize, 1, 40 + s));
      const hidden = concatSequences(sequences, 0, B, seqLen * spec.hiddenSize);
      const targets = Int32Array.from({ length: B * seqLen }, (_, i) => (i * 31) % spec.vocabSize);
      // Several runs per timing, so each measures ~64 sequences whatever B is.
      const repeat = (fn: () => Promise<unknown>) => async () => { for (let i = 0; i < Math.ceil(64 / B); i++) await fn(); };
      const perSequence = (t: number): string => ((t * 1000) / (Math.ceil(64 / B) * B)).toFixed(3);
      const tPlain = await bestSeconds(3, repeat(() => plain.run(hidden, weights, rope)));
      const tFull = await bestSeconds(3, repeat(() => full.run(hidden, weights, rope)));
      const tHead = await bestSeconds(3, repeat(() => head.nll(hidden, finalNorm, lmHead, targets)));
      const mark = (value: string, isChosen: boolean): string => (isChosen ? `**${value}**` : value);
      rows.push(`| ${seqLen} | ${B} | ${mark(perSequence(tPlain), B === chosen[0])} | ${mark(perSequence(tFull), B === chosen[0])} | ${mark(perSequence(tHead), B === chosen[1])} |`);
    }
    await plain.release();
    await full.release();
    await head.release();
  }
  return rows;
}

export async function benchEngine(log: (s: string) => void, threads?: number): Promise<string> {
  const spec = TINYLLAMA_SHAPE;
  const opts: EngineOptions = { device: 'cpu', threads };
  const gflops = (flops: number, seconds: number): string => (flops / seconds / 1e9).toFixed(1);

  const weights = randomBlock(spec);
  const hidden = randomArray(SEQ_LEN * spec.hiddenSize, 1, 99);
  const rope = ropeTables(spec, SEQ_LEN);
  const { projections, attention } = blockFlops(spec, SEQ_LEN);
  const blockFlopCount = projections + attention;

  // The GEMM forms and both blocks alternate, so all see the same machine load.
  log('engine: fp32 GEMM forms [2048×2048]·[2048×5632] and the decoder block (weights as inputs, as constants), alternating …');
  const gemms: Contender[] = [];
  for (const form of ['matmul', 'gemm'] as const) for (const b of ['input', 'constant'] as const) gemms.push(await gemmContender(2048, 2048, 5632, form, b, opts));
  const plainBlock = await BlockEngine.create(spec, SEQ_LEN, { ...opts, stats: 'none', blockWeights: 'inputs' });
  const constBlock = await constantBlock(spec, SEQ_LEN, weights, hidden, opts);
  // The layer loop's constant form: the session `withWeights` makes, held open for the races.
  const layerBlock = await BlockEngine.create(spec, SEQ_LEN, { ...opts, stats: 'none', blockWeights: 'constants' });
  const held = await holdWeights(layerBlock, weights);
  const blocks: Contender[] = [
    { name: 'decoder block, weights as inputs (the layer loop\'s shared session)', flops: blockFlopCount, run: () => plainBlock.run(hidden, weights, rope), release: () => plainBlock.release(), wall: Infinity, cpu: Infinity },
    { name: 'decoder block, weights as pre-packed constants (the whole-model graph)', flops: blockFlopCount, run: constBlock.run, release: constBlock.release, wall: Infinity, cpu: Infinity },
    {
      name: 'decoder block, weights as constants of a per-layer session (the layer loop\'s other form)', flops: blockFlopCount,
      run: () => layerBlock.run(hidden, held.weights, rope),
      release: async () => { await held.release(); await layerBlock.release(); },
      wall: Infinity, cpu: Infinity,
    },
  ];
  const statsBlocks: Contender[] = [];
  for (const stats of ['sqnorm', 'full'] as const) {
    const engine = await BlockEngine.create(spec, SEQ_LEN, { ...opts, stats });
    statsBlocks.push({ name: `stats=${stats}`, flops: blockFlopCount, run: () => engine.run(hidden, weights, rope), release: () => engine.release(), wall: Infinity, cpu: Infinity });
  }
  await race([...gemms, ...blocks, ...statsBlocks], 5);
  // The ratio's own contenders run more rounds, without the slow statistics graphs between them:
  // each fastest time then comes from 15 tries spread over about a minute, so one quiet moment on
  // a shared machine is less a matter of luck for either side of the ratio.
  await race([...gemms, ...blocks], EXTRA_ROUNDS, 0);
  for (const c of [...gemms, ...blocks, ...statsBlocks]) await c.release();
  const rate = (c: Contender, by: 'wall' | 'cpu'): number => c.flops / c[by];
  const bestGemm = (by: 'wall' | 'cpu'): Contender => gemms.reduce((a, b) => (rate(a, by) >= rate(b, by) ? a : b));
  const blockTimes: Record<string, number> = { none: blocks[0].cpu, sqnorm: statsBlocks[0].cpu, full: statsBlocks[1].cpu };

  log('engine: cost of a per-layer session with the weights as constants, 4 KiB pages and huge pages (child processes) …');
  const costs = [await sessionCost(false, threads, log), await sessionCost(true, threads, log)];

  log('engine: fp16 and bf16 MatMul against fp32 …');
  const precision = await reducedPrecision(1024, 2048, 5632, opts);

  log('engine: head graph (vocab 32000, NLL) …');
  const head = await HeadEngine.create(spec, SEQ_LEN, { ...opts, output: 'nll' });
  const lmHead = randomArray(spec.vocabSize * spec.hiddenSize, Math.sqrt(3 / spec.hiddenSize), 5);
  const targets = Int32Array.from({ length: SEQ_LEN }, (_, i) => (i * 7919) % spec.vocabSize);
  const runHead = () => head.nll(hidden, new Float32Array(spec.hiddenSize).fill(1), lmHead, targets);
  await runHead();
  const headTime = Math.min((await timedRun(runHead)).cpu, (await timedRun(runHead)).cpu);
  await head.release();
  const headFlops = 2 * SEQ_LEN * spec.hiddenSize * spec.vocabSize;
  const evalShare = headTime / (headTime + spec.numLayers * blockTimes.none);

  const smallRows = await benchSmallBatches(opts, log);

  const ms = (s: number): string => (s * 1000).toFixed(0);
  const gemmRow = (c: Contender): string => `| ${c.name} | ${ms(c.wall)} | ${gflops(c.flops, c.wall)} | ${ms(c.cpu)} | ${gflops(c.flops, c.cpu)} |`;
  const ratios = (c: Contender): string => `wall ${(rate(c, 'wall') / rate(bestGemm('wall'), 'wall')).toFixed(2)}, CPU ${(rate(c, 'cpu') / rate(bestGemm('cpu'), 'cpu')).toFixed(2)}`;
  const fp32 = precision.find((p) => p.name === 'float32');
  // Per run, the per-layer constant session saves the packing of the inputs form; a calibration
  // pass of CALIBRATION_RUNS runs pays the session's creation and warm-up once.
  const [inputsBlock, , layerConstBlock] = blocks;
  const costRows = costs.map((c) => {
    const total = { wall: c.create.wall + c.warm.wall, cpu: c.create.cpu + c.warm.cpu };
    const saved = (by: 'wall' | 'cpu'): number => inputsBlock[by] - layerConstBlock[by];
    const breakEven = (by: 'wall' | 'cpu'): string => (saved(by) > 0 ? (total[by] / saved(by)).toFixed(0) : '∞');
    const amortized = (by: 'wall' | 'cpu'): string => {
      const perRun = layerConstBlock[by] + total[by] / CALIBRATION_RUNS;
      return ((blockFlopCount / perRun) / rate(bestGemm(by), by)).toFixed(3);
    };
    return `| ${c.hugePages ? 'huge pages (GLIBC_TUNABLES=glibc.malloc.hugetlb=1)' : '4 KiB pages'} | ${ms(c.create.wall)} / ${ms(c.create.cpu)} | ${ms(c.warm.wall)} / ${ms(c.warm.cpu)} | ${c.faults} | ${breakEven('wall')} / ${breakEven('cpu')} | ${amortized('wall')} / ${amortized('cpu')} | ${c.autoChoosesConstants ? 'constants' : 'inputs'} |`;
  });
  const precisionRows = precision.map((p) => (p.error
    ? `| ${p.name} | no CPU kernel: ${p.error.replace(/\|/g, '/')} | | |`
    : `| ${p.name} | ${ms(p.wall!)} | ${ms(p.cpu!)} | ${fp32?.cpu ? (fp32.cpu / p.cpu!).toFixed(2) : ''}× |`));
  return [
    '## Engine: decoder block vs the best fp32 GEMM',
    '',
    `Machine: ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} logical CPUs, ORT threads: ${threads ?? 'default'}, load average at the end ${os.loadavg().map((l) => l.toFixed(1)).join(' / ')}.`,
    `Synthetic block with TinyLlama-1.1B's layer shape (hidden 2048, intermediate 5632, 32 heads, 4 KV heads, head_dim 64), seqLen ${SEQ_LEN}, fp32, CPU.`,
    `Block FLOPs = projections 2·L·Σ(d_in·d_out) + attention 2·2·heads·head_dim·L(L+1)/2 (causal half only; the graph computes attention in ${ATTENTION_CHUNK}-query chunks against the keys they can see, so it does little masked work).`,
    `Fastest of ${5 + EXTRA_ROUNDS} alternating rounds after two warm-ups (the statistics graphs in the first 5). GFLOP/s by wall time and per CPU-second (all threads of the process): on a shared machine the CPU figure is the steadier one.`,
    '',
    '| measurement | wall (ms) | GFLOP/s | CPU (ms) | GFLOP per CPU-s |',
    '|---|---:|---:|---:|---:|',
    ...gemms.map(gemmRow),
    ...blocks.map(gemmRow),
    '',
    `Block FLOPs ${(blockFlopCount / 1e9).toFixed(1)} G (projections ${(projections / 1e9).toFixed(1)} + attention ${(attention / 1e9).toFixed(1)}); GEMM ${(gemms[0].flops / GEMM_REPEATS / 1e9).toFixed(1)} G, run ${GEMM_REPEATS} times per timed call (the GEMM rows' times are for all ${GEMM_REPEATS}). `
      + `Best GEMM: ${bestGemm('wall').name} by wall time, ${bestGemm('cpu').name} by CPU time.`,
    '',
    `**Block / best GEMM rate — weights as inputs: ${ratios(blocks[0])}; weights as pre-packed constants: ${ratios(blocks[1])}; per-layer constant session: ${ratios(blocks[2])}** (goal ≥ 0.95).`,
    '',
    `Per-layer constant session (what \`BlockEngine.withWeights\` makes for a weight set that serves enough runs), lowest of three tries in a child process per page size; `
      + `"warm-up": the first two runs beyond two steady ones. Break-even: runs after which the packing saved per run (inputs row − per-layer constants row above) repays the session; `
      + `"ratio over ${CALIBRATION_RUNS} runs": the block / best GEMM rate of one ${CALIBRATION_RUNS}-window calibration pass with the session's cost spread over it. `
      + `This process: huge pages ${mallocHugePages() ? 'on' : 'off'}.`,
    '',
    `| fresh memory | create, wall / CPU (ms) | warm-up, wall / CPU (ms) | page faults | break-even runs, wall / CPU | ratio over ${CALIBRATION_RUNS} runs, wall / CPU | engine's choice for ${CALIBRATION_RUNS} runs |`,
    '|---|---:|---:|---:|---:|---:|---|',
    ...costRows,
    '',
    'CPU time of the other graphs (the statistics variants in the same alternation, the head after it):',
    '',
    '| graph | CPU (ms) |',
    '|---|---:|',
    `| decoder block, weights as inputs | ${ms(blockTimes.none)} |`,
    `| decoder block, stats=sqnorm (Σx² per channel) | ${ms(blockTimes.sqnorm)} |`,
    `| decoder block, stats=full (+ Σx, XᵀX) | ${ms(blockTimes.full)} |`,
    `| head: norm + lm_head (vocab 32000) + log-softmax + NLL (${gflops(headFlops, headTime)} GFLOP per CPU-s) | ${ms(headTime)} |`,
    '',
    `Statistics overhead: sqnorm ${((blockTimes.sqnorm / blockTimes.none - 1) * 100).toFixed(1)} %, full ${((blockTimes.full / blockTimes.none - 1) * 100).toFixed(0)} % over the plain block.`,
    `Head vs one block: ${(headTime / blockTimes.none).toFixed(2)}×; head share of a 22-layer TinyLlama evaluation window: ${(evalShare * 100).toFixed(1)} %.`,
    `Sequences per run chosen for this shape at seqLen ${SEQ_LEN}: block ${blockBatchSize(spec, SEQ_LEN)}, head ${headBatchSize(spec, SEQ_LEN)}.`,
    '',
    '### Reduced precision: fp16 and bf16 MatMul on this CPU',
    '',
    'ONNX Runtime\'s CPU provider, MatMul [1024×2048]·[2048×5632], both operands inputs, fastest of four alternating rounds after two warm-ups; speed-up in CPU time against fp32.',
    '',
    '| type | wall (ms) | CPU (ms) | vs fp32 |',
    '|---|---:|---:|---:|',
    ...precisionRows,
    '',
    '### Batching: stories260K shape (hidden 64, 8 heads of 8, vocab 512)',
    '',
    'Time per sequence against sequences per run (fastest of 3, each over ~64 sequences); bold: the batch size the engine chooses.',
    '',
    ...smallRows,
    '',
  ].join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href && argValue('child') === 'session-cost') {
  const threads = argValue('threads');
  sendChildResult(await measureSessionCost({ device: 'cpu', threads: threads === undefined ? undefined : Number(threads) }));
} else if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const threadsFlag = process.argv.indexOf('--threads');
  const threads = threadsFlag >= 0 ? Number(process.argv[threadsFlag + 1]) : undefined;
  const started = Date.now();
  const section = await benchEngine((line) => console.error(line), threads);
  console.log(section);
  console.error(`engine bench took ${((Date.now() - started) / 1000).toFixed(0)} s`);
}
