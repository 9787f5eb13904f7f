/**
 * Evaluating PHO's proxies over the linears of a model, on worker threads.
 *
 * A UnitEvaluator owns some linears ("units") of a proxy cache: it reads their terms from the
 * cache directory (keeping what fits its share of the memory budget in an LRU), scores a
 * candidate, selects its mask and computes the proxies, one linear at a time with reused buffers.
 * The EvaluatorPool gives each of `threads` workers a fixed set of units (largest first, each to
 * the least loaded worker), so a worker rereads the same files and keeps the same LRU contents
 * from candidate to candidate. Results come back per unit and the caller sums them in unit order:
 * the proxy values do not depend on the thread count. With one thread the evaluator runs in the
 * calling thread.
 *
 * The evaluators read and write the cache's layout (EvaluatorConfig.layout): the position layout
 * serves every request; the natural layout (row-major terms, proxy-terms.ts) serves masks and
 * refuses per-linear proxy evaluations, until `toPosition` writes each unit's position-layout
 * files from its natural ones (those a position build writes, byte for byte). Since the natural
 * layout holds each linear's weights row-major, its evaluators hand back a unit's pruned weights
 * rather than its mask, so the calling thread neither reads nor masks them.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import type { CrepeParams } from '../prune/scores/crepe.ts';
import { UserError } from '../util/errors.ts';
import {
  ArrayPool, ByteLru, cacheError, gramFile, readArrays, readNaturalTerms, readTerms, readWindow, subsetName, termsArrays, termsBytes, termsFile, windowFile, writeArrays, writeNaturalTerms, writeTerms, writeWindow,
  type RowSubset, type TermsLayout, type Unit,
} from './proxy-cache.ts';
import {
  candidateMask, evaluateLinearMany, prunedNaturalWeights, sampleBytes, Scratch, thresholdSample,
  type LinearEvaluation, type LinearProxyName, type LinearRequest, type NaturalSource, type ProxyOptions, type ScoreSource, type ThresholdSample,
} from './proxy-measures.ts';
import {
  buildLinearTerms, buildNaturalTerms, float32Weights, naturalWindowTerm, positionCount, positionsOf, sameWindow, subsetRows, subsetWindow, windowKey, windowTerm, windowTermFromTerms,
  type LinearTerms, type NaturalTerms, type WindowKey, type WindowPrecision, type WindowTerm,
} from './proxy-terms.ts';
import { importInWorker } from '../util/worker-module.ts';

export interface EvaluatorConfig {
  dir: string;
  units: Unit[];
  /** Bytes of terms this evaluator keeps in memory between candidates. */
  budgetBytes: number;
  windowPrecision: WindowPrecision;
  /** The only row subset the cache holds (Manifest.rowsOnly), or null for all rows. */
  rowsOnly: RowSubset | null;
  /** The layout of the cache's terms (Manifest.layout). */
  layout: TermsLayout;
}

export interface EvaluationRequest {
  params: CrepeParams;
  options: ProxyOptions;
  which: readonly LinearProxyName[];
  /** 'terms': from the stored neighbourhood term of the candidate's key; 'direct': crepeScores on the reconstructed matrix. */
  source: 'terms' | 'direct';
}

/** One candidate's pruning of some units (a decoder layer's linears), for a pruned model built from the cache. */
export interface PruneRequest {
  params: CrepeParams;
  options: ProxyOptions;
  source: EvaluationRequest['source'];
  /** Unit indices; each evaluator computes those it owns. */
  units: number[];
  /**
   * Starts a round of the evaluators' LRU (ByteLru): true for the first request of a pass over the
   * layers, false for the next layers of the same pass. The layers of one pass are one round, so
   * the terms kept from a pass are found by the next one: a round per layer would let each layer
   * evict the terms the previous layers kept, and a pass would read every file of the cache.
   */
  newRound: boolean;
}

/**
 * A unit pruned by a candidate: its mask (row-major [dOut, dIn], 1 = pruned) from the position
 * layout; its pruned float32 weights (row-major, pruned entries 0) from the natural layout.
 */
export type UnitPruning = { unit: number; mask: Uint8Array } | { unit: number; weight: Float32Array };

