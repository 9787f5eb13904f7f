/**
 * Worker threads for the O(n) kernels over large typed arrays (scoring, selection). The kernels
 * stay synchronous functions: the calling thread posts each worker one part of the work, does a
 * part itself, and blocks on a shared counter (Atomics.wait) until every part is done. Arrays
 * travel in SharedArrayBuffers (`sharedFloat32` etc.); numbers by value.
 *
 * The pool starts on first use with one worker per CPU beyond the calling thread (at most
 * MAX_WORKERS); its threads are unref'd, so they never keep the process alive. Where workers
 * cannot start, everything runs on the calling thread: same results, one part.
 */
import os from 'node:os';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { KERNELS, type KernelName } from './kernels.ts';
import { importInWorker } from './worker-module.ts';

const MAX_WORKERS = 7;
/** Marks this pool's workers (another worker that imports this module is left alone). */
const POOL_ROLE = 'crepe-kernels';
/** How long the calling thread waits for the pool to start before it gives up on workers. */
const START_TIMEOUT_MS = 60_000;

interface Task {
  kernel: KernelName;
  args: Record<string, unknown>;
  part: number;
  parts: number;
  /** [done count, failed flag]. */
  control: Int32Array;
}

let pool: Worker[] | null | undefined;

/** Parts a kernel should be split into: the calling thread plus the pool's workers. */
export function parallelParts(): number {
  return 1 + (startPool()?.length ?? 0);
}

/**
 * Runs `kernel(args, part, parts)` for part = 0 … parts − 1: part 0 on this thread, the others on
 * the pool's workers. Every array in `args` that a worker touches must be backed by a
 * SharedArrayBuffer. Returns when all parts are done; throws if one failed.
 */
export function runKernel(kernel: KernelName, args: Record<string, unknown>, parts = parallelParts()): void {
  const workers = parts > 1 ? startPool() : null;
  if (!workers || parts === 1) {
    for (let part = 0; part < parts; part++) KERNELS[kernel](args as never, part, parts);
    return;
  }
  const control = new Int32Array(new SharedArrayBuffer(8));
  const others = parts - 1;
  for (let part = 1; part < parts; part++) workers[(part - 1) % workers.length].postMessage({ kernel, args, part, parts, control } satisfies Task);
  KERNELS[kernel](args as never, 0, parts);
  for (let done = Atomics.load(control, 0); done < others; done = Atomics.load(control, 0)) Atomics.wait(control, 0, done);
  if (Atomics.load(control, 1) !== 0) throw new Error(`parallel kernel ${kernel} failed in a worker thread`);
}

/** Whether `array` is visible to the pool's workers. */
export function isShared(array: ArrayBufferView): boolean {
  return array.buffer instanceof SharedArrayBuffer;
}

export const sharedFloat32 = (length: number): Float32Array => new Float32Array(new SharedArrayBuffer(4 * length));
export const sharedFloat64 = (length: number): Float64Array => new Float64Array(new SharedArrayBuffer(8 * length));
export const sharedUint8 = (length: number): Uint8Array => new Uint8Array(new SharedArrayBuffer(length));
export const sharedUint32 = (length: number): Uint32Array => new Uint32Array(new SharedArrayBuffer(4 * length));

/**
 * Starts the pool (once) and waits until its workers are ready; null when this machine has one
 * CPU or the workers cannot start (then kernels run on the calling thread).
 */
function startPool(): Worker[] | null {
  if (pool !== undefined) return pool;
  const count = Math.min(MAX_WORKERS, os.availableParallelism() - 1);
  if (count < 1 || !isMainThread) return (pool = null);
  const ready = new Int32Array(new SharedArrayBuffer(8));
  const workers: Worker[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const worker = new Worker(workerSource(), { eval: true, workerData: { role: POOL_ROLE, ready } });
      worker.unref();
      workers.push(worker);
    }
  } catch {
    for (const worker of workers) void worker.terminate();
    return (pool = null);
  }
  // Each worker adds 1 to ready[0] once it listens, or sets ready[1] if it failed to load.
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (let started = Atomics.load(ready, 0); started < count && Atomics.load(ready, 1) === 0; started = Atomics.load(ready, 0)) {
    const left = deadline - Date.now();
    if (left <= 0) break;
    Atomics.wait(ready, 0, started, left);
  }
  if (Atomics.load(ready, 0) < count) {
    for (const worker of workers) void worker.terminate();
    return (pool = null);
  }
  return (pool = workers);
}

/** The workers' code: this module (util/worker-module.ts says how a worker loads it). */
function workerSource(): string {
  return `const { workerData } = require('node:worker_threads');
${importInWorker(import.meta.url)}.catch(() => { Atomics.store(workerData.ready, 1, 1); Atomics.notify(workerData.ready, 0); });`;
}

if (!isMainThread && parentPort && (workerData as { role?: string } | null)?.role === POOL_ROLE) {
  const port = parentPort;
  port.on('message', (task: Task) => {
    try {
      KERNELS[task.kernel](task.args as never, task.part, task.parts);
    } catch {
      Atomics.store(task.control, 1, 1);
    }
    Atomics.add(task.control, 0, 1);
    Atomics.notify(task.control, 0);
  });
  const { ready } = workerData as { ready: Int32Array };
  Atomics.add(ready, 0, 1);
  Atomics.notify(ready, 0);
}
