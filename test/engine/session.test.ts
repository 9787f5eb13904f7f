import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { GraphBuilder } from '../../src/engine/onnx-builder.ts';
import { createSession } from '../../src/engine/session.ts';
import { FieldError, UserError } from '../../src/util/errors.ts';

function tinyModel(): Uint8Array {
  const g = new GraphBuilder('tiny');
  g.output(g.neg(g.input('x', [2])), 'y', [2]);
  return g.toBytes();
}

test('--threads must be a positive integer', async () => {
  await assert.rejects(createSession(tinyModel(), { device: 'cpu', threads: 0 }), (e: unknown) =>
    e instanceof FieldError && e.field === 'threads');
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