/** One linear of the dense pass: its dense weights and input statistics, and the neighbourhood terms to build. */
export interface BuildRequest {
  unit: Unit;
  /** Row-major [dOut, dIn]. */
  weight: Float32Array;
  sqNorm: Float64Array;
  gram: Float64Array | null;
  windows: WindowKey[];
}

export interface UnitResult extends LinearEvaluation {
  unit: number;
}

/** The fixed row subset of one unit for `--proxy-rows` (its own seed per linear), or null for all rows. */
export function rowSubset(options: ProxyOptions): RowSubset | null {
  const fraction = options.rows ?? 1;
  return fraction < 1 ? { fraction, seed: options.seed } : null;
}

/** A unit's terms restricted to its fixed row subset (its own seed per linear, from the subset's seed). */
function subsetOf(terms: LinearTerms, rows: RowSubset, unit: Unit): LinearTerms {
  return subsetRows(terms, rows.fraction, rows.seed * 65536 + unit.index);
}

/** A value read for one evaluation; `release`: no one else holds it, its arrays can be reused after use. */
interface Loaded<T> {
  value: T;
  release: boolean;
}

export class UnitEvaluator {
  /** The layout of the cache's terms (EvaluatorConfig.layout; 'position' after toPosition). */
  private layout: TermsLayout;

  private readonly lru: ByteLru<LinearTerms | NaturalTerms | WindowTerm | ThresholdSample>;
  private readonly pool = new ArrayPool();
  /** Files whose checksums this thread has checked, and those it wrote. */
  private readonly verified = new Set<string>();
  private readonly scratch = new Scratch();
  /** Per unit: what proxies derive from its terms, across candidates. */
  private readonly memos = new Map<number, Map<string, unknown>>();

  constructor(private readonly config: EvaluatorConfig) {
    // An evicted neighbourhood term (one array, which nothing else holds) is read into again.
    this.lru = new ByteLru(config.budgetBytes, (value) => {
      if (ArrayBuffer.isView(value)) this.pool.give([value]);
    });
    this.layout = config.layout;
  }

  /**
   * Writes the terms file of each requested unit and its neighbourhood terms of the requested keys
   * (only their row subset's, for a cache of one subset: the whole terms are made in memory, since
   * the column sums and the neighbourhood term need every row).
   */
  async build(requests: readonly BuildRequest[]): Promise<void> {
    const rows = this.config.rowsOnly;
    const precision = this.config.windowPrecision;
    for (const { unit, weight, sqNorm, gram, windows } of requests) {
      // Each neighbourhood term is written and dropped: one array of the pool serves them all.
      const buffer = this.pool.allocate(precision, weight.length) as WindowTerm;
      try {
        if (this.layout === 'natural') {
          // Row-major terms and neighbourhood terms: no reference order, no grams (masks need neither).
          const built = buildNaturalTerms(weight, unit.dOut, unit.dIn, sqNorm);
          for (const key of windows) {
            await this.write(windowFile(this.config.dir, unit, key, null, 'natural'), (to) => writeWindow(to, key, windowTerm(weight, built.setup, sqNorm, key, null, precision, buffer)));
          }
          if (gram) await this.write(gramFile(this.config.dir, unit), (to) => writeArrays(to, { kind: 'gram' }, { gram }));
          await this.write(termsFile(this.config.dir, unit, null, 'natural'), (to) => writeNaturalTerms(to, built.terms));
          continue;
        }
        const built = buildLinearTerms(weight, unit.dOut, unit.dIn, sqNorm, gram);
        const positionOf = positionsOf(built.order);
        const terms = rows ? subsetOf(built.terms, rows, unit) : built.terms;
        for (const key of windows) {
          const window = windowTerm(weight, built.setup, sqNorm, key, positionOf, precision, buffer);
          await this.write(windowFile(this.config.dir, unit, key, rows), (to) => writeWindow(to, key, rows ? subsetWindow(window, terms) : window));
        }
        await this.write(termsFile(this.config.dir, unit, rows), (to) => writeTerms(to, terms));
      } finally {
        this.pool.give([buffer]);
      }
    }
  }

