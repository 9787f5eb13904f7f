/**
 * ONNX Runtime sessions: the one place that knows about execution providers and session options.
 */
import { checkFlag, checkKnownFields, checkPositiveInteger, describeValue } from '../util/fields.ts';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { FieldError, checkField } from '../util/errors.ts';
import type { ExternalData } from './onnx-builder.ts';

export interface EngineOptions {
  device: 'cpu' | 'cuda';
  /** Intra-op threads (CPU). Default: `defaultThreads()`, one per physical core. */
  threads?: number;
  /**
   * Let idle intra-op threads spin between operators (ORT's default) instead of sleeping. Off by
   * default: on a loaded machine spinning threads burn the time the working ones need (the
   * stories260K evaluation ran 2–4× slower with it, BENCHMARKS.md), and large operators gain
   * nothing from it.
   */
  spinning?: boolean;
  /**
   * How block engines hold a layer's weights: as inputs of one shared session, packed by MLAS on
   * every run ('inputs'), or as constants of a session per weight set, packed once ('constants').
   * Default 'auto': whichever `constantWeightsPay` (block-engine.ts) expects to be faster.
   */
  blockWeights?: 'auto' | 'inputs' | 'constants';
}

export type Session = ort.InferenceSession;

/**
 * The most threads a request may ask for: more than any machine has cores, so a larger number is a
 * slip of the keyboard (ONNX Runtime does not finish starting 100000 threads).
 */
export const MAX_THREADS = 1024;

/** Refuses a thread count that is not an integer in [1, MAX_THREADS] (undefined: the default), naming `field`. */
export function checkThreads(threads: unknown, field = 'threads'): void {
  if (threads === undefined) return;
  checkPositiveInteger(field, threads);
  if (threads > MAX_THREADS) throw new FieldError(field, `must be at most ${MAX_THREADS} (more than any machine's cores), got ${threads}`);
}

/** Refuses a device other than "cpu" and "cuda" (undefined: the CPU): any other name would silently run on the CPU. */
export function checkDevice(field: string, device: unknown): asserts device is EngineOptions['device'] | undefined {
  checkField(device === undefined || device === 'cpu' || device === 'cuda', field, () => `must be "cpu" or "cuda", got ${describeValue(device)}`);
}

/** The fields of EngineOptions. */
const ENGINE_OPTION_FIELDS: readonly string[] = ['device', 'threads', 'spinning', 'blockWeights'];
const BLOCK_WEIGHTS: readonly unknown[] = ['auto', 'inputs', 'constants'];

/**
 * Checks the engine options a building block's caller gives, as an object field `field` ('' when
 * they are fields of the options object itself, next to `others`, the caller's own fields).
 */
export function checkEngineOptions(field: string, engine: unknown, others: readonly string[] = []): asserts engine is EngineOptions {
  checkKnownFields(engine, field, [...ENGINE_OPTION_FIELDS, ...others]);
  const name = (key: string) => (field ? `${field}.${key}` : key);
  checkDevice(name('device'), engine.device);
  checkThreads(engine.threads, name('threads'));
  checkFlag(name('spinning'), engine.spinning);
  const { blockWeights } = engine;
  checkField(blockWeights === undefined || BLOCK_WEIGHTS.includes(blockWeights), name('blockWeights'),
    () => `must be one of ${BLOCK_WEIGHTS.join(', ')}, got ${describeValue(blockWeights)}`);
}

/**
 * A session over `modelBytes`; `externalData` carries the bytes of the model's large constants
 * (GraphBuilder.weight), which ORT copies (and, for MatMul/Gemm weights, pre-packs) at creation.
 */
export async function createSession(modelBytes: Uint8Array, opts: EngineOptions, externalData?: ExternalData[]): Promise<ort.InferenceSession> {
  const options: ort.InferenceSession.SessionOptions = {
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    executionProviders: opts.device === 'cuda' ? ['cuda'] : ['cpu'],
    extra: { session: { intra_op: { allow_spinning: opts.spinning ? '1' : '0' } } },
  };
  if (externalData && externalData.length > 0) options.externalData = externalData;
  checkThreads(opts.threads);
  options.intraOpNumThreads = opts.threads ?? defaultThreads();
  if (opts.device === 'cuda' && !cudaAvailable()) {
    throw new FieldError(
      'device',
      'cuda: this onnxruntime-node install has no CUDA execution provider. ' +
        'Reinstall with ONNXRUNTIME_NODE_INSTALL=cuda12 (see README), or run on the CPU.',
    );
  }
  try {
    return await ort.InferenceSession.create(modelBytes, options);
  } catch (error) {
    if (opts.device === 'cuda') {
      throw new FieldError('device', `cuda: ONNX Runtime could not start the CUDA execution provider: ${(error as Error).message}`);
    }
    throw error;
  }
}

let physicalCores: number | undefined;

/**
 * Intra-op threads when none are asked for: the physical cores this process may run on (Linux:
 * distinct core ids in /sys; elsewhere, or when that cannot be read, the logical CPUs), at most
 * `os.availableParallelism()`. Set explicitly because ORT's own default ran every operator on the
 * calling thread alone on a 2-core VM, leaving the second core idle (BENCHMARKS.md).
 */
export function defaultThreads(): number {
  const available = os.availableParallelism();
  if (physicalCores === undefined) {
    physicalCores = available;
    try {
      const root = '/sys/devices/system/cpu';
      const cores = new Set<string>();
      for (const name of fs.readdirSync(root)) {
        if (!/^cpu\d+$/.test(name)) continue;
        const topology = path.join(root, name, 'topology');
        cores.add(`${fs.readFileSync(path.join(topology, 'physical_package_id'), 'utf8').trim()}:${fs.readFileSync(path.join(topology, 'core_id'), 'utf8').trim()}`);
      }
      if (cores.size > 0) physicalCores = cores.size;
    } catch {
      // No sysfs topology (not Linux, or a restricted container): the logical CPUs.
    }
  }
  return Math.max(1, Math.min(physicalCores, available));
}

/**
 * Whether the CUDA provider library sits beside the binding. `listSupportedBackends()` names cuda
 * even when it is not installed (bundled: false), and ORT only finds out when a session starts.
 */
export function cudaAvailable(): boolean {
  const indexJs = createRequire(import.meta.url).resolve('onnxruntime-node');
  const bindingDir = path.join(path.dirname(indexJs), '..', 'bin', 'napi-v6', process.platform, process.arch);
  return ['libonnxruntime_providers_cuda.so', 'onnxruntime_providers_cuda.dll']
    .some((name) => fs.existsSync(path.join(bindingDir, name)));
}

/** A float32 ORT tensor over `data` (no copy). */
export function floatTensor(data: Float32Array, dims: number[]): ort.Tensor {
  return new ort.Tensor('float32', data, dims);
}

/** An int64 ORT tensor over `data` (no copy). */
export function int64Tensor(data: BigInt64Array, dims: number[]): ort.Tensor {
  return new ort.Tensor('int64', data, dims);
}

/** The float32 data of a session output. */
export function floatData(tensor: ort.Tensor | undefined, name: string): Float32Array {
  if (!tensor || !(tensor.data instanceof Float32Array)) throw new Error(`engine output ${name} missing or not float32`);
  return tensor.data;
}
