import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import { createRequire } from 'node:module';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { GraphBuilder } from '../../src/engine/onnx-builder.ts';
import { createSession, defaultThreads } from '../../src/engine/session.ts';
import { FieldError } from '../../src/util/errors.ts';

function tinyModel(): Uint8Array {
  const g = new GraphBuilder('tiny');
  g.output(g.neg(g.input('x', [2])), 'y', [2]);
  return g.toBytes();
}

test('--threads must be a positive integer, at most 1024', async () => {
  await assert.rejects(createSession(tinyModel(), { device: 'cpu', threads: 0 }), (e: unknown) =>
    e instanceof FieldError && e.field === 'threads');
  await assert.rejects(createSession(tinyModel(), { device: 'cpu', threads: 100_000 }), (e: unknown) =>
    e instanceof FieldError && e.field === 'threads' && e.problem === "must be at most 1024 (more than any machine's cores), got 100000");
  const session = await createSession(tinyModel(), { device: 'cpu', threads: 2 });
  const result = await session.run({ x: new ort.Tensor('float32', Float32Array.from([1, -2]), [2]) });
  assert.deepEqual(Array.from(result.y.data as Float32Array), [-1, 2]);
  await session.release();
});

const bindingDir = path.join(path.dirname(createRequire(import.meta.url).resolve('onnxruntime-node')), '..', 'bin', 'napi-v6', process.platform, process.arch);
const cudaInstalled = fs.existsSync(path.join(bindingDir, 'libonnxruntime_providers_cuda.so'));

test('--device cuda without a CUDA-enabled onnxruntime-node is a UserError naming the fix', { skip: cudaInstalled && 'this install has the CUDA provider' }, async () => {
  await assert.rejects(createSession(tinyModel(), { device: 'cuda' }), (e: unknown) =>
    e instanceof FieldError && e.field === 'device' && /^cuda: /.test(e.problem) && /ONNXRUNTIME_NODE_INSTALL=cuda12/.test(e.message));
});

test('a default session computes on one thread per physical core (Linux: seen in each thread\'s CPU time)', { skip: !fs.existsSync('/proc/self/task') }, async () => {
  const threads = defaultThreads();
  assert.ok(Number.isInteger(threads) && threads >= 1 && threads <= os.availableParallelism(), `${threads}`);
  const coreIds = new Set<string>();
  for (const cpu of fs.readdirSync('/sys/devices/system/cpu').filter((n) => /^cpu\d+$/.test(n))) {
    const topology = path.join('/sys/devices/system/cpu', cpu, 'topology');
    coreIds.add(['physical_package_id', 'core_id'].map((f) => fs.readFileSync(path.join(topology, f), 'utf8').trim()).join(':'));
  }
  assert.equal(threads, Math.min(coreIds.size, os.availableParallelism()));

  // A [512×1024]·[1024×2048] product (2.1 GFLOP) 20 times: every intra-op thread takes a share
  // (at ~160 GFLOP/s per core, over 100 ms of CPU time each on two cores; counted from 30 ms).
  const g = new GraphBuilder('gemm');
  g.output(g.reduceSum(g.matmul(g.input('a', [512, 1024]), g.input('b', [1024, 2048])), [0], false), 'c', [2048]);
  const session = await createSession(g.toBytes(), { device: 'cpu' });
  const feeds = { a: new ort.Tensor('float32', new Float32Array(512 * 1024).fill(0.5), [512, 1024]), b: new ort.Tensor('float32', new Float32Array(1024 * 2048).fill(0.25), [1024, 2048]) };
  const ticks = (): Map<string, number> => new Map(fs.readdirSync('/proc/self/task').map((task) => {
    const fields = fs.readFileSync(`/proc/self/task/${task}/stat`, 'utf8').split(') ')[1].split(' ');
    return [task, Number(fields[11]) + Number(fields[12])];
  }));
  const before = ticks();
  for (let i = 0; i < 20; i++) {
    const { c } = await session.run(feeds);
    assert.equal((c.data as Float32Array)[0], 512 * 1024 * 0.125);
  }
  const busy = [...ticks()].filter(([task, t]) => t - (before.get(task) ?? 0) >= 3).length;
  await session.release();
  assert.ok(busy >= threads, `threads that computed: ${busy}, expected ${threads}`);
});