  /** Writes `file` with `writer`; a file this thread wrote needs no checksum check when it reads it. */
  private async write(file: string, writer: (file: string) => Promise<void>): Promise<void> {
    await writer(file);
    this.verified.add(file);
  }

  /**
   * Writes the position-layout files of every unit from its natural-layout ones: the terms (the
   * reference order sorted here, as the dense pass would have) and the neighbourhood terms of
   * `windows`, their values moved to their positions; then serves requests from them.
   */
  async toPosition(windows: readonly WindowKey[], withGram: boolean): Promise<void> {
    const { dir } = this.config;
    for (const unit of this.config.units) {
      const natural = readNaturalTerms(termsFile(dir, unit, null, 'natural'), dir, this.firstRead(termsFile(dir, unit, null, 'natural')), unit);
      let gram: Float64Array | null = null;
      if (withGram) {
        const stored = readArrays(gramFile(dir, unit), dir, true).arrays.gram;
        if (!(stored instanceof Float64Array) || stored.length !== unit.dIn * unit.dIn) throw cacheError(dir, `${path.relative(dir, gramFile(dir, unit))} does not hold the ${unit.dIn}×${unit.dIn} XᵀX of its linear`);
        gram = stored;
      }
      const built = buildLinearTerms(float32Weights(natural), unit.dOut, unit.dIn, natural.sqNorm, gram);
      const positionOf = positionsOf(built.order);
      for (const key of windows) {
        const file = windowFile(dir, unit, key, null, 'natural');
        const rowMajor = readWindow(file, dir, this.firstRead(file), key, unit.dOut * unit.dIn);
        const window = new (rowMajor.constructor as new (n: number) => WindowTerm)(rowMajor.length);
        for (let index = 0; index < rowMajor.length; index++) window[positionOf[index]] = rowMajor[index];
        await this.write(windowFile(dir, unit, key), (to) => writeWindow(to, key, window));
      }
      await this.write(termsFile(dir, unit), (to) => writeTerms(to, built.terms));
    }
    this.layout = 'position';
  }

  /**
   * Makes sure every unit has the neighbourhood term of `key` on disk (computed from its terms when
   * missing; a cache of one row subset cannot: a neighbourhood spans rows it does not hold).
   */
  async prepareWindow(key: WindowKey): Promise<void> {
    this.lru.nextRound();
    const natural = this.layout === 'natural';
    for (const unit of this.config.units) {
      const file = windowFile(this.config.dir, unit, key, this.config.rowsOnly, this.layout);
      if (existsSync(file)) continue;
      if (natural) {
        const window = naturalWindowTerm((await this.naturalTerms(unit)).value, key, this.config.windowPrecision);
        await this.write(file, (to) => writeWindow(to, key, window));
        this.lru.set(file, window, window.byteLength);
        continue;
      }
      if (this.config.rowsOnly) {
        throw cacheError(this.config.dir, `it holds only the row subset ${subsetName(this.config.rowsOnly)}, built with the neighbourhood terms of other window sizes than k = ${key.k}, which it cannot add`);
      }
      const window = windowTermFromTerms((await this.terms(unit, null)).value, key, this.config.windowPrecision);
      await this.write(file, (to) => writeWindow(to, key, window));
      this.lru.set(file, window, window.byteLength);
    }
  }

  /**
   * Per-unit results of each request (requests in order). The requests share their options (and so
   * the row subset): each unit's terms, and the neighbourhood term of each window key, are read once
   * and the requests are evaluated together on them while they are in memory (evaluateLinearMany:
   * one pass over the terms for those that take the one-pass walk), so a batch of candidates reads
   * the cache once; each request's result is that of a batch of one, bit for bit.
   */
  async evaluate(requests: readonly EvaluationRequest[]): Promise<UnitResult[][]> {
    if (this.layout === 'natural') throw new Error('internal: per-linear proxies need the terms in the position layout');
    this.lru.nextRound();
    const results: UnitResult[][] = requests.map(() => []);
    if (requests.length === 0) return results;
    const rows = rowSubset(requests[0].options);
    const sameRows = (other: RowSubset | null) => other?.fraction === rows?.fraction && other?.seed === rows?.seed;
    if (!requests.every((r) => sameRows(rowSubset(r.options)))) throw new Error('internal: the requests of a batch share their row subset');
    for (const unit of this.config.units) {
      const terms = await this.terms(unit, rows);
      const base = requests.some((r) => r.source === 'direct') ? await this.terms(unit, null) : null;
      const windows: Array<{ key: WindowKey; loaded: Loaded<WindowTerm> }> = [];
      let memo = this.memos.get(unit.index);
      if (!memo) this.memos.set(unit.index, (memo = new Map()));
      const linearRequests: LinearRequest[] = [];
      for (const request of requests) {
        const { params } = request;
        let window: WindowTerm | null = null;
        if (request.source === 'terms' && params.gamma !== 0) {
          const key = windowKey(params);
          let entry = windows.find((w) => sameWindow(w.key, key));
          if (!entry) windows.push((entry = { key, loaded: await this.window(unit, key, rows, positionCount(terms.value)) }));
          window = entry.loaded.value;
        }
        const source = request.source === 'direct' ? { kind: 'direct' as const, base: base!.value } : { kind: 'terms' as const, window };
        linearRequests.push({ source, params, options: request.options, which: request.which });
      }
      // The threshold samples are kept with the terms in the LRU (a sample is the same for every candidate).
      const sampleOf = (window: WindowTerm | null): ThresholdSample => {
        const entry = window && windows.find((w) => w.loaded.value === window);
        const file = entry ? windowFile(this.config.dir, unit, entry.key, rows) : termsFile(this.config.dir, unit, rows);
        const key = `${file} threshold sample`;
        const kept = this.lru.get(key) as ThresholdSample | undefined;
        if (kept) return kept;
        const sample = thresholdSample(terms.value, window);
        this.lru.set(key, sample, sampleBytes(sample));
        return sample;
      };
      const evaluations = evaluateLinearMany(terms.value, linearRequests, this.scratch, memo, sampleOf);
      for (const [i, evaluation] of evaluations.entries()) results[i].push({ unit: unit.index, ...evaluation });
      if (terms.release) this.pool.give(termsArrays(terms.value));
      if (base?.release && base.value !== terms.value) this.pool.give(termsArrays(base.value));
      for (const { loaded } of windows) if (loaded.release) this.pool.give([loaded.value]);
    }
    return results;
  }

  /**
   * The whole-matrix mask of each requested unit this evaluator owns: the candidate's scores from
   * the terms of all rows (or crepeScores on the reconstructed matrix for a 'direct' source) and
   * prune/mask.ts's selection, the mask the proxies select (the same from either layout). From the
   * natural layout, the unit's weights pruned by it instead (prunedNaturalWeights), written into
   * the arrays of earlier replies handed back as `spare` (fresh memory costs more to touch first
   * than the widening) or into new ones.
   */
  async prune({ params, options, source, units, newRound }: PruneRequest, spare: Float32Array[] = []): Promise<UnitPruning[]> {
    this.pool.give(spare);
    if (newRound) this.lru.nextRound();
    const wanted = new Set(units);
    const pruned: UnitPruning[] = [];
    for (const unit of this.config.units) {
      if (!wanted.has(unit.index)) continue;
      if (this.layout === 'natural') {
        const terms = await this.naturalTerms(unit);
        const window = source === 'terms' && params.gamma !== 0 ? await this.window(unit, windowKey(params), null, unit.dOut * unit.dIn, 'natural') : null;
        const scoreSource: NaturalSource = source === 'direct' ? { kind: 'direct' } : { kind: 'terms', window: window?.value ?? null };
        const out = this.pool.allocate('float32', unit.dOut * unit.dIn) as Float32Array;
        pruned.push({ unit: unit.index, weight: prunedNaturalWeights(terms.value, scoreSource, params, options, this.scratch, out) });
        if (terms.release) this.pool.give(termsArrays(terms.value));
        if (window?.release) this.pool.give([window.value]);
        continue;
      }
      const terms = await this.terms(unit, null);
      const window = source === 'terms' && params.gamma !== 0 ? await this.window(unit, windowKey(params), null, positionCount(terms.value)) : null;
      const scoreSource: ScoreSource = source === 'direct' ? { kind: 'direct', base: terms.value } : { kind: 'terms', window: window?.value ?? null };
      pruned.push({ unit: unit.index, mask: candidateMask(terms.value, scoreSource, params, options, this.scratch) });
      if (terms.release) this.pool.give(termsArrays(terms.value));
      if (window?.release) this.pool.give([window.value]);
    }
    return pruned;
  }

  /** A unit's terms (of all rows, or of its row subset, made from those of all rows the first time). */
  private async terms(unit: Unit, rows: RowSubset | null): Promise<Loaded<LinearTerms>> {
    const file = termsFile(this.config.dir, unit, rows);
    const cached = this.lru.get(file) as LinearTerms | undefined;
    if (cached) return { value: cached, release: false };
    if (rows && !existsSync(file)) {
      // The subset shares the per-row and per-column arrays of the full terms: neither is released.
      const terms = subsetOf((await this.terms(unit, null)).value, rows, unit);
      await this.write(file, (to) => writeTerms(to, terms));
      this.lru.set(file, terms, termsBytes(terms));
      return { value: terms, release: false };
    }
    const terms = readTerms(file, this.config.dir, this.firstRead(file), unit, this.pool.allocate);
    return { value: terms, release: !this.lru.set(file, terms, termsBytes(terms)) };
  }

  /** A unit's natural-layout terms. */
  private async naturalTerms(unit: Unit): Promise<Loaded<NaturalTerms>> {
    const file = termsFile(this.config.dir, unit, null, 'natural');
    const cached = this.lru.get(file) as NaturalTerms | undefined;
    if (cached) return { value: cached, release: false };
    const terms = readNaturalTerms(file, this.config.dir, this.firstRead(file), unit, this.pool.allocate);
    return { value: terms, release: !this.lru.set(file, terms, termsBytes(terms)) };
  }

  /** A unit's neighbourhood term of `key` (`length` values: the weights its terms cover), in `layout`. */
  private async window(unit: Unit, key: WindowKey, rows: RowSubset | null, length: number, layout: TermsLayout = 'position'): Promise<Loaded<WindowTerm>> {
    const file = windowFile(this.config.dir, unit, key, rows, layout);
    const cached = this.lru.get(file) as WindowTerm | undefined;
    if (cached) return { value: cached, release: false };
    if (rows && !existsSync(file)) {
      const terms = (await this.terms(unit, rows)).value;
      const window = subsetWindow((await this.window(unit, key, null, unit.dOut * unit.dIn)).value, terms);
      await this.write(file, (to) => writeWindow(to, key, window));
      this.lru.set(file, window, window.byteLength);
      return { value: window, release: false };
    }
    const window = readWindow(file, this.config.dir, this.firstRead(file), key, length, this.pool.allocate);
    return { value: window, release: !this.lru.set(file, window, window.byteLength) };
  }

  private firstRead(file: string): boolean {
    if (this.verified.has(file)) return false;
    this.verified.add(file);
    return true;
  }
}

// ---------------------------------------------------------------------------------------------
// The pool (calling thread) and the worker side

type Message =
  | { id: number; op: 'evaluate'; requests: EvaluationRequest[] }
  | { id: number; op: 'prune'; request: PruneRequest; spare: Float32Array[] }
  | { id: number; op: 'build'; builds: BuildRequest[] }
  | { id: number; op: 'prepare'; key: WindowKey }
  | { id: number; op: 'toPosition'; windows: WindowKey[]; withGram: boolean };
/** What a reply carries: per-request results for 'evaluate', the units pruned for 'prune', nothing otherwise. */
type Results = UnitResult[][] | UnitPruning[];
type Reply = { id: number; results?: Results; error?: { message: string; user: boolean } };

const ROLE = 'crepe-proxy-evaluator';

/**
 * Splits units over `threads` workers: layer by layer, largest first, each to the least loaded
 * (ties: lowest worker), so that the work of every layer is spread too (the dense pass builds a
 * layer's units at once) and the whole is balanced across layers.
 */
export function assignUnits(units: Unit[], threads: number): Unit[][] {
  const groups: Unit[][] = Array.from({ length: Math.max(1, Math.min(threads, units.length)) }, () => []);
  const load = groups.map(() => 0);
  const bySize = [...units].sort((a, b) => a.layer - b.layer || b.dOut * b.dIn - a.dOut * a.dIn || a.index - b.index);
  for (const unit of bySize) {
    const target = load.indexOf(Math.min(...load));
    groups[target].push(unit);
    load[target] += unit.dOut * unit.dIn;
  }
  for (const group of groups) group.sort((a, b) => a.index - b.index);
  return groups;
}

interface Channel {
  send(message: Message): Promise<Results>;
  close(): Promise<void>;
}

/** What a message asks of an evaluator, in this thread or a worker's. */
async function handle(evaluator: UnitEvaluator, message: Message): Promise<Results> {
  if (message.op === 'evaluate') return evaluator.evaluate(message.requests);
  if (message.op === 'prune') return evaluator.prune(message.request, message.spare);
  if (message.op === 'build') await evaluator.build(message.builds);
  else if (message.op === 'toPosition') await evaluator.toPosition(message.windows, message.withGram);
  else await evaluator.prepareWindow(message.key);
  return [];
}

/**
 * `handle` on one evaluator, one message at a time in the order they come, in this thread or a
 * worker's: a request may come before the last one is answered (a prefetched layer).
 */
function inOrder(evaluator: UnitEvaluator): (message: Message) => Promise<Results> {
  let queue: Promise<unknown> = Promise.resolve();
  return (message) => {
    const reply = queue.then(() => handle(evaluator, message));
    queue = reply.catch(() => {});
    return reply;
  };
}

function inProcessChannel(config: EvaluatorConfig): Channel {
  return {
    send: inOrder(new UnitEvaluator(config)),
    async close() {},
  };
}

function workerChannel(config: EvaluatorConfig): Channel {
  const bootstrap = `${importInWorker(import.meta.url)};`;
  const worker = new Worker(bootstrap, { eval: true, workerData: { role: ROLE, config } });
  const pending = new Map<number, { resolve: (r: Results) => void; reject: (e: Error) => void }>();
  let nextId = 0;
  let failure: Error | null = null;
  const failAll = (error: Error): void => {
    failure = error;
    for (const { reject } of pending.values()) reject(error);
    pending.clear();
  };
  worker.on('message', (reply: Reply) => {
    const waiting = pending.get(reply.id);
    if (!waiting) return;
    pending.delete(reply.id);
    if (reply.error) waiting.reject(reply.error.user ? new UserError(reply.error.message) : new Error(reply.error.message));
    else waiting.resolve(reply.results ?? []);
  });
  worker.on('error', (error) => failAll(error instanceof Error ? error : new Error(String(error))));
  worker.on('exit', (code) => failAll(new Error(`proxy evaluator thread exited (code ${code})`)));
  return {
    send(message) {
      if (failure) return Promise.reject(failure);
      return new Promise((resolve, reject) => {
        const id = nextId++;
        pending.set(id, { resolve, reject });
        // Spare arrays move to the worker instead of being copied.
        worker.postMessage({ ...message, id }, message.op === 'prune' ? message.spare.map((array) => array.buffer as ArrayBuffer) : []);
      });
    },
    async close() {
      worker.removeAllListeners('exit');
      await worker.terminate();
    },
  };
}

export class EvaluatorPool {
  /** The channel that owns each unit index. */
  private readonly owner = new Map<number, number>();
  /** Per channel, pruned weights handed back (giveBack), sent with its next prune request. */
  private readonly spare = new Map<number, Float32Array[]>();

  private constructor(private readonly channels: Channel[], groups: Unit[][]) {
    groups.forEach((units, c) => { for (const unit of units) this.owner.set(unit.index, c); });
  }

  /** `threads` evaluators over `units`, sharing `budgetBytes` of in-memory terms. */
  static start(config: EvaluatorConfig, threads: number): EvaluatorPool {
    const groups = assignUnits(config.units, threads);
    const share = Math.floor(config.budgetBytes / groups.length);
    if (groups.length === 1) return new EvaluatorPool([inProcessChannel({ ...config, budgetBytes: share })], groups);
    return new EvaluatorPool(groups.map((units) => workerChannel({ ...config, units, budgetBytes: share })), groups);
  }

  get threads(): number {
    return this.channels.length;
  }

  /** Per request, its per-unit results ordered by unit index (one read of the cache for the batch). */
  async evaluate(requests: EvaluationRequest[]): Promise<UnitResult[][]> {
    const parts = await Promise.all(this.channels.map((c) => c.send({ id: 0, op: 'evaluate', requests }) as Promise<UnitResult[][]>));
    return requests.map((_, i) => parts.flatMap((part) => part[i]).sort((a, b) => a.unit - b.unit));
  }

  /** The pruning of `request.units` (their owners at work at the same time), by unit index. */
  async prune(request: PruneRequest): Promise<Map<number, UnitPruning>> {
    const channels = new Set<number>();
    for (const unit of request.units) {
      const c = this.owner.get(unit);
      if (c === undefined) throw new Error(`internal: unit ${unit} has no evaluator`);
      channels.add(c);
    }
    const parts = await Promise.all([...channels].map((c) => {
      const spare = this.spare.get(c) ?? [];
      this.spare.delete(c);
      return this.channels[c].send({ id: 0, op: 'prune', request, spare }) as Promise<UnitPruning[]>;
    }));
    return new Map(parts.flat().map((pruned) => [pruned.unit, pruned]));
  }

  /**
   * Hands back the pruned weights of `unit` that prune gave, which the caller no longer references:
   * the evaluator that made them fills them on its next prune request.
   */
  giveBack(unit: number, weight: Float32Array): void {
    const c = this.owner.get(unit);
    if (c === undefined) throw new Error(`internal: unit ${unit} has no evaluator`);
    if (weight.byteOffset !== 0 || weight.byteLength !== weight.buffer.byteLength || !(weight.buffer instanceof ArrayBuffer)) return;
    const list = this.spare.get(c) ?? [];
    if (!list.includes(weight)) list.push(weight);
    this.spare.set(c, list);
  }

  async prepareWindow(key: WindowKey): Promise<void> {
    await Promise.all(this.channels.map((c) => c.send({ id: 0, op: 'prepare', key })));
  }

  /** Each evaluator writes the position-layout files of its units from the natural ones (UnitEvaluator.toPosition). */
  async toPosition(windows: WindowKey[], withGram: boolean): Promise<void> {
    await Promise.all(this.channels.map((c) => c.send({ id: 0, op: 'toPosition', windows, withGram })));
  }

  /**
   * The dense pass's files of these units, each built by the evaluator that owns it: the
   * evaluators work on their units at the same time (the arrays are copied to them).
   */
  async build(requests: readonly BuildRequest[]): Promise<void> {
    const perChannel = this.channels.map((): BuildRequest[] => []);
    for (const request of requests) {
      const c = this.owner.get(request.unit.index);
      if (c === undefined) throw new Error(`internal: unit ${request.unit.index} has no evaluator`);
      perChannel[c].push(request);
    }
    await Promise.all(perChannel.map((builds, c) => (builds.length ? this.channels[c].send({ id: 0, op: 'build', builds }) : undefined)));
  }

  async close(): Promise<void> {
    await Promise.all(this.channels.map((c) => c.close()));
  }
}

if (!isMainThread && (workerData as { role?: string } | null)?.role === ROLE) {
  const answer = inOrder(new UnitEvaluator((workerData as { config: EvaluatorConfig }).config));
  const port = parentPort!;
  port.on('message', async (message: Message) => {
    try {
      const results = await answer(message);
      // Masks and pruned weights (new arrays, no one else's) move to the calling thread instead of being copied.
      const transfer = message.op === 'prune' ? (results as UnitPruning[]).map((p) => ('weight' in p ? p.weight : p.mask).buffer as ArrayBuffer) : [];
      port.postMessage({ id: message.id, results } satisfies Reply, transfer);
    } catch (error) {
      const user = error instanceof UserError;
      port.postMessage({ id: message.id, error: { message: user ? error.message : ((error as Error).stack ?? String(error)), user } } satisfies Reply);
    }
  });
}
